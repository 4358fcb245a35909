//! Capture: the overlay upper directory → layer entries. Only the upper dir
//! is walked, so the cost is proportional to the change, not the rootfs.
//!
//! - whiteout (char device 0/0) → empty file `.wh.NAME`, mode 0, owner 0:0
//!   (containerd's and so BuildKit's form; named by `cairn_layers::whiteout`)
//! - dir with `user.overlay.opaque=y` → the dir + empty `DIR/.wh..wh..opq`
//! - fuse-overlayfs forms: `.wh.NAME` empty files are whiteouts already;
//!   a `.wh..opq` device or `.wh..wh..opq` file marks its dir opaque
//! - xattrs: only what `cairn_layers::xattr::keep` keeps for a layer
//!   (`security.capability`); the overlay's opaque marks are read, not kept
//! - mtimes are clamped: `min(mtime, epoch)`
//! - regular files with several links in the upper dir: the first path in
//!   byte order holds the data, later ones are hard links to it
//! - sockets are skipped (a tar cannot hold them)
//! - paths cairn placed ([`Placed`]) are dropped, as are directories that
//!   only exist for a mount point unless a real change lies below them
//!
//! - `user.cairn.owner` (single-id mode) overrides the owner, never kept
//!
//! Runs inside the user namespace, so `stat` already yields container ids.

use super::ownership::{parse_owner, OWNER_XATTR};
use super::protocol::{WireEntry, WireKind};
use super::scaffold::{lookup, Placed};
use cairn_layers::xattr::{self, XattrUse};
use cairn_layers::{raw_name, whiteout};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why an upper or layer directory could not be read as entries. The
/// cause's text is part of the message (as the helper reports it on the
/// wire, a `String`), so it is not repeated as a source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tree deeper than a layer may be.
    #[error("capture: {} is nested more than {max} directories deep; a layer cannot hold it", dir.display())]
    TooDeep {
        /// The directory past the limit.
        dir: PathBuf,
        /// The limit.
        max: usize,
    },
    /// A directory, an inode or a link could not be read.
    #[error("capture: {op} {}: {cause}", path.display())]
    Io {
        /// `read`, `stat`, `readlink`.
        op: &'static str,
        /// What.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A whiteout device whose path is no layer path.
    #[error("capture: {0}")]
    Whiteout(cairn_layers::whiteout::WhiteoutError),
    /// An inode's xattrs could not be listed.
    #[error("capture: list xattrs of {}: {cause}", path.display())]
    ListXattrs {
        /// The inode.
        path: PathBuf,
        /// Why.
        cause: rustix::io::Errno,
    },
    /// An xattr could not be read.
    #[error("capture: read xattr {name} of {}: {cause}", path.display())]
    ReadXattr {
        /// The xattr.
        name: String,
        /// The inode.
        path: PathBuf,
        /// Why.
        cause: rustix::io::Errno,
    },
}

/// The helper sends its errors to the caller as text (`Response::error`).
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}

/// `op` on `path` failed with `cause`.
fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |cause| Error::Io { op, path, cause }
}

const OPAQUE_XATTR: &str = "user.overlay.opaque";
/// fuse-overlayfs's opaque xattr.
const FUSE_OPAQUE_XATTR: &str = "user.fuseoverlayfs.opaque";
/// fuse-overlayfs's opaque marker device (whiteout of `.wh..opq`).
const FUSE_OPAQUE_DEV: &str = ".wh..opq";

/// Walk `upper` and return its entries sorted byte-wise by path.
///
/// With `recorded_owners` (single-id mapping), an [`OWNER_XATTR`] record
/// overrides the inode's owner (see [`super::ownership`]).
///
/// `lowers_top_first` (the image layers, not the scaffold) decide whether
/// an opaque mark matters: on a directory no lower has, it hides nothing
/// and is dropped (fuse-overlayfs marks every new directory opaque, the
/// kernel marks renamed ones), so all modes capture the same entries.
pub(crate) fn capture(
    upper: &Path,
    lowers_top_first: &[&Path],
    epoch: u64,
    placed: &Placed,
    recorded_owners: bool,
) -> Result<Vec<WireEntry>, Error> {
    let mut out = Vec::new();
    let ctx = Walk {
        epoch,
        placed,
        recorded_owners,
        lowers_top_first,
        all_opaque: false,
    };
    walk(upper, "", &ctx, &mut out)?;
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    // fuse-overlayfs may mark a dir opaque twice (device and file).
    out.dedup_by(|a, b| a.path == b.path);
    drop_scaffold_dirs(&mut out, placed);
    link_hardlinks(upper, &mut out)?;
    Ok(out)
}

/// The entries of `dir`, a layer directory in overlay lower form (as an
/// unpack or a snapshot made it), sorted byte-wise: the entries of the tar
/// it was unpacked from. Every opaque mark is kept (an unpack sets one only
/// where the tar had `.wh..wh..opq`), mtimes are as they lie. Runs where
/// `stat` yields container ids (root, or inside the user namespace).
pub(crate) fn layer_dir_entries(
    dir: &Path,
    recorded_owners: bool,
) -> Result<Vec<WireEntry>, Error> {
    let mut out = Vec::new();
    let placed = Placed::default();
    let w = Walk {
        epoch: u64::MAX,
        placed: &placed,
        recorded_owners,
        lowers_top_first: &[],
        all_opaque: true,
    };
    walk(dir, "", &w, &mut out)?;
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    link_hardlinks(dir, &mut out)?;
    Ok(out)
}

struct Walk<'a> {
    epoch: u64,
    placed: &'a Placed,
    recorded_owners: bool,
    lowers_top_first: &'a [&'a Path],
    /// Keep every opaque mark (a layer directory's, not an upper dir's).
    all_opaque: bool,
}

impl Walk<'_> {
    /// Whether an opaque mark on `rel` hides anything.
    fn opaque_matters(&self, rel: &str) -> bool {
        self.all_opaque || lookup(self.lowers_top_first, rel).is_some_and(|(_, m)| m.is_dir())
    }
}

fn walk(dir: &Path, prefix: &str, w: &Walk<'_>, out: &mut Vec<WireEntry>) -> Result<(), Error> {
    // One call per level: a RUN step's tree deeper than a layer may be
    // (unpack refuses it anyway) is an error, not a stack overflow.
    let max = cairn_layers::unpack::MAX_DEPTH;
    if !prefix.is_empty() && prefix.split('/').count() >= max {
        return Err(Error::TooDeep {
            dir: dir.to_path_buf(),
            max,
        });
    }
    let (epoch, placed) = (w.epoch, w.placed);
    let rd = std::fs::read_dir(dir).map_err(io("read", dir))?;
    for item in rd {
        let item = item.map_err(io("read", dir))?;
        let name = item.file_name();
        // Exact name bytes, held as a layer path (see cairn_layers::raw_name).
        let name = raw_name::from_os(&name).into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if placed.targets.contains(&rel) {
            continue;
        }
        let path = item.path();
        let m = std::fs::symlink_metadata(&path).map_err(io("stat", &path))?;
        let ft = m.file_type();
        let base = |path: String, kind: WireKind, mode: u32| WireEntry {
            path,
            kind,
            mode,
            uid: m.uid(),
            gid: m.gid(),
            mtime: clamp(m.mtime(), epoch),
            xattrs: BTreeMap::new(),
        };
        let is_whiteout_dev = ft.is_char_device() && m.rdev() == 0;
        // fuse-overlayfs marks an opaque dir with a `.wh..opq` whiteout
        // device and/or a `.wh..wh..opq` file instead of the xattr.
        if (is_whiteout_dev && name == FUSE_OPAQUE_DEV)
            || (ft.is_file() && name == whiteout::OPAQUE)
        {
            if !prefix.is_empty() && w.opaque_matters(prefix) {
                let dm = std::fs::symlink_metadata(dir).map_err(io("stat", dir))?;
                out.push(opaque_marker(prefix, &dm, epoch));
            }
            continue;
        }
        // A whiteout: the kernel's 0/0 device, or fuse-overlayfs's empty
        // `.wh.NAME` file when it may not mknod. Always 0:0 mode 0, so
        // every mode captures the same entry.
        let whiteout = if is_whiteout_dev {
            Some(whiteout::whiteout_path(&rel).map_err(Error::Whiteout)?)
        } else if ft.is_file() && m.len() == 0 && name.starts_with(whiteout::PREFIX) {
            Some(rel.clone())
        } else {
            None
        };
        if let Some(wh) = whiteout {
            let mut e = base(
                wh,
                WireKind::File {
                    size: 0,
                    upper_path: None,
                },
                whiteout::WHITEOUT_MODE,
            );
            (e.uid, e.gid) = (0, 0);
            out.push(e);
            continue;
        }
        let Some(mut entry) = plain_entry(&rel, &m, &path, epoch)? else {
            continue; // socket
        };
        let x = read_xattrs(&path)?;
        entry.xattrs = x.keep;
        if let Some((uid, gid)) = x.owner.filter(|_| w.recorded_owners) {
            (entry.uid, entry.gid) = (uid, gid);
        }
        let opaque = x.opaque;
        out.push(entry.clone());
        if ft.is_dir() {
            if opaque && w.opaque_matters(&rel) {
                out.push(opaque_marker(&rel, &m, epoch));
            }
            walk(&path, &rel, w, out)?;
        }
    }
    Ok(())
}

/// The entry for the inode `m` at `rel` (file content = `rel` under the
/// content dir), without xattrs; `None` for sockets.
pub(crate) fn plain_entry(
    rel: &str,
    m: &std::fs::Metadata,
    full: &Path,
    epoch: u64,
) -> Result<Option<WireEntry>, Error> {
    let ft = m.file_type();
    let dev = || (libc::major(m.rdev()), libc::minor(m.rdev()));
    let kind = if ft.is_dir() {
        WireKind::Dir
    } else if ft.is_file() {
        WireKind::File {
            size: m.len(),
            upper_path: Some(rel.to_owned()),
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(full).map_err(io("readlink", full))?;
        WireKind::Symlink {
            target: raw_name::from_os(t.as_os_str()).into_owned(),
        }
    } else if ft.is_char_device() {
        let (major, minor) = dev();
        WireKind::CharDevice { major, minor }
    } else if ft.is_block_device() {
        let (major, minor) = dev();
        WireKind::BlockDevice { major, minor }
    } else if ft.is_fifo() {
        WireKind::Fifo
    } else {
        return Ok(None);
    };
    Ok(Some(WireEntry {
        path: rel.to_owned(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: clamp(m.mtime(), epoch),
        xattrs: BTreeMap::new(),
    }))
}

/// The `DIR/.wh..wh..opq` entry, with the directory's owner, mode and mtime.
fn opaque_marker(dir_rel: &str, dir: &std::fs::Metadata, epoch: u64) -> WireEntry {
    WireEntry {
        path: whiteout::opaque_path(dir_rel),
        kind: WireKind::File {
            size: 0,
            upper_path: None,
        },
        mode: dir.mode() & 0o7777,
        uid: dir.uid(),
        gid: dir.gid(),
        mtime: clamp(dir.mtime(), epoch),
        xattrs: BTreeMap::new(),
    }
}

fn clamp(mtime: i64, epoch: u64) -> u64 {
    u64::try_from(mtime).unwrap_or(0).min(epoch)
}

/// What an inode's xattrs say.
#[derive(Default)]
struct Xattrs {
    /// Worth keeping in the layer.
    keep: BTreeMap<String, Vec<u8>>,
    /// `user.overlay.opaque=y`.
    opaque: bool,
    /// A recorded owner ([`OWNER_XATTR`]).
    owner: Option<(u32, u32)>,
}

fn read_xattrs(path: &Path) -> Result<Xattrs, Error> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Xattrs::default()),
        Err(cause) => {
            return Err(Error::ListXattrs {
                path: path.to_path_buf(),
                cause,
            })
        }
    };
    let mut x = Xattrs::default();
    for raw in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        let len = match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(len) => len,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(cause) => {
                return Err(Error::ReadXattr {
                    name: name.to_owned(),
                    path: path.to_path_buf(),
                    cause,
                })
            }
        };
        value.truncate(len);
        if name == OPAQUE_XATTR || name == FUSE_OPAQUE_XATTR {
            x.opaque |= value == b"y";
        } else if name == OWNER_XATTR {
            x.owner = parse_owner(&value);
        } else if xattr::keep(name, XattrUse::Layer) {
            x.keep.insert(name.to_owned(), value);
        }
    }
    Ok(x)
}

/// Remove scaffold-only directories that have nothing captured below them,
/// and whiteouts of anything cairn placed. `entries` is sorted.
fn drop_scaffold_dirs(entries: &mut Vec<WireEntry>, placed: &Placed) {
    entries.retain(|e| {
        whiteout::target(&e.path)
            .is_none_or(|o| !placed.targets.contains(&o) && !placed.created_dirs.contains(&o))
    });
    let keep: Vec<bool> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if !placed.created_dirs.contains(&e.path) {
                return true;
            }
            let child = format!("{}/", e.path);
            entries[i + 1..]
                .iter()
                .filter(|c| c.path.starts_with(&child))
                .any(|c| !placed.created_dirs.contains(&c.path))
        })
        .collect();
    let mut it = keep.into_iter();
    entries.retain(|_| it.next().unwrap_or(true));
}

/// Turn later paths of a multiply-linked upper file into hard links.
pub(crate) fn link_hardlinks(upper: &Path, entries: &mut [WireEntry]) -> Result<(), Error> {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for e in entries.iter_mut() {
        let WireKind::File {
            upper_path: Some(p),
            ..
        } = &e.kind
        else {
            continue;
        };
        let full = upper.join(raw_name::to_os(p));
        let m = std::fs::symlink_metadata(&full).map_err(io("stat", &full))?;
        if m.nlink() < 2 {
            continue;
        }
        match first.get(&(m.dev(), m.ino())) {
            Some(target) => {
                e.kind = WireKind::Hardlink {
                    target: target.clone(),
                }
            }
            None => {
                first.insert((m.dev(), m.ino()), e.path.clone());
            }
        }
    }
    Ok(())
}

/// Hand the upper and work dirs back to the caller's host uid (namespace
/// root) with owner access, after capture recorded the real metadata: a
/// non-root caller must read file sources and delete the run directory
/// without a user namespace. Symlinks are only re-owned.
pub(crate) fn hand_back(root: &Path, chown: bool) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(root).into_iter().flatten() {
        let p = entry.path();
        if chown {
            let _ = std::os::unix::fs::lchown(p, Some(0), Some(0));
        }
        let ft = entry.file_type();
        let Ok(m) = entry.metadata() else { continue };
        let add = if ft.is_dir() {
            0o700
        } else if ft.is_file() {
            0o600
        } else {
            continue;
        };
        let mode = m.mode() & 0o7777;
        if mode & add != add {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | add));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_directory_is_named_with_its_cause_as_the_helper_sends_it() {
        let t = tempfile::tempdir().unwrap();
        let gone = t.path().join("gone");
        let e = layer_dir_entries(&gone, false).unwrap_err();
        assert_eq!(
            String::from(e),
            format!(
                "capture: read {}: No such file or directory (os error 2)",
                gone.display()
            )
        );
    }

    fn entry(path: &str) -> WireEntry {
        WireEntry {
            path: path.into(),
            kind: WireKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    #[test]
    fn clamps_to_epoch() {
        assert_eq!(clamp(5, 10), 5);
        assert_eq!(clamp(50, 10), 10);
        assert_eq!(clamp(-3, 10), 0);
    }

    #[test]
    fn scaffold_dirs_survive_only_as_parents() {
        let mut placed = Placed::default();
        for d in ["run", "run/secrets", "mnt"] {
            placed.created_dirs.insert(d.into());
        }
        placed.targets.insert("run/secrets/tok".into());
        let mut es: Vec<WireEntry> = [
            "mnt",
            "run",
            "run/.wh.secrets",
            "run/secrets",
            "run/secrets/.wh.tok",
            "run/secrets/new",
            "srv",
        ]
        .into_iter()
        .map(entry)
        .collect();
        drop_scaffold_dirs(&mut es, &placed);
        let paths: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["run", "run/secrets", "run/secrets/new", "srv"]);
    }

    #[test]
    fn captures_plain_upper_dir() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        std::fs::create_dir_all(up.join("a/b")).unwrap();
        std::fs::write(up.join("a/b/f"), b"hello").unwrap();
        std::fs::hard_link(up.join("a/b/f"), up.join("a/g")).unwrap();
        std::os::unix::fs::symlink("b/f", up.join("a/l")).unwrap();
        std::fs::create_dir(up.join("a-b")).unwrap();
        let es = capture(up, &[], 100, &Placed::default(), false).unwrap();
        let summary: Vec<(String, String)> = es
            .iter()
            .map(|e| {
                let k = match &e.kind {
                    WireKind::Dir => "dir".to_string(),
                    WireKind::File { size, .. } => format!("file {size}"),
                    WireKind::Hardlink { target } => format!("link {target}"),
                    WireKind::Symlink { target } => format!("sym {target}"),
                    other => format!("{other:?}"),
                };
                (e.path.clone(), k)
            })
            .collect();
        let want = [
            ("a", "dir"),
            ("a-b", "dir"),
            ("a/b", "dir"),
            ("a/b/f", "file 5"),
            ("a/g", "link a/b/f"),
            ("a/l", "sym b/f"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(summary, want);
        assert!(es.iter().all(|e| e.mtime == 100));
    }
}
