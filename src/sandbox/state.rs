//! Run directories under the state dir (`runs/run-XXXX/{lock, request.json,
//! result.json, scaffold, upper, work, merged, etc}`), the [`Captured`]
//! guard that retires one on drop, the [`Retired`] list that removes them
//! when the sandbox goes, and the sweep of directories left by a killed cairn.
//!
//! Why retire instead of removing at once: this machine kind's root
//! filesystem is ext4 without a journal, where the inode allocator skips
//! inodes freed in the last ~35 s by reading their inode table blocks.
//! Deleting `npm ci`'s 10,000-file upper dir right before the next step
//! unpacks 10,000 files doubled that unpack (2.4 s → 5.9 s measured on
//! nextjs-3stage); removing the run dirs once, after the build, does not
//! (up to a budget of captured bytes, past which the oldest go at once).
//!
//! Deleting later is not enough on its own: any removal makes the next
//! step slow if its files land in the same ext4 flex group, since every
//! file created there scans past all recently freed inodes (kernel
//! `find_inode_bit` → `recently_deleted`, 60 s, 360 s while the inode table
//! is dirty). bench/small's edit build, whose RUN writes 3,000 files right
//! after the previous build removed its 3,000, spent over half of the
//! command's CPU time in `ext4_create`. So `runs` is marked as a top
//! directory ([`spread_subdirs`]): each run directory goes to a fresh
//! flex group, away from the ones just freed (3,000 creates: 2.2-3.1 s →
//! 0.2 s measured beside freshly removed trees).
//!
//! Liveness is an `flock` on `lock`, held by the caller for the run
//! directory's whole life; the kernel drops it when the process dies, even
//! on SIGKILL. The sweep runs inside the helper, as namespace root, because
//! a non-root caller cannot delete files owned by its subordinate ids.

use super::SandboxError;
use cairn_layers::Entry;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Subdirectory of the state dir holding run directories.
pub(crate) const RUNS: &str = "runs";
const LOCK: &str = "lock";
/// The lock file before it is locked (never looked at by the sweep).
const LOCK_NEW: &str = "lock.new";

/// Create `dir` and its parents.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir).map_err(|source| SandboxError::State {
        what: "create the sandbox state directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Best effort: have ext4 place each new subdirectory of `dir` like a
/// top-level directory (`FS_TOPDIR_FL`, `chattr +T`), in a flex group with
/// few directories and many free inodes, instead of next to `dir` where the
/// trees removed a moment ago left freed inodes that every file created
/// nearby scans past (module doc). Other filesystems refuse or ignore it.
pub(crate) fn spread_subdirs(dir: &Path) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags, Mode, OFlags};
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&fd) {
        if !flags.contains(IFlags::TOPDIR) {
            let _ = ioctl_setflags(&fd, flags | IFlags::TOPDIR);
        }
    }
}

/// Test: `dir` spreads its subdirectories, where the filesystem (ext4) can.
#[cfg(test)]
pub(crate) fn assert_spread(dir: &Path) {
    let dir = File::open(dir).unwrap();
    if rustix::fs::fstatfs(&dir).unwrap().f_type == 0xEF53 {
        let flags = rustix::fs::ioctl_getflags(&dir).unwrap();
        assert!(flags.contains(rustix::fs::IFlags::TOPDIR), "{flags:?}");
    } else {
        eprintln!("skipped: the temporary directory is not on ext4");
    }
}

/// One step's private directory, locked while this value lives.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// Create a fresh, locked run directory under `state_dir/runs`.
    pub(crate) fn create(state_dir: &Path) -> Result<Self, SandboxError> {
        let runs = state_dir.join(RUNS);
        ensure_dir(&runs)?;
        spread_subdirs(&runs);
        let err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::State { what, path, source }
        };
        let path = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&runs)
            .map_err(err("create a run directory in", &runs))?
            .keep();
        // The lock is taken under another name and then renamed into place: a
        // concurrent sweep (another RUN step of the same build) that found an
        // unlocked `lock` would take this live directory for a dead one.
        let new_lock = path.join(LOCK_NEW);
        let lock = File::create(&new_lock).map_err(err("create", &new_lock))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            .map_err(err("lock", &new_lock))?;
        let lock_path = path.join(LOCK);
        std::fs::rename(&new_lock, &lock_path).map_err(err("publish the lock", &lock_path))?;
        Ok(RunDir { path, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Best effort: what cannot be removed here (files of subordinate ids
        // whose ownership was not handed back) is swept by the next run.
        let _ = remove_tree(&self.path);
    }
}

/// Bytes of captured files the retired run dirs of one build may hold
/// before the oldest go at once: keeping every upper dir to the end must
/// not fill a CI runner's disk on a build of many large RUN steps.
const RETIRED_BYTES: u64 = 2 << 30;

/// Run directories whose step is done, still locked (so no sweep takes
/// them), removed when the last clone of the list is dropped — with the
/// last clone of the [`super::Sandbox`], at the end of a build — or, oldest
/// first, when they hold more than [`RETIRED_BYTES`] (the newest stays).
#[derive(Debug, Clone)]
pub(crate) struct Retired {
    runs: Arc<Mutex<Vec<(RunDir, u64)>>>,
    budget: u64,
}

impl Default for Retired {
    fn default() -> Self {
        Retired::with_budget(RETIRED_BYTES)
    }
}

impl Retired {
    fn with_budget(budget: u64) -> Self {
        Retired {
            runs: Arc::default(),
            budget,
        }
    }

    /// Keep `run`, whose captured files hold `bytes`.
    fn push(&self, run: RunDir, bytes: u64) {
        let Ok(mut runs) = self.runs.lock() else {
            // A panic elsewhere poisoned the list: remove this one now.
            return drop(run);
        };
        runs.push((run, bytes));
        let mut total: u64 = runs.iter().map(|(_, b)| *b).sum();
        while total > self.budget && runs.len() > 1 {
            let (oldest, b) = runs.remove(0);
            total -= b;
            drop(oldest);
        }
    }

    /// How many run directories wait for removal.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.runs.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// The entries a RUN step changed, with the upper directory their file
/// sources point into. Dropping it retires the run directory.
#[derive(Debug)]
pub struct Captured {
    run: Option<RunDir>,
    retired: Retired,
    content: PathBuf,
    entries: Vec<Entry>,
}

impl Captured {
    pub(crate) fn new(
        run: RunDir,
        retired: Retired,
        content: PathBuf,
        entries: Vec<Entry>,
    ) -> Self {
        Captured {
            run: Some(run),
            retired,
            content,
            entries,
        }
    }

    /// Layer-relative entries sorted byte-wise by path, parents first,
    /// whiteouts as `.wh.NAME` / `.wh..wh..opq` empty files.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The directory file sources point into: the overlay upper dir, or
    /// the copied rootfs in copy mode (readable until this value is dropped).
    pub fn upper(&self) -> PathBuf {
        self.content.clone()
    }

    /// The run directory (retired on drop).
    pub fn run_dir(&self) -> &Path {
        match &self.run {
            Some(run) => run.path(),
            None => Path::new(""),
        }
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            let bytes = self
                .entries
                .iter()
                .map(|e| match e.kind {
                    cairn_layers::EntryKind::File { size, .. } => size,
                    _ => 0,
                })
                .sum();
            self.retired.push(run, bytes);
        }
    }
}

/// Remove `path` recursively, first giving the owner rwx on directories
/// (overlay's `work/work` is mode 000).
pub(crate) fn remove_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
    std::fs::remove_dir_all(path)
}

/// Remove run directories whose lock is free (their cairn died). Returns
/// how many were removed. Runs inside the helper as namespace root.
pub(crate) fn sweep(state_dir: &Path, keep: &Path) -> usize {
    let Ok(dir) = std::fs::read_dir(state_dir.join(RUNS)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        if path == keep {
            continue;
        }
        let stale = match File::open(path.join(LOCK)) {
            Ok(f) => {
                rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
            }
            // No lock file: creation was interrupted, or is happening now.
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60),
        };
        if stale && remove_tree(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_run_dir_is_removed_with_the_retired_list_not_before() {
        let state = tempfile::tempdir().unwrap();
        let retired = Retired::default();
        let run = RunDir::create(state.path()).unwrap();
        let path = run.path().to_path_buf();
        std::fs::create_dir_all(path.join("upper/a/b")).unwrap();
        std::fs::write(path.join("upper/a/b/file"), "x").unwrap();
        let captured = Captured::new(run, retired.clone(), path.join("upper"), Vec::new());
        drop(captured);
        assert!(
            path.join("upper/a/b/file").is_file(),
            "removed when the step ended"
        );
        assert_eq!(retired.len(), 1);
        // Still locked: a sweep (another build's RUN step) leaves it alone.
        assert_eq!(sweep(state.path(), Path::new("/nonexistent")), 0);
        assert!(path.is_dir());
        drop(retired);
        assert!(!path.exists(), "not removed with the sandbox");
    }

    #[test]
    fn retired_run_dirs_past_the_budget_go_oldest_first_the_newest_stays() {
        let state = tempfile::tempdir().unwrap();
        let retired = Retired::with_budget(100);
        let big = |bytes: u64| {
            let run = RunDir::create(state.path()).unwrap();
            let path = run.path().to_path_buf();
            let entry = Entry {
                kind: cairn_layers::EntryKind::File {
                    size: bytes,
                    source: cairn_layers::Source::Bytes(Vec::new().into()),
                },
                ..Entry::dir("f")
            };
            drop(Captured::new(
                run,
                retired.clone(),
                path.join("upper"),
                vec![entry],
            ));
            path
        };
        let (a, b) = (big(60), big(30));
        assert!(a.exists() && b.exists(), "90 bytes fit");
        let c = big(20);
        assert!(!a.exists(), "the oldest went when 110 > 100");
        assert!(b.exists() && c.exists());
        let d = big(500);
        assert!(
            !b.exists() && !c.exists(),
            "older ones go for a large newest"
        );
        assert!(d.exists(), "the newest stays even alone over the budget");
        assert_eq!(retired.len(), 1);
        drop(retired);
        assert!(!d.exists());
    }

    #[test]
    fn run_dirs_are_spread_over_ext4_block_groups() {
        let state = tempfile::tempdir().unwrap();
        let _run = RunDir::create(state.path()).unwrap();
        assert_spread(&state.path().join(RUNS));
    }

    #[test]
    fn a_concurrent_sweep_never_removes_a_live_run_dir() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let state = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let failure = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    sweep(state.path(), Path::new("/nonexistent"));
                }
            });
            let failure = (0..2000).find_map(|_| match RunDir::create(state.path()) {
                Err(e) => Some(format!("create: {e}")),
                Ok(run) => std::fs::write(run.path().join("request.json"), "{}")
                    .err()
                    .map(|e| format!("the sweep removed a live run directory: {e}")),
            });
            stop.store(true, Ordering::Relaxed);
            failure
        });
        assert_eq!(failure, None);
    }
}
