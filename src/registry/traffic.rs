//! Bytes moved between this machine and registries, per registry: blobs
//! downloaded, uploaded, mounted registry-side (cross-repository mount) and
//! found already present (HEAD). One [`Traffic`] is shared by every
//! [`super::Registry`] client of a command (bases, cache, push), so the
//! build's summary can say what crossed the network and what did not.

use crate::report::{Moved, Transfer};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// What happened to one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fetched from the registry.
    Downloaded,
    /// Sent to the registry.
    Uploaded,
    /// Placed registry-side from another repository (no bytes sent).
    Mounted,
    /// Already in the target repository (no bytes sent).
    Present,
}

/// Counters per registry (shared, thread-safe).
#[derive(Debug, Default)]
pub struct Traffic(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    by_registry: BTreeMap<String, Transfer>,
    /// `(registry, repository, digest)` this command mounted or uploaded: a
    /// later HEAD finding it there (the push after a placement, a second
    /// tag) is not counted as present.
    placed: BTreeSet<(String, String, String)>,
}

/// Whether `media_type` is a layer's (image-spec and Docker layer types).
pub fn is_layer(media_type: &str) -> bool {
    media_type.contains(".layer.") || media_type.contains("rootfs.diff")
}

impl Traffic {
    /// Count blob `digest` (`size` bytes of `media_type`) that `action`
    /// moved for repository `repo` of `registry`.
    pub fn count(
        &self,
        (registry, repo): (&str, &str),
        action: Action,
        (digest, media_type, size): (&str, &str, u64),
    ) {
        let Ok(mut st) = self.0.lock() else {
            return;
        };
        let key = (registry.to_owned(), repo.to_owned(), digest.to_owned());
        match action {
            Action::Present if st.placed.contains(&key) => return,
            Action::Mounted | Action::Uploaded => {
                st.placed.insert(key);
            }
            _ => {}
        }
        let t = st
            .by_registry
            .entry(registry.to_owned())
            .or_insert_with(|| Transfer {
                registry: registry.to_owned(),
                ..Default::default()
            });
        let moved: &mut Moved = match action {
            Action::Downloaded => &mut t.downloaded,
            Action::Uploaded => &mut t.uploaded,
            Action::Mounted => &mut t.mounted,
            Action::Present => &mut t.present,
        };
        moved.blobs += 1;
        moved.bytes += size;
        if is_layer(media_type) {
            moved.layer_bytes += size;
        }
    }

    /// Every registry's figures, by registry name.
    pub fn snapshot(&self) -> Vec<Transfer> {
        self.0
            .lock()
            .map(|st| st.by_registry.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_registry_and_action_with_layer_bytes_apart() {
        let t = Traffic::default();
        let layer = "application/vnd.oci.image.layer.v1.tar+gzip";
        let r = ("r:5000", "app");
        t.count(r, Action::Downloaded, ("sha256:a", layer, 10));
        let config = "application/vnd.oci.image.config.v1+json";
        t.count(r, Action::Downloaded, ("sha256:c", config, 3));
        let docker = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        t.count(r, Action::Mounted, ("sha256:m", docker, 7));
        // The push's HEAD after the mount finds what this command placed: not "present".
        t.count(r, Action::Present, ("sha256:m", docker, 7));
        t.count(("q:1", "app"), Action::Uploaded, ("sha256:u", layer, 5));
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].registry, "q:1");
        assert_eq!(
            s[0].uploaded,
            Moved {
                blobs: 1,
                bytes: 5,
                layer_bytes: 5
            }
        );
        let r = &s[1];
        assert_eq!(
            r.downloaded,
            Moved {
                blobs: 2,
                bytes: 13,
                layer_bytes: 10
            }
        );
        assert_eq!(r.mounted.layer_bytes, 7);
        assert_eq!(r.present, Moved::default());
        assert_eq!(
            r.to_string(),
            "r:5000: downloaded 2 blobs 13 B (layers 10 B), uploaded 0 blobs 0 B, \
             mounted 1 blob 7 B, present 0 blobs 0 B"
        );
    }
}
