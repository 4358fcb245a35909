//! Directory snapshots and tree diffs (changed entries plus whiteouts for deletions).
//!
//! [`Tree::snapshot`] records the metadata of every path below a root
//! without following symlinks (`getdents64` + `fstatat(AT_SYMLINK_NOFOLLOW)`
//! on directory handles, so long paths cost nothing extra). [`diff`] turns
//! two snapshots of the same directory — before and after a RUN step — into
//! the entries of a layer.
//!
//! # When is a path "changed"?
//! A path present in both snapshots is unchanged only if kind, symlink
//! target, device numbers, mode, uid, gid, size and mtime (to the
//! nanosecond) are all equal **and** one of:
//! * it is the same inode (`dev`, `ino`) with the same ctime. The kernel
//!   bumps ctime on every data, metadata and xattr change and userspace
//!   cannot set it, so an in-place edit that restores mtime (`touch -r`,
//!   `cp -p` over itself, …) is still caught;
//! * or the before snapshot was taken with
//!   [`SnapshotOptions::hash_content`] and the SHA-256 of the content and the
//!   allowlisted xattrs are equal. Use this when before and after are
//!   different copies (e.g. comparing two unpacked rootfs): inodes and
//!   ctimes then differ everywhere.
//!
//! Otherwise it is changed. A false positive only repeats an identical entry
//! in the layer; a false negative would lose a change, so doubt means changed.
//!
//! # What the diff contains
//! Sorted byte-wise by path: every added or changed path; a whiteout for each
//! deleted path whose parent is still a directory (a deleted directory is one
//! whiteout, its children are not listed; children of a directory replaced by
//! a non-directory need none because the new entry hides them); every parent
//! directory of those entries with its current metadata; and hard links among
//! the emitted regular files as [`EntryKind::Hardlink`] to the first path of
//! the group. Sockets cannot be stored in a layer and are left out. The root
//! directory itself is never an entry.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

use crate::entry::{Entry, EntryKind, Source};
use crate::whiteout::{self, WhiteoutError};
use crate::xattr::{keep as keep_xattr, XattrUse};

/// A timestamp with nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time {
    /// Seconds since the Unix epoch (may be negative).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

/// The type of a filesystem object, with its type-specific payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symlink with its target, verbatim.
    Symlink {
        /// Link target.
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket (never part of a layer).
    Socket,
}

/// Metadata of one path in a [`Tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Object type.
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (regular files and symlinks; 0 for the rest).
    pub size: u64,
    /// Modification time.
    pub mtime: Time,
    /// Status-change time.
    pub ctime: Time,
    /// Device of the containing filesystem.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Link count.
    pub nlink: u64,
    /// SHA-256 of the content (regular files, hashed snapshots only).
    pub hash: Option<[u8; 32]>,
    /// Allowlisted xattrs (hashed snapshots only).
    pub xattrs: Option<BTreeMap<String, Vec<u8>>>,
}

/// How to take a snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotOptions {
    /// Hash every regular file and read xattrs, so that a later [`diff`]
    /// can compare content when inodes or ctimes differ (see module docs).
    pub hash_content: bool,
    /// Record directories on other filesystems (e.g. `/proc` mounted into a
    /// rootfs) but do not descend into them.
    pub one_file_system: bool,
}

/// A snapshot of a directory tree: layer-relative path → metadata.
#[derive(Clone, Debug)]
pub struct Tree {
    root: PathBuf,
    nodes: BTreeMap<String, Node>,
}

/// Errors from snapshots and diffs.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A filesystem operation failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// Host path.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A file name that is not UTF-8 cannot become a layer entry.
    #[error("file name `{0}` is not valid UTF-8; layer entries need UTF-8 paths")]
    NonUtf8(String),
    /// A new or changed file whose name starts with `.wh.`.
    #[error("`{0}` uses the reserved whiteout prefix `.wh.`; such names cannot be stored in an image layer")]
    ReservedName(String),
    /// A deleted path could not be expressed as a whiteout.
    #[error("cannot record the deletion of `{path}`")]
    Whiteout {
        /// The deleted path.
        path: String,
        /// Cause.
        #[source]
        source: WhiteoutError,
    },
}

/// Error constructor; builds the path only when an error happens.
fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(Errno) -> TreeError + 'a {
    move |e| TreeError::Io {
        path: path.to_owned(),
        action,
        source: e.into(),
    }
}

const READ_DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Tree {
    /// Snapshot `root` with default options (no hashing, crosses filesystems).
    pub fn snapshot(root: &Path) -> Result<Tree, TreeError> {
        Tree::snapshot_with(root, &SnapshotOptions::default())
    }

    /// Snapshot `root`.
    pub fn snapshot_with(root: &Path, opts: &SnapshotOptions) -> Result<Tree, TreeError> {
        let fd = rfs::open(root, READ_DIR_FLAGS, Mode::empty())
            .map_err(io_err(root, "open snapshot root"))?;
        let root_dev = rfs::fstat(&fd).map_err(io_err(root, "stat"))?.st_dev;
        let mut walk = Walk {
            root,
            opts,
            root_dev,
            out: Vec::new(),
        };
        walk.run(fd)?;
        Ok(Tree {
            root: root.to_owned(),
            nodes: walk.out.into_iter().collect(),
        })
    }

    /// The directory this snapshot was taken of.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Metadata of `path` (layer-relative, no leading `/`).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// All paths with their metadata, sorted byte-wise.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), n))
    }

    /// Number of paths (the root is not counted).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no paths below the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

struct Walk<'a> {
    root: &'a Path,
    opts: &'a SnapshotOptions,
    root_dev: u64,
    out: Vec<(String, Node)>,
}

impl Walk<'_> {
    /// Depth-first without recursion, so a hostile RUN step that nests
    /// directories thousands deep cannot overflow the stack. A pending
    /// directory keeps only its parent's handle alive, so open handles grow
    /// with depth, not with breadth.
    fn run(&mut self, root_fd: OwnedFd) -> Result<(), TreeError> {
        let mut pending: Vec<(Rc<OwnedFd>, String, String)> = Vec::new();
        self.read_dir(root_fd, "", &mut pending)?;
        while let Some((parent, name, rel)) = pending.pop() {
            let fd = rfs::openat(&*parent, name.as_str(), READ_DIR_FLAGS, Mode::empty())
                .map_err(|e| io_err(&self.root.join(&rel), "open directory")(e))?;
            drop(parent);
            self.read_dir(fd, &rel, &mut pending)?;
        }
        Ok(())
    }

    fn read_dir(
        &mut self,
        fd: OwnedFd,
        rel: &str,
        pending: &mut Vec<(Rc<OwnedFd>, String, String)>,
    ) -> Result<(), TreeError> {
        let host = self.root.join(rel);
        let fd = Rc::new(fd);
        for item in rfs::Dir::read_from(&*fd).map_err(io_err(&host, "read directory"))? {
            let item = item.map_err(io_err(&host, "read directory"))?;
            let raw = item.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = std::str::from_utf8(raw)
                .map_err(|_| TreeError::NonUtf8(host.join(lossy_os(raw)).display().to_string()))?;
            let path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let node = self.node(fd.as_fd(), name, &path)?;
            if node.kind == NodeKind::Dir
                && (!self.opts.one_file_system || node.dev == self.root_dev)
            {
                pending.push((Rc::clone(&fd), name.to_owned(), path.clone()));
            }
            self.out.push((path, node));
        }
        Ok(())
    }

    fn node(&self, dir: BorrowedFd<'_>, name: &str, path: &str) -> Result<Node, TreeError> {
        let host = || self.root.join(path);
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err(&host(), "stat")(e))?;
        let mut node = node_from_stat(&st);
        if let NodeKind::Symlink { target } = &mut node.kind {
            let raw = rfs::readlinkat(dir, name, Vec::new())
                .map_err(|e| io_err(&host(), "read symlink")(e))?;
            *target = String::from_utf8(raw.into_bytes()).map_err(|e| {
                TreeError::NonUtf8(format!(
                    "{} -> {}",
                    host().display(),
                    String::from_utf8_lossy(e.as_bytes())
                ))
            })?;
        }
        if self.opts.hash_content {
            if node.kind == NodeKind::File {
                node.hash = Some(hash_file(&host())?);
            }
            node.xattrs = Some(read_xattrs(&host())?);
        }
        Ok(node)
    }
}

fn node_from_stat(st: &rfs::Stat) -> Node {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => NodeKind::Dir,
        FileType::Symlink => NodeKind::Symlink {
            target: String::new(),
        },
        FileType::CharacterDevice => NodeKind::CharDevice {
            major: rfs::major(st.st_rdev),
            minor: rfs::minor(st.st_rdev),
        },
        FileType::BlockDevice => NodeKind::BlockDevice {
            major: rfs::major(st.st_rdev),
            minor: rfs::minor(st.st_rdev),
        },
        FileType::Fifo => NodeKind::Fifo,
        FileType::Socket => NodeKind::Socket,
        _ => NodeKind::File,
    };
    let size = match kind {
        NodeKind::File | NodeKind::Symlink { .. } => u64::try_from(st.st_size).unwrap_or(0),
        _ => 0,
    };
    Node {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size,
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        hash: None,
        xattrs: None,
    }
}

fn time(sec: i64, nsec: impl TryInto<u32>) -> Time {
    Time {
        sec,
        nsec: nsec.try_into().unwrap_or(0),
    }
}

fn lossy_os(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn hash_file(path: &Path) -> Result<[u8; 32], TreeError> {
    let fd = rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(path, "open for hashing"))?;
    let mut file = std::fs::File::from(fd);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|source| TreeError::Io {
            path: path.to_owned(),
            action: "read for hashing",
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Allowlisted xattrs of `path` (not following a final symlink).
fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, TreeError> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rfs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOTSUP | Errno::PERM) => return Ok(out),
            Err(e) => return Err(io_err(path, "list xattrs of")(e)),
        }
    };
    for raw in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        if !keep_xattr(name, XattrUse::Rootfs) {
            continue;
        }
        let mut value = vec![0u8; 256];
        let n = loop {
            match rfs::lgetxattr(path, name, &mut value[..]) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => value.resize(value.len() * 4, 0),
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(io_err(path, "read xattr of")(e)),
            }
        };
        if let Some(n) = n {
            value.truncate(n);
            out.insert(name.to_owned(), value);
        }
    }
    Ok(out)
}

/// The layer entries that turn `before` into `after` (see the module docs).
///
/// `after_root` is the directory `after` describes; file entries point into
/// it with [`Source::Path`] and xattrs/hashes are read from it.
pub fn diff(before: &Tree, after: &Tree, after_root: &Path) -> Result<Vec<Entry>, TreeError> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    for (path, a) in &after.nodes {
        if a.kind == NodeKind::Socket {
            continue;
        }
        let changed = match before.nodes.get(path) {
            None => true,
            Some(b) => differs(b, a, after_root, path)?,
        };
        if changed {
            // In a layer this name would delete something instead of existing.
            if path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(whiteout::PREFIX))
            {
                return Err(TreeError::ReservedName(path.clone()));
            }
            out.insert(path.clone(), entry_for(path, a, after_root)?);
        }
    }
    for (path, b) in &before.nodes {
        // Sockets are never in layers: a socket that goes needs no whiteout,
        // and one that replaced a path is recorded as that path's deletion.
        if b.kind == NodeKind::Socket
            || after
                .nodes
                .get(path)
                .is_some_and(|n| n.kind != NodeKind::Socket)
        {
            continue;
        }
        let parent = parent_of(path);
        let parent_still_dir = parent.is_empty()
            || (after.nodes.get(parent).map(|n| &n.kind) == Some(&NodeKind::Dir)
                && before.nodes.get(parent).map(|n| &n.kind) == Some(&NodeKind::Dir));
        if !parent_still_dir {
            continue;
        }
        let wh = whiteout::whiteout_entry(path).map_err(|source| TreeError::Whiteout {
            path: path.clone(),
            source,
        })?;
        out.insert(wh.path.clone(), wh);
    }
    let mut parents = Vec::new();
    for path in out.keys() {
        let mut p = parent_of(path);
        while !p.is_empty() && !out.contains_key(p) {
            parents.push(p.to_owned());
            p = parent_of(p);
        }
    }
    for p in parents {
        if out.contains_key(&p) {
            continue;
        }
        if let Some(node) = after.nodes.get(&p) {
            out.insert(p.clone(), entry_for(&p, node, after_root)?);
        }
    }
    link_hardlinks(&mut out, after);
    Ok(out.into_values().collect())
}

fn differs(b: &Node, a: &Node, after_root: &Path, path: &str) -> Result<bool, TreeError> {
    if b.kind != a.kind
        || b.mode != a.mode
        || b.uid != a.uid
        || b.gid != a.gid
        || b.size != a.size
        || b.mtime != a.mtime
    {
        return Ok(true);
    }
    if b.dev == a.dev && b.ino == a.ino && b.ctime == a.ctime {
        return Ok(false);
    }
    let Some(bx) = &b.xattrs else {
        return Ok(true);
    };
    let host = &after_root.join(path);
    let ax = match &a.xattrs {
        Some(x) => x.clone(),
        None => read_xattrs(host)?,
    };
    if *bx != ax {
        return Ok(true);
    }
    if a.kind != NodeKind::File {
        return Ok(false);
    }
    let Some(bh) = b.hash else {
        return Ok(true);
    };
    let ah = match a.hash {
        Some(h) => h,
        None => hash_file(host)?,
    };
    Ok(bh != ah)
}

fn entry_for(path: &str, n: &Node, after_root: &Path) -> Result<Entry, TreeError> {
    let host = after_root.join(path);
    let kind = match &n.kind {
        NodeKind::Dir => EntryKind::Dir,
        NodeKind::File => EntryKind::File {
            size: n.size,
            source: Source::Path(host.clone()),
        },
        NodeKind::Symlink { target } => EntryKind::Symlink {
            target: target.clone(),
        },
        NodeKind::CharDevice { major, minor } => EntryKind::CharDevice {
            major: *major,
            minor: *minor,
        },
        NodeKind::BlockDevice { major, minor } => EntryKind::BlockDevice {
            major: *major,
            minor: *minor,
        },
        NodeKind::Fifo | NodeKind::Socket => EntryKind::Fifo,
    };
    let xattrs = match &n.xattrs {
        Some(x) => x.clone(),
        None => read_xattrs(&host)?,
    };
    Ok(Entry {
        path: path.to_owned(),
        kind,
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        mtime: u64::try_from(n.mtime.sec).unwrap_or(0),
        xattrs,
    })
}

/// Later paths of a hard-link group (same dev/ino) among the emitted
/// regular files become links to the first path in byte order.
fn link_hardlinks(out: &mut BTreeMap<String, Entry>, after: &Tree) {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for (path, entry) in out.iter_mut() {
        if !matches!(entry.kind, EntryKind::File { .. }) {
            continue;
        }
        let Some(node) = after.nodes.get(path) else {
            continue;
        };
        if node.nlink < 2 {
            continue;
        }
        match first.get(&(node.dev, node.ino)) {
            Some(target) => {
                entry.kind = EntryKind::Hardlink {
                    target: target.clone(),
                };
                entry.xattrs.clear();
            }
            None => {
                first.insert((node.dev, node.ino), path.clone());
            }
        }
    }
}

fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind) -> Node {
        Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: Time { sec: 1, nsec: 0 },
            ctime: Time { sec: 1, nsec: 0 },
            dev: 1,
            ino: 1,
            nlink: 1,
            hash: None,
            xattrs: None,
        }
    }

    #[test]
    fn change_rule() {
        let p = Path::new("/nonexistent");
        let differs = |b: &Node, a: &Node, p: &Path| differs(b, a, p, "x");
        let b = node(NodeKind::File);
        assert!(!differs(&b, &b.clone(), p).unwrap());
        // ctime alone (an in-place edit restoring mtime) is a change.
        let mut a = b.clone();
        a.ctime.nsec = 1;
        assert!(differs(&b, &a, p).unwrap());
        // Other inode, no hashes: changed.
        let mut a = b.clone();
        a.ino = 2;
        assert!(differs(&b, &a, p).unwrap());
        // Other inode, equal hashes and xattrs: unchanged.
        let mut hb = b.clone();
        hb.hash = Some([7; 32]);
        hb.xattrs = Some(BTreeMap::new());
        let mut ha = hb.clone();
        ha.ino = 2;
        assert!(!differs(&hb, &ha, p).unwrap());
        ha.hash = Some([8; 32]);
        assert!(differs(&hb, &ha, p).unwrap());
        // Any metadata difference wins before the inode check.
        for f in [
            |n: &mut Node| n.mode = 0o600,
            |n: &mut Node| n.uid = 5,
            |n: &mut Node| n.gid = 5,
            |n: &mut Node| n.size = 2,
            |n: &mut Node| n.mtime.nsec = 3,
            |n: &mut Node| n.kind = NodeKind::Fifo,
        ] {
            let mut a = hb.clone();
            f(&mut a);
            assert!(differs(&hb, &a, p).unwrap());
        }
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("a/b/c"), "a/b");
        assert_eq!(parent_of("a"), "");
    }
}
