//! The scaffold: a tiny extra top lower holding every path cairn mounts
//! over (/dev, /proc, /sys, /etc/resolv.conf, /etc/hosts, /etc/hostname,
//! RUN mount targets). Mount points missing from the image would otherwise
//! be created in the merged dir and leak into the upper dir. Directories
//! that exist in the image are mirrored with their metadata, so a copy-up
//! through the scaffold keeps the image's mode, owner and mtime.

use super::{Mount, RunSpec};
use std::collections::BTreeSet;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Files cairn generates and bind-mounts.
pub(crate) const GENERATED: [&str; 3] = ["etc/resolv.conf", "etc/hosts", "etc/hostname"];
/// Directories cairn mounts over.
pub(crate) const SYSTEM_DIRS: [&str; 3] = ["dev", "proc", "sys"];

/// What cairn placed, for the capture filter.
#[derive(Debug, Default, Clone)]
pub struct Placed {
    /// Mount targets and generated files (never captured, nor whiteouts of them).
    pub targets: BTreeSet<String>,
    /// Directories that exist only because of the scaffold (captured only
    /// as the parent of a real change).
    pub created_dirs: BTreeSet<String>,
}

/// A stub to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stub {
    Dir,
    File,
}

/// Normalize an absolute rootfs path to a layer-relative one; `None` for
/// `/`, relative paths or `..` components.
pub fn rel(target: &str) -> Option<String> {
    let t = target.strip_prefix('/')?;
    let parts: Vec<&str> = t
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Look `rel` up in layer dirs given top first, as the overlay would:
/// the first layer that has it wins; a whiteout hides it.
pub(crate) fn lookup(layers_top_first: &[&Path], rel: &str) -> Option<(PathBuf, Metadata)> {
    for layer in layers_top_first {
        let p = layer.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return None;
            }
            return Some((p, m));
        }
    }
    None
}

/// Resolve symlinks in `rel` as the image's rootfs would (absolute links
/// from its root, `..` never above it), so a mount target under e.g.
/// `/var/run -> ../run` lands where the image points.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn resolve_in_layers(layers_top_first: &[&Path], rel: &str) -> Result<String, String> {
    let mut todo: std::collections::VecDeque<String> = rel.split('/').map(str::to_owned).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let candidate = if done.is_empty() {
            c.clone()
        } else {
            format!("{}/{c}", done.join("/"))
        };
        match lookup(layers_top_first, &candidate) {
            Some((p, m)) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(format!("too many symlinks resolving `/{rel}`"));
                }
                let t = std::fs::read_link(&p).map_err(|e| super::sys::ctx(p.display(), e))?;
                let t = t
                    .to_str()
                    .ok_or_else(|| format!("non-UTF-8 link {}", p.display()))?;
                if t.starts_with('/') {
                    done.clear();
                }
                for part in t.split('/').rev() {
                    todo.push_front(part.to_owned());
                }
            }
            _ => done.push(c),
        }
    }
    if done.is_empty() {
        return Err(format!("mount target `/{rel}` resolves to /"));
    }
    Ok(done.join("/"))
}

/// `spec` with every mount target resolved through the image's symlinks.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn resolve_mount_targets(spec: &RunSpec, lowers: &[PathBuf]) -> Result<RunSpec, String> {
    let top_first: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
    let mut out = spec.clone();
    for m in &mut out.mounts {
        let r = rel(m.target()).ok_or_else(|| {
            format!(
                "mount target `{}` must be an absolute path below /",
                m.target()
            )
        })?;
        let resolved = format!("/{}", resolve_in_layers(&top_first, &r)?);
        match m {
            Mount::Cache { target, .. }
            | Mount::Secret { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Ssh { target, .. }
            | Mount::Tmpfs { target } => *target = resolved,
        }
    }
    Ok(out)
}

/// The stubs a spec needs (relative paths), with the kind of each.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn stubs(spec: &RunSpec) -> Result<Vec<(String, Stub)>, String> {
    let mut out: Vec<(String, Stub)> = SYSTEM_DIRS
        .iter()
        .map(|d| (d.to_string(), Stub::Dir))
        .chain(GENERATED.iter().map(|f| (f.to_string(), Stub::File)))
        .collect();
    for m in &spec.mounts {
        let target = rel(m.target()).ok_or_else(|| {
            format!(
                "mount target `{}` must be an absolute path below /",
                m.target()
            )
        })?;
        let kind = match m {
            Mount::Cache { .. } | Mount::Tmpfs { .. } => Stub::Dir,
            Mount::Secret { .. } | Mount::Ssh { .. } => Stub::File,
            Mount::Bind { from, source, .. } => {
                let src = source.trim_start_matches('/');
                let from: Vec<&Path> = from.iter().rev().map(PathBuf::as_path).collect();
                match src.is_empty() {
                    true => Stub::Dir,
                    false => match lookup(&from, src) {
                        Some((_, m)) if !m.is_dir() => Stub::File,
                        _ => Stub::Dir,
                    },
                }
            }
        };
        out.push((target, kind));
    }
    Ok(out)
}

/// Create the scaffold for `spec` in `dir` (as namespace root, so mirrored
/// owners map). `lowers` are bottom first.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn build(dir: &Path, lowers: &[PathBuf], spec: &RunSpec) -> Result<Placed, String> {
    let top_first: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
    let mut placed = Placed::default();
    let mut mirrored = Vec::new();
    for (target, kind) in stubs(spec)? {
        let comps: Vec<&str> = target.split('/').collect();
        for i in 1..comps.len() {
            let parent = comps[..i].join("/");
            ensure_dir(dir, &top_first, &parent, &mut placed, &mut mirrored)?;
        }
        match kind {
            Stub::Dir => ensure_dir(dir, &top_first, &target, &mut placed, &mut mirrored)?,
            Stub::File => {
                if let Some((_, m)) = lookup(&top_first, &target) {
                    if m.is_dir() {
                        return Err(format!(
                            "mount target `/{target}` is a directory in the image"
                        ));
                    }
                }
                let p = dir.join(&target);
                std::fs::write(&p, b"").map_err(|e| super::sys::ctx(p.display(), e))?;
            }
        }
        placed.targets.insert(target);
    }
    // Directory times last, children first: creating entries bumps them.
    for (p, m) in mirrored.iter().rev() {
        set_times(p, m)?;
    }
    Ok(placed)
}

/// Copy mode: create the missing stubs directly in the rootfs `root`
/// (existing files are left alone; the bind mounts cover them) and put back
/// the mtimes of the directories that gained an entry, so the snapshot
/// taken next sees the image's metadata.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn build_in_place(root: &Path, spec: &RunSpec) -> Result<Placed, String> {
    let mut placed = Placed::default();
    let mut touched: Vec<(PathBuf, Metadata)> = Vec::new();
    let mut create = |rel: &str, dir: bool, placed: &mut Placed| -> Result<(), String> {
        let p = root.join(rel);
        match std::fs::symlink_metadata(&p) {
            // A symlink would send the bind mount outside the rootfs:
            // replace it by the stub for the step (never captured).
            Ok(m) if m.file_type().is_symlink() && !dir => std::fs::remove_file(&p)
                .map_err(|e| super::sys::ctx(format!("remove {}", p.display()), e))?,
            Ok(m) if m.is_dir() != dir => {
                return Err(format!(
                    "`/{rel}` is not a {} in the image",
                    if dir { "directory" } else { "file" }
                ))
            }
            Ok(_) => return Ok(()),
            Err(_) => {}
        }
        if let Some(parent) = p.parent() {
            if let Ok(m) = std::fs::symlink_metadata(parent) {
                touched.push((parent.to_path_buf(), m));
            }
        }
        if dir {
            std::fs::create_dir(&p)
                .map_err(|e| super::sys::ctx(format!("create {}", p.display()), e))?;
            placed.created_dirs.insert(rel.to_owned());
        } else {
            std::fs::write(&p, b"").map_err(|e| super::sys::ctx(p.display(), e))?;
        }
        Ok(())
    };
    for (target, kind) in stubs(spec)? {
        let comps: Vec<&str> = target.split('/').collect();
        for i in 1..comps.len() {
            create(&comps[..i].join("/"), true, &mut placed)?;
        }
        create(&target, kind == Stub::Dir, &mut placed)?;
        placed.targets.insert(target);
    }
    for (p, m) in touched.iter().rev() {
        set_times(p, m)?;
    }
    Ok(placed)
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn ensure_dir(
    dir: &Path,
    top_first: &[&Path],
    rel: &str,
    placed: &mut Placed,
    mirrored: &mut Vec<(PathBuf, Metadata)>,
) -> Result<(), String> {
    let p = dir.join(rel);
    if p.is_dir() {
        return Ok(());
    }
    std::fs::create_dir(&p).map_err(|e| super::sys::ctx(format!("create {}", p.display()), e))?;
    match lookup(top_first, rel) {
        Some((_, m)) if m.is_dir() => {
            use std::os::unix::fs::PermissionsExt;
            std::os::unix::fs::lchown(&p, Some(m.uid()), Some(m.gid()))
                .map_err(|e| super::sys::ctx(format!("chown {}", p.display()), e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(|e| super::sys::ctx(format!("chmod {}", p.display()), e))?;
            mirrored.push((p, m));
        }
        Some(_) => {
            return Err(format!(
                "`/{rel}` is not a directory in the image (needed above a mount)"
            ))
        }
        None => {
            placed.created_dirs.insert(rel.to_owned());
        }
    }
    Ok(())
}

// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn set_times(p: &Path, m: &Metadata) -> Result<(), String> {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| super::sys::ctx(format!("set times of {}", p.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_normalizes_and_rejects() {
        assert_eq!(rel("/root/.npm/").as_deref(), Some("root/.npm"));
        assert_eq!(rel("//a/./b").as_deref(), Some("a/b"));
        assert_eq!(rel("/"), None);
        assert_eq!(rel("a/b"), None);
        assert_eq!(rel("/a/../b"), None);
    }

    #[test]
    fn resolves_symlinks_inside_the_image() {
        let t = tempfile::tempdir().unwrap();
        let l = t.path();
        std::fs::create_dir_all(l.join("run")).unwrap();
        std::fs::create_dir_all(l.join("var")).unwrap();
        std::os::unix::fs::symlink("../run", l.join("var/run")).unwrap();
        std::os::unix::fs::symlink("/var/run/../../../etc", l.join("abs")).unwrap();
        let r = |p| resolve_in_layers(&[l], p);
        assert_eq!(r("var/run/secrets/x").unwrap(), "run/secrets/x");
        assert_eq!(r("abs/y").unwrap(), "etc/y");
        std::os::unix::fs::symlink("loop", l.join("loop")).unwrap();
        assert!(r("loop/z").is_err());
    }

    #[test]
    fn scaffold_mirrors_image_dirs_and_records_created_ones() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("l");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(lower.join("proc")).unwrap();
        std::fs::set_permissions(lower.join("etc"), std::fs::Permissions::from_mode(0o751))
            .unwrap();
        let sc = t.path().join("s");
        std::fs::create_dir(&sc).unwrap();
        let mut spec = RunSpec::new(vec![lower.clone()], vec![]);
        spec.mounts.push(Mount::Tmpfs {
            target: "/run/x/y".into(),
        });
        let placed = build(&sc, &spec.lowers, &spec).unwrap();
        let m = std::fs::metadata(sc.join("etc")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o751);
        assert_eq!(
            m.mtime(),
            std::fs::metadata(lower.join("etc")).unwrap().mtime()
        );
        assert!(sc.join("etc/hosts").is_file() && sc.join("run/x/y").is_dir());
        let created: Vec<&str> = placed.created_dirs.iter().map(String::as_str).collect();
        assert_eq!(created, ["dev", "run", "run/x", "run/x/y", "sys"]);
        assert!(placed.targets.contains("etc/resolv.conf") && placed.targets.contains("run/x/y"));
    }
}
