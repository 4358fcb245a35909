//! The copy mode, for machines where no overlay (kernel or fuse) can be
//! mounted in a user namespace: the layers are copied into a private
//! rootfs, its metadata snapshotted, and after the command the tree is
//! compared with the snapshot. Costs grow with the rootfs, not the change,
//! so it is the last rung of the ladder.
//!
//! A path changed when its inode, birth time, ctime, kind, mode, owner,
//! size or mtime differ: every write, chmod, chown or rename bumps ctime,
//! which a command cannot set back. A directory whose inode or birth time
//! changed was replaced (removed and recreated) and becomes opaque.
//! Removed paths become `.wh.NAME`.
//!
//! Minimal on purpose, and checked against the overlay capture by
//! `tests/it/sandbox.rs` (`copy_mode_captures_what_overlay_captures`). Layer
//! xattrs are not copied, and device nodes that cannot be created in a user
//! namespace are skipped.

use super::capture::{link_hardlinks, plain_entry};
use super::protocol::{WireEntry, WireKind};
use super::scaffold::Placed;
use super::sys::ctx;
use cairn_layers::whiteout;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Copy `lowers` (bottom first, overlay form) into the empty dir `root`.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn assemble(lowers: &[std::path::PathBuf], root: &Path) -> Result<(), String> {
    for lower in lowers {
        copy_layer(lower, root, Path::new(""))?;
    }
    Ok(())
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn copy_layer(layer: &Path, root: &Path, rel: &Path) -> Result<(), String> {
    let src_dir = layer.join(rel);
    let rd =
        std::fs::read_dir(&src_dir).map_err(|e| ctx(format!("read {}", src_dir.display()), e))?;
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let src = layer.join(&r);
        let dst = root.join(&r);
        let m = std::fs::symlink_metadata(&src)
            .map_err(|e| ctx(format!("stat {}", src.display()), e))?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            remove_any(&dst)?;
            continue;
        }
        if ft.is_dir() {
            let opaque = rustix::fs::lgetxattr(&src, "user.overlay.opaque", &mut [0u8; 4][..])
                .is_ok_and(|n| n == 1);
            let existing = std::fs::symlink_metadata(&dst).ok();
            if opaque || existing.as_ref().is_some_and(|e| !e.is_dir()) {
                remove_any(&dst)?;
            }
            if !dst.is_dir() {
                std::fs::create_dir(&dst)
                    .map_err(|e| ctx(format!("create {}", dst.display()), e))?;
            }
            copy_layer(layer, root, &r)?;
            apply_meta(&dst, &m)?;
            continue;
        }
        remove_any(&dst)?;
        if ft.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| ctx(format!("copy {}", src.display()), e))?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&src)
                .map_err(|e| ctx(format!("readlink {}", src.display()), e))?;
            std::os::unix::fs::symlink(&t, &dst)
                .map_err(|e| ctx(format!("symlink {}", dst.display()), e))?;
        } else {
            let c = super::sys::cpath(&dst).map_err(|e| ctx(dst.display(), e))?;
            // SAFETY: valid path; mode and dev from the source inode.
            if unsafe { libc::mknod(c.as_ptr(), m.mode(), m.rdev()) } != 0 {
                continue; // devices are refused in a user namespace
            }
        }
        apply_meta(&dst, &m)?;
    }
    Ok(())
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn remove_any(p: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(p).map_err(|e| ctx(format!("remove {}", p.display()), e))
        }
        Ok(_) => std::fs::remove_file(p).map_err(|e| ctx(format!("remove {}", p.display()), e)),
    }
}

/// Owner, mode (not for symlinks) and times of `m` onto `dst`.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn apply_meta(dst: &Path, m: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))
        .map_err(|e| ctx(format!("chown {}", dst.display()), e))?;
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(|e| ctx(format!("chmod {}", dst.display()), e))?;
    }
    super::scaffold::set_times(dst, m)
}

/// What the comparison looks at, per path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    ino: u64,
    /// Birth time where the filesystem has one: inode numbers are reused
    /// (`rm -rf d && mkdir d` often gets the same one), birth times not.
    born: Option<std::time::SystemTime>,
    ctime: (i64, i64),
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
}

impl Meta {
    fn of(m: &std::fs::Metadata) -> Self {
        Meta {
            ino: m.ino(),
            born: m.created().ok(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            // A directory's size changes with its entries, which the
            // entries themselves report.
            size: if m.is_dir() { 0 } else { m.len() },
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// The metadata of every path under a root.
#[derive(Debug, Default)]
pub(crate) struct Snapshot(HashMap<String, Meta>);

impl Snapshot {
    /// Record every path under `root`.
    // String: helper-process code; its error reaches the caller as text (Response::error).
    pub(crate) fn take(root: &Path) -> Result<Snapshot, String> {
        let mut map = HashMap::new();
        for e in walkdir::WalkDir::new(root).min_depth(1) {
            let e = e.map_err(|e| ctx("snapshot", e))?;
            let m = e
                .metadata()
                .map_err(|er| ctx(format!("stat {}", e.path().display()), er))?;
            map.insert(rel_of(root, e.path())?, Meta::of(&m));
        }
        Ok(Snapshot(map))
    }
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn rel_of(root: &Path, p: &Path) -> Result<String, String> {
    let r = p.strip_prefix(root).map_err(|e| ctx(p.display(), e))?;
    Ok(cairn_layers::raw_name::from_os(r.as_os_str()).into_owned())
}

/// The change under `root` since `before`, as layer entries (file content
/// relative to `root`). Entries carry container ids (run in the namespace).
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn diff(
    root: &Path,
    before: &Snapshot,
    epoch: u64,
    placed: &Placed,
) -> Result<Vec<WireEntry>, String> {
    let mut out: BTreeMap<String, WireEntry> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut replaced_dirs: Vec<String> = Vec::new();
    let mut it = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(e) = it.next() {
        let e = e.map_err(|e| ctx("compare", e))?;
        let rel = rel_of(root, e.path())?;
        if placed.targets.contains(&rel) {
            if e.file_type().is_dir() {
                it.skip_current_dir();
            }
            seen.insert(rel);
            continue;
        }
        let m = e
            .metadata()
            .map_err(|er| ctx(format!("stat {}", e.path().display()), er))?;
        let now = Meta::of(&m);
        let old = before.0.get(&rel);
        seen.insert(rel.clone());
        if old == Some(&now) {
            continue;
        }
        let is_dir = m.is_dir();
        if is_dir && old.is_some_and(|o| o.ino != now.ino || o.born != now.born) {
            replaced_dirs.push(rel.clone());
        }
        if let Some(e) = plain_entry(&rel, &m, e.path(), epoch)? {
            add_parents(root, &rel, epoch, &mut out)?;
            out.insert(rel.clone(), e);
        }
    }
    for dir in &replaced_dirs {
        if let Some(d) = out.get(dir).cloned() {
            let mut marker = d;
            marker.path = whiteout::opaque_path(dir);
            marker.kind = WireKind::File {
                size: 0,
                upper_path: None,
            };
            out.insert(marker.path.clone(), marker);
        }
    }
    // Removed: the topmost missing path, unless inside a replaced dir.
    let mut removed: Vec<&String> = before.0.keys().filter(|k| !seen.contains(*k)).collect();
    removed.sort();
    let mut last: Option<&str> = None;
    for r in removed {
        if last.is_some_and(|l| r.starts_with(&format!("{l}/")))
            || replaced_dirs
                .iter()
                .any(|d| r.starts_with(&format!("{d}/")))
            || placed.created_dirs.contains(r)
            // Hidden by a mount during the run, not removed.
            || placed.targets.iter().any(|t| r.starts_with(&format!("{t}/")))
        {
            continue;
        }
        last = Some(r);
        if r.contains('/') {
            add_parents(root, r, epoch, &mut out)?;
        }
        let path = whiteout::whiteout_path(r).map_err(|e| format!("copy capture: {e}"))?;
        out.insert(
            path.clone(),
            WireEntry {
                path,
                kind: WireKind::File {
                    size: 0,
                    upper_path: None,
                },
                mode: whiteout::WHITEOUT_MODE,
                uid: 0,
                gid: 0,
                mtime: epoch,
                xattrs: BTreeMap::new(),
            },
        );
    }
    let mut v: Vec<WireEntry> = out.into_values().collect();
    v.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    link_hardlinks(root, &mut v)?;
    Ok(v)
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn add_parents(
    root: &Path,
    rel: &str,
    epoch: u64,
    out: &mut BTreeMap<String, WireEntry>,
) -> Result<(), String> {
    let mut p = rel;
    while let Some((parent, _)) = p.rsplit_once('/') {
        if !out.contains_key(parent) {
            let full = root.join(cairn_layers::raw_name::to_os(parent));
            let m = std::fs::symlink_metadata(&full)
                .map_err(|e| ctx(format!("stat {}", full.display()), e))?;
            if let Some(e) = plain_entry(parent, &m, &full, epoch)? {
                out.insert(parent.to_owned(), e);
            }
        }
        p = parent;
    }
    Ok(())
}
