//! The seam a cache backend plugs into: where step records and their layer
//! blobs are found and stored. The local cache directory ([`Cache`]) is the
//! first implementation; a registry (`--cache-to/--cache-from
//! type=registry,ref=…`) or a directory elsewhere (`type=local,dest=…`,
//! issue #16) are the next.

use super::records::{Cache, StepRecord};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::io;

/// A place step records and layer blobs can be read from and written to.
/// Keys are the step keys of [`super::records::Inputs::key`]: the same on
/// every machine for the same inputs, so a record found anywhere is valid
/// here once its blob is in the local store.
pub trait CacheBackend {
    /// How messages name it (`cache CACHE_DIR`, `registry REF`, `local DIR`).
    fn describe(&self) -> String;

    /// The record of step `key`, if this backend has it.
    fn record(&self, key: &Digest) -> io::Result<Option<StepRecord>>;

    /// Make blob `digest` present in the local `store`, fetching it from the
    /// backend if needed; false when the backend does not have it either.
    fn fetch_blob(&self, digest: &Digest, store: &BlobStore) -> io::Result<bool>;

    /// Keep `record` and its layer blob (read from `store`) in the backend.
    fn export(&self, record: &StepRecord, store: &BlobStore) -> io::Result<()>;
}

impl CacheBackend for Cache {
    fn describe(&self) -> String {
        format!("cache {}", self.root().display())
    }

    fn record(&self, key: &Digest) -> io::Result<Option<StepRecord>> {
        Ok(self.read_record(key))
    }

    fn fetch_blob(&self, digest: &Digest, store: &BlobStore) -> io::Result<bool> {
        // The local blob store is the one at the cache root.
        if store.root() == self.root() {
            return Ok(store.contains(digest));
        }
        let mine = BlobStore::open(self.root()).map_err(io::Error::other)?;
        if !mine.contains(digest) {
            return Ok(false);
        }
        store.copy_from(&mine, digest).map_err(io::Error::other)?;
        Ok(true)
    }

    fn export(&self, record: &StepRecord, store: &BlobStore) -> io::Result<()> {
        if let Some(layer) = &record.layer {
            let d: Digest = layer
                .digest
                .parse()
                .map_err(|e| io::Error::other(format!("bad layer digest: {e}")))?;
            let mine = BlobStore::open(self.root()).map_err(io::Error::other)?;
            // A no-op when `store` is this cache's own.
            mine.copy_from(store, &d).map_err(io::Error::other)?;
        }
        self.put_record(record).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::records::{CachedLayer, Inputs, RecordKind};

    #[test]
    fn a_record_exported_to_another_cache_is_found_there_with_its_blob() {
        let t = tempfile::tempdir().unwrap();
        let here = Cache::open_unlocked(t.path().join("here")).unwrap();
        let there = Cache::open_unlocked(t.path().join("there")).unwrap();
        let store = BlobStore::open(here.root()).unwrap();
        let d = store.put_bytes(b"layer").unwrap();
        let mut i = Inputs::default();
        i.push("instruction", "RUN x");
        let rec = StepRecord {
            kind: RecordKind::Step,
            key: i.key().to_string(),
            inputs: i.clone(),
            layer: Some(CachedLayer {
                digest: d.to_string(),
                diff_id: d.to_string(),
                size: 5,
                media_type: "x".into(),
            }),
        };
        let backend: &dyn CacheBackend = &there;
        assert_eq!(backend.record(&i.key()).unwrap(), None);
        backend.export(&rec, &store).unwrap();
        assert_eq!(backend.record(&i.key()).unwrap(), Some(rec));
        let fresh = BlobStore::open(t.path().join("fresh")).unwrap();
        assert!(backend.fetch_blob(&d, &fresh).unwrap());
        assert!(fresh.contains(&d));
        assert!(!backend.fetch_blob(&Digest::of(b"no"), &fresh).unwrap());
    }
}
