//! The build cache: content-addressed step keys whose misses are explained.
//!
//! A step's key is the sha256 of its named inputs (parent key, the expanded
//! instruction, the args/env it sees, the digests of the files it reads…),
//! in order. A hit reuses the stored layer without doing the work. Each
//! record keeps its inputs, so a miss can name the first input that differs
//! from the closest earlier run of the same step ("slot"), and `cairn diff`
//! can later say which input of which step changed.
//!
//! Layout under the cache root: `blobs/sha256/…` (shared blob store),
//! `steps/<key>.json` (records: steps', and layers' by content, see
//! `layer_reuse`), `slots/<slot>` (the last key seen for a step position),
//! `layers/host-v2/<diff_id hex>` and other forms (unpacked layers, see `layer_dirs`), `gzip/<hex>` (the gzip blob
//! of a plain stage layer, see `layer_write`), and the memos
//! `context-hashes.json`, `file-digests.json` and `registry-blobs.json`.
//! Every file is written to a temporary name and renamed, so concurrent
//! builds on one cache are safe and a killed build never leaves a
//! half-written record.
//!
//! Every process that opens the cache holds a shared lock on `lock` until
//! it exits (a build's outputs are written after the engine returns);
//! `cairn cache prune` takes it exclusively, so it never deletes what a
//! running build may still read.

use cairn_layers::Digest;
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Shared locks held until the process exits, one per cache root.
static HELD: Mutex<Vec<(PathBuf, fs::File)>> = Mutex::new(Vec::new());

/// Starts every key. Bumped whenever the same inputs would produce other
/// bytes (a new layer encoding), so a cache filled by an older cairn is
/// never served to a newer one: 2 = incompressible gzip blocks stored;
/// 3 = RUN-layer whiteouts mode 0 (were 0600); 4 = COPY of a directory
/// leaves the destination's metadata, and keeps hard links (issue #21).
pub const KEY_SCHEME: &str = "cairn cache keys 4\n";

/// One named input of a step's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// What it is: `parent`, `instruction`, `arg NODE_ENV`, `context file src/app.ts`…
    pub name: String,
    /// Its value or digest (never a secret value).
    pub value: String,
}

/// The ordered inputs of a step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs(pub Vec<Input>);

impl Inputs {
    /// Append an input.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push(Input {
            name: name.into(),
            value: value.into(),
        });
    }

    /// The cache key: sha256 over a length-prefixed encoding of every input,
    /// after [`KEY_SCHEME`].
    pub fn key(&self) -> Digest {
        let mut buf = KEY_SCHEME.as_bytes().to_vec();
        for i in &self.0 {
            for s in [&i.name, &i.value] {
                buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }
        }
        Digest::of(&buf)
    }

    /// The first difference from `older`, phrased for people.
    pub fn explain_change(&self, older: &Inputs) -> Option<String> {
        let mut old: std::collections::BTreeMap<&str, &str> = older
            .0
            .iter()
            .map(|i| (i.name.as_str(), i.value.as_str()))
            .collect();
        for i in &self.0 {
            match old.remove(i.name.as_str()) {
                Some(v) if v == i.value => {}
                Some(v) => return Some(describe_change(&i.name, v, &i.value)),
                None => return Some(format!("{} added", i.name)),
            }
        }
        old.keys().next().map(|n| format!("{n} removed"))
    }
}

fn describe_change(name: &str, old: &str, new: &str) -> String {
    let short = |v: &str| -> String {
        if v.starts_with("sha256:") {
            crate::progress::short_digest(v)
        } else if v.chars().count() > 60 {
            v.chars().take(57).collect::<String>() + "…"
        } else {
            v.to_owned()
        }
    };
    // Build-arg and env values are never printed (a token passed as a build
    // arg would land in CI logs); the name says which one changed.
    if name.starts_with("context file ")
        || name.starts_with("file ")
        || name.starts_with("env ")
        || name.starts_with("arg ")
    {
        format!("{name} changed")
    } else if name == "parent" {
        "an earlier step changed".to_owned()
    } else {
        format!("{name} changed: {} → {}", short(old), short(new))
    }
}

/// A layer produced by a cached step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Compressed blob digest.
    pub digest: String,
    /// Uncompressed diff_id.
    pub diff_id: String,
    /// Compressed size.
    pub size: u64,
    /// Layer media type.
    pub media_type: String,
}

/// What the cache remembers of one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The key (sha256 of the inputs).
    pub key: String,
    /// The inputs that made the key.
    pub inputs: Inputs,
    /// The layer the step made, if any.
    pub layer: Option<CachedLayer>,
}

impl StepRecord {
    /// A layer-by-content record (see `engine::layer_reuse`), not a step's.
    pub fn is_content(&self) -> bool {
        self.inputs
            .0
            .first()
            .is_some_and(|i| i.name == CONTENT_RECORD_MARK)
    }
}

/// The first input of every layer-by-content record.
pub const CONTENT_RECORD_MARK: &str = "layer format";

/// A step record and when it was last used.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The record.
    pub record: StepRecord,
    /// Last written or hit.
    pub used: SystemTime,
}

/// Which records `cairn cache prune` removes. With no field set: records
/// no step position points at any more (superseded runs) and records whose
/// layer blob is gone.
#[derive(Clone, Debug, Default)]
pub struct PrunePolicy {
    /// Everything.
    pub all: bool,
    /// Records not used for at least this long.
    pub until: Option<std::time::Duration>,
    /// Remove least recently used records until the layers of the rest fit in this many bytes.
    pub keep_storage: Option<u64>,
}

/// What a prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Step records.
    pub records: usize,
    /// Layer blobs.
    pub blobs: usize,
    /// Bytes of those blobs.
    pub bytes: u64,
    /// Unpacked layer directories.
    pub layer_dirs: usize,
}

fn remove_file_if_present(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
    /// The mode the root had when it was open to others and made private.
    repaired: Option<u32>,
}

/// Create `root` (and missing parents) private to this user, or check an
/// existing one: it must be a directory of this user; group and other
/// permission bits are removed (returning the mode it had). Unpacked base
/// layers below hold setuid binaries and device nodes, and the records and
/// mounts hold build inputs: no other local user may reach any of it (see
/// SECURITY.md).
pub fn make_private(root: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    let md = fs::metadata(root)?;
    let me = rustix::process::geteuid().as_raw();
    if !md.is_dir() || md.uid() != me {
        return Err(io::Error::other(format!(
            "{} belongs to uid {}, not to this user (uid {me}): another user could change what \
             cairn reads there; use a directory of your own (--cache-dir or CAIRN_CACHE_DIR)",
            root.display(),
            md.uid()
        )));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(root, fs::Permissions::from_mode(mode & 0o700))?;
    Ok(Some(mode))
}

/// Result of a lookup.
pub enum Lookup {
    /// Served from the cache.
    Hit(StepRecord),
    /// Not in the cache, with the reason when an earlier run of the step is known.
    Miss(Option<String>),
}

impl Cache {
    /// Open (creating) the cache at `root` for a build: the process holds a
    /// shared lock on it from now until it exits.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let cache = Self::open_unlocked(root)?;
        let mut held = HELD
            .lock()
            .map_err(|_| io::Error::other("cache lock poisoned"))?;
        if !held.iter().any(|(r, _)| r == &cache.root) {
            let f = cache.lock_file()?;
            flock(&f, FlockOperation::LockShared)?;
            held.push((cache.root.clone(), f));
        }
        Ok(cache)
    }

    /// Open (creating) the cache without taking a lock (read-only listing).
    pub fn open_unlocked(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        let repaired = make_private(&root)?;
        for d in ["steps", "slots", "layers", "tmp", "gzip"] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(Cache { root, repaired })
    }

    /// When the root was open to other users (and is now private): a
    /// warning for the user, who may have shared it on purpose.
    pub fn repaired_warning(&self) -> Option<String> {
        self.repaired.map(|mode| {
            format!(
                "the cache {} was accessible to other users (mode {mode:04o}); made it private \
                 (0700): unpacked base images hold setuid files and device nodes",
                self.root.display()
            )
        })
    }

    fn lock_file(&self) -> io::Result<fs::File> {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
    }

    /// Take the cache exclusively (no build running on it), calling `waiting`
    /// once if builds hold it. The lock lasts as long as the returned file.
    pub fn lock_exclusive(&self, waiting: impl FnOnce()) -> io::Result<fs::File> {
        let f = self.lock_file()?;
        match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::WOULDBLOCK) => waiting(),
            Err(e) => return Err(e.into()),
        }
        flock(&f, FlockOperation::LockExclusive)?;
        Ok(f)
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn step_path(&self, key: &Digest) -> PathBuf {
        self.root.join("steps").join(format!("{}.json", key.hex()))
    }

    fn slot_path(&self, slot: &str) -> PathBuf {
        self.root
            .join("slots")
            .join(Digest::of(slot.as_bytes()).hex())
    }

    /// Look a step up. `slot` names the step's position (e.g. `Dockerfile|builder|4`)
    /// and is used only to explain a miss.
    pub fn lookup(
        &self,
        inputs: &Inputs,
        slot: &str,
        blobs_present: impl Fn(&CachedLayer) -> bool,
    ) -> Lookup {
        let key = inputs.key();
        if let Some(rec) = self.read_record(&key) {
            if rec.layer.as_ref().is_none_or(&blobs_present) {
                return Lookup::Hit(rec);
            }
            return Lookup::Miss(Some("cached layer blob is missing from the store".into()));
        }
        let reason = fs::read_to_string(self.slot_path(slot))
            .ok()
            .and_then(|k| k.trim().parse::<Digest>().ok())
            .and_then(|k| self.read_record(&k))
            .and_then(|old| inputs.explain_change(&old.inputs));
        Lookup::Miss(reason.or(Some("no earlier run of this step in the cache".into())))
    }

    /// Read a record by key (None when absent or unreadable).
    pub fn read_record(&self, key: &Digest) -> Option<StepRecord> {
        let bytes = fs::read(self.step_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Store a record and point its slot at it.
    pub fn store(&self, record: &StepRecord, slot: &str) -> io::Result<()> {
        let key: Digest = record
            .key
            .parse()
            .map_err(|e| io::Error::other(format!("bad cache key: {e}")))?;
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        self.write_atomic(&self.step_path(&key), &json)?;
        self.write_atomic(&self.slot_path(slot), key.to_string().as_bytes())
    }

    /// Remember that `slot` last ran with `key` (also on hits, so explanations
    /// compare with the most recent run).
    /// The record's modification time is its last use (for `prune --filter until=`).
    pub fn touch_slot(&self, slot: &str, key: &Digest) -> io::Result<()> {
        if let Ok(f) = fs::OpenOptions::new().write(true).open(self.step_path(key)) {
            let _ = f.set_modified(SystemTime::now());
        }
        let path = self.slot_path(slot);
        if fs::read_to_string(&path).is_ok_and(|k| k.trim() == key.to_string()) {
            // A no-op rebuild writes nothing.
            return Ok(());
        }
        self.write_unsynced(&path, key.to_string().as_bytes())
    }

    fn gzip_memo_path(&self, plain: &Digest) -> PathBuf {
        self.root.join("gzip").join(plain.hex())
    }

    /// The gzip blob (digest, size) made earlier from the plain-tar layer blob `plain`.
    pub fn gzip_memo(&self, plain: &Digest) -> Option<(Digest, u64)> {
        let text = fs::read_to_string(self.gzip_memo_path(plain)).ok()?;
        let (d, n) = text.trim().split_once(' ')?;
        Some((d.parse().ok()?, n.parse().ok()?))
    }

    /// Remember that `plain` gzips to the blob `gz` of `size` bytes.
    pub fn set_gzip_memo(&self, plain: &Digest, gz: &Digest, size: u64) -> io::Result<()> {
        self.write_unsynced(
            &self.gzip_memo_path(plain),
            format!("{gz} {size}").as_bytes(),
        )
    }

    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    /// Atomic but not fsynced: slot files only explain misses, losing one
    /// to a crash costs nothing but an explanation.
    fn write_unsynced(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    /// All step records (for `cairn cache ls`).
    pub fn records(&self) -> io::Result<Vec<StepRecord>> {
        Ok(self.listed()?.into_iter().map(|l| l.record).collect())
    }

    /// All step records with their last use, sorted by key. Unreadable
    /// records (a crash before rename cannot make them; a foreign file can)
    /// are skipped.
    pub fn listed(&self) -> io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(self.root.join("steps"))? {
            let ent = ent?;
            let p = ent.path();
            let used = ent
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if let Ok(b) = fs::read(&p) {
                if let Ok(record) = serde_json::from_slice::<StepRecord>(&b) {
                    out.push(Listed { record, used });
                }
            }
        }
        out.sort_by(|a, b| a.record.key.cmp(&b.record.key));
        Ok(out)
    }

    /// The keys the step positions (slots) last ran with.
    fn slot_heads(&self) -> io::Result<Vec<(PathBuf, String)>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(self.root.join("slots"))? {
            let p = ent?.path();
            if let Ok(k) = fs::read_to_string(&p) {
                out.push((p, k.trim().to_owned()));
            }
        }
        Ok(out)
    }

    /// Remove the records `policy` selects, then the blobs and unpacked
    /// layer directories only they referenced. Needs the exclusive lock
    /// ([`Cache::lock_exclusive`]), which the caller holds.
    pub fn prune(&self, policy: &PrunePolicy, now: SystemTime) -> io::Result<PruneReport> {
        let listed = self.listed()?;
        let heads = self.slot_heads()?;
        let head_keys: std::collections::BTreeSet<&str> =
            heads.iter().map(|(_, k)| k.as_str()).collect();
        let blob_path = |d: &str| -> Option<PathBuf> {
            let d: Digest = d.parse().ok()?;
            Some(self.root.join("blobs/sha256").join(d.hex()))
        };
        let broken = |r: &StepRecord| {
            r.layer
                .as_ref()
                .is_some_and(|l| blob_path(&l.digest).is_none_or(|p| !p.is_file()))
        };
        let mut remove = vec![false; listed.len()];
        for (i, l) in listed.iter().enumerate() {
            let old = policy
                .until
                .is_some_and(|d| now.duration_since(l.used).is_ok_and(|age| age >= d));
            let dangling = !policy.all
                && policy.until.is_none()
                && policy.keep_storage.is_none()
                && !head_keys.contains(l.record.key.as_str());
            remove[i] = policy.all || old || dangling || broken(&l.record);
        }
        if let Some(limit) = policy.keep_storage {
            // Least recently used first, until the kept layers fit.
            let mut order: Vec<usize> = (0..listed.len()).filter(|i| !remove[*i]).collect();
            order.sort_by_key(|i| (listed[*i].used, listed[*i].record.key.clone()));
            let size = |keep: &[bool]| -> u64 {
                let mut seen = std::collections::BTreeMap::new();
                for (i, l) in listed.iter().enumerate() {
                    if let (false, Some(layer)) = (keep[i], &l.record.layer) {
                        seen.insert(layer.digest.clone(), layer.size);
                    }
                }
                seen.values().sum()
            };
            for i in order {
                if size(&remove) <= limit {
                    break;
                }
                remove[i] = true;
            }
        }
        let mut report = PruneReport::default();
        let kept_layers: std::collections::BTreeSet<(String, String)> = listed
            .iter()
            .zip(&remove)
            .filter(|(_, r)| !**r)
            .filter_map(|(l, _)| l.record.layer.as_ref())
            .map(|l| (l.digest.clone(), l.diff_id.clone()))
            .collect();
        let kept_digests: std::collections::BTreeSet<&str> =
            kept_layers.iter().map(|(d, _)| d.as_str()).collect();
        let kept_diff_ids: std::collections::BTreeSet<&str> =
            kept_layers.iter().map(|(_, d)| d.as_str()).collect();
        let mut removed_keys = std::collections::BTreeSet::new();
        for (l, _) in listed.iter().zip(&remove).filter(|(_, r)| **r) {
            let key: Digest = match l.record.key.parse() {
                Ok(k) => k,
                Err(_) => continue,
            };
            remove_file_if_present(&self.step_path(&key))?;
            removed_keys.insert(l.record.key.clone());
            report.records += 1;
            let Some(layer) = &l.record.layer else {
                continue;
            };
            if !kept_digests.contains(layer.digest.as_str()) {
                if let Some(p) = blob_path(&layer.digest) {
                    if let Ok(md) = fs::metadata(&p) {
                        remove_file_if_present(&p)?;
                        report.blobs += 1;
                        report.bytes += md.len();
                    }
                }
            }
            if !kept_diff_ids.contains(layer.diff_id.as_str()) {
                if let Ok(d) = layer.diff_id.parse::<Digest>() {
                    let dir = super::layer_dirs::host_dir(&self.root.join("layers"), &d);
                    if dir.is_dir() {
                        let _ = crate::sandbox::state::remove_tree(&dir);
                        report.layer_dirs += 1;
                    }
                }
            }
        }
        for (p, k) in &heads {
            if removed_keys.contains(k) {
                remove_file_if_present(p)?;
            }
        }
        if policy.all {
            // Nothing runs on the cache: every blob (pulled bases are fetched
            // again when needed), unpacked layers and temporaries go.
            for e in fs::read_dir(self.root.join("blobs/sha256"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(md) = e.metadata() {
                    if md.is_file() && fs::remove_file(e.path()).is_ok() {
                        report.blobs += 1;
                        report.bytes += md.len();
                    }
                }
            }
            for sub in ["layers", "tmp", "gzip"] {
                for e in fs::read_dir(self.root.join(sub))?.flatten() {
                    let _ = crate::sandbox::state::remove_tree(&e.path());
                    if sub == "layers" {
                        report.layer_dirs += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        let mut i = Inputs::default();
        for (n, v) in pairs {
            i.push(*n, *v);
        }
        i
    }

    #[test]
    fn the_root_is_made_private_and_an_open_one_repaired() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let t = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        let fresh = t.path().join("a/cache");
        assert_eq!(make_private(&fresh).unwrap(), None);
        assert_eq!(mode(&fresh), 0o700);
        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o775)).unwrap();
        let c = Cache::open_unlocked(&open).unwrap();
        assert!(c.repaired_warning().unwrap().contains("mode 0775"));
        assert_eq!(mode(&open), 0o700);
        assert!(Cache::open_unlocked(&open)
            .unwrap()
            .repaired_warning()
            .is_none());
    }

    #[test]
    fn key_depends_on_every_input_and_its_boundaries() {
        let a = inputs(&[("instruction", "COPY . ."), ("arg X", "1")]);
        let b = inputs(&[("instruction", "COPY . ."), ("arg X", "2")]);
        let c = inputs(&[("instruction", "COPY . .arg X"), ("", "1")]);
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_eq!(a.key(), a.clone().key());
    }

    #[test]
    fn hit_after_store_and_explained_miss() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open(t.path()).unwrap();
        let first = inputs(&[
            ("parent", "sha256:aa"),
            ("instruction", "COPY . ."),
            ("context file src/app.ts", "sha256:1"),
        ]);
        let slot = "Dockerfile|builder|4";
        assert!(
            matches!(cache.lookup(&first, slot, |_| true), Lookup::Miss(Some(r)) if r.contains("no earlier run"))
        );
        let rec = StepRecord {
            key: first.key().to_string(),
            inputs: first.clone(),
            layer: None,
        };
        cache.store(&rec, slot).unwrap();
        assert!(matches!(cache.lookup(&first, slot, |_| true), Lookup::Hit(r) if r == rec));
        let edited = inputs(&[
            ("parent", "sha256:aa"),
            ("instruction", "COPY . ."),
            ("context file src/app.ts", "sha256:2"),
        ]);
        match cache.lookup(&edited, slot, |_| true) {
            Lookup::Miss(Some(r)) => assert_eq!(r, "context file src/app.ts changed"),
            _ => panic!("expected an explained miss"),
        }
        let arg = inputs(&[("parent", "sha256:aa"), ("arg NODE_ENV", "development")]);
        let old = inputs(&[("parent", "sha256:aa"), ("arg NODE_ENV", "production")]);
        assert_eq!(
            arg.explain_change(&old).unwrap(),
            "arg NODE_ENV changed",
            "values are not shown"
        );
    }

    #[test]
    fn a_hit_needs_its_blob() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open(t.path()).unwrap();
        let i = inputs(&[("instruction", "RUN x")]);
        let rec = StepRecord {
            key: i.key().to_string(),
            inputs: i.clone(),
            layer: Some(CachedLayer {
                digest: "sha256:00".into(),
                diff_id: "sha256:11".into(),
                size: 1,
                media_type: "x".into(),
            }),
        };
        cache.store(&rec, "s").unwrap();
        assert!(matches!(
            cache.lookup(&i, "s", |_| false),
            Lookup::Miss(Some(_))
        ));
        assert!(matches!(cache.lookup(&i, "s", |_| true), Lookup::Hit(_)));
    }

    fn layer_record(cache: &Cache, name: &str, blob: &[u8], slot: &str) -> (StepRecord, PathBuf) {
        let store = cairn_layers::blob_store::BlobStore::open(cache.root()).unwrap();
        let d = store.put_bytes(blob).unwrap();
        let dir = crate::engine::layer_dirs::host_dir(&cache.root().join("layers"), &d);
        fs::create_dir_all(dir.join("locked")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        let i = inputs(&[("instruction", name)]);
        let rec = StepRecord {
            key: i.key().to_string(),
            inputs: i,
            layer: Some(CachedLayer {
                digest: d.to_string(),
                diff_id: d.to_string(),
                size: blob.len() as u64,
                media_type: "x".into(),
            }),
        };
        cache.store(&rec, slot).unwrap();
        (rec, store.path(&d))
    }

    #[test]
    fn prune_removes_records_and_only_their_unshared_blobs() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open_unlocked(t.path()).unwrap();
        let (old, old_blob) = layer_record(&cache, "COPY a .", b"old layer", "s1");
        let (_, shared_blob) = layer_record(&cache, "COPY b .", b"shared", "s2");
        // Same blob under a newer record of another slot: must survive.
        let (_, _) = layer_record(&cache, "COPY b2 .", b"shared", "s3");
        // The slot s1 moves on: `old` is superseded (dangling).
        let (new, new_blob) = layer_record(&cache, "COPY a2 .", b"new layer", "s1");
        let r = cache
            .prune(&PrunePolicy::default(), SystemTime::now())
            .unwrap();
        assert_eq!((r.records, r.blobs, r.layer_dirs), (1, 1, 1));
        assert!(!old_blob.exists() && new_blob.exists() && shared_blob.exists());
        assert!(cache.read_record(&old.key.parse().unwrap()).is_none());
        assert!(cache.read_record(&new.key.parse().unwrap()).is_some());

        // until=: nothing is older than an hour; everything is older than 0s.
        let hour = PrunePolicy {
            until: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        };
        assert_eq!(cache.prune(&hour, SystemTime::now()).unwrap().records, 0);
        // keep-storage: drop least recently used until the rest fits.
        let keep = PrunePolicy {
            keep_storage: Some(9),
            ..Default::default()
        };
        let r = cache.prune(&keep, SystemTime::now()).unwrap();
        assert!(r.records >= 1, "{r:?}");
        let left: u64 = cache
            .records()
            .unwrap()
            .iter()
            .filter_map(|r| r.layer.as_ref().map(|l| l.size))
            .sum();
        assert!(left <= 9, "{left}");
        let all = PrunePolicy {
            all: true,
            ..Default::default()
        };
        cache.prune(&all, SystemTime::now()).unwrap();
        assert!(cache.records().unwrap().is_empty());
        assert_eq!(fs::read_dir(t.path().join("layers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(t.path().join("slots")).unwrap().count(), 0);
    }

    #[test]
    fn prune_waits_for_builds_holding_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open_unlocked(t.path()).unwrap();
        let build = cache.lock_file().unwrap();
        flock(&build, FlockOperation::LockShared).unwrap();
        let waited = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                cache
                    .lock_exclusive(|| waited.store(true, std::sync::atomic::Ordering::SeqCst))
                    .unwrap()
            });
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(build);
            drop(h.join().unwrap());
        });
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));
    }
}
