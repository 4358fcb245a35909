//! What one `cairn build` invocation shares between the images it builds:
//! the cache, the unpacked layers, the RUN sandbox, and the build context —
//! walked (with its `.dockerignore`), indexed and hashed once, whether one
//! platform is built or several, one after another or at the same time.
//! A multi-platform build ([`super::multi`]) opens one session for all its
//! platforms; a single build opens its own.

use super::cache::Cache;
use super::file_digests::FileDigests;
use super::fs::EntryFs;
use super::hash_cache::HashCache;
use super::in_flight::InFlight;
use super::request::BuildRequest;
use super::Error;
use crate::report::{Event, Reporter};
use crate::sandbox::layer_dirs::LayerDirs;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::context::BuildContext;
use cairn_layers::{Digest, Entry};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The state shared by the builds of one invocation.
pub struct Session {
    /// The blob store of the cache.
    pub store: BlobStore,
    /// The step cache.
    pub cache: Cache,
    /// Unpacked layers.
    pub layer_dirs: LayerDirs,
    /// The build context, walked on first use, and the host paths of the
    /// files in it whose names are not UTF-8.
    pub context: OnceLock<Result<Vec<Entry>, crate::error::Shared>>,
    /// The context indexed as a filesystem.
    pub context_fs: OnceLock<EntryFs>,
    /// Context file digests.
    pub hashes: OnceLock<HashCache>,
    /// Digests of files in unpacked layers and plain layer blobs.
    pub file_digests: OnceLock<FileDigests>,
    /// The RUN sandbox, probed on the first RUN.
    pub sandbox: OnceLock<Result<crate::sandbox::Sandbox, crate::error::Shared>>,
    /// Entries of the layers written or reused by content, by blob digest:
    /// later steps (of any platform) read them from memory instead of unpacking.
    pub written: Mutex<HashMap<Digest, Arc<EntryFs>>>,
    /// Step and content keys being worked on: a step two platforms reach at
    /// the same time runs once, the other waits and hits the cache.
    pub in_flight: InFlight,
    /// Canceled when one platform of the session failed: the others' RUN
    /// commands are killed and their next steps do not start.
    pub cancel: crate::sandbox::Cancel,
    /// How many times the context was walked (once at most).
    walks: AtomicUsize,
}

impl Session {
    /// Open the cache of `req` (sweeping what interrupted builds left).
    pub fn open(req: &BuildRequest, reporter: &dyn Reporter) -> Result<Self, Error> {
        let cache = Cache::open(&req.cache_dir).map_err(|source| Error::OpenCache {
            dir: req.cache_dir.clone(),
            source,
        })?;
        if let Some(w) = cache.repaired_warning() {
            reporter.event(Event::Warning(w));
        }
        let store = BlobStore::open(cache.root())?;
        let _ = store.sweep_temporaries(std::time::Duration::from_secs(3600));
        let layer_dirs = LayerDirs::new(cache.layout())?;
        layer_dirs.sweep();
        // `--cache-from`: a layer a remote record names is fetched when first unpacked.
        if !req.cache_from.is_empty() {
            let (imports, store) = (req.cache_from.clone(), store.clone());
            layer_dirs.set_fetch(std::sync::Arc::new(move |d| {
                imports.materialize([d], &store).map_err(Into::into)
            }));
        }
        Ok(Self::with(store, cache, layer_dirs))
    }

    /// A session on an opened cache.
    pub fn with(store: BlobStore, cache: Cache, layer_dirs: LayerDirs) -> Self {
        Session {
            store,
            cache,
            layer_dirs,
            context: OnceLock::new(),
            context_fs: OnceLock::new(),
            hashes: OnceLock::new(),
            file_digests: OnceLock::new(),
            sandbox: OnceLock::new(),
            written: Mutex::default(),
            in_flight: InFlight::default(),
            cancel: crate::sandbox::Cancel::default(),
            walks: AtomicUsize::new(0),
        }
    }

    /// The context of `req` (the same for every build of the session),
    /// walked on first use.
    pub fn context_walk(&self, req: &BuildRequest) -> Result<&Vec<Entry>, Error> {
        let r = self.context.get_or_init(|| {
            self.walks.fetch_add(1, Ordering::Relaxed);
            BuildContext::open(&req.context, Some(&req.dockerfile))
                .and_then(|c| c.walk())
                .map_err(crate::error::Shared::new)
        });
        r.as_ref().map_err(|e| Error::Context(e.error()))
    }

    /// The context digest cache (loaded once, saved by [`Session::save`]).
    pub fn context_hashes(&self) -> &HashCache {
        self.hashes.get_or_init(|| {
            HashCache::load(self.cache.layout().memo(crate::cache::Memo::ContextHashes))
        })
    }

    /// What the session read of the context: walks (0 or 1) and files hashed.
    pub fn context_reads(&self) -> (usize, usize) {
        (
            self.walks.load(Ordering::Relaxed),
            self.hashes.get().map_or(0, HashCache::hashed),
        )
    }

    /// An error when the session was canceled, before `step` starts.
    pub fn check_canceled(&self, step: &str) -> Result<(), Error> {
        if self.cancel.is_canceled() {
            return Err(crate::sandbox::SandboxError::Canceled {
                label: step.to_owned(),
            }
            .into());
        }
        Ok(())
    }

    /// Save the digest memos (after the builds; losing them only costs time).
    pub fn save(&self) {
        if let Some(h) = self.hashes.get() {
            h.save();
        }
        if let Some(d) = self.file_digests.get() {
            d.save();
        }
    }
}
