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
//! `steps/<key>.json` (records), `slots/<slot>` (the last key seen for a
//! step position). Every file is written to a temporary name and renamed,
//! so concurrent builds on one cache are safe and a killed build never
//! leaves a half-written record.

use cairn_layers::Digest;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

    /// The cache key: sha256 over a length-prefixed encoding of every input.
    pub fn key(&self) -> Digest {
        let mut buf = Vec::new();
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
        if v.starts_with("sha256:") && v.len() > 19 {
            v[..19].to_owned() + "…"
        } else if v.chars().count() > 60 {
            v.chars().take(57).collect::<String>() + "…"
        } else {
            v.to_owned()
        }
    };
    if name.starts_with("context file ") || name.starts_with("file ") {
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

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

/// Result of a lookup.
pub enum Lookup {
    /// Served from the cache.
    Hit(StepRecord),
    /// Not in the cache, with the reason when an earlier run of the step is known.
    Miss(Option<String>),
}

impl Cache {
    /// Open (creating) the cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for d in ["steps", "slots", "layers", "tmp"] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(Cache { root })
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
    pub fn touch_slot(&self, slot: &str, key: &Digest) -> io::Result<()> {
        self.write_atomic(&self.slot_path(slot), key.to_string().as_bytes())
    }

    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    /// All step records (for `cairn cache ls`).
    pub fn records(&self) -> io::Result<Vec<StepRecord>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(self.root.join("steps"))? {
            let p = ent?.path();
            if let Ok(b) = fs::read(&p) {
                if let Ok(r) = serde_json::from_slice::<StepRecord>(&b) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
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
            "arg NODE_ENV changed: production → development"
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
}
