//! What every step of one build reads: the request, the plan, the cache,
//! the unpacked layers, progress, and the session shared with the other
//! builds of the invocation. It sits below the stage and step files, which
//! all take it, and above the stores it hands out.

use super::bases::ImageSource;
use super::cache::Cache;
use super::record::BuildRecord;
use super::request::BuildRequest;
use super::session::Session;
use super::Error;
use crate::frontend::{BuildPlan, Dockerfile};
use crate::report::Reporter;
use crate::sandbox::layer_dirs::LayerDirs;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Entry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Everything a stage needs while it runs.
pub struct BuildCtx<'a> {
    /// The request.
    pub req: &'a BuildRequest,
    /// The parsed Dockerfile.
    pub df: &'a Dockerfile,
    /// The plan.
    pub plan: &'a BuildPlan,
    /// The blob store of the cache.
    pub store: BlobStore,
    /// The step cache.
    pub cache: Cache,
    /// Unpacked layers (shared by the builds of the session).
    pub layer_dirs: &'a LayerDirs,
    /// Base images.
    pub images: &'a dyn ImageSource,
    /// Progress.
    pub reporter: &'a dyn Reporter,
    /// What this build shares with the other builds of the invocation (the
    /// other platforms of a multi-platform build): the context walk and its
    /// digests, the sandbox, the layers written.
    pub session: &'a Session,
    /// Step ids for progress.
    pub next_step: AtomicUsize,
    /// Per-step records collected for the build record.
    pub record: Mutex<BuildRecord>,
    /// `created` of new history entries.
    pub created: String,
    /// Nanoseconds spent inside RUN commands, and in whole RUN steps.
    pub run_nanos: (AtomicU64, AtomicU64),
    /// Entries of the layers written or reused by content, by blob digest
    /// (the session's): later steps read them from memory instead of unpacking.
    pub written: &'a Mutex<
        std::collections::HashMap<cairn_layers::Digest, std::sync::Arc<super::fs::EntryFs>>,
    >,
    /// The stages whose layers the target image contains (the target and the
    /// stages it is built `FROM`): their new layers are written gzip, the
    /// others plain (see `crate::image::MediaType::StageLayer`).
    pub exported: std::collections::BTreeSet<usize>,
}

impl BuildCtx<'_> {
    /// Store a step's record under `slot` in this build's step cache.
    pub fn store_record(&self, rec: &crate::cache::StepRecord, slot: &str) -> Result<(), Error> {
        self.cache
            .store(rec, slot)
            .map_err(|source| Error::WriteCache {
                root: self.cache.root().to_owned(),
                source,
            })
    }

    /// The filtered context entries (walked once per build).
    pub fn context_entries(&self) -> Result<&Vec<Entry>, Error> {
        self.session.context_walk(self.req)
    }

    /// The sandbox for RUN steps (probed once per build).
    pub fn sandbox(&self) -> Result<&crate::sandbox::Sandbox, Error> {
        self.session
            .sandbox
            .get_or_init(|| {
                super::isolation::new_sandbox(self.layer_dirs, self.reporter, &self.req.isolation)
                    .map_err(crate::error::Shared::new)
            })
            .as_ref()
            .map_err(|e| Error::Sandbox(e.error()))
    }

    /// Account time inside a RUN command and of the whole step.
    pub fn add_run_time(&self, command: std::time::Duration, total: std::time::Duration) {
        self.run_nanos
            .0
            .fetch_add(command.as_nanos() as u64, Ordering::Relaxed);
        self.run_nanos
            .1
            .fetch_add(total.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The filtered context as a source filesystem (indexed once per build).
    pub fn context_fs(&self) -> Result<&super::fs::EntryFs, Error> {
        let entries = self.context_entries()?;
        Ok(self
            .session
            .context_fs
            .get_or_init(|| super::fs::EntryFs::new(entries.iter().cloned())))
    }

    /// Content digests of context files (loaded once per build, saved at its end).
    pub fn context_hashes(&self) -> &super::hash_cache::HashCache {
        self.session.context_hashes()
    }

    /// Digests of immutable files of layers (loaded on first use, saved at the end).
    pub fn file_digests(&self) -> &super::file_digests::FileDigests {
        self.session.file_digests.get_or_init(|| {
            super::file_digests::FileDigests::load(
                self.cache.layout().memo(crate::cache::Memo::FileDigests),
            )
        })
    }

    /// A fresh step id.
    pub fn step_id(&self) -> usize {
        self.next_step.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The directory behind `--build-context NAME=DIR`.
pub(crate) fn named_dir<'r>(
    ctx: &BuildCtx<'r>,
    name: &str,
) -> Result<&'r super::named_context::LocalContext, Error> {
    match ctx.req.named_contexts.get(name) {
        Some(super::named_context::NamedContext::Dir(d)) => Ok(d),
        _ => Err(Error::NotADirectory(name.to_owned())),
    }
}
