//! `RUN --mount=type=cache` contents through `--cache-to/--cache-from`
//! (opt-in: `cache-mounts=true` or `cache-mounts=ID[:ID…]`), so a fresh
//! runner's `npm ci` finds the npm cache a previous runner filled.
//!
//! **One entry per mount id, last writer wins.** A cache mount's contents
//! are never a step input (a step's key names the mount's id, not its
//! files), so any version of them gives the same image: the package manager
//! checks each cached package itself. The newest is the best guess (a
//! changed lockfile reruns `npm ci`, and the previous cache still holds most
//! of its packages), so the entry is named by the id alone
//! ([`entry_name`]) and replaced by each export whose contents differ. A
//! key naming the lockfile would miss exactly when the cache is needed. The
//! step entries stay append-only; this is the only replaced name.
//!
//! **What travels.** Only mounts a `RUN` that actually ran in this build
//! used ([`MountSync::ran`]): a build whose steps all hit never overwrites
//! the entry with an empty or stale directory. The contents are a
//! deterministic tar from the layer writer (sorted, ownership and times
//! dropped, modes reduced to 0644/0755: [`pack`]), gzip level 1 (package
//! caches hold compressed files already), bounded by `cache-mounts-max=` (default 512 MiB of file
//! data; over it the mount is skipped with a warning). It is never part of
//! an image layer: the blob is only in the cache.
//!
//! **Import** restores an entry before the first `RUN` that uses the mount,
//! only when the local mount directory is empty (a warm local cache is
//! never overwritten), into a scratch directory renamed into place once the
//! blob verified (its digest while read, the tar's digest after): a refused
//! or failing import leaves the directory empty, and the `RUN` simply runs
//! without it.

use super::{CacheSpec, Remote};
use crate::cache::Error;
use crate::image::Layer;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::context::BuildContext;
use cairn_layers::digest::HashingWriter;
use cairn_layers::dockerignore::Matcher;
use cairn_layers::{Digest, EntryKind, LayerWriter, MtimePolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The artifact type of a cache mount entry and the media type of its record.
pub const MOUNT_TYPE: &str = "application/vnd.cairn.cache.mount.v1+json";
/// The media type of its contents.
pub const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// `cache-mounts-max=` when not given.
pub const DEFAULT_MAX: u64 = 512 << 20;

/// `cache-mounts=` and `cache-mounts-max=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOpts {
    /// Which ids travel: `None` for none (the default).
    pub select: Option<Select>,
    /// The largest mount (bytes of file data) exported or imported.
    pub max: u64,
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            select: None,
            max: DEFAULT_MAX,
        }
    }
}

/// Which cache mounts travel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// Every one a `RUN` used.
    All,
    /// Those with these ids (a mount without `id=` has its target as id).
    Ids(Vec<String>),
}

impl MountOpts {
    /// Parse the two options' values (absent: the defaults).
    pub fn parse(select: Option<&str>, max: Option<&str>) -> Result<Self, Error> {
        let select = match select {
            None | Some("false") => None,
            Some("true") => Some(Select::All),
            Some("") => return Err(Error::CacheMountsEmpty),
            Some(ids) => Some(Select::Ids(ids.split(':').map(str::to_owned).collect())),
        };
        let max = match max {
            None => DEFAULT_MAX,
            Some(m) => crate::cache::usage::parse_size(m).map_err(|why| Error::CacheMountsMax {
                value: m.into(),
                why: Box::new(why),
            })?,
        };
        Ok(MountOpts { select, max })
    }

    /// Whether the mount `id` travels.
    pub fn wants(&self, id: &str) -> bool {
        match &self.select {
            None => false,
            Some(Select::All) => true,
            Some(Select::Ids(ids)) => ids.iter().any(|i| i == id),
        }
    }
}

/// What an entry says about the contents of a cache mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// The mount's id.
    pub id: String,
    /// The platform of the `RUN` steps that filled it (`linux/arm64`): a
    /// package cache may hold native builds, so each platform has its own
    /// entry (a two-platform build, or one runner per architecture, would
    /// otherwise overwrite each other's).
    #[serde(default)]
    pub platform: String,
    /// The gzip tar: digest, the tar's digest (`diff_id`), size.
    pub blob: Layer,
    /// Regular files in it.
    pub files: u64,
    /// Bytes of file data in it (what `cache-mounts-max` bounds).
    pub bytes: u64,
}

/// The entry name of mount `id` for `platform` (a registry tag, distinct
/// from the step entries' `s…`).
pub fn entry_name(id: &str, platform: &str) -> String {
    let named = format!("{id}\n{platform}");
    format!("m{}", &Digest::of(named.as_bytes()).hex()[..32])
}

/// A cache mount as it travels: its id and the platform of the `RUN`.
pub type MountKey = (String, String);

/// Regular files and their bytes under `dir` (symlinks not followed).
pub fn measure(dir: &Path) -> Result<(u64, u64), Error> {
    let (mut files, mut bytes) = (0, 0);
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.map_err(|source| Error::Walk {
            dir: dir.to_path_buf(),
            source,
        })?;
        if e.file_type().is_file() {
            files += 1;
            bytes += e.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// The deterministic gzip tar of `dir` into `store`, written by the layer
/// writer: the context walk's normalized entries (sorted byte-wise, owners
/// 0, modes 0644/0755, hard links kept as links) with every time set to 0;
/// directories, regular files and symlinks only (sockets, fifos and devices
/// are not cache contents). Returns its blob description (digest, tar
/// digest, size).
pub fn pack(dir: &Path, store: &BlobStore) -> Result<Layer, Error> {
    let walk = BuildContext::with_matcher(dir, Matcher::empty())
        .and_then(|c| c.walk())
        .map_err(|source| Error::ReadMount {
            dir: dir.to_path_buf(),
            source,
        })?;
    let gz = flate2::write::GzEncoder::new(store.writer()?, flate2::Compression::new(1));
    let mut tar = LayerWriter::new(HashingWriter::new(gz), MtimePolicy::Set(0));
    for e in walk.iter().filter(|e| {
        !matches!(
            e.kind,
            EntryKind::Fifo | EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }
        )
    }) {
        tar.append(e).map_err(|source| Error::PackMount {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let (diff_id, _, gz) = tar
        .finish()
        .map_err(|source| Error::PackMount {
            dir: dir.to_path_buf(),
            source,
        })?
        .finish();
    let (digest, size) = gz.finish()?.commit(None)?;
    Ok(Layer {
        digest,
        diff_id: cairn_layers::DiffId(diff_id),
        size,
        media_type: TAR_GZIP.into(),
    })
}

/// A reader that fails once more than `left` bytes come through (a blob
/// whose tar is larger than its record says is refused, not unpacked).
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| std::io::Error::other("the contents are larger than the entry says"))?;
        Ok(n)
    }
}

/// Unpack `rec`'s blob (verified already, in `store`) into `dir`, which
/// must be empty: into `scratch` first, renamed into place once the tar's
/// digest matched. Entries cannot land outside `dir` (the tar crate refuses
/// `..` and paths through symlinks).
pub fn unpack(
    rec: &MountRecord,
    store: &BlobStore,
    dir: &Path,
    scratch: &Path,
) -> Result<(), Error> {
    let d = rec.blob.digest.clone();
    let tmp = tempfile::Builder::new()
        .prefix(".mount-")
        .tempdir_in(scratch)?;
    let into = tmp.path().join("m");
    std::fs::create_dir(&into)?;
    // File data, plus a header and padding per file and the end blocks.
    let bound = rec.bytes + (rec.files + 1) * 1024 + (1 << 20);
    // The layers crate's one reader: path escapes refused, the stream
    // checked against the record's diff_id as it is read.
    let gz = flate2::read::MultiGzDecoder::new(store.open_blob(&d)?);
    let opts = cairn_layers::unpack::UnpackOptions {
        expect_diff_id: Some(rec.blob.diff_id.clone()),
        ..Default::default()
    };
    cairn_layers::unpack::unpack(
        Bounded {
            inner: gz,
            left: bound,
        },
        &into,
        &opts,
    )
    .map_err(|source| Error::UnpackMount {
        id: rec.id.clone(),
        source: Box::new(source),
    })?;
    // Replaces `dir` only while it is still empty (rename(2) onto an empty
    // directory): a RUN of another platform that filled it meanwhile wins.
    std::fs::rename(&into, dir).or_else(|e| {
        if std::fs::read_dir(dir).is_ok_and(|mut r| r.next().is_some()) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

/// The cache mounts of one build: those its `RUN` steps ran with (for the
/// export) and those restored (once per id).
#[derive(Default)]
pub struct MountSync {
    /// (Id, platform) → host directory, of every cache mount a `RUN` ran with.
    ran: Mutex<BTreeMap<MountKey, PathBuf>>,
    /// Mounts a restore was tried for; held while restoring, so two
    /// platforms reaching the same directory wait for one restore.
    tried: Mutex<BTreeSet<MountKey>>,
    restored: AtomicUsize,
    bytes: AtomicU64,
}

impl MountSync {
    /// The mounts whose `RUN` ran, by id and platform.
    pub fn ran(&self) -> BTreeMap<MountKey, PathBuf> {
        self.ran.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// One line for the build summary, when a mount was restored.
    pub fn summary(&self) -> Option<String> {
        let n = self.restored.load(Ordering::Relaxed);
        (n > 0).then(|| {
            format!(
                "{n} cache mounts restored ({} bytes)",
                self.bytes.load(Ordering::Relaxed)
            )
        })
    }
}

/// Before a `RUN` runs with the cache mounts `used` (id, host directory):
/// note them for the export, and restore each one a `--cache-from` with
/// `cache-mounts=` has, when its directory is empty. `scratch` is on the
/// same filesystem as the directories. A failure warns (or fails the build
/// with `ignore-error=false`); the `RUN` then runs with the directory as it
/// was. Returns the directories restored.
pub fn before_run(
    sources: &[(CacheSpec, Box<dyn Remote>)],
    sync: &MountSync,
    platform: &str,
    used: &[(String, PathBuf)],
    scratch: &Path,
    warn: &dyn Fn(String),
) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for (id, dir) in used {
        let key = (id.clone(), platform.to_owned());
        if let Ok(mut r) = sync.ran.lock() {
            r.insert(key.clone(), dir.clone());
        }
        let Ok(mut tried) = sync.tried.lock() else {
            continue;
        };
        if !tried.insert(key) {
            continue;
        }
        let empty = std::fs::read_dir(dir).map_or(true, |mut r| r.next().is_none());
        if !empty {
            continue;
        }
        for (spec, remote) in sources.iter().filter(|(s, _)| s.mounts.wants(id)) {
            match restore(spec, &**remote, (id, platform), dir, scratch) {
                Ok(None) => continue,
                Ok(Some(n)) => {
                    sync.restored.fetch_add(1, Ordering::Relaxed);
                    sync.bytes.fetch_add(n, Ordering::Relaxed);
                    out.push(dir.clone());
                    break;
                }
                Err(e) => {
                    let e = Error::RestoreMount {
                        id: id.clone(),
                        cache: spec.describe(),
                        source: Box::new(e),
                    };
                    if !spec.ignore_error {
                        return Err(e);
                    }
                    warn(format!(
                        "{}; the step runs without it (ignore-error=true)",
                        crate::error::one_line(&e)
                    ));
                }
            }
        }
        drop(tried);
    }
    Ok(out)
}

/// Restore mount `id` from `remote` into the empty `dir`: the blob's bytes,
/// or None when the cache has no entry for it.
fn restore(
    spec: &CacheSpec,
    remote: &dyn Remote,
    (id, platform): (&str, &str),
    dir: &Path,
    scratch: &Path,
) -> Result<Option<u64>, Error> {
    let name = entry_name(id, platform);
    let Some(rec) = remote.mount_entry(&name)? else {
        return Ok(None);
    };
    if rec.id != id || rec.platform != platform {
        return Err(Error::MountEntryMismatch {
            name,
            found_id: rec.id,
            found_platform: rec.platform,
            id: id.into(),
            platform: platform.into(),
        });
    }
    if rec.bytes > spec.mounts.max {
        return Err(Error::MountTooLarge {
            bytes: rec.bytes,
            max: spec.mounts.max,
        });
    }
    // The blob is kept only until unpacked: not among the build's blobs.
    let tmp = tempfile::Builder::new()
        .prefix(".mount-blob-")
        .tempdir_in(scratch)?;
    let store = BlobStore::open(tmp.path())?;
    let n = remote.fetch_blob(&rec.blob, &store, None)?;
    unpack(&rec, &store, dir, scratch)?;
    Ok(Some(n))
}

/// What a mount export did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountsExported {
    /// Entries written (new or changed contents).
    pub written: usize,
    /// Mounts whose entry had these contents already.
    pub unchanged: usize,
}

/// Export the cache mounts `ran` ((id, platform) → directory) that `spec` selects to
/// `remote`. An empty mount is skipped, one over `cache-mounts-max` warns
/// and is skipped; one whose tar equals the entry's is not written again.
pub fn export(
    spec: &CacheSpec,
    remote: &dyn Remote,
    ran: &BTreeMap<MountKey, PathBuf>,
    scratch: &Path,
    warn: &dyn Fn(String),
) -> Result<MountsExported, Error> {
    let mut out = MountsExported::default();
    for ((id, platform), dir) in ran.iter().filter(|((id, _), _)| spec.mounts.wants(id)) {
        let (files, bytes) = measure(dir).map_err(|e| Error::MeasureMount {
            id: id.clone(),
            source: Box::new(e),
        })?;
        if files == 0 {
            continue;
        }
        if bytes > spec.mounts.max {
            warn(format!(
                "cache mount {id}: {bytes} bytes of files, over cache-mounts-max={} of the {}; not exported (raise cache-mounts-max= to export it)",
                spec.mounts.max,
                spec.describe()
            ));
            continue;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".mount-export-")
            .tempdir_in(scratch)?;
        let store = BlobStore::open(tmp.path())?;
        // A mount with files this user cannot read (written by another id
        // of the namespace) is skipped, not the whole export.
        let blob = match pack(dir, &store) {
            Ok(b) => b,
            Err(e) => {
                warn(format!(
                    "cache mount {id}: {}; not exported to the {}",
                    crate::error::one_line(&e),
                    spec.describe()
                ));
                continue;
            }
        };
        let name = entry_name(id, platform);
        let rec = MountRecord {
            id: id.clone(),
            platform: platform.clone(),
            blob,
            files,
            bytes,
        };
        // An entry that cannot be read is replaced.
        let have = remote.mount_entry(&name).ok().flatten();
        if have.is_some_and(|h| h.blob.digest == rec.blob.digest) {
            out.unchanged += 1;
            continue;
        }
        remote.put_mount(&name, &rec, &store)?;
        out.written += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_has_its_own_entry() {
        let amd = entry_name("npm", "linux/amd64");
        assert_ne!(amd, entry_name("npm", "linux/arm64"));
        assert_ne!(amd, entry_name("npm2", "linux/amd64"));
        assert!(amd.starts_with('m') && amd.len() == 33);
    }

    #[test]
    fn options_parse_and_select_by_id() {
        let o = MountOpts::parse(None, None).unwrap();
        assert!(!o.wants("npm") && o.max == DEFAULT_MAX);
        let o = MountOpts::parse(Some("true"), Some("1g")).unwrap();
        assert!(o.wants("npm") && o.max == 1 << 30);
        let o = MountOpts::parse(Some("npm:/root/.cache"), None).unwrap();
        assert!(o.wants("npm") && o.wants("/root/.cache") && !o.wants("apk"));
        assert!(MountOpts::parse(Some(""), None).is_err());
        let e = MountOpts::parse(Some("true"), Some("lots"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cache-mounts-max=lots: invalid size `lots`: expected a number and a unit such as 512MB"
        );
    }

    fn tree(root: &Path, mtime: i64) {
        std::fs::create_dir_all(root.join("_cacache/index")).unwrap();
        std::fs::write(root.join("_cacache/index/a"), "alpha").unwrap();
        std::fs::write(root.join("b"), "beta").unwrap();
        std::os::unix::fs::symlink("b", root.join("link")).unwrap();
        std::fs::hard_link(root.join("b"), root.join("hard")).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64);
        std::fs::File::options()
            .write(true)
            .open(root.join("b"))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn the_tar_is_deterministic_and_round_trips_verified() {
        let t = tempfile::tempdir().unwrap();
        let store = BlobStore::open(t.path().join("store")).unwrap();
        tree(&t.path().join("one"), 1000);
        tree(&t.path().join("two"), 2_000_000);
        let a = pack(&t.path().join("one"), &store).unwrap();
        let b = pack(&t.path().join("two"), &store).unwrap();
        assert_eq!(a, b, "times and paths outside the mount do not matter");
        assert_eq!(measure(&t.path().join("one")).unwrap(), (3, 13));
        let rec = MountRecord {
            id: "npm".into(),
            platform: "linux/amd64".into(),
            blob: a.clone(),
            files: 3,
            bytes: 13,
        };
        let dest = t.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        unpack(&rec, &store, &dest, t.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("_cacache/index/a")).unwrap(),
            "alpha"
        );
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("b")
        );
        use std::os::unix::fs::MetadataExt as _;
        let ino = |p: &str| std::fs::metadata(dest.join(p)).unwrap().ino();
        assert_eq!(ino("hard"), ino("b"), "a hard link stays one file");

        // A record whose tar digest is not the blob's: nothing is unpacked.
        let lying = MountRecord {
            blob: Layer {
                diff_id: cairn_layers::DiffId(Digest::of(b"other")),
                ..a.clone()
            },
            ..rec.clone()
        };
        let dest2 = t.path().join("dest2");
        std::fs::create_dir(&dest2).unwrap();
        assert!(unpack(&lying, &store, &dest2, t.path()).is_err());
        assert_eq!(std::fs::read_dir(&dest2).unwrap().count(), 0);
        // One whose sizes understate the contents is refused too.
        let small = MountRecord {
            bytes: 0,
            files: 0,
            ..rec
        };
        let big = t.path().join("big");
        std::fs::create_dir(&big).unwrap();
        std::fs::write(big.join("f"), vec![7u8; 3 << 20]).unwrap();
        let blob = pack(&big, &store).unwrap();
        let dest3 = t.path().join("dest3");
        std::fs::create_dir(&dest3).unwrap();
        let e = unpack(&MountRecord { blob, ..small }, &store, &dest3, t.path()).unwrap_err();
        let e = crate::error::one_line(&e);
        assert!(e.contains("larger than the entry says"), "{e}");
        assert_eq!(std::fs::read_dir(&dest3).unwrap().count(), 0);

        // A hostile tar (a symlink out, then a file through it) writes
        // nothing outside the mount, and nothing at all into it.
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", &outside).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        b.append_data(&mut h, "esc/f", &b"pwn"[..]).unwrap();
        let raw = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let d = store.put_bytes(&gz.finish().unwrap()).unwrap();
        let hostile = MountRecord {
            id: "npm".into(),
            platform: "linux/amd64".into(),
            blob: Layer {
                digest: d,
                diff_id: cairn_layers::DiffId(Digest::of(&raw)),
                size: 0,
                media_type: TAR_GZIP.into(),
            },
            files: 1,
            bytes: 3,
        };
        let dest4 = t.path().join("dest4");
        std::fs::create_dir(&dest4).unwrap();
        assert!(unpack(&hostile, &store, &dest4, t.path()).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&dest4).unwrap().count(), 0);
    }
}
