//! Content digests of context files, remembered by (path, device, inode,
//! size, mtime, ctime) so that a no-op rebuild does not re-read the context.
//! A file whose ctime moved is hashed again, so an edit that restores the
//! mtime is still seen.

use cairn_layers::digest::HashingWriter;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The cache, loaded from and saved to one JSON file.
pub struct HashCache {
    file: PathBuf,
    map: Mutex<BTreeMap<String, String>>,
    dirty: Mutex<bool>,
}

fn stamp(p: &Path, md: &std::fs::Metadata) -> String {
    format!(
        "{}|{}|{}|{}|{}.{}|{}.{}",
        p.display(),
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
    /// Load (or start) the cache stored at `file`.
    pub fn load(file: PathBuf) -> Self {
        let map = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            file,
            map: Mutex::new(map),
            dirty: Mutex::new(false),
        }
    }

    /// The sha256 of the file at `p`.
    pub fn digest(&self, p: &Path) -> io::Result<String> {
        let md = std::fs::symlink_metadata(p)?;
        let key = stamp(p, &md);
        if let Some(d) = self.map.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(d);
        }
        let mut f = std::fs::File::open(p)?;
        let mut h = HashingWriter::new(io::sink());
        io::copy(&mut f, &mut h)?;
        let d = h.finish().0.to_string();
        if let Ok(mut m) = self.map.lock() {
            m.insert(key, d.clone());
        }
        if let Ok(mut dirty) = self.dirty.lock() {
            *dirty = true;
        }
        Ok(d)
    }

    /// Write the cache back when it changed (atomically; losing it only costs time).
    pub fn save(&self) {
        let dirty = self.dirty.lock().map(|d| *d).unwrap_or(false);
        if !dirty {
            return;
        }
        let Ok(map) = self.map.lock() else { return };
        let Some(dir) = self.file.parent() else {
            return;
        };
        if let (Ok(bytes), Ok(mut tmp)) = (
            serde_json::to_vec(&*map),
            tempfile::NamedTempFile::new_in(dir),
        ) {
            if io::Write::write_all(&mut tmp, &bytes).is_ok() {
                let _ = tmp.persist(&self.file);
            }
        }
    }
}
