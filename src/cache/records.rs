//! Step records: content-addressed step keys whose misses are explained.
//!
//! A step's key is the sha256 of its named inputs (parent key, the expanded
//! instruction, the args/env it sees, the digests of the files it reads…),
//! in order. A hit reuses the stored layer without doing the work. Each
//! record keeps its inputs, so a miss can name the first input that differs
//! from the closest earlier run of the same step ("slot"), and `cairn diff`
//! can later say which input of which step changed. A record says what it
//! is ([`RecordKind`]): a step's, or a layer's found by its content (see
//! `engine::layer_reuse`).
//!
//! Every file is written to a temporary name and renamed, so concurrent
//! builds on one cache are safe and a killed build never leaves a
//! half-written record.

use cairn_layers::Digest;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::layout::{Bucket, CacheLayout};
pub use super::lock::make_private;

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

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A Dockerfile step's: its inputs are the step's.
    Step,
    /// A layer found by what it holds (`engine::layer_reuse`): its inputs
    /// are the layer format and the files' digests.
    Content,
}

/// What the cache remembers of one step.
///
/// `kind` is required: records written before it existed (whose kind was
/// guessed from their first input's name) do not parse, are never served
/// (a miss rebuilds them) and are removed by the next prune. Their keys are
/// the same, so nothing else changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// What the record is.
    pub kind: RecordKind,
    /// The key (sha256 of the inputs).
    pub key: String,
    /// The inputs that made the key.
    pub inputs: Inputs,
    /// The layer the step made, if any.
    pub layer: Option<crate::image::Layer>,
}

impl StepRecord {
    /// A layer-by-content record (see `engine::layer_reuse`), not a step's.
    pub fn is_content(&self) -> bool {
        self.kind == RecordKind::Content
    }
}

/// The first input of every layer-by-content record (part of its key).
pub const CONTENT_RECORD_MARK: &str = "layer format";

/// A step record and when it was last used.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The record.
    pub record: StepRecord,
    /// Last written or hit.
    pub used: SystemTime,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    layout: CacheLayout,
    /// The mode the root had when it was open to others and made private.
    repaired: Option<u32>,
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
    /// shared lock on it from now until it exits (see [`super::lock`]).
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let layout = CacheLayout::new(root);
        // Locked before the buckets are made: a prune that holds the cache
        // may remove empty bucket directories until it lets go.
        let repaired = super::lock::hold_shared(&layout)?;
        Self::with_buckets(layout, repaired)
    }

    /// Open (creating) the cache without taking a lock (tests, listing).
    pub fn open_unlocked(root: impl Into<PathBuf>) -> io::Result<Self> {
        let layout = CacheLayout::new(root);
        let repaired = make_private(layout.root())?;
        Self::with_buckets(layout, repaired)
    }

    /// Open the cache without a lock and without making its buckets
    /// (listing and pruning; a missing bucket reads as empty).
    pub fn open_as_is(root: impl Into<PathBuf>) -> io::Result<Self> {
        let layout = CacheLayout::new(root);
        let repaired = make_private(layout.root())?;
        Ok(Cache { layout, repaired })
    }

    fn with_buckets(layout: CacheLayout, repaired: Option<u32>) -> io::Result<Self> {
        for b in [
            Bucket::Records,
            Bucket::Slots,
            Bucket::Layers,
            Bucket::Tmp,
            Bucket::Gzip,
        ] {
            fs::create_dir_all(layout.dir(b))?;
        }
        Ok(Cache { layout, repaired })
    }

    /// When the root was open to other users (and is now private): a
    /// warning for the user, who may have shared it on purpose.
    pub fn repaired_warning(&self) -> Option<String> {
        self.repaired
            .map(|mode| super::lock::repaired_warning(self.root(), mode))
    }

    /// Take the cache exclusively (no build running on it), calling `waiting`
    /// once if builds hold it. The lock lasts as long as the returned file.
    pub fn lock_exclusive(&self, waiting: impl FnOnce()) -> io::Result<fs::File> {
        super::lock::lock_exclusive(&self.layout, waiting)
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Where everything lies in this cache.
    pub fn layout(&self) -> &CacheLayout {
        &self.layout
    }

    fn step_path(&self, key: &Digest) -> PathBuf {
        self.layout.record(key)
    }

    fn slot_path(&self, slot: &str) -> PathBuf {
        self.layout.slot(slot)
    }

    /// The directory of the cache mount `id` (`RUN --mount=type=cache`),
    /// created, and marked used now (its mtime is its last use for prune).
    pub fn mount_dir(&self, id: &str) -> io::Result<PathBuf> {
        let dir = self.layout.mount(id);
        fs::create_dir_all(&dir)?;
        super::usage::touch(&dir);
        Ok(dir)
    }

    /// Look a step up. `slot` names the step's position (e.g. `Dockerfile|builder|4`)
    /// and is used only to explain a miss.
    pub fn lookup(
        &self,
        inputs: &Inputs,
        slot: &str,
        blobs_present: impl Fn(&crate::image::Layer) -> bool,
    ) -> Lookup {
        let key = inputs.key();
        if let Some(rec) = self.read_record(&key) {
            if rec.layer.as_ref().is_none_or(&blobs_present) {
                return Lookup::Hit(rec);
            }
            return Lookup::Miss(Some("cached layer blob is missing from the store".into()));
        }
        let reason = self
            .slot_key(slot)
            .and_then(|k| self.read_record(&k))
            .and_then(|old| inputs.explain_change(&old.inputs));
        Lookup::Miss(reason.or(Some("no earlier run of this step in the cache".into())))
    }

    /// Read a record by key (None when absent or unreadable).
    pub fn read_record(&self, key: &Digest) -> Option<StepRecord> {
        let bytes = fs::read(self.step_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The key `slot` last ran with, if any.
    pub fn slot_key(&self, slot: &str) -> Option<Digest> {
        fs::read_to_string(self.slot_path(slot))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Store a record and point its slot at it.
    pub fn store(&self, record: &StepRecord, slot: &str) -> io::Result<()> {
        let key = self.put_record(record)?;
        self.write_atomic(&self.slot_path(slot), key.to_string().as_bytes())
    }

    /// Store a record (no slot: for records that come from elsewhere).
    pub fn put_record(&self, record: &StepRecord) -> io::Result<Digest> {
        let key: Digest = record
            .key
            .parse()
            .map_err(|e| io::Error::other(format!("bad cache key: {e}")))?;
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        self.write_atomic(&self.step_path(&key), &json)?;
        Ok(key)
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
        self.layout.gzip_memo(plain)
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
        let mut tmp = tempfile::NamedTempFile::new_in(self.layout.dir(Bucket::Tmp))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    /// Atomic but not fsynced: slot files only explain misses, losing one
    /// to a crash costs nothing but an explanation.
    fn write_unsynced(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.layout.dir(Bucket::Tmp))?;
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
        let rd = match fs::read_dir(self.layout.dir(Bucket::Records)) {
            // Emptied by `cache prune --all` (made again by the next build).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            rd => rd?,
        };
        for ent in rd {
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
            kind: RecordKind::Step,
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
            kind: RecordKind::Step,
            key: i.key().to_string(),
            inputs: i.clone(),
            layer: Some(crate::image::Layer {
                digest: Digest::of(b"0"),
                diff_id: cairn_layers::DiffId(Digest::of(b"1")),
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
}
