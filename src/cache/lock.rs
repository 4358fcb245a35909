//! The cache's one locking rule: every process that reads or writes the
//! cache's content (build, run, pull, push, inspect, diff) holds a shared
//! `flock` on `CACHE/lock` from when it opens the cache until it exits (the
//! kernel drops it even on SIGKILL); `cairn cache prune` takes it
//! exclusively, so it waits for those processes and no build is ever broken
//! by a prune. `cairn cache ls` only reads, without the lock. The lock file
//! is never removed (a new inode would split the lock in two).

use super::layout::CacheLayout;
use rustix::fs::{flock, FlockOperation};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Shared locks held until the process exits, one per cache root.
static HELD: Mutex<Vec<(PathBuf, fs::File)>> = Mutex::new(Vec::new());

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

/// The warning for a cache root that was open to others (mode `mode`) and
/// is now private: the user may have shared it on purpose.
pub fn repaired_warning(root: &Path, mode: u32) -> String {
    format!(
        "the cache {} was accessible to other users (mode {mode:04o}); made it private \
         (0700): unpacked base images hold setuid files and device nodes",
        root.display()
    )
}

fn open_lock(layout: &CacheLayout) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(layout.lock_file())
}

/// Make the cache root private (see [`make_private`]) and hold its shared
/// lock until the process exits (once per root). Returns the mode of a
/// root that was repaired.
pub fn hold_shared(layout: &CacheLayout) -> io::Result<Option<u32>> {
    let repaired = make_private(layout.root())?;
    let mut held = HELD
        .lock()
        .map_err(|_| io::Error::other("cache lock poisoned"))?;
    if !held.iter().any(|(r, _)| r == layout.root()) {
        let f = open_lock(layout)?;
        flock(&f, FlockOperation::LockShared)?;
        held.push((layout.root().to_path_buf(), f));
    }
    Ok(repaired)
}

/// Take the cache exclusively (no other process using it), calling
/// `waiting` once if some hold it. The lock lasts as long as the returned file.
pub fn lock_exclusive(layout: &CacheLayout, waiting: impl FnOnce()) -> io::Result<fs::File> {
    let f = open_lock(layout)?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => return Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => waiting(),
        Err(e) => return Err(e.into()),
    }
    flock(&f, FlockOperation::LockExclusive)?;
    Ok(f)
}
