//! Content-addressed blob store in the OCI layout shape: `ROOT/blobs/sha256/<hex>`.
//!
//! A blob is written to a temporary file in the same directory, hashed while
//! written, verified against the expected digest, fsynced and then renamed
//! into place. A reader therefore never sees a partial blob, and two processes
//! writing the same blob at once are safe: each renames a complete copy of the
//! same bytes over the other.

use crate::digest::{Digest, HashingWriter};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// An I/O operation on a store path failed.
    #[error("blob store: cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The bytes written do not hash to the digest they were announced as.
    #[error("blob digest mismatch: expected {expected}, got {actual} ({size} bytes); nothing was stored")]
    Mismatch {
        /// The announced digest.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
        /// How many bytes arrived.
        size: u64,
    },
    /// The blob is not in the store.
    #[error("blob {0} is not in the store")]
    Missing(Digest),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
    move |source| BlobError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A content-addressed store rooted at a directory (an OCI layout root or a cache).
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    dir: PathBuf,
    /// Blobs this handle (and its clones) put in place, hashed as they
    /// were written: see [`BlobStore::hashed_here`].
    hashed: Arc<Mutex<HashSet<Digest>>>,
}

impl BlobStore {
    /// Open (creating if needed) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        let dir = root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(BlobStore {
            root,
            dir,
            hashed: Arc::default(),
        })
    }

    /// Whether blob `d` was put in place by this store (or a clone) after
    /// its bytes hashed to `d` as they were written — a download verified
    /// just now, a layer this process wrote — so a reader of it right after
    /// need not hash the same bytes again. Not for a blob that was there
    /// already: those are the store's, unverified since.
    pub fn hashed_here(&self, d: &Digest) -> bool {
        self.hashed.lock().is_ok_and(|h| h.contains(d))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with digest `d` lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Size of a stored blob.
    pub fn size(&self, d: &Digest) -> Result<u64, BlobError> {
        let p = self.path(d);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::Missing(d.clone())),
            Err(e) => Err(io_err("stat", &p)(e)),
        }
    }

    /// Open a stored blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, BlobError> {
        let p = self.path(d);
        match File::open(&p) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::Missing(d.clone())),
            Err(e) => Err(io_err("open", &p)(e)),
        }
    }

    /// Read a whole (small) blob into memory: manifests, configs, indexes.
    pub fn read_bytes(&self, d: &Digest) -> Result<Vec<u8>, BlobError> {
        let mut buf = Vec::new();
        let p = self.path(d);
        self.open_blob(d)?
            .read_to_end(&mut buf)
            .map_err(io_err("read", &p))?;
        Ok(buf)
    }

    /// Store `bytes` and return their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, BlobError> {
        let d = Digest::of(bytes);
        if self.contains(&d) {
            return Ok(d);
        }
        let mut w = self.writer()?;
        w.write_all(bytes)
            .map_err(io_err("write", &self.dir.join(".tmp")))?;
        w.commit(Some(&d)).map(|(d, _)| d)
    }

    /// Start writing a blob whose digest is known only at the end.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(io_err("create a temporary file in", &self.dir))?;
        Ok(BlobWriter {
            out: HashingWriter::new(BufWriter::with_capacity(256 * 1024, tmp)),
            dir: self.dir.clone(),
            hashed: self.hashed.clone(),
        })
    }

    /// Make blob `d` of `from` present here: nothing when it already is, a hard
    /// link on the same filesystem (blobs are immutable), else a verified copy.
    pub fn copy_from(&self, from: &BlobStore, d: &Digest) -> Result<(), BlobError> {
        if self.contains(d) {
            return Ok(());
        }
        if fs::hard_link(from.path(d), self.path(d)).is_ok() {
            return Ok(());
        }
        let src_path = from.path(d);
        let mut src = from.open_blob(d)?;
        let mut w = self.writer()?;
        io::copy(&mut src, &mut w).map_err(io_err("copy", &src_path))?;
        w.commit(Some(d))?;
        Ok(())
    }

    /// Re-hash a stored blob and check it still matches its name.
    pub fn verify(&self, d: &Digest) -> Result<(), BlobError> {
        let p = self.path(d);
        let mut h = HashingWriter::new(io::sink());
        io::copy(&mut self.open_blob(d)?, &mut h).map_err(io_err("read", &p))?;
        let (actual, size, _) = h.finish();
        if &actual == d {
            Ok(())
        } else {
            Err(BlobError::Mismatch {
                expected: d.clone(),
                actual,
                size,
            })
        }
    }

    /// Remove temporary files left by writers that died (e.g. a SIGKILLed cairn)
    /// and are older than `min_age`.
    pub fn sweep_temporaries(&self, min_age: std::time::Duration) -> Result<usize, BlobError> {
        let mut removed = 0;
        let now = std::time::SystemTime::now();
        for ent in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let ent = ent.map_err(io_err("list", &self.dir))?;
            if !ent.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let old = ent
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= min_age);
            if old && fs::remove_file(ent.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A blob being written; becomes visible only through [`BlobWriter::commit`].
/// Dropping it without committing removes the temporary file.
pub struct BlobWriter {
    out: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    dir: PathBuf,
    hashed: Arc<Mutex<HashSet<Digest>>>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.out.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.out.digest()
    }

    /// Verify against `expected` (when given), fsync and move into place.
    /// Returns the digest and size. On a mismatch nothing is stored.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), BlobError> {
        let (digest, size, buf) = self.out.finish();
        if let Some(e) = expected {
            if e != &digest {
                return Err(BlobError::Mismatch {
                    expected: e.clone(),
                    actual: digest,
                    size,
                });
            }
        }
        let dir = self.dir;
        let tmp = buf
            .into_inner()
            .map_err(|e| io_err("flush", &dir)(e.into_error()))?;
        let dest = dir.join(digest.hex());
        if dest.is_file() {
            // Same name, same bytes: keep the existing copy; the temp file is removed on drop.
            return Ok((digest, size));
        }
        // Blobs are content, not secrets: readable by everyone like any OCI layout
        // (a temp file starts 0600).
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(io_err("chmod", &dest))?;
        }
        tmp.as_file().sync_all().map_err(io_err("fsync", &dest))?;
        tmp.persist(&dest)
            .map_err(|e| io_err("rename into", &dest)(e.error))?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        if let Ok(mut h) = self.hashed.lock() {
            h.insert(digest.clone());
        }
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_layout_shape() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let d = s.put_bytes(b"abc").unwrap();
        assert_eq!(
            s.path(&d),
            t.path().join("blobs/sha256").join(d.hex()),
            "OCI layout shape"
        );
        assert_eq!(s.read_bytes(&d).unwrap(), b"abc");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(s.path(&d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "blobs are world-readable, whatever the umask");
        assert_eq!(s.size(&d).unwrap(), 3);
        s.verify(&d).unwrap();
        assert_eq!(s.put_bytes(b"abc").unwrap(), d, "idempotent");
        assert!(s.clone().hashed_here(&d), "written and hashed here");
        // Another handle on the same directory did not hash it.
        let other = BlobStore::open(t.path()).unwrap();
        assert!(other.contains(&d) && !other.hashed_here(&d));
        assert_eq!(other.put_bytes(b"abc").unwrap(), d);
        assert!(!other.hashed_here(&d), "found in place, not written here");
    }

    #[test]
    fn mismatch_stores_nothing_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"tampered").unwrap();
        let want = Digest::of(b"original");
        let err = w.commit(Some(&want)).unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }), "{err}");
        assert!(!s.contains(&want));
        assert!(!s.contains(&Digest::of(b"tampered")));
        let left: Vec<_> = fs::read_dir(t.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "temp file left behind: {left:?}");
    }

    #[test]
    fn uncommitted_writer_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(
            fs::read_dir(t.path().join("blobs/sha256")).unwrap().count(),
            0
        );
    }

    #[test]
    fn concurrent_writers_of_one_blob_are_safe() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let data = vec![7u8; 1 << 20];
        let digests: Vec<Digest> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    sc.spawn(|| {
                        let mut w = s.writer().unwrap();
                        for chunk in data.chunks(4096) {
                            w.write_all(chunk).unwrap();
                        }
                        w.commit(None).unwrap().0
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(digests.windows(2).all(|w| w[0] == w[1]));
        s.verify(&digests[0]).unwrap();
        assert_eq!(
            fs::read_dir(t.path().join("blobs/sha256")).unwrap().count(),
            1
        );
    }

    #[test]
    fn copy_from_links_or_copies_and_is_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let a = BlobStore::open(t.path().join("a")).unwrap();
        let b = BlobStore::open(t.path().join("b")).unwrap();
        let d = a.put_bytes(b"layer").unwrap();
        b.copy_from(&a, &d).unwrap();
        b.copy_from(&a, &d).unwrap();
        assert_eq!(b.read_bytes(&d).unwrap(), b"layer");
        assert!(matches!(
            b.copy_from(&a, &Digest::of(b"absent")),
            Err(BlobError::Missing(_))
        ));
    }

    #[test]
    fn missing_blob_is_reported_as_missing() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let d = Digest::of(b"nope");
        assert!(matches!(s.open_blob(&d), Err(BlobError::Missing(_))));
    }
}
