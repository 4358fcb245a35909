//! Step caches shared between machines: `cairn build --cache-to/--cache-from`
//! with `type=local,dest=DIR|src=DIR` ([`local_dir`]) or
//! `type=registry,ref=REF` ([`registry`]).
//!
//! **One entry per step, never rewritten.** An entry is a step record (the
//! same [`StepRecord`] the local cache keeps) and its layer blob, named
//! `s<slot id>-<key hex>` ([`entry_name`]): the key is the step's cache key
//! (the same on every machine for the same inputs), the slot id hashes the
//! step's position (Dockerfile name, stage, index) so that a miss can be
//! explained against the records of the same step ([`Imports::explain`]).
//! In a registry the name is a tag, each on its own small OCI artifact: a
//! runner only ever *adds* tags, and a tag's content is a function of its
//! name, so runners building different branches at the same time can never
//! remove or overwrite each other's entries. (BuildKit's one cache manifest
//! per ref is last-writer-wins; referrers would need a subject shared by
//! every runner, whose index is again one document written by all.)
//!
//! **Lazy import.** A lookup reads only the entry's record; its layer blob is
//! fetched when the build needs the bytes ([`Imports::materialize`]: a later
//! step's filesystem, the image output, an export), so the layers of stages
//! whose every step hits are never moved. Each blob is verified against its
//! digest on the way in; one that does not match is refused with
//! [`Refused`], and the build is run again without that entry (the step is
//! rebuilt).
//!
//! **Secrets** never enter keys or records (`--secret` values are not
//! inputs); build-arg and env values are exported as digests (as in the
//! build record), so an exported record says *which* value changed, never
//! the value.

pub mod local_dir;
pub mod mounts;
pub mod prefetch;
pub mod registry;

use super::records::{Inputs, RecordKind, StepRecord};
use super::Error;
use crate::error::one_line;
use crate::image::Layer;
pub use crate::registry::pull::BlobSink;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which steps an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The steps whose layers are in the exported image.
    Min,
    /// Every stage's steps.
    Max,
}

/// Where a cache lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory.
    Local(PathBuf),
    /// A registry repository (`REGISTRY/REPO`; a tag, if given, is ignored:
    /// entries are tags of their own).
    Registry(String),
}

/// One `--cache-to` or `--cache-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSpec {
    /// Where.
    pub location: Location,
    /// `mode=` (export only).
    pub mode: Mode,
    /// `ignore-error=`: a failing export or import warns instead of failing the build.
    pub ignore_error: bool,
    /// `cache-mounts=`: which `RUN --mount=type=cache` contents travel
    /// (none unless asked), and `cache-mounts-max=`: the largest exported
    /// or imported.
    pub mounts: mounts::MountOpts,
}

impl CacheSpec {
    /// Parse the value of `flag` (`--cache-to` or `--cache-from`), as buildx:
    /// `type=local,dest=DIR` / `type=local,src=DIR`, `type=registry,ref=REF`,
    /// or a bare `REF`; options `mode=min|max`, `ignore-error=true|false`,
    /// `compression=gzip` (layers are kept as built: gzip in the image's
    /// stages).
    pub fn parse(flag: &str, value: &str) -> Result<CacheSpec, Error> {
        let bad = |why: String| Error::BadSpec {
            flag: flag.into(),
            value: value.into(),
            why,
        };
        if !value.contains('=') {
            return Ok(CacheSpec {
                location: Location::Registry(value.to_owned()),
                mode: Mode::Min,
                ignore_error: true,
                mounts: mounts::MountOpts::default(),
            });
        }
        let mut kv = BTreeMap::new();
        for part in value.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("`{part}` is not KEY=VALUE")))?;
            kv.insert(k.trim(), v.trim());
        }
        let dir_key = if flag == "--cache-to" { "dest" } else { "src" };
        let location = match kv.get("type").copied() {
            Some("local") => Location::Local(PathBuf::from(
                kv.get(dir_key)
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| bad(format!("type=local needs {dir_key}=DIR")))?,
            )),
            Some("registry") => Location::Registry(
                kv.get("ref")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| bad("type=registry needs ref=REF".into()))?
                    .to_string(),
            ),
            Some(t) => {
                return Err(bad(format!(
                    "type={t} is not a cache type cairn has (local, registry)"
                )))
            }
            None => return Err(bad("no type=".into())),
        };
        let mode = match kv.get("mode").copied() {
            None | Some("min") => Mode::Min,
            Some("max") => Mode::Max,
            Some(m) => return Err(bad(format!("mode={m}: use min or max"))),
        };
        let ignore_error = match kv.get("ignore-error").copied() {
            None | Some("true") => true,
            Some("false") => false,
            Some(v) => return Err(bad(format!("ignore-error={v}: use true or false"))),
        };
        if let Some(c) = kv.get("compression").filter(|c| **c != "gzip") {
            return Err(bad(format!(
                "compression={c}: the cache keeps layers as built (gzip)"
            )));
        }
        let mounts = mounts::MountOpts::parse(
            kv.get("cache-mounts").copied(),
            kv.get("cache-mounts-max").copied(),
        )
        .map_err(|e| bad(e.to_string()))?;
        for k in kv.keys() {
            let known = [
                "type",
                "dest",
                "src",
                "ref",
                "mode",
                "ignore-error",
                "compression",
                "cache-mounts",
                "cache-mounts-max",
            ];
            if !known.contains(k) || (["dest", "src"].contains(k) && *k != dir_key) {
                return Err(bad(format!("unknown option `{k}`")));
            }
        }
        Ok(CacheSpec {
            location,
            mode,
            ignore_error,
            mounts,
        })
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match &self.location {
            Location::Local(d) => format!("local cache {}", d.display()),
            Location::Registry(r) => format!("registry cache {r}"),
        }
    }
}

/// A place entries are read from and added to.
pub trait Remote: Send + Sync {
    /// How messages name it.
    fn describe(&self) -> String;
    /// The record of entry `name`, if there is one (not yet verified).
    fn entry(&self, name: &str) -> Result<Option<StepRecord>, Error>;
    /// The names of every entry.
    fn names(&self) -> Result<Vec<String>, Error>;
    /// Fetch `layer`'s blob into `store`, verified against its digest, its
    /// bytes also streamed into `sink` when the remote can (see
    /// [`BlobSink`]); returns the bytes moved.
    fn fetch_blob(
        &self,
        layer: &Layer,
        store: &BlobStore,
        sink: Option<&mut dyn BlobSink>,
    ) -> Result<u64, Error>;
    /// Add entry `name` (`record`, and its layer blob read from `store`).
    fn put(&self, name: &str, record: &StepRecord, store: &BlobStore) -> Result<(), Error>;
    /// The record of cache mount entry `name` ([`mounts::entry_name`]), if any.
    fn mount_entry(&self, name: &str) -> Result<Option<mounts::MountRecord>, Error>;
    /// Write cache mount entry `name` (`record`, its blob read from
    /// `store`), replacing the one there.
    fn put_mount(
        &self,
        name: &str,
        record: &mounts::MountRecord,
        store: &BlobStore,
    ) -> Result<(), Error>;
    /// How this cache writes entries other than as designed (a registry
    /// that refused the artifact manifest), to be said after an export.
    fn degraded(&self) -> Option<String> {
        None
    }
}

/// An entry that is not what its name says (e.g. a manifest tampered with
/// in the registry so that it names another layer than its record): it is
/// refused, and its step is built instead.
#[derive(Debug, thiserror::Error)]
#[error("{entry}: {why}")]
pub struct InvalidEntry {
    /// The entry (its reference).
    pub entry: String,
    /// What is wrong.
    pub why: String,
}

/// Open the cache `spec` names (nothing is read yet).
pub fn open(spec: &CacheSpec, registry: &registry::Client) -> Result<Box<dyn Remote>, Error> {
    Ok(match &spec.location {
        Location::Local(dir) => Box::new(local_dir::LocalDir::new(dir.clone())),
        Location::Registry(r) => Box::new(registry.open(r)?),
    })
}

/// The id of a step position that does not depend on where the build runs:
/// the Dockerfile's file name, the stage's name and the step's index.
pub fn slot_id(dockerfile: &Path, stage: &str, index: usize) -> String {
    let file = dockerfile
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    Digest::of(format!("{file}|{stage}|{index}").as_bytes()).hex()[..16].to_owned()
}

/// The name of the entry of step `key` at slot `slot` (a valid registry tag).
pub fn entry_name(slot: &str, key: &Digest) -> String {
    format!("s{slot}-{}", key.hex())
}

/// `record` as it may leave the machine: build-arg and env values become
/// their digests.
pub fn redacted(record: &StepRecord) -> StepRecord {
    let mut out = record.clone();
    out.inputs = redact_inputs(&record.inputs);
    out
}

fn redact_inputs(inputs: &Inputs) -> Inputs {
    let mut out = inputs.clone();
    for i in &mut out.0 {
        if (i.name.starts_with("env ") || i.name.starts_with("arg "))
            && !i.value.starts_with("sha256:")
        {
            i.value = Digest::of(i.value.as_bytes()).to_string();
        }
    }
    out
}

/// The name of the layer-by-content entry of a `COPY`/`ADD` at slot `slot`
/// whose files give the content key `key` (see `engine::layer_reuse`): a
/// fresh runner whose step key missed finds the layer by what it holds.
pub fn content_entry_name(slot: &str, key: &Digest) -> String {
    format!("c{slot}-{}", key.hex())
}

/// The name of the file index of the layer step `key` at `slot` made: the
/// same content record, found from the step's key (a fresh runner that hit
/// the step knows that key, not the content key), so that a later `COPY
/// --from` of its files need not hash them again.
pub fn files_entry_name(slot: &str, key: &Digest) -> String {
    format!("f{slot}-{}", key.hex())
}

/// The remote slot id of the local slot `slot` (`DOCKERFILE|STAGE|INDEX`,
/// as `engine::stage_run::StageRun::slot` writes it).
pub fn slot_of_local(slot: &str) -> Option<String> {
    let mut parts = slot.rsplitn(3, '|');
    let index = parts.next()?.parse().ok()?;
    let stage = parts.next()?;
    Some(slot_id(Path::new(parts.next()?), stage, index))
}

/// Member path (no leading `/`) → `sha256:…` of the regular files of a
/// layer, from the content record that made it (its `file /PATH` inputs).
pub fn file_index(record: &StepRecord) -> HashMap<String, String> {
    record
        .inputs
        .0
        .iter()
        .filter_map(|i| {
            let path = i.name.strip_prefix("file /")?;
            // `MODE UID:GID file SIZE DIGEST …`
            let mut words = i.value.split(' ').skip(2);
            (words.next()? == "file").then_some(())?;
            let digest = words.nth(1).filter(|d| d.starts_with("sha256:"))?;
            Some((path.to_owned(), digest.to_owned()))
        })
        .collect()
}

/// A cache blob refused on import (its bytes do not match its digest): the
/// build is run again without the entry, which rebuilds the step.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: refused the layer {digest} of cached step {key}: {why}")]
pub struct Refused {
    /// The cache.
    pub source_name: String,
    /// The blob.
    pub digest: String,
    /// The step key.
    pub key: String,
    /// What was wrong.
    pub why: String,
}

/// Fetches the blob of `layer` into `store` (verified, streamed into the
/// sink as it arrives); the bytes moved. The engine's (a base image's
/// registry): its error travels boxed, its cause chain and hint as they are.
pub type LayerFetch = Arc<
    dyn Fn(
            &Layer,
            &BlobStore,
            Option<&mut dyn BlobSink>,
        ) -> Result<u64, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync,
>;

/// Where a pending blob comes from.
enum Origin {
    /// The `--cache-from` source of that index.
    Cache(usize),
    /// The registry of a base image pulled without its layers.
    Base(LayerFetch),
}

struct Pending {
    source: Origin,
    key: String,
    layer: Layer,
}

/// The file index of a layer a hit named, fetched on first use.
enum Index {
    /// Where to read it: the source and the entry name, the layer it must describe.
    Pending(usize, String, Digest),
    /// Path → digest, and (once asked by blob offset) offset → digest.
    Loaded(
        Arc<HashMap<String, String>>,
        Option<Arc<HashMap<u64, String>>>,
    ),
    /// Absent or refused: the files are hashed.
    None,
}

/// The `--cache-from` caches of one `cairn build`, shared by its platforms
/// and its retries.
#[derive(Default)]
pub struct Imports {
    sources: Vec<(CacheSpec, Box<dyn Remote>)>,
    /// Blobs of hits not fetched yet, by digest.
    pending: Mutex<HashMap<String, Pending>>,
    /// Keys whose entries were refused (served by no source again).
    refused: Mutex<BTreeSet<String>>,
    /// Sources that failed once (ignore-error): not asked again.
    broken: Mutex<BTreeSet<usize>>,
    /// Entry names per source, listed once (for explanations).
    names: Mutex<HashMap<usize, Vec<String>>>,
    /// Records read for explanations, per source and entry name (each is
    /// read once per build, however many steps after a change miss).
    explained: Mutex<HashMap<(usize, String), Option<StepRecord>>>,
    /// File indexes of the layers of hits, by layer digest and by diff_id hex.
    indexes: Mutex<HashMap<String, Index>>,
    hits: AtomicUsize,
    /// Layers found by their content.
    by_content: AtomicUsize,
    /// File indexes read.
    indexes_read: AtomicUsize,
    blobs: AtomicUsize,
    bytes: AtomicU64,
    /// One lock per blob being fetched.
    gates: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Base layers pulled because the build needed their bytes.
    base_blobs: AtomicUsize,
    /// `RUN --mount=type=cache` directories: those used, those restored.
    mounts: mounts::MountSync,
    /// Blobs fetched ahead of the step that needs them.
    ahead: prefetch::Ahead,
}

impl std::fmt::Debug for Imports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.sources.iter().map(|(s, _)| s.describe()).collect();
        f.debug_struct("Imports").field("sources", &names).finish()
    }
}

impl Imports {
    /// Read from these caches, first match wins.
    pub fn new(sources: Vec<(CacheSpec, Box<dyn Remote>)>) -> Self {
        Imports {
            sources,
            ..Default::default()
        }
    }

    /// Where the caches are, in `--cache-from` order.
    pub fn locations(&self) -> impl Iterator<Item = &Location> {
        self.sources.iter().map(|(s, _)| &s.location)
    }

    /// Whether any cache is configured.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Before a `RUN` runs with the cache mounts `used` (id, directory):
    /// see [`mounts::before_run`]; the directories restored.
    pub fn before_run(
        &self,
        platform: &str,
        used: &[(String, PathBuf)],
        scratch: &Path,
        warn: &dyn Fn(String),
    ) -> Result<Vec<PathBuf>, Error> {
        mounts::before_run(&self.sources, &self.mounts, platform, used, scratch, warn)
    }

    /// The cache mounts `RUN` steps of this build ran with, by id and platform.
    pub fn mounts_ran(&self) -> BTreeMap<mounts::MountKey, PathBuf> {
        self.mounts.ran()
    }

    fn usable(&self) -> impl Iterator<Item = (usize, &(CacheSpec, Box<dyn Remote>))> {
        let broken = self.broken.lock().map(|b| b.clone()).unwrap_or_default();
        self.sources
            .iter()
            .enumerate()
            .filter(move |(i, _)| !broken.contains(i))
    }

    /// A failure of source `i`: an error unless it ignores errors (then a
    /// warning, and the source is not asked again in this build).
    fn failed(&self, i: usize, e: Error, warn: &dyn Fn(String)) -> Result<(), Error> {
        let spec = &self.sources[i].0;
        let e = Error::Import {
            cache: spec.describe(),
            source: Box::new(e),
        };
        if !spec.ignore_error {
            return Err(e);
        }
        if let Ok(mut b) = self.broken.lock() {
            b.insert(i);
        }
        warn(format!(
            "{}; continuing without it (ignore-error=true)",
            one_line(&e)
        ));
        Ok(())
    }

    /// The record of step `inputs` at slot `slot` (see [`slot_id`]) in the
    /// first cache that has it, with `inputs` as its inputs (the key proves
    /// they are the same). Its blob is fetched later, when needed; so is the
    /// file index of its layer ([`Imports::member_digest`]).
    pub fn lookup(
        &self,
        slot: &str,
        inputs: &Inputs,
        warn: &dyn Fn(String),
    ) -> Result<Option<StepRecord>, Error> {
        let key = inputs.key();
        let found = self.find(&entry_name(slot, &key), RecordKind::Step, inputs, warn)?;
        let Some((i, rec)) = found else {
            return Ok(None);
        };
        if let (Some(l), Ok(mut idx)) = (&rec.layer, self.indexes.lock()) {
            let pending = || Index::Pending(i, files_entry_name(slot, &key), l.digest.clone());
            idx.entry(l.digest.hex().to_owned()).or_insert_with(pending);
            idx.entry(l.diff_id.digest().hex().to_owned())
                .or_insert_with(pending);
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Ok(Some(rec))
    }

    /// The layer-by-content record of files `inputs` (see
    /// `engine::layer_reuse`) of the `COPY` at `slot`, in the first cache
    /// that has it; its blob is fetched when needed.
    pub fn lookup_content(
        &self,
        slot: &str,
        inputs: &Inputs,
        warn: &dyn Fn(String),
    ) -> Result<Option<StepRecord>, Error> {
        let name = content_entry_name(slot, &inputs.key());
        let found = self.find(&name, RecordKind::Content, inputs, warn)?;
        if found.is_some() {
            self.by_content.fetch_add(1, Ordering::Relaxed);
        }
        Ok(found.map(|(_, r)| r))
    }

    /// Entry `name` of key `inputs.key()` and kind `kind` in the first
    /// cache that has it (its source, and the record with `inputs`); its
    /// layer's blob is noted as pending.
    fn find(
        &self,
        name: &str,
        kind: RecordKind,
        inputs: &Inputs,
        warn: &dyn Fn(String),
    ) -> Result<Option<(usize, StepRecord)>, Error> {
        let key = inputs.key();
        if self
            .refused
            .lock()
            .is_ok_and(|r| r.contains(&key.to_string()))
        {
            return Ok(None);
        }
        for (i, (_, remote)) in self.usable() {
            let rec = match remote.entry(name) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e @ Error::InvalidEntry(_)) => {
                    warn(format!(
                        "{}: refused {}; building the step instead",
                        remote.describe(),
                        one_line(&e)
                    ));
                    if let Ok(mut r) = self.refused.lock() {
                        r.insert(key.to_string());
                    }
                    continue;
                }
                Err(e) => {
                    self.failed(i, e, warn)?;
                    continue;
                }
            };
            // A record's layer digests are checked when it parses.
            if rec.key != key.to_string() || rec.kind != kind {
                warn(format!(
                    "{}: entry {name} is not the record of step {key}; ignored",
                    remote.describe()
                ));
                continue;
            }
            let rec = StepRecord {
                inputs: inputs.clone(),
                ..rec
            };
            if let (Some(l), Ok(mut p)) = (&rec.layer, self.pending.lock()) {
                p.entry(l.digest.to_string()).or_insert(Pending {
                    source: Origin::Cache(i),
                    key: key.to_string(),
                    layer: l.clone(),
                });
            }
            return Ok(Some((i, rec)));
        }
        Ok(None)
    }

    /// The digest of member `member` (no leading `/`) of the layer whose
    /// digest or diff_id has hex `layer`, from the file index of the hit
    /// that named the layer (read on the first question); None when there
    /// is none (the caller hashes the file).
    pub fn member_digest(
        &self,
        layer: &str,
        member: &str,
        warn: &dyn Fn(String),
    ) -> Option<String> {
        self.index_of(layer, warn)?.0.get(member).cloned()
    }

    /// As [`Imports::member_digest`], for the member at byte `offset` of the
    /// plain-tar blob `layer`; `members` lists (offset, path) of the blob's
    /// files, asked once per layer.
    pub fn member_digest_at(
        &self,
        layer: &str,
        offset: u64,
        members: impl FnOnce() -> Vec<(u64, String)>,
        warn: &dyn Fn(String),
    ) -> Option<String> {
        let (by_path, by_offset) = self.index_of(layer, warn)?;
        let by_offset = match by_offset {
            Some(m) => m,
            None => {
                let m: HashMap<u64, String> = members()
                    .into_iter()
                    .filter_map(|(o, p)| Some((o, by_path.get(&p)?.clone())))
                    .collect();
                let m = Arc::new(m);
                if let Ok(mut idx) = self.indexes.lock() {
                    idx.insert(
                        layer.to_owned(),
                        Index::Loaded(by_path.clone(), Some(m.clone())),
                    );
                }
                m
            }
        };
        by_offset.get(&offset).cloned()
    }

    /// The file index of layer `layer` (digest or diff_id hex), read once.
    #[allow(clippy::type_complexity)]
    fn index_of(
        &self,
        layer: &str,
        warn: &dyn Fn(String),
    ) -> Option<(
        Arc<HashMap<String, String>>,
        Option<Arc<HashMap<u64, String>>>,
    )> {
        let mut idx = self.indexes.lock().ok()?;
        let (source, name, digest) = match idx.get(layer)? {
            Index::Loaded(p, o) => return Some((p.clone(), o.clone())),
            Index::None => return None,
            Index::Pending(s, n, d) => (*s, n.clone(), d.clone()),
        };
        let remote = &self.sources[source].1;
        // Held across the read: the steps asking for it wait for one read.
        let read = match remote.entry(&name) {
            Ok(Some(rec)) => check_index(&rec, &digest).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let loaded = match read {
            Ok(Some(rec)) => {
                self.indexes_read.fetch_add(1, Ordering::Relaxed);
                Some(Arc::new(file_index(&rec)))
            }
            Ok(None) => None,
            Err(why) => {
                warn(format!(
                    "{}: refused the file index {name}: {}; hashing the files instead",
                    remote.describe(),
                    one_line(&why)
                ));
                None
            }
        };
        // Both names of the layer (digest, diff_id) share the answer.
        let names: Vec<String> = idx
            .iter()
            .filter(|(_, v)| matches!(v, Index::Pending(_, n, _) if *n == name))
            .map(|(k, _)| k.clone())
            .collect();
        for k in names {
            idx.insert(
                k,
                match &loaded {
                    Some(m) => Index::Loaded(m.clone(), None),
                    None => Index::None,
                },
            );
        }
        loaded.map(|m| (m, None))
    }

    /// Fetch every blob among `digests` that a hit left behind into `store`
    /// (waiting for one being fetched ahead, [`prefetch`]). A blob that does
    /// not verify is [`Refused`]: its key is never served again, and the
    /// caller runs the build again.
    pub fn materialize<'d>(
        &self,
        digests: impl IntoIterator<Item = &'d Digest>,
        store: &BlobStore,
    ) -> Result<(), Error> {
        for d in digests {
            self.wait_ahead(d);
            self.fetch_pending(d, store, false, None)?;
        }
        Ok(())
    }

    /// Fetch `d` if a hit left it behind; whether it was fetched now. With
    /// `keep` (a fetch ahead), a failure leaves the blob pending and refuses
    /// nothing: the step that needs it fetches it again and says why. The
    /// bytes are also streamed into `sink` (see [`BlobSink`]).
    fn fetch_pending(
        &self,
        d: &Digest,
        store: &BlobStore,
        keep: bool,
        sink: Option<&mut dyn BlobSink>,
    ) -> Result<bool, Error> {
        if store.contains(d) {
            return Ok(false);
        }
        // One fetch per blob: a second stage needing it (two stages
        // `FROM` one base unpack its layers at once) waits for the first.
        let gate = match self.gates.lock() {
            Ok(mut g) => g.entry(d.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let _fetching = gate.lock();
        if store.contains(d) {
            return Ok(false);
        }
        let Some(p) = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&d.to_string()))
        else {
            return Ok(false);
        };
        let fetched = match &p.source {
            Origin::Base(fetch) => fetch(&p.layer, store, sink)
                .map(|_| {
                    self.base_blobs.fetch_add(1, Ordering::Relaxed);
                })
                .map_err(Error::BaseLayer),
            Origin::Cache(i) => {
                let remote = &self.sources[*i].1;
                match remote.fetch_blob(&p.layer, store, sink) {
                    Ok(n) => {
                        self.blobs.fetch_add(1, Ordering::Relaxed);
                        self.bytes.fetch_add(n, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) if keep => Err(e),
                    Err(e) => {
                        if let Ok(mut r) = self.refused.lock() {
                            r.insert(p.key.clone());
                        }
                        Err(Refused {
                            source_name: remote.describe(),
                            digest: p.layer.digest.to_string(),
                            key: p.key.clone(),
                            why: one_line(&e),
                        }
                        .into())
                    }
                }
            }
        };
        if fetched.is_err() && keep {
            if let Ok(mut pending) = self.pending.lock() {
                pending.insert(d.to_string(), p);
            }
        }
        fetched.map(|()| true)
    }

    /// The layers of a base image pulled without them (manifest and config
    /// only): each is fetched with `fetch` when the build first needs its
    /// bytes, like a cache hit's blob — a fresh runner whose every step
    /// hits never downloads them.
    pub fn defer_base(&self, layers: &[Layer], store: &BlobStore, fetch: LayerFetch) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        for l in layers.iter().filter(|l| !store.contains(&l.digest)) {
            p.entry(l.digest.to_string()).or_insert(Pending {
                source: Origin::Base(fetch.clone()),
                key: String::new(),
                layer: l.clone(),
            });
        }
    }

    /// Why step `inputs` at `slot` missed, compared with the nearest record
    /// of the same slot in the caches (the one sharing most inputs).
    pub fn explain(&self, slot: &str, inputs: &Inputs) -> Option<String> {
        let mine = redact_inputs(inputs);
        let prefix = format!("s{slot}-");
        let mut best: Option<(usize, String, String)> = None;
        for (i, (_, remote)) in self.usable() {
            let names = {
                let mut cached = self.names.lock().ok()?;
                match cached.get(&i) {
                    Some(n) => n.clone(),
                    None => {
                        let n = remote.names().unwrap_or_default();
                        cached.insert(i, n.clone());
                        n
                    }
                }
            };
            // A handful of records of one slot is enough to find the nearest.
            for name in names.iter().filter(|n| n.starts_with(&prefix)).take(8) {
                let known = self
                    .explained
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&(i, name.clone())).cloned());
                let rec = known.unwrap_or_else(|| {
                    let r = remote.entry(name).ok().flatten();
                    if let Ok(mut m) = self.explained.lock() {
                        m.insert((i, name.clone()), r.clone());
                    }
                    r
                });
                let Some(rec) = rec else {
                    continue;
                };
                let theirs = redact_inputs(&rec.inputs);
                let same = mine.0.iter().filter(|x| theirs.0.contains(x)).count();
                if let Some(why) = mine.explain_change(&theirs) {
                    if best.as_ref().is_none_or(|(n, _, _)| same > *n) {
                        best = Some((same, why, remote.describe()));
                    }
                }
            }
        }
        best.map(|(_, why, from)| format!("{why} (nearest record in the {from})"))
    }

    /// One line for the build summary: hits, blobs and bytes moved.
    pub fn summary(&self) -> Option<String> {
        if self.sources.is_empty() {
            return None;
        }
        let names: Vec<String> = self.sources.iter().map(|(s, _)| s.describe()).collect();
        let mounts = self
            .mounts
            .summary()
            .map(|m| format!(", {m}"))
            .unwrap_or_default();
        let by_content = match (
            self.by_content.load(Ordering::Relaxed),
            self.indexes_read.load(Ordering::Relaxed),
        ) {
            (0, 0) => String::new(),
            (c, i) => format!(", {c} layers found by content, {i} file indexes read"),
        };
        let by_content = match self.base_blobs.load(Ordering::Relaxed) {
            0 => by_content,
            n => format!("{by_content}, {n} base layers pulled when needed"),
        };
        let by_content = format!("{by_content}{}", self.ahead.summary());
        Some(format!(
            "cache import ({}): {} steps hit, {} blobs fetched ({} bytes){by_content}{mounts}",
            names.join(", "),
            self.hits.load(Ordering::Relaxed),
            self.blobs.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        ))
    }
}

/// A file index read from a cache is used only when it is the content
/// record of `layer` and its key is the digest of its inputs (an index
/// whose digests were changed does not hash to its key).
fn check_index(rec: &StepRecord, layer: &Digest) -> Result<StepRecord, Error> {
    if rec.kind != RecordKind::Content {
        return Err(Error::IndexNotContent);
    }
    if rec.inputs.key().to_string() != rec.key {
        return Err(Error::IndexKeyMismatch);
    }
    match &rec.layer {
        Some(l) if l.digest == *layer => Ok(rec.clone()),
        other => Err(Error::IndexOtherLayer {
            described: other
                .as_ref()
                .map_or("(none)".into(), |l| l.digest.to_string()),
            layer: layer.clone(),
        }),
    }
}

/// A step of the build to export: its slot id and its local record.
pub struct ExportEntry {
    /// [`slot_id`] of its position.
    pub slot: String,
    /// The local record.
    pub record: StepRecord,
    /// The layer-by-content record of the step's layer (a `COPY`'s, when the
    /// local cache has it): exported as the entry's file index and as a
    /// content entry ([`files_entry_name`], [`content_entry_name`]).
    pub content: Option<StepRecord>,
}

/// What one export did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Entries added.
    pub added: usize,
    /// Entries the cache had already.
    pub present: usize,
    /// Content and file-index entries added (two per `COPY` layer).
    pub indexes: usize,
}

/// Entries pushed at once (each is a few requests: HEAD or mount its blob,
/// PUT its manifest).
const PARALLEL_PUTS: usize = 4;

/// Export `entries` to `remote` (`spec`'s mode: min keeps the steps whose
/// layers are among `image_layers`, and those without a layer). Entries the
/// cache has are skipped (append-only: nothing is rewritten). Blobs a hit
/// left behind are fetched first (`imports`); the entries are then added
/// [`PARALLEL_PUTS`] at a time.
pub fn export(
    spec: &CacheSpec,
    remote: &dyn Remote,
    entries: &[ExportEntry],
    image_layers: &[Digest],
    store: &BlobStore,
    imports: &Imports,
) -> Result<Exported, Error> {
    let have: BTreeSet<String> = remote.names()?.into_iter().collect();
    let mut out = Exported::default();
    let mut todo: Vec<(String, StepRecord)> = Vec::new();
    for e in entries {
        if let (Mode::Min, Some(l)) = (spec.mode, &e.record.layer) {
            if !image_layers.contains(&l.digest) {
                continue;
            }
        }
        let key: Digest = e.record.key.parse()?;
        let name = entry_name(&e.slot, &key);
        let mut mine = vec![(name.clone(), redacted(&e.record))];
        if let Some(c) = e.content.as_ref().filter(|c| c.layer == e.record.layer) {
            let ckey: Digest = c.key.parse()?;
            let c = redacted(c);
            mine.push((content_entry_name(&e.slot, &ckey), c.clone()));
            mine.push((files_entry_name(&e.slot, &key), c));
        }
        if have.contains(&name) {
            out.present += 1;
        }
        mine.retain(|(n, _)| !have.contains(n) && !todo.iter().any(|(t, _)| t == n));
        if mine.is_empty() {
            continue;
        }
        if let Some(l) = &e.record.layer {
            imports.materialize([&l.digest], store)?;
        }
        out.added += mine.iter().filter(|(n, _)| *n == name).count();
        out.indexes += mine.len() - mine.iter().filter(|(n, _)| *n == name).count();
        todo.extend(mine);
    }
    let chunk = todo.len().div_ceil(PARALLEL_PUTS).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .try_for_each(|(name, rec)| remote.put(name, rec, store))
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(Error::ExportPanicked)))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_buildx_writes_them() {
        let s = CacheSpec::parse(
            "--cache-to",
            "type=local,dest=/c,mode=max,ignore-error=false",
        )
        .unwrap();
        assert_eq!(s.location, Location::Local("/c".into()));
        assert_eq!((s.mode, s.ignore_error), (Mode::Max, false));
        let s = CacheSpec::parse("--cache-from", "type=registry,ref=r.io/app/cache").unwrap();
        assert_eq!(s.location, Location::Registry("r.io/app/cache".into()));
        assert_eq!((s.mode, s.ignore_error), (Mode::Min, true));
        let s = CacheSpec::parse("--cache-from", "r.io/app/cache:x").unwrap();
        assert_eq!(s.location, Location::Registry("r.io/app/cache:x".into()));
        for (flag, bad, says) in [
            ("--cache-to", "type=local,src=/c", "needs dest=DIR"),
            ("--cache-from", "type=gha", "type=gha"),
            ("--cache-to", "type=local,dest=/c,mode=all", "mode=all"),
            (
                "--cache-to",
                "type=local,dest=/c,compression=zstd",
                "compression=zstd",
            ),
            (
                "--cache-to",
                "type=registry,ref=r/x,color=red",
                "unknown option `color`",
            ),
        ] {
            let e = CacheSpec::parse(flag, bad).unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn names_are_registry_tags_and_values_leave_as_digests() {
        let key = Digest::of(b"k");
        let slot = slot_id(Path::new("/ci/runner-1/Dockerfile"), "build", 3);
        assert_eq!(slot, slot_id(Path::new("/other/Dockerfile"), "build", 3));
        let name = entry_name(&slot, &key);
        assert!(name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let mut i = Inputs::default();
        i.push("arg NPM_TOKEN", "s3cr3t");
        i.push("env NODE_ENV", "production");
        i.push("instruction", "RUN npm ci");
        let rec = StepRecord {
            kind: RecordKind::Step,
            key: i.key().to_string(),
            inputs: i,
            layer: None,
        };
        let json = serde_json::to_string(&redacted(&rec)).unwrap();
        assert!(
            !json.contains("s3cr3t") && !json.contains("production"),
            "{json}"
        );
        assert!(json.contains("RUN npm ci"));
    }
}
