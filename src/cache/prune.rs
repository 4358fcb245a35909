//! `cairn cache prune`: what goes, bucket by bucket.
//!
//! Every prune first collects garbage no running process can need (it holds
//! the exclusive lock, see [`super::lock`]): temporaries (`tmp/`), sandbox
//! run directories, **directories of older cache layouts** (anything under
//! `layers/` that is not a form directory of the current
//! [`LAYER_SCHEME`](super::layout::LAYER_SCHEME): root's `layers/<hex>`,
//! `layers/userns-<hash>`, `layers/unowned-<uid>`, interrupted unpacks),
//! records of an older format, slots and use stamps whose target is gone,
//! and records whose layer blob is gone. Then:
//! - without options: records no step position points at any more
//!   (superseded runs), and the blobs and unpacked layers only they used;
//! - `--filter until=DUR` / `type=BUCKET`: every item (record, blob, unpacked
//!   layer, mount cache, the image store…) of those buckets not used for DUR;
//! - `--keep-storage SIZE`: of those (of everything without a filter), least
//!   recently used first until the whole directory is at most SIZE;
//! - `--all`: everything but the lock (filters still narrow it).
//!
//! What depends on a removed item goes with it: a record whose blob went, a
//! slot whose record went, a use stamp whose layer went.

use super::layout::{Bucket, LayerForm};
use super::records::{Cache, Listed};
use super::usage::{scan, Item};
use cairn_layers::Digest;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What `cairn cache prune` removes (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct PrunePolicy {
    /// Everything.
    pub all: bool,
    /// Items not used for at least this long.
    pub until: Option<Duration>,
    /// Only items of these buckets (all when empty).
    pub buckets: Vec<Bucket>,
    /// Remove least recently used items until the cache takes at most this many bytes.
    pub keep_storage: Option<u64>,
}

impl PrunePolicy {
    fn filtered(&self) -> bool {
        self.all || self.until.is_some() || !self.buckets.is_empty() || self.keep_storage.is_some()
    }

    fn selects(&self, item: &Item, now: SystemTime) -> bool {
        item.bucket != Bucket::Root
            && (self.buckets.is_empty() || self.buckets.contains(&item.bucket))
            && self
                .until
                .is_none_or(|d| now.duration_since(item.used).is_ok_and(|age| age >= d))
    }
}

/// What a prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Step records.
    pub records: usize,
    /// Blobs.
    pub blobs: usize,
    /// Bytes freed (apparent sizes, as `du -sb`).
    pub bytes: u64,
    /// Unpacked layer directories (of every form and layout).
    pub layer_dirs: usize,
    /// Items removed, by bucket.
    pub removed: BTreeMap<&'static str, usize>,
    /// Bytes of the cache directory before.
    pub before: u64,
    /// Bytes of the cache directory after.
    pub after: u64,
}

/// Removes a tree that may hold files of the user's subordinate ids (the
/// caller's user namespace helper, see `sandbox::layer_dirs`).
pub type RemoveTree<'a> = &'a dyn Fn(&Path) -> io::Result<()>;

fn hex_name(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_str()?;
    let hex = n.strip_suffix(".json").unwrap_or(n);
    Digest::from_hex(hex).ok().map(|d| d.hex().to_owned())
}

impl Cache {
    /// The keys the step positions (slots) last ran with.
    fn slot_heads(&self) -> io::Result<Vec<(PathBuf, String)>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(self.layout().dir(Bucket::Slots)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            rd => rd?,
        };
        for ent in rd {
            let p = ent?.path();
            if let Ok(k) = fs::read_to_string(&p) {
                out.push((p, k.trim().to_owned()));
            }
        }
        Ok(out)
    }

    /// Remove what `policy` selects (see the module doc). Needs the
    /// exclusive lock ([`Cache::lock_exclusive`]), which the caller holds;
    /// trees go through `remove_tree`.
    pub fn prune(
        &self,
        policy: &PrunePolicy,
        now: SystemTime,
        remove_tree: RemoveTree,
    ) -> io::Result<PruneReport> {
        let layout = self.layout();
        let usage = scan(layout);
        let listed = self.listed()?;
        let heads = self.slot_heads()?;
        let mut items = usage.items.clone();
        let record_path = |l: &Listed| {
            l.record
                .key
                .parse::<Digest>()
                .ok()
                .map(|k| layout.record(&k))
        };
        let blob_of = |l: &Listed| {
            let layer = l.record.layer.as_ref()?;
            Some((layout.blob(&layer.digest), layer.diff_id.0.hex().to_owned()))
        };
        // A blob is used when a record using it is.
        let mut blob_used: HashMap<PathBuf, SystemTime> = HashMap::new();
        for l in &listed {
            if let Some((b, _)) = blob_of(l) {
                let t = blob_used.entry(b).or_insert(l.used);
                *t = (*t).max(l.used);
            }
        }
        for it in items.iter_mut().filter(|i| i.bucket == Bucket::Blobs) {
            if let Some(t) = blob_used.get(&it.path) {
                it.used = it.used.max(*t);
            }
        }
        let parsed: BTreeSet<PathBuf> = listed.iter().filter_map(record_path).collect();
        let layers_dir = layout.dir(Bucket::Layers);
        let mut remove: BTreeSet<PathBuf> = BTreeSet::new();

        // Garbage, always.
        for it in &items {
            let name = it
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let garbage = match it.bucket {
                Bucket::Tmp | Bucket::Sandbox => true,
                Bucket::Layers => {
                    (it.path.parent() == Some(&layers_dir)
                        && LayerForm::of(&name) == LayerForm::Old)
                        || name.starts_with('.')
                }
                Bucket::Records => !parsed.contains(&it.path),
                _ => false,
            };
            if garbage {
                remove.insert(it.path.clone());
            }
        }

        let head_keys: BTreeSet<&str> = heads.iter().map(|(_, k)| k.as_str()).collect();
        let blob_present =
            |p: &Path, remove: &BTreeSet<PathBuf>| p.is_file() && !remove.contains(p);
        if !policy.filtered() {
            // Superseded records, then what only they used.
            for l in &listed {
                if !head_keys.contains(l.record.key.as_str()) {
                    remove.extend(record_path(l));
                }
            }
            let kept: Vec<&Listed> = listed
                .iter()
                .filter(|l| record_path(l).is_some_and(|p| !remove.contains(&p)))
                .collect();
            let kept_blobs: BTreeSet<PathBuf> = kept
                .iter()
                .filter_map(|l| blob_of(l).map(|b| b.0))
                .collect();
            let kept_diffs: BTreeSet<String> = kept
                .iter()
                .filter_map(|l| blob_of(l).map(|b| b.1))
                .collect();
            let superseded: Vec<&Listed> = listed
                .iter()
                .filter(|l| record_path(l).is_some_and(|p| remove.contains(&p)))
                .collect();
            for l in superseded {
                let Some((blob, diff)) = blob_of(l) else {
                    continue;
                };
                if !kept_blobs.contains(&blob) && blob.is_file() {
                    remove.insert(blob);
                }
                if !kept_diffs.contains(&diff) {
                    remove.extend(
                        items
                            .iter()
                            .filter(|i| {
                                i.bucket == Bucket::Layers
                                    && hex_name(&i.path).as_ref() == Some(&diff)
                            })
                            .map(|i| i.path.clone()),
                    );
                }
            }
        } else {
            let mut candidates: Vec<&Item> = items
                .iter()
                .filter(|i| !remove.contains(&i.path) && policy.selects(i, now))
                .collect();
            match policy.keep_storage {
                None => remove.extend(candidates.iter().map(|i| i.path.clone())),
                Some(limit) => {
                    let gone: u64 = items
                        .iter()
                        .filter(|i| remove.contains(&i.path))
                        .map(|i| i.bytes)
                        .sum();
                    let mut total = usage.total().saturating_sub(gone);
                    candidates.sort_by(|a, b| a.used.cmp(&b.used).then(a.path.cmp(&b.path)));
                    for c in candidates {
                        if total <= limit {
                            break;
                        }
                        remove.insert(c.path.clone());
                        total = total.saturating_sub(c.bytes);
                    }
                }
            }
        }

        // What depends on a removed item. A plain layer (digest = diff_id)
        // whose blob is gone is still there while its directory is: a
        // snapshot (see `engine::snapshot`).
        let dirs_kept: BTreeSet<String> = items
            .iter()
            .filter(|i| i.bucket == Bucket::Layers && !remove.contains(&i.path))
            .filter_map(|i| hex_name(&i.path))
            .collect();
        let snapshot_kept = |l: &Listed| {
            l.record
                .layer
                .as_ref()
                .is_some_and(|x| x.digest == x.diff_id.0 && dirs_kept.contains(x.digest.hex()))
        };
        for l in &listed {
            let broken =
                blob_of(l).is_some_and(|(b, _)| !blob_present(&b, &remove)) && !snapshot_kept(l);
            if broken {
                remove.extend(record_path(l));
            }
        }
        for (p, k) in &heads {
            let gone = k.parse::<Digest>().map_or(true, |k| {
                let r = layout.record(&k);
                remove.contains(&r) || !parsed.contains(&r)
            });
            if gone {
                remove.insert(p.clone());
            }
        }
        let layer_names: BTreeSet<String> = items
            .iter()
            .filter(|i| i.bucket == Bucket::Layers && !remove.contains(&i.path))
            .filter_map(|i| hex_name(&i.path))
            .collect();
        for it in items.iter().filter(|i| i.bucket == Bucket::LayerUse) {
            if hex_name(&it.path).is_none_or(|h| !layer_names.contains(&h)) {
                remove.insert(it.path.clone());
            }
        }
        for it in items.iter().filter(|i| i.bucket == Bucket::Gzip) {
            let plain = hex_name(&it.path).and_then(|h| Digest::from_hex(&h).ok());
            if plain.is_none_or(|d| !blob_present(&layout.blob(&d), &remove)) {
                remove.insert(it.path.clone());
            }
        }

        let mut report = PruneReport {
            before: usage.total(),
            ..Default::default()
        };
        // Records first: a record whose blob is gone is only a miss.
        let mut order: Vec<&Item> = items.iter().filter(|i| remove.contains(&i.path)).collect();
        order.sort_by_key(|i| (i.bucket != Bucket::Records, i.bucket));
        for it in order {
            let is_dir = fs::symlink_metadata(&it.path).is_ok_and(|m| m.is_dir());
            let done = if is_dir {
                remove_tree(&it.path)
            } else {
                match fs::remove_file(&it.path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            };
            done.map_err(|e| {
                io::Error::new(e.kind(), format!("removing {}: {e}", it.path.display()))
            })?;
            report.bytes += it.bytes;
            *report.removed.entry(it.bucket.name()).or_default() += 1;
            match it.bucket {
                Bucket::Records => report.records += 1,
                Bucket::Blobs => report.blobs += 1,
                Bucket::Layers if is_dir => report.layer_dirs += 1,
                _ => {}
            }
        }
        let over = policy
            .keep_storage
            .is_some_and(|limit| scan(layout).total() > limit);
        if policy.all || over {
            // Empty bucket directories too (made again when needed; builds
            // make them only once they hold the lock), deepest first.
            let mut dirs: Vec<&PathBuf> = usage
                .skeleton
                .iter()
                .filter(|(_, p, _)| p != layout.root() && p != &layout.lock_file())
                .map(|(_, p, _)| p)
                .collect();
            dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for d in dirs {
                let _ = fs::remove_dir(d);
            }
        }
        report.after = scan(layout).total();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::records::{Inputs, RecordKind, StepRecord};

    fn rm(p: &Path) -> io::Result<()> {
        crate::sandbox::state::remove_tree(p)
    }

    fn layer_record(cache: &Cache, name: &str, blob: &[u8], slot: &str) -> (StepRecord, PathBuf) {
        let store = cairn_layers::blob_store::BlobStore::open(cache.root()).unwrap();
        let d = store.put_bytes(blob).unwrap();
        let dir = cache.layout().host_layers().join(d.hex());
        fs::create_dir_all(dir.join("locked")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        let mut i = Inputs::default();
        i.push("instruction", name);
        let rec = StepRecord {
            kind: RecordKind::Step,
            key: i.key().to_string(),
            inputs: i,
            layer: Some(crate::image::Layer {
                digest: d.clone(),
                diff_id: cairn_layers::DiffId(d.clone()),
                size: blob.len() as u64,
                media_type: "x".into(),
            }),
        };
        cache.store(&rec, slot).unwrap();
        (rec, store.path(&d))
    }

    /// A snapshot (engine::snapshot): a plain layer's record whose blob is
    /// gone but whose directory is kept stays, and goes with its directory.
    #[test]
    fn a_snapshot_record_stays_while_its_directory_does() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open_unlocked(t.path()).unwrap();
        let (rec, blob) = layer_record(&cache, "RUN npm ci", b"snapshot", "s1");
        fs::remove_file(&blob).unwrap();
        let key = rec.key.parse().unwrap();
        cache
            .prune(&PrunePolicy::default(), SystemTime::now(), &rm)
            .unwrap();
        assert!(
            cache.read_record(&key).is_some(),
            "a snapshot record was pruned"
        );
        let layers = PrunePolicy {
            buckets: vec![Bucket::Layers],
            ..Default::default()
        };
        let r = cache.prune(&layers, SystemTime::now(), &rm).unwrap();
        assert_eq!((r.records, r.layer_dirs), (1, 1), "{r:?}");
        assert!(cache.read_record(&key).is_none());
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
            .prune(&PrunePolicy::default(), SystemTime::now(), &rm)
            .unwrap();
        assert_eq!((r.records, r.blobs, r.layer_dirs), (1, 1, 1), "{r:?}");
        assert!(!old_blob.exists() && new_blob.exists() && shared_blob.exists());
        assert!(cache.read_record(&old.key.parse().unwrap()).is_none());
        assert!(cache.read_record(&new.key.parse().unwrap()).is_some());

        // until=: nothing is older than an hour.
        let hour = PrunePolicy {
            until: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        assert_eq!(
            cache.prune(&hour, SystemTime::now(), &rm).unwrap().records,
            0
        );
        // type=layers: only unpacked layers go; records and blobs stay.
        let layers = PrunePolicy {
            buckets: vec![Bucket::Layers],
            ..Default::default()
        };
        let r = cache.prune(&layers, SystemTime::now(), &rm).unwrap();
        assert_eq!((r.records, r.blobs, r.layer_dirs), (0, 0, 2), "{r:?}");
        assert!(new_blob.exists());
        // keep-storage: least recently used first until the whole cache fits.
        let before = scan(cache.layout()).total();
        let keep = PrunePolicy {
            keep_storage: Some(before - 1),
            ..Default::default()
        };
        let r = cache.prune(&keep, SystemTime::now(), &rm).unwrap();
        assert!(
            r.after < before && r.after == scan(cache.layout()).total(),
            "{r:?}"
        );
        let all = PrunePolicy {
            all: true,
            ..Default::default()
        };
        cache.prune(&all, SystemTime::now(), &rm).unwrap();
        assert!(cache.records().unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty() || left == ["lock"], "{left:?}");
    }

    #[test]
    fn old_layouts_and_old_records_go_in_a_plain_prune() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open_unlocked(t.path()).unwrap();
        let (rec, _) = layer_record(&cache, "COPY a .", b"layer", "s1");
        let layers = cache.layout().dir(Bucket::Layers);
        let hex = Digest::of(b"old").hex().to_owned();
        let old = [
            layers.join(&hex),
            layers.join("userns-0123456789abcdef").join(&hex),
            layers.join("unowned-1000").join(&hex),
            layers.join(".unpack-x"),
        ];
        for o in &old {
            fs::create_dir_all(o.join("etc")).unwrap();
        }
        // A record of the format before `kind`.
        let legacy = cache.layout().record(&Digest::of(b"legacy"));
        fs::write(&legacy, br#"{"key":"sha256:00","inputs":[],"layer":null}"#).unwrap();
        let r = cache
            .prune(&PrunePolicy::default(), SystemTime::now(), &rm)
            .unwrap();
        for o in &old {
            assert!(!o.exists(), "{} kept", o.display());
        }
        assert!(!legacy.exists());
        assert_eq!(r.records, 1, "{r:?}");
        assert!(cache.read_record(&rec.key.parse().unwrap()).is_some());
        assert!(cache
            .layout()
            .host_layers()
            .join(rec.layer.unwrap().diff_id.0.hex())
            .exists());
    }

    #[test]
    fn prune_waits_for_builds_holding_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open_unlocked(t.path()).unwrap();
        let build = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(cache.layout().lock_file())
            .unwrap();
        rustix::fs::flock(&build, rustix::fs::FlockOperation::LockShared).unwrap();
        let waited = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                cache
                    .lock_exclusive(|| waited.store(true, std::sync::atomic::Ordering::SeqCst))
                    .unwrap()
            });
            std::thread::sleep(Duration::from_millis(200));
            drop(build);
            drop(h.join().unwrap());
        });
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));
    }
}
