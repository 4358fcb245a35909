//! Content digests of files that never change once written: members of
//! unpacked layer directories and of plain layer blobs, both named by their
//! own digest. Reuse by content needs a digest for every copied file; with
//! this memo the 10,000 files of a `node_modules` layer are hashed once per
//! cache, not on every build whose `COPY --from` reads them.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Entries kept; past it the memo starts over (it only saves time).
const MAX_ENTRIES: usize = 500_000;

/// Immutable-file identity → `sha256:…`, loaded from and saved to one JSON
/// file (sorted, so the file is the same whatever order files were hashed in).
pub struct FileDigests {
    file: PathBuf,
    map: Mutex<BTreeMap<String, String>>,
    dirty: AtomicBool,
}

impl FileDigests {
    /// Load the memo at `file` (unreadable: start empty).
    pub fn load(file: PathBuf) -> Self {
        let map = crate::memo_file::read_json(&file);
        FileDigests {
            file,
            map: Mutex::new(map),
            dirty: AtomicBool::new(false),
        }
    }

    /// The digest of the immutable file named `key`, from `compute` the first time.
    pub fn digest(
        &self,
        key: &str,
        compute: impl FnOnce() -> io::Result<String>,
    ) -> io::Result<String> {
        if let Some(d) = self.map.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(d);
        }
        let d = compute()?;
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(key.to_owned(), d.clone());
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(d)
    }

    /// Write the memo back if it changed (atomically; losing it only costs time).
    pub fn save(&self) {
        if !self.dirty.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(map) = self.map.lock() {
            let _ = crate::memo_file::write_json(&self.file, &*map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_once_then_remembered_across_loads() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file-digests.json");
        let m = FileDigests::load(file.clone());
        assert_eq!(
            m.digest("dir:abc/x", || Ok("sha256:1".into())).unwrap(),
            "sha256:1"
        );
        m.save();
        let m = FileDigests::load(file);
        let again = m
            .digest("dir:abc/x", || panic!("an immutable file is hashed once"))
            .unwrap();
        assert_eq!(again, "sha256:1");
        assert!(m
            .digest("dir:abc/y", || Err(io::Error::other("gone")))
            .is_err());
    }
}
