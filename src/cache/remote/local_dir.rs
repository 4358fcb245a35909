//! A step cache in a directory (`type=local,dest=DIR` / `src=DIR`): entries
//! are `DIR/entries/<name>.json` (the record), layer blobs
//! `DIR/blobs/sha256/<hex>`. Every file is written to a temporary name and
//! renamed, and nothing is ever removed, so runners may share the directory.
//! Cache mount entries are `DIR/mounts/<name>.json` (the one kind of entry
//! that is replaced: see [`super::mounts`]).

use super::mounts::MountRecord;
use super::{BlobSink, Remote};
use crate::cache::records::StepRecord;
use crate::cache::Error;
use crate::image::Layer;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A cache directory elsewhere.
pub struct LocalDir {
    dir: PathBuf,
}

impl LocalDir {
    /// The cache at `dir` (created on the first export).
    pub fn new(dir: PathBuf) -> Self {
        LocalDir { dir }
    }

    fn entries(&self) -> PathBuf {
        self.dir.join("entries")
    }

    fn blobs(&self) -> Result<BlobStore, Error> {
        BlobStore::open(&self.dir).map_err(|source| Error::OpenStore {
            path: self.dir.clone(),
            source,
        })
    }
}

/// Entry names are tags: no path can be made of one.
fn valid(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn check_name(name: &str) -> Result<(), Error> {
    if valid(name) {
        Ok(())
    } else {
        Err(Error::InvalidName { name: name.into() })
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

impl Remote for LocalDir {
    fn describe(&self) -> String {
        format!("local cache {}", self.dir.display())
    }

    fn entry(&self, name: &str) -> Result<Option<StepRecord>, Error> {
        check_name(name)?;
        let path = self.entries().join(format!("{name}.json"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        match serde_json::from_slice(&bytes) {
            Ok(rec) => Ok(Some(rec)),
            Err(source) => Err(Error::NotARecord {
                path,
                what: "step record",
                source,
            }),
        }
    }

    fn names(&self) -> Result<Vec<String>, Error> {
        let rd = match std::fs::read_dir(self.entries()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            rd => rd.map_err(|source| Error::List {
                path: self.entries(),
                source,
            })?,
        };
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .filter(|n| valid(n))
                    .map(str::to_owned)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// A local copy: never streamed (the sink is left unused; its caller
    /// unpacks from the store).
    fn fetch_blob(
        &self,
        layer: &Layer,
        store: &BlobStore,
        _sink: Option<&mut dyn BlobSink>,
    ) -> Result<u64, Error> {
        let d = layer.digest.clone();
        let path = self.blobs()?.path(&d);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(source) => return Err(Error::Open { path, source }),
        };
        let mut w = store.writer()?;
        std::io::copy(&mut f, &mut w)?;
        // Verified here: bytes that do not hash to the name are not stored.
        let (_, n) = w.commit(Some(&d))?;
        Ok(n)
    }

    fn put(&self, name: &str, record: &StepRecord, store: &BlobStore) -> Result<(), Error> {
        check_name(name)?;
        if let Some(l) = &record.layer {
            self.copy_blob(&l.digest, store)?;
        }
        write_atomic(
            &self.entries(),
            &format!("{name}.json"),
            &serde_json::to_vec_pretty(record)?,
        )
    }

    fn mount_entry(&self, name: &str) -> Result<Option<MountRecord>, Error> {
        check_name(name)?;
        let path = self.dir.join("mounts").join(format!("{name}.json"));
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(rec) => Ok(Some(rec)),
                Err(source) => Err(Error::NotARecord {
                    path,
                    what: "cache mount record",
                    source,
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    fn put_mount(&self, name: &str, record: &MountRecord, store: &BlobStore) -> Result<(), Error> {
        check_name(name)?;
        self.copy_blob(&record.blob.digest, store)?;
        write_atomic(
            &self.dir.join("mounts"),
            &format!("{name}.json"),
            &serde_json::to_vec_pretty(record)?,
        )
    }
}

impl LocalDir {
    /// Blob first: an entry is never visible before its blob. Copied, never
    /// hard-linked: a shared directory must not be a way to write into this
    /// machine's cache.
    fn copy_blob(&self, digest: &Digest, store: &BlobStore) -> Result<(), Error> {
        let d = digest.clone();
        let mine = self.blobs()?;
        if !mine.contains(&d) {
            let mut w = mine.writer()?;
            std::io::copy(&mut store.open_blob(&d)?, &mut w)?;
            if let Err(source) = w.commit(Some(&d)) {
                return Err(Error::CopyBlob {
                    digest: d,
                    dir: self.dir.clone(),
                    source,
                });
            }
        }
        Ok(())
    }
}
