//! Each layer unpacked once, content-addressed by diff_id, in overlayfs
//! lower-directory form (whiteout = char device 0/0, opaque = xattr), shared
//! read-only by every stage and build that uses it: the lower layers of RUN
//! and the merged view that COPY destinations and `--chown` names resolve in.
//!
//! # Who unpacks
//! - **root**: in this process, owners as in the tar (`layers/<hex>`).
//! - **an unprivileged user whose user namespace works**: inside the
//!   sandbox's user namespace, with the same id mapping as RUN steps, by
//!   the hidden `cairn __layer-dir unpack` ([`helper_main`]) run through
//!   [`Sandbox::exec_in_userns`]. With subordinate ids the owners map
//!   (container id N is host id SUBID+N-1, 0 is the user) and whiteouts
//!   can be created; with the single mapping, owners other than 0:0 are
//!   recorded in [`OWNER_XATTR`] instead. The directories live in
//!   `layers/userns-<mapping hash>/<hex>` so two mappings never share one.
//!   Removing them goes through the namespace too: the host user cannot
//!   delete files of its subordinate ids.
//! - **otherwise** (no user namespace: RUN cannot work either), in this
//!   process without owners, in `layers/unowned-<uid>/<hex>`, so COPY-only
//!   builds keep working.
//!
//! # Donors
//! A layer this build wrote from files in a finished RUN step's upper dir
//! — the RUN layer itself, or a `COPY --from` of that stage, which reads
//! them in the RUN layer's blob ([`LayerDirs::note_members`] maps those
//! members back to the upper dir) — is offered those files
//! ([`LayerDirs::offer_donors`]): its unpack moves them in instead of
//! writing 10,000 files again (see `cairn_layers::unpack`); nothing reads
//! them in the upper dir once their layer is written. Each donor goes to one
//! unpack (claimed under a lock). Only files owned by container root
//! and readable by their owner are offered, so a non-root caller can still
//! delete the upper dir, which lives until the build ends.

use crate::cache::layout::{Bucket, CacheLayout, LayerForm};
use crate::image::Layer;
use crate::sandbox::idmap::{IdRange, IdentityKind};
use crate::sandbox::ownership::OWNER_XATTR;
use crate::sandbox::state::remove_tree;
use crate::sandbox::Sandbox;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::unpack::{
    unpack_auto, Donors, HashedBy, UnpackError, UnpackOptions, WhiteoutMode,
};
use cairn_layers::{DiffId, Digest, Entry, EntryKind, Source};
use rustix::fs::{flock, FlockOperation};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};

mod error;
mod snapshot;
mod stream;

pub use error::Error;
pub use stream::Streamed;

/// The hidden subcommand that works on layer directories inside the
/// sandbox's user namespace.
pub const HELPER_SUBCOMMAND: &str = "__layer-dir";

/// Layers unpacked at once by [`LayerDirs::ensure_all`]: each decodes on a
/// second thread already (see `cairn_layers::unpack::unpack_auto`).
const UNPACK_WORKERS: usize = 2;

/// Prefix of directories being unpacked (renamed into place when done).
const STAGING: &str = ".unpack-";
/// Prefix of the donor list handed to the user-namespace helper.
const DONOR_LIST: &str = ".donors-";
/// Age past which an unlocked donor list is an interrupted unpack's.
const DONOR_LIST_STALE: std::time::Duration = std::time::Duration::from_secs(60);

/// How this process writes layer directories.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Form {
    /// Real root: owners as in the tar, in this process.
    Host,
    /// Inside the sandbox's user namespace (`single`: owners in an xattr).
    Userns { single: bool },
    /// No user namespace: everything owned by the caller.
    Unowned,
}

/// The directory of unpacked layers.
#[derive(Debug)]
pub struct LayerDirs {
    /// Where the form directories (and everything else) lie.
    layout: CacheLayout,
    base: PathBuf,
    sandbox_dir: PathBuf,
    sandbox: OnceLock<Result<Sandbox, Arc<crate::sandbox::SandboxError>>>,
    /// Decided on first use.
    form: OnceLock<Layout>,
    /// Per layer blob digest: files of finished RUN steps to move in on unpack.
    donors: Mutex<HashMap<Digest, Arc<Donors>>>,
    /// Member (blob file, offset) of a RUN layer → its file in the upper dir.
    members: Mutex<HashMap<(PathBuf, u64), PathBuf>>,
    /// Donor files already handed to an unpack: each goes to one layer only,
    /// also when two stages unpack layers of the same files at once.
    claimed: Mutex<HashSet<PathBuf>>,
    /// Fetches a layer blob a remote cache hit left behind (`--cache-from`),
    /// before it is unpacked.
    fetch: OnceLock<FetchHook>,
    /// One unpack per layer (by diff_id) at a time in this process: a second
    /// caller (another stage, platform, or a fetch ahead) waits for it and
    /// finds the directory, instead of unpacking the same bytes again.
    unpacking: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
}

/// The hook of [`LayerDirs::set_fetch`].
struct FetchHook(BlobFetch);

impl std::fmt::Debug for FetchHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FetchHook")
    }
}

/// See [`LayerDirs::set_fetch`].
pub type BlobFetch =
    Arc<dyn Fn(&Digest) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// The form, the directory holding `<hex>` dirs in that form, and how
/// their owners read.
#[derive(Debug)]
struct Layout {
    form: Form,
    root: PathBuf,
    owners: OwnerMap,
}

impl LayerDirs {
    /// The unpacked layers of the cache at `layout`; its sandbox directory
    /// is the state directory of the sandbox whose user namespace non-root
    /// unpacks use.
    pub fn new(layout: &CacheLayout) -> Result<Self, Error> {
        let base = layout.dir(Bucket::Layers);
        fs::create_dir_all(&base).map_err(|source| Error::CreateDir {
            path: base.clone(),
            source,
        })?;
        Ok(LayerDirs {
            layout: layout.clone(),
            base,
            sandbox_dir: layout.dir(Bucket::Sandbox),
            sandbox: OnceLock::new(),
            form: OnceLock::new(),
            donors: Mutex::default(),
            members: Mutex::default(),
            claimed: Mutex::default(),
            fetch: OnceLock::new(),
            unpacking: Mutex::default(),
        })
    }

    /// Call `fetch` for a layer's blob before unpacking it (blobs of remote
    /// cache hits are fetched only when their bytes are needed).
    pub fn set_fetch(&self, fetch: BlobFetch) {
        let _ = self.fetch.set(FetchHook(fetch));
    }

    /// The files among `entries` (of a layer about to be written) that lie
    /// in a RUN step's run directory, directly or as members of a RUN
    /// layer's blob (see the module's Donors).
    pub fn donors_among(&self, entries: &[Entry]) -> Donors {
        let runs = self.sandbox_dir.join(crate::sandbox::state::RUNS);
        let Ok(members) = self.members.lock() else {
            return Donors::new();
        };
        entries
            .iter()
            .filter(|e| (e.uid, e.gid) == (0, 0) && e.mode & 0o400 != 0)
            .filter_map(|e| match &e.kind {
                EntryKind::File {
                    source: Source::Path(p),
                    ..
                } if p.starts_with(&runs) => Some((e.path.clone(), p.clone())),
                EntryKind::File {
                    source: Source::Range { path, offset },
                    ..
                } => members
                    .get(&(path.clone(), *offset))
                    .map(|p| (e.path.clone(), p.clone())),
                _ => None,
            })
            .collect()
    }

    /// Offer `donors` ([`LayerDirs::donors_among`]) to the unpack of layer `digest`.
    pub fn offer_donors(&self, digest: &Digest, donors: Donors) {
        if donors.is_empty() {
            return;
        }
        if let Ok(mut d) = self.donors.lock() {
            d.insert(digest.clone(), Arc::new(donors));
        }
    }

    /// `entries` index layer `digest` where they lie in its blob: remember
    /// which members have a donor, for `COPY --from` layers read there.
    pub fn note_members(&self, digest: &Digest, entries: &[Entry]) {
        let Some(donors) = self.donors_of(digest) else {
            return;
        };
        let Ok(mut members) = self.members.lock() else {
            return;
        };
        for e in entries {
            if let EntryKind::File {
                source: Source::Range { path, offset },
                ..
            } = &e.kind
            {
                if let Some(donor) = donors.get(&e.path) {
                    members.insert((path.clone(), *offset), donor.clone());
                }
            }
        }
    }

    fn donors_of(&self, digest: &Digest) -> Option<Arc<Donors>> {
        self.donors.lock().ok()?.get(digest).cloned()
    }

    /// The donors of layer `digest` no other unpack was handed, now its own.
    fn claim_donors(&self, digest: &Digest) -> Option<Arc<Donors>> {
        let offered = self.donors_of(digest)?;
        let mut claimed = self.claimed.lock().ok()?;
        let mine: Donors = offered
            .iter()
            .filter(|(_, file)| claimed.insert((*file).clone()))
            .map(|(path, file)| (path.clone(), file.clone()))
            .collect();
        (!mine.is_empty()).then(|| Arc::new(mine))
    }

    /// The build's sandbox, probed once (also used for RUN steps, so layer
    /// directories and steps share one id mapping). `$CAIRN_SANDBOX_ID_MAP=single`
    /// selects the single-id mapping even where subordinate ids exist.
    pub fn sandbox(&self) -> Result<&Sandbox, Error> {
        self.sandbox
            .get_or_init(|| {
                let s = Sandbox::new(&self.sandbox_dir).map_err(Arc::new)?;
                let single =
                    std::env::var(crate::env::CAIRN_SANDBOX_ID_MAP).is_ok_and(|v| v == "single");
                Ok(if single && !rustix::process::geteuid().is_root() {
                    s.with_single_id_map()
                } else {
                    s
                })
            })
            .as_ref()
            .map_err(|e| Error::Sandbox(e.clone()))
    }

    /// The form, decided on first use (probing the sandbox when not root).
    fn form(&self) -> &Layout {
        self.form.get_or_init(|| {
            if rustix::process::geteuid().is_root() {
                return Layout {
                    form: Form::Host,
                    root: self.layout.host_layers(),
                    owners: OwnerMap::default(),
                };
            }
            match self.sandbox() {
                Ok(s) if s.probe().userns_error.is_none() => {
                    let id = &s.probe().identity;
                    let single = id.kind == IdentityKind::Single;
                    Layout {
                        form: Form::Userns { single },
                        root: self.layout.userns_layers(&mapping_tag(&id.uids, &id.gids)),
                        owners: OwnerMap {
                            maps: Some((id.uids.clone(), id.gids.clone())),
                            recorded: single,
                        },
                    }
                }
                _ => {
                    // Everything is the caller's: it reads as container root.
                    let uid = rustix::process::getuid().as_raw();
                    let gid = rustix::process::getgid().as_raw();
                    let me = |id| {
                        vec![IdRange {
                            inner: 0,
                            outer: id,
                            count: 1,
                        }]
                    };
                    Layout {
                        form: Form::Unowned,
                        root: self.layout.unowned_layers(uid),
                        owners: OwnerMap {
                            maps: Some((me(uid), me(gid))),
                            recorded: false,
                        },
                    }
                }
            }
        })
    }

    /// How owners in the layer directories read as container owners.
    pub fn owner_map(&self) -> OwnerMap {
        self.form().owners.clone()
    }

    /// The directory holding this process's layer directories.
    pub fn root(&self) -> &Path {
        &self.form().root
    }

    /// Where layer `l` is (or will be) unpacked.
    pub fn path(&self, l: &Layer) -> PathBuf {
        self.root().join(l.diff_id.digest().hex())
    }

    /// The unpacked directory of `l` if there is one; `None` also before
    /// this process unpacked anything (finding out where would probe the
    /// sandbox).
    pub fn unpacked(&self, l: &Layer) -> Option<PathBuf> {
        let dir = self.form.get()?.root.join(l.diff_id.digest().hex());
        dir.is_dir().then_some(dir)
    }

    /// The unpacked directory of `l`, unpacking it from `store` on first use.
    /// A half-unpacked layer is never visible: it is unpacked beside and renamed.
    pub fn ensure(&self, l: &Layer, store: &BlobStore) -> Result<PathBuf, Error> {
        let dest = self.path(l);
        // Its last use, for `cache prune` (least recently used first).
        crate::cache::usage::touch_layer(&self.layout, l.diff_id.digest());
        crate::cache::usage::touch(&store.path(&l.digest));
        if dest.is_dir() {
            return Ok(dest);
        }
        let gate = self.gate(l);
        let _unpacking = gate.lock();
        self.ensure_gated(l, store)
    }

    /// The unpacked directories of `layers` (in their order), as
    /// [`LayerDirs::ensure`] makes each; those not unpacked yet on
    /// [`UNPACK_WORKERS`] threads, biggest first: a base's layers are
    /// independent, and its small ones then unpack beside the big one.
    pub fn ensure_all(&self, layers: &[Layer], store: &BlobStore) -> Result<Vec<PathBuf>, Error> {
        let mut missing: Vec<usize> = (0..layers.len())
            .filter(|&i| !self.path(&layers[i]).is_dir())
            .collect();
        if missing.len() < 2 {
            return layers.iter().map(|l| self.ensure(l, store)).collect();
        }
        missing.sort_by_key(|&i| std::cmp::Reverse(layers[i].size));
        let queue = Mutex::new(missing.into_iter());
        let done: Mutex<Vec<Option<Result<PathBuf, Error>>>> =
            Mutex::new(layers.iter().map(|_| None).collect());
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..UNPACK_WORKERS {
                s.spawn(|| {
                    use std::sync::atomic::Ordering::Relaxed;
                    // After a failure, what has not started is left.
                    while let Some(i) = queue.lock().ok().and_then(|mut q| q.next()) {
                        if failed.load(Relaxed) {
                            break;
                        }
                        let r = self.ensure(&layers[i], store);
                        failed.fetch_or(r.is_err(), Relaxed);
                        if let Ok(mut d) = done.lock() {
                            d[i] = Some(r);
                        }
                    }
                });
            }
        });
        let mut done = done.into_inner().map_err(|_| Error::Panicked)?;
        if let Some(i) = done.iter().position(|r| matches!(r, Some(Err(_)))) {
            if let Some(Err(e)) = done.swap_remove(i) {
                return Err(e);
            }
        }
        // Those unpacked before (or by another stage meanwhile) are found.
        layers
            .iter()
            .zip(done)
            .map(|(l, r)| r.unwrap_or_else(|| self.ensure(l, store)))
            .collect()
    }

    /// The lock of layer `l`'s unpack (see `unpacking`).
    fn gate(&self, l: &Layer) -> Arc<Mutex<()>> {
        match self.unpacking.lock() {
            Ok(mut g) => g.entry(l.diff_id.digest().clone()).or_default().clone(),
            // A panicked holder: unpack without the gate (the rename below
            // still keeps one directory).
            Err(_) => Arc::default(),
        }
    }

    /// [`LayerDirs::ensure`] under `l`'s gate.
    fn ensure_gated(&self, l: &Layer, store: &BlobStore) -> Result<PathBuf, Error> {
        let dest = self.path(l);
        if dest.is_dir() {
            return Ok(dest);
        }
        if let Some(FetchHook(f)) = self.fetch.get() {
            f(&l.digest).map_err(|source| Error::Fetch {
                digest: l.digest.clone(),
                source,
            })?;
        }
        let root = self.root();
        fs::create_dir_all(root).map_err(|source| Error::CreateDir {
            path: root.to_path_buf(),
            source,
        })?;
        // Kept at once: a failed unpack is removed by `remove`, which can
        // also delete files of subordinate ids. Locked while in use, so the
        // sweep of another build takes it only once this process is gone.
        let (staged, _lock) = locked_staging(root)?;
        // Verified while unpacking: the directory is published (renamed to
        // its diff_id's name) only when the bytes hash to that diff_id, so a
        // config claiming another layer's diff_id cannot fill its directory.
        let unpacked = self.unpack_into(l, store, &staged);
        let result = unpacked.and_then(|()| match fs::rename(&staged, &dest) {
            Ok(()) => Ok(true),
            // Another build unpacked the same layer first: use theirs.
            Err(_) if dest.is_dir() => Ok(false),
            Err(source) => Err(Error::MoveUnpacked {
                dest: dest.clone(),
                source,
            }),
        });
        if !matches!(result, Ok(true)) {
            let _ = self.remove(&staged);
        }
        result.map(|_| dest)
    }

    fn unpack_into(&self, l: &Layer, store: &BlobStore, staged: &Path) -> Result<(), Error> {
        let digest = &l.digest;
        let form = &self.form().form;
        let opts = UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            preserve_ownership: *form == Form::Host,
            owner_xattr: None,
            donors: self.claim_donors(digest),
            expect_diff_id: Some(l.diff_id.clone()),
            // A blob this process just wrote was hashed as it was: a plain
            // one is its own diff_id, not hashed a second time (see HashedBy).
            hashed_by: match store.hashed_here(digest) {
                true => HashedBy::Caller {
                    digest: Some(digest.clone()),
                },
                false => HashedBy::Unpack,
            },
        };
        match *form {
            Form::Userns { single } => {
                let mut args = unpack_args(&store.path(digest), staged, &opts, single)?;
                let list = self.donor_list(opts.donors.as_deref(), &mut args)?;
                let done = self
                    .in_userns(&args)
                    .map_err(|e| Error::UnpackLayerInUserns {
                        digest: digest.clone(),
                        diff_id: l.diff_id.clone(),
                        source: Box::new(e),
                    });
                drop(list);
                done
            }
            _ => {
                let blob = store.open_blob(digest).map_err(|source| Error::OpenLayer {
                    digest: digest.clone(),
                    source,
                })?;
                unpack_auto(
                    std::io::BufReader::with_capacity(1 << 20, blob),
                    staged,
                    &opts,
                )
                .map_err(|e| Error::UnpackLayer {
                    digest: digest.clone(),
                    diff_id: l.diff_id.clone(),
                    source: Box::new(refused_image(e)),
                })?;
                Ok(())
            }
        }
    }

    /// The helper reads `donors` from a file beside the staged dir: written,
    /// and named in `args`; kept while the returned handle lives.
    fn donor_list(
        &self,
        donors: Option<&Donors>,
        args: &mut Vec<String>,
    ) -> Result<Option<tempfile::NamedTempFile>, Error> {
        let Some(d) = donors else {
            return Ok(None);
        };
        let mut list = tempfile::Builder::new()
            .prefix(DONOR_LIST)
            .tempfile_in(self.root())
            .map_err(|source| Error::CreateIn {
                what: "file",
                dir: self.root().to_path_buf(),
                source,
            })?;
        // Ours while locked (see `sweep`); a fresh file, no race.
        let _ = flock(list.as_file(), FlockOperation::NonBlockingLockExclusive);
        let bytes = serde_json::to_vec(d).map_err(Error::EncodeDonors)?;
        std::io::Write::write_all(&mut list, &bytes).map_err(|source| Error::Write {
            path: list.path().to_path_buf(),
            source,
        })?;
        args.push("--donors".into());
        args.push(utf8(list.path())?);
        Ok(Some(list))
    }

    /// Run `cairn __layer-dir ARGS` as root of the sandbox's user namespace.
    fn in_userns(&self, args: &[String]) -> Result<(), Error> {
        let sandbox = self.sandbox()?;
        let mut argv = vec![utf8(sandbox.helper())?, HELPER_SUBCOMMAND.to_owned()];
        argv.extend_from_slice(args);
        let mut output = Vec::new();
        let code = sandbox.exec_in_userns(&argv, &self.base, |line| output.push(line))?;
        if code != 0 {
            return Err(Error::HelperFailed {
                command: argv[1..].join(" "),
                code,
                output: output.join("\n").trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Remove `path` (a layer directory or anything else under the cache:
    /// mount caches and run directories hold files of subordinate ids too),
    /// inside the user namespace when the layer directories were unpacked there.
    pub fn remove(&self, path: &Path) -> Result<(), Error> {
        let climbs = path
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        let root = self.layout.root();
        if climbs || !path.starts_with(root) || path == root {
            return Err(Error::RemoveOutside {
                path: path.to_path_buf(),
                root: root.to_path_buf(),
            });
        }
        if fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        match self.form().form {
            Form::Userns { .. } => self.in_userns(&["remove".to_owned(), utf8(path)?]),
            _ => remove_tree(path).map_err(|source| Error::Remove {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Remove every layer directory of this process's form.
    pub fn remove_all(&self) -> Result<(), Error> {
        self.remove(self.root())
    }

    /// Remove leftovers of unpacks that were interrupted (SIGKILL): staging
    /// dirs and donor lists no live process holds locked (their unpack locks
    /// them until it is done; the kernel drops the lock of a killed process),
    /// and directories of the unverified scheme before [`crate::cache::layout::LAYER_SCHEME`] (root's,
    /// directly under the base). Cheap when there are none: nothing is probed.
    pub fn sweep(&self) {
        let mut roots = vec![self.base.clone()];
        if let Ok(rd) = fs::read_dir(&self.base) {
            roots.extend(
                rd.flatten()
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        LayerForm::of(&n) == LayerForm::Current
                    })
                    .map(|e| e.path()),
            );
        }
        if rustix::process::geteuid().is_root() {
            // Root's directories of the old scheme: `<diff_id hex>` at the top.
            for e in fs::read_dir(&self.base).into_iter().flatten().flatten() {
                let n = e.file_name();
                if Digest::from_hex(&n.to_string_lossy()).is_ok() {
                    let _ = remove_tree(&e.path());
                }
            }
        }
        let stale: Vec<(PathBuf, fs::File)> = roots
            .iter()
            .filter_map(|r| fs::read_dir(r).ok())
            .flat_map(|rd| rd.flatten())
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with(STAGING) || n.starts_with(DONOR_LIST)
            })
            .filter(|e| {
                // A donor list is created before it can be locked: only an
                // old one is taken (a tiny file; the staging dirs matter).
                let young = || {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_none_or(|age| age < DONOR_LIST_STALE)
                };
                !(e.file_name().to_string_lossy().starts_with(DONOR_LIST) && young())
            })
            .filter_map(|e| {
                let held = fs::File::open(e.path()).ok()?;
                // Unlocked: its process is gone. The lock is kept until the
                // entry is removed, so a new unpack never reuses it meanwhile.
                flock(&held, FlockOperation::NonBlockingLockExclusive).ok()?;
                Some((e.path(), held))
            })
            .collect();
        for (p, _held) in stale {
            // Donor lists are this process's files; staging dirs may hold
            // subordinate ids.
            if p.is_dir() {
                let _ = self.remove(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

/// How the host owners of files in layer directories read as container
/// owners. The default reads them as they are (root's layer directories).
#[derive(Clone, Debug, Default)]
pub struct OwnerMap {
    /// `None`: host id = container id.
    maps: Option<(Vec<IdRange>, Vec<IdRange>)>,
    /// Owners recorded in [`OWNER_XATTR`] (single mapping) win.
    recorded: bool,
}

/// The kernel's overflow id for host ids outside the mapping.
const OVERFLOW_ID: u32 = 65534;

impl OwnerMap {
    /// The container owner of `host_path`, whose inode has host `uid`/`gid`.
    pub fn container_owner(&self, host_path: &Path, uid: u32, gid: u32) -> (u32, u32) {
        let Some((uids, gids)) = &self.maps else {
            return (uid, gid);
        };
        if self.recorded {
            let mut buf = [0u8; 32];
            if let Ok(n) = rustix::fs::lgetxattr(host_path, OWNER_XATTR, &mut buf[..]) {
                if let Some(owner) = crate::sandbox::ownership::parse_owner(&buf[..n]) {
                    return owner;
                }
            }
        }
        let inner = |ranges: &[IdRange], id: u32| {
            ranges
                .iter()
                .find(|r| id >= r.outer && id - r.outer < r.count)
                .map_or(OVERFLOW_ID, |r| r.inner + (id - r.outer))
        };
        (inner(uids, uid), inner(gids, gid))
    }
}

/// A short hash of the maps, naming the form directory
/// ([`CacheLayout::userns_layers`]): directories unpacked under one mapping
/// are unusable under another.
fn mapping_tag(uids: &[IdRange], gids: &[IdRange]) -> String {
    let text = |rs: &[IdRange]| {
        rs.iter()
            .map(|r| format!("{} {} {}", r.inner, r.outer, r.count))
            .collect::<Vec<_>>()
            .join(",")
    };
    let digest = Digest::of(format!("u:{};g:{}", text(uids), text(gids)).as_bytes());
    digest.hex()[..16].to_owned()
}

/// A new staging directory in `root`, locked by the returned handle. A
/// concurrent sweep may lock and remove a directory between its creation
/// and our lock: then it is no longer there (or the lock is the sweep's)
/// and another is made.
fn locked_staging(root: &Path) -> Result<(PathBuf, fs::File), Error> {
    use std::os::unix::fs::MetadataExt;
    // Each layer in a fresh ext4 flex group: unpacking next to trees removed
    // a moment ago (a pruned or reset cache) scans every freed inode per file.
    super::state::spread_subdirs(root);
    for _ in 0..8 {
        let staged = tempfile::Builder::new()
            .prefix(STAGING)
            .tempdir_in(root)
            .map_err(|source| Error::CreateIn {
                what: "directory",
                dir: root.to_path_buf(),
                source,
            })?
            .keep();
        let Ok(dir) = fs::File::open(&staged) else {
            continue;
        };
        if flock(&dir, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        match (dir.metadata(), fs::symlink_metadata(&staged)) {
            (Ok(a), Ok(b)) if same(&a, &b) => return Ok((staged, dir)),
            _ => continue,
        }
    }
    Err(Error::StagingRace {
        root: root.to_path_buf(),
    })
}

/// An unpack error; a diff_id mismatch says what it means and what to do.
fn refused_image(e: UnpackError) -> Error {
    match e {
        UnpackError::DiffIdMismatch { .. } => Error::LyingConfig(e),
        e => Error::Unpack(e),
    }
}

/// The helper's `unpack` arguments reading `src` (a blob or a FIFO) into
/// `staged` with `opts` — the one encoding of [`UnpackOptions`] that
/// [`helper_main`] decodes (the donor list is added by `donor_list`).
fn unpack_args(
    src: &Path,
    staged: &Path,
    opts: &UnpackOptions,
    single: bool,
) -> Result<Vec<String>, Error> {
    let mut args = vec!["unpack".to_owned(), utf8(src)?, utf8(staged)?];
    if let Some(d) = &opts.expect_diff_id {
        args.extend(["--diff-id".to_owned(), d.to_string()]);
    }
    match &opts.hashed_by {
        HashedBy::Unpack => {}
        HashedBy::Caller { digest: Some(d) } => {
            args.extend(["--raw-digest".to_owned(), d.to_string()]);
        }
        HashedBy::Caller { digest: None } => args.push("--caller-hashed".to_owned()),
    }
    if single {
        args.push("--owner-xattr".into());
    }
    Ok(args)
}

fn utf8(p: &Path) -> Result<String, Error> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::NotUtf8(p.to_path_buf()))
}

/// Arguments of the hidden `cairn __layer-dir` subcommand.
#[derive(Debug, clap::Args)]
pub struct HelperArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: HelperAction,
}

/// What `cairn __layer-dir` does, as root of the sandbox's user namespace.
#[derive(Debug, clap::Subcommand)]
pub enum HelperAction {
    /// Unpack a layer blob (gzip or plain tar) into DEST in overlay form,
    /// owners as in the tar.
    Unpack {
        /// The blob file.
        blob: PathBuf,
        /// An existing, empty directory.
        dest: PathBuf,
        /// Record owners other than 0:0 in `user.cairn.owner` instead of chown.
        #[arg(long)]
        owner_xattr: bool,
        /// A JSON object: layer path → file that may be moved in as that entry.
        #[arg(long)]
        donors: Option<PathBuf>,
        /// The diff_id the uncompressed tar must hash to (none: a snapshot
        /// this process streams from a FIFO, hashed on the writer's side).
        #[arg(long)]
        diff_id: Option<DiffId>,
        /// The caller checks that the blob's bytes hash to this digest (it
        /// verified or verifies them itself): a plain tar is not hashed again.
        #[arg(long)]
        raw_digest: Option<Digest>,
        /// The caller hashes the bytes it writes (a snapshot).
        #[arg(long)]
        caller_hashed: bool,
    },
    /// Write the plain tar of layer directory DIR into the blob store at
    /// STORE, committed only if it hashes to EXPECT (a snapshot's bytes).
    Tar {
        /// The layer directory.
        dir: PathBuf,
        /// The blob store's root.
        store: PathBuf,
        /// The digest the tar must have.
        #[arg(long)]
        expect: Digest,
        /// Owners other than 0:0 are recorded in `user.cairn.owner`.
        #[arg(long)]
        owner_xattr: bool,
    },
    /// Remove a tree.
    Remove {
        /// The tree.
        path: PathBuf,
    },
}

/// Entry point of `cairn __layer-dir` (inside the user namespace).
pub fn helper_main(args: HelperArgs) -> Result<ExitCode, Error> {
    match args.action {
        HelperAction::Unpack {
            blob,
            dest,
            owner_xattr,
            donors,
            diff_id,
            raw_digest,
            caller_hashed,
        } => {
            let file = fs::File::open(&blob).map_err(|source| Error::Open {
                path: blob.clone(),
                source,
            })?;
            let donors = match donors {
                Some(p) => {
                    let text = fs::read(&p).map_err(|source| Error::Read {
                        path: p.clone(),
                        source,
                    })?;
                    Some(Arc::new(serde_json::from_slice::<Donors>(&text).map_err(
                        |source| Error::DecodeDonors {
                            path: p.clone(),
                            source,
                        },
                    )?))
                }
                None => None,
            };
            let opts = UnpackOptions {
                whiteouts: WhiteoutMode::Overlay,
                preserve_ownership: true,
                owner_xattr: owner_xattr.then(|| OWNER_XATTR.to_owned()),
                donors,
                expect_diff_id: diff_id,
                hashed_by: match (raw_digest, caller_hashed) {
                    (Some(d), _) => HashedBy::Caller { digest: Some(d) },
                    (None, true) => HashedBy::Caller { digest: None },
                    (None, false) => HashedBy::Unpack,
                },
            };
            let mut input = std::io::BufReader::with_capacity(1 << 20, file);
            unpack_auto(&mut input, &dest, &opts).map_err(|e| Error::UnpackBlob {
                blob: blob.clone(),
                source: Box::new(refused_image(e)),
            })?;
            // Read to the end: a writer feeding a FIFO (a download, a
            // snapshot) must not see it closed before it is through.
            let _ = std::io::copy(&mut input, &mut std::io::sink());
        }
        HelperAction::Tar {
            dir,
            store,
            expect,
            owner_xattr,
        } => {
            let store = BlobStore::open(&store).map_err(|source| Error::OpenStore {
                path: store.clone(),
                source,
            })?;
            snapshot::tar_of_dir(&dir, &store, &expect, owner_xattr)?;
        }
        HelperAction::Remove { path } => {
            remove_tree(&path).map_err(|source| Error::Remove { path, source })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_donor_file_is_handed_to_one_unpack_only() {
        let t = tempfile::tempdir().unwrap();
        let dirs = LayerDirs::new(&CacheLayout::new(t.path())).unwrap();
        let upper = t.path().join("sandbox/runs/run-x/upper");
        let file = |path: &str, name: &str| Entry {
            kind: EntryKind::File {
                size: 1,
                source: Source::Path(upper.join(name)),
            },
            ..Entry::dir(path)
        };
        // A context file (outside the run dirs) is never offered.
        let outside = Entry {
            kind: EntryKind::File {
                size: 1,
                source: Source::Path(t.path().join("ctx/c")),
            },
            ..Entry::dir("c")
        };
        let run_layer = [
            file("build/a", "build/a"),
            file("build/b", "build/b"),
            outside,
        ];
        let donors = dirs.donors_among(&run_layer);
        assert_eq!(donors.len(), 2, "{donors:?}");
        let (l1, l2) = (Digest::of(b"run layer"), Digest::of(b"copy layer"));
        dirs.offer_donors(&l1, donors);
        dirs.offer_donors(&l2, dirs.donors_among(&[file("srv/a", "build/a")]));
        let first = dirs.claim_donors(&l2).unwrap();
        assert_eq!(first.get("srv/a"), Some(&upper.join("build/a")));
        let second = dirs.claim_donors(&l1).unwrap();
        assert_eq!(
            second.len(),
            1,
            "build/a went to the copy layer already: {second:?}"
        );
        assert!(second.contains_key("build/b"));
        assert!(dirs.claim_donors(&l1).is_none(), "claimed twice");
    }

    /// A tar of one file `name` holding `data`.
    pub(super) fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn ensure_all_unpacks_side_by_side_in_order_and_reports_a_lie() {
        if !rustix::process::geteuid().is_root() {
            // Unprivileged forms need the sandbox: tests/it covers them.
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dirs = LayerDirs::new(&CacheLayout::new(t.path().join("c"))).unwrap();
        let store = BlobStore::open(t.path().join("store")).unwrap();
        let layer = |name: &str, data: &[u8], diff_id: Option<Digest>| {
            let tar = tar_of(name, data);
            let digest = store.put_bytes(&tar).unwrap();
            Layer {
                diff_id: DiffId(diff_id.unwrap_or_else(|| digest.clone())),
                size: tar.len() as u64,
                digest,
                media_type: crate::image::MediaType::from(crate::image::media_type::OCI_LAYER),
            }
        };
        let layers = [
            layer("a", b"first", None),
            layer("b", b"second, longer", None),
            layer("c", b"third", None),
        ];
        let got = dirs.ensure_all(&layers, &store).unwrap();
        assert_eq!(got, layers.iter().map(|l| dirs.path(l)).collect::<Vec<_>>());
        for (dir, (name, data)) in
            got.iter()
                .zip([("a", "first"), ("b", "second, longer"), ("c", "third")])
        {
            assert_eq!(fs::read_to_string(dir.join(name)).unwrap(), data);
        }
        // A config naming another diff_id: refused, nothing published.
        let liar = layer("d", b"fourth", Some(Digest::of(b"something else")));
        let more = [layer("e", b"fifth", None), liar.clone()];
        let err = dirs.ensure_all(&more, &store).unwrap_err();
        assert!(matches!(err, Error::UnpackLayer { .. }), "{err}");
        assert!(!dirs.path(&liar).exists());
    }

    #[test]
    fn staging_dirs_are_spread_over_ext4_block_groups() {
        let t = tempfile::tempdir().unwrap();
        let (staged, _lock) = locked_staging(t.path()).unwrap();
        assert!(staged.starts_with(t.path()));
        crate::sandbox::state::assert_spread(t.path());
    }

    #[test]
    fn mapping_tags_differ_per_mapping() {
        let r = |inner, outer, count| IdRange {
            inner,
            outer,
            count,
        };
        let a = mapping_tag(&[r(0, 1000, 1)], &[r(0, 1000, 1)]);
        let b = mapping_tag(&[r(0, 1000, 1), r(1, 100000, 65536)], &[r(0, 1000, 1)]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 16, "{a}");
        assert_eq!(a, mapping_tag(&[r(0, 1000, 1)], &[r(0, 1000, 1)]));
    }

    #[test]
    fn owner_map_inverts_the_mapping_and_reads_records() {
        let r = |inner, outer, count| IdRange {
            inner,
            outer,
            count,
        };
        let sub = vec![r(0, 2345, 1), r(1, 400000, 65536)];
        let m = OwnerMap {
            maps: Some((sub.clone(), sub)),
            recorded: false,
        };
        let p = Path::new("/nonexistent");
        assert_eq!(m.container_owner(p, 2345, 2345), (0, 0));
        assert_eq!(m.container_owner(p, 401000, 400041), (1001, 42));
        assert_eq!(m.container_owner(p, 7, 2345), (OVERFLOW_ID, 0));
        assert_eq!(OwnerMap::default().container_owner(p, 7, 8), (7, 8));

        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        rustix::fs::setxattr(
            &f,
            OWNER_XATTR,
            b"1001:1001",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let single = OwnerMap {
            maps: Some((vec![r(0, 2345, 1)], vec![r(0, 2345, 1)])),
            recorded: true,
        };
        assert_eq!(single.container_owner(&f, 2345, 2345), (1001, 1001));
        assert_eq!(single.container_owner(p, 2345, 2345), (0, 0));
    }

    #[test]
    fn root_unpacks_in_process_and_remove_stays_under_base() {
        let t = tempfile::tempdir().unwrap();
        let dirs = LayerDirs::new(&CacheLayout::new(t.path().join("c"))).unwrap();
        for outside in [
            t.path().join("c"),
            t.path().join("c/layers/../../x"),
            t.path().join("x"),
        ] {
            let err = dirs.remove(&outside).unwrap_err();
            assert!(err.to_string().contains("refusing"), "{err}");
        }
        if !rustix::process::geteuid().is_root() {
            return;
        }
        assert_eq!(dirs.root(), t.path().join("c/layers/host-v2"));
        fs::create_dir_all(dirs.root()).unwrap();
        // A killed unpack's staging dir: unlocked, however young.
        let stale = dirs.root().join(".unpack-x/a");
        fs::create_dir_all(&stale).unwrap();
        // A live unpack's (this process holds the lock).
        let (live, _lock) = locked_staging(dirs.root()).unwrap();
        let list = dirs.root().join(".donors-x");
        fs::write(&list, "{}").unwrap();
        let young_list = dirs.root().join(".donors-y");
        fs::write(&young_list, "{}").unwrap();
        let two_hours_ago = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                )
                .unwrap()
                    - 7200,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &list,
            &two_hours_ago,
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        // An unverified directory of the old scheme.
        let old = t.path().join("c/layers").join(Digest::of(b"old").hex());
        fs::create_dir_all(old.join("etc")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o000)).unwrap();
        dirs.sweep();
        assert!(!dirs.root().join(".unpack-x").exists());
        assert!(!list.exists());
        assert!(young_list.exists(), "a donor list being written was swept");
        assert!(live.exists(), "a concurrent build's unpack was swept");
        assert!(!old.exists(), "an unverified layer dir was kept");
    }
}
