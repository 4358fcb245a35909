//! Where this machine last pushed each blob, per registry. A later push of
//! the same blob to another repository of that registry mounts it from there
//! instead of uploading it again (docker and containers/image keep the same
//! memory). Only a hint: a stale entry costs one refused mount request, and
//! concurrent pushes may lose each other's entries.

use cairn_layers::Digest;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Entries kept per registry; past it the oldest knowledge is dropped wholesale.
const MAX_PER_REGISTRY: usize = 100_000;

/// registry → digest → repository path.
type Map = BTreeMap<String, BTreeMap<String, String>>;

/// The memo, loaded from and saved to one JSON file (or kept in memory only).
#[derive(Debug, Default)]
pub struct BlobMemo {
    file: Option<PathBuf>,
    map: Mutex<Map>,
}

impl BlobMemo {
    /// Load the memo stored at `file` (an unreadable file starts empty).
    pub fn load(file: PathBuf) -> Self {
        let map = crate::memo_file::read_json(&file);
        BlobMemo {
            file: Some(file),
            map: Mutex::new(map),
        }
    }

    /// The repository of `registry` that last received `digest`.
    pub fn source(&self, registry: &str, digest: &Digest) -> Option<String> {
        self.map
            .lock()
            .ok()?
            .get(registry)?
            .get(&digest.to_string())
            .cloned()
    }

    /// Remember that `repo` of `registry` holds `digest`.
    pub fn record(&self, registry: &str, repo: &str, digest: &Digest) {
        if let Ok(mut m) = self.map.lock() {
            let r = m.entry(registry.to_owned()).or_default();
            if r.len() >= MAX_PER_REGISTRY {
                r.clear();
            }
            r.insert(digest.to_string(), repo.to_owned());
        }
    }

    /// Write the memo back (atomically: a temporary file renamed over it).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let m = self
            .map
            .lock()
            .map_err(|_| std::io::Error::other("blob memo lock poisoned"))?;
        crate::memo_file::write_json(file, &*m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_registry_across_loads() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("sub/registry-blobs.json");
        let d = Digest::of(b"layer");
        let m = BlobMemo::load(file.clone());
        assert_eq!(m.source("r:5000", &d), None);
        m.record("r:5000", "team/app", &d);
        m.save().unwrap();
        let m = BlobMemo::load(file.clone());
        assert_eq!(m.source("r:5000", &d).as_deref(), Some("team/app"));
        assert_eq!(m.source("other:5000", &d), None, "per registry");
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(BlobMemo::load(file).source("r:5000", &d), None);
    }
}
