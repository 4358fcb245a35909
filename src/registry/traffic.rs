//! Bytes moved between this machine and registries, per registry: blobs
//! downloaded, uploaded, mounted registry-side (cross-repository mount) and
//! found already present (HEAD). One [`Traffic`] is shared by every
//! [`super::Registry`] client of a command (bases, cache, push), so the
//! build's summary can say what crossed the network and what did not.

use crate::report::{Moved, Transfer};
use std::collections::BTreeMap;
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
pub struct Traffic(Mutex<BTreeMap<String, Transfer>>);

/// Whether `media_type` is a layer's (image-spec and Docker layer types).
pub fn is_layer(media_type: &str) -> bool {
    media_type.contains(".layer.") || media_type.contains("rootfs.diff")
}

impl Traffic {
    /// Count `size` bytes of a blob of `media_type` that `action` moved for `registry`.
    pub fn count(&self, registry: &str, action: Action, media_type: &str, size: u64) {
        let Ok(mut m) = self.0.lock() else {
            return;
        };
        let t = m.entry(registry.to_owned()).or_insert_with(|| Transfer {
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
            .map(|m| m.values().cloned().collect())
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
        t.count("r:5000", Action::Downloaded, layer, 10);
        t.count(
            "r:5000",
            Action::Downloaded,
            "application/vnd.oci.image.config.v1+json",
            3,
        );
        t.count(
            "r:5000",
            Action::Mounted,
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            7,
        );
        t.count("q:1", Action::Uploaded, layer, 5);
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
