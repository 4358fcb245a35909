//! `RUN --mount` types, applied by the sandbox init before pivot_root.
//! Targets already exist (the scaffold created them). Secrets are copied
//! into a private tmpfs so their owner and mode can be set without touching
//! the host file, and bound read-only; bind sources are resolved inside
//! their root with `RESOLVE_IN_ROOT`, so `..` and symlinks cannot escape.

use super::rootfs::{mount_overlay, remount_ro};
use super::scaffold::rel;
use super::sys::{self, ctx};
use super::Mount;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Apply `mounts` under `root` (the merged dir), using `scratch` for
/// private helpers (tmpfs for secrets, overlays for binds).
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn apply(mounts: &[Mount], root: &Path, scratch: &Path) -> Result<(), String> {
    let mut secrets: Option<PathBuf> = None;
    for (i, m) in mounts.iter().enumerate() {
        let target =
            root.join(rel(m.target()).ok_or_else(|| format!("bad mount target {}", m.target()))?);
        match m {
            Mount::Cache {
                host,
                uid,
                gid,
                mode,
                own_contents,
                ..
            } => {
                std::os::unix::fs::chown(host, Some(*uid), Some(*gid))
                    .map_err(|e| ctx(format!("chown cache {}", host.display()), e))?;
                if *own_contents && (*uid, *gid) != (0, 0) {
                    own_tree(host, *uid, *gid)?;
                }
                std::fs::set_permissions(host, std::fs::Permissions::from_mode(*mode & 0o7777))
                    .map_err(|e| ctx(format!("chmod cache {}", host.display()), e))?;
                sys::mount(
                    Some(host),
                    &target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
            }
            Mount::Secret {
                host,
                uid,
                gid,
                mode,
                ..
            } => {
                let dir = match &secrets {
                    Some(d) => d.clone(),
                    None => {
                        let d = scratch.join("secrets");
                        mkdir(&d)?;
                        sys::mount(
                            Some(Path::new("tmpfs")),
                            &d,
                            Some("tmpfs"),
                            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                            Some("mode=700,size=16m"),
                        )?;
                        secrets = Some(d.clone());
                        d
                    }
                };
                let copy = dir.join(i.to_string());
                std::fs::copy(host, &copy)
                    .map_err(|e| ctx(format!("read secret {}", host.display()), e))?;
                std::os::unix::fs::chown(&copy, Some(*uid), Some(*gid))
                    .map_err(|e| ctx("chown secret", e))?;
                std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(*mode & 0o7777))
                    .map_err(|e| ctx("chmod secret", e))?;
                sys::mount(Some(&copy), &target, None, libc::MS_BIND, None)?;
                remount_ro(&target)?;
            }
            Mount::Bind {
                from, source, rw, ..
            } => {
                let base = match (from.len(), rw) {
                    (0, _) => return Err(format!("bind mount on {} has no source", m.target())),
                    (1, false) => from[0].clone(),
                    _ => {
                        let b = scratch.join(format!("bind-{i}"));
                        let merged = b.join("merged");
                        mkdir(&merged)?;
                        let top_first: Vec<&Path> =
                            from.iter().rev().map(PathBuf::as_path).collect();
                        if *rw {
                            let (u, w) = (b.join("upper"), b.join("work"));
                            mkdir(&u)?;
                            mkdir(&w)?;
                            mount_overlay(&top_first, Some((&u, &w)), &merged)?;
                        } else {
                            mount_overlay(&top_first, None, &merged)?;
                        }
                        merged
                    }
                };
                let fd = open_in_root(&base, source)?;
                let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                sys::mount(
                    Some(&src),
                    &target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
                if !rw {
                    remount_ro(&target)?;
                }
            }
            // The proxy socket C listens on (super::ssh), bound over the stub.
            Mount::Ssh { .. } => sys::mount(
                Some(&super::ssh::proxy_path(scratch, i)),
                &target,
                None,
                libc::MS_BIND,
                None,
            )?,
            Mount::Tmpfs { .. } => sys::mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some("mode=1777"),
            )?,
        }
    }
    Ok(())
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| ctx(format!("create {}", p.display()), e))
}

/// An `O_PATH` fd for `source` resolved as if `base` were `/`.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn open_in_root(base: &Path, source: &str) -> Result<std::os::fd::OwnedFd, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        base,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ctx(format!("open {}", base.display()), e))?;
    let src = source.trim_start_matches('/');
    let src = if src.is_empty() { "." } else { src };
    rustix::fs::openat2(
        &root,
        src,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| {
        ctx(
            format!("resolve bind source {source} in {}", base.display()),
            e,
        )
    })
}

/// Give everything under `dir` (symlinks themselves, never their targets)
/// to `uid`/`gid`: the contents of a cache mount the builder restored.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn own_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    for e in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let e = e.map_err(|e| format!("reading cache {}: {e}", dir.display()))?;
        std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid))
            .map_err(|err| ctx(format!("chown cache {}", e.path().display()), err))?;
    }
    Ok(())
}
