//! Content digests of context files, remembered by path together with a
//! stamp of (device, inode, size, mtime, ctime), so that a no-op rebuild does
//! not re-read the context. A file whose ctime moved is hashed again, so an
//! edit that restores the mtime is still seen. One entry per path: a changed
//! file replaces its entry, so the cache stays as large as the contexts it has
//! seen, however often their files change. A file two threads ask for at
//! once (two platforms of one build reaching the same COPY) is read once.

use cairn_layers::digest::HashingWriter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What is known about one path: the stamp it had when hashed, and the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    stamp: String,
    digest: String,
}

/// The cache, loaded from and saved to one JSON file.
pub struct HashCache {
    file: PathBuf,
    map: Mutex<BTreeMap<String, Known>>,
    dirty: Mutex<bool>,
    /// Paths being hashed, so that each is read once.
    hashing: super::in_flight::InFlight,
    /// Files read (not served from the cache) since loading.
    hashed: AtomicUsize,
}

fn stamp(md: &std::fs::Metadata) -> String {
    format!(
        "{}|{}|{}|{}.{}|{}.{}",
        md.dev(),
        md.ino(),
        md.len(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec()
    )
}

impl HashCache {
    /// Load (or start) the cache stored at `file`; an unreadable or
    /// older-format file starts an empty cache (losing it only costs time).
    pub fn load(file: PathBuf) -> Self {
        let map = crate::memo_file::read_json(&file);
        HashCache {
            file,
            map: Mutex::new(map),
            dirty: Mutex::new(false),
            hashing: Default::default(),
            hashed: AtomicUsize::new(0),
        }
    }

    /// The sha256 of the file at `p`.
    pub fn digest(&self, p: &Path) -> io::Result<String> {
        let md = std::fs::symlink_metadata(p)?;
        let stamp = stamp(&md);
        let key = cairn_layers::raw_name::from_os(p.as_os_str());
        let known = || {
            self.map
                .lock()
                .ok()
                .and_then(|m| m.get(&*key).cloned())
                .filter(|k| k.stamp == stamp)
        };
        if let Some(k) = known() {
            return Ok(k.digest);
        }
        let _claim = self.hashing.claim(&key);
        if let Some(k) = known() {
            return Ok(k.digest);
        }
        self.hashed.fetch_add(1, Ordering::Relaxed);
        let mut f = std::fs::File::open(p)?;
        let mut h = HashingWriter::new(io::sink());
        io::copy(&mut f, &mut h)?;
        let digest = h.finish().0.to_string();
        if let Ok(mut m) = self.map.lock() {
            m.insert(
                key.into_owned(),
                Known {
                    stamp,
                    digest: digest.clone(),
                },
            );
        }
        if let Ok(mut dirty) = self.dirty.lock() {
            *dirty = true;
        }
        Ok(digest)
    }

    /// How many files were read (not known already) since loading.
    pub fn hashed(&self) -> usize {
        self.hashed.load(Ordering::Relaxed)
    }

    /// Write the cache back when it changed (atomically; losing it only costs time).
    pub fn save(&self) {
        let dirty = self.dirty.lock().map(|d| *d).unwrap_or(false);
        if !dirty {
            return;
        }
        if let Ok(map) = self.map.lock() {
            let _ = crate::memo_file::write_json(&self.file, &*map);
        }
    }

    /// How many paths the cache knows.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_layers::Digest;

    fn sha(b: &[u8]) -> String {
        Digest::of(b).to_string()
    }

    #[test]
    fn digests_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, b"hello").unwrap();
        let store = dir.path().join("hashes.json");
        let c = HashCache::load(store.clone());
        assert_eq!(c.digest(&f).unwrap(), sha(b"hello"));
        c.save();
        let again = HashCache::load(store);
        assert_eq!(again.len(), 1);
        assert_eq!(again.digest(&f).unwrap(), sha(b"hello"));
        assert!(
            !*again.dirty.lock().unwrap(),
            "a known file is not re-hashed"
        );
    }

    #[test]
    fn an_edit_that_restores_mtime_and_size_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, b"one").unwrap();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        let c = HashCache::load(dir.path().join("hashes.json"));
        assert_eq!(c.digest(&f).unwrap(), sha(b"one"));
        std::fs::write(&f, b"two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(c.digest(&f).unwrap(), sha(b"two"));
    }

    #[test]
    fn a_file_asked_for_by_many_threads_at_once_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, vec![7u8; 8 << 20]).unwrap();
        let c = HashCache::load(dir.path().join("hashes.json"));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| c.digest(&f).unwrap());
            }
        });
        assert_eq!(c.hashed(), 1);
        assert_eq!(c.digest(&f).unwrap(), sha(&vec![7u8; 8 << 20]));
        assert_eq!(c.hashed(), 1);
    }

    #[test]
    fn a_changed_file_replaces_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        let c = HashCache::load(dir.path().join("hashes.json"));
        for i in 0..5 {
            std::fs::write(&f, format!("version {i}")).unwrap();
            assert_eq!(
                c.digest(&f).unwrap(),
                sha(format!("version {i}").as_bytes())
            );
        }
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_broken_or_old_format_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("hashes.json");
        std::fs::write(&store, br#"{"/x|1|2|3|4.5|6.7": "sha256:00"}"#).unwrap();
        assert_eq!(HashCache::load(store.clone()).len(), 0);
        std::fs::write(&store, b"{not json").unwrap();
        assert_eq!(HashCache::load(store).len(), 0);
    }
}
