//! `RUN --mount=type=ssh`: the command sees a socket at the mount target
//! that forwards every connection, byte for byte, to the host's ssh agent.
//!
//! The helper H (host namespaces, the caller's user) listens on
//! `scratch/ssh-N.sock` before it forks the sandbox child C, and serves the
//! connections on threads started after that fork, until the step ends (C
//! cannot: a process that unshared a pid namespace may not start threads).
//! C, namespace root, gives the socket the mount's `uid`/`gid`/`mode` — it is
//! cairn's own socket, the host's is never touched — and the init
//! bind-mounts it onto the target. Nothing of this lives in the rootfs: the
//! target is a scaffold stub, never captured.

use super::sys::ctx;
use super::Mount;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The proxy socket of the `index`-th mount of a spec.
pub(crate) fn proxy_path(scratch: &Path, index: usize) -> PathBuf {
    scratch.join(format!("ssh-{index}.sock"))
}

/// A path for `bind`/`connect` that fits `sun_path` (108 bytes) wherever
/// `p` is: its directory through `/proc/self/fd`. Keep the fd while the path is used.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn short(p: &Path) -> Result<(std::os::fd::OwnedFd, PathBuf), String> {
    let dir = p.parent().unwrap_or(Path::new("/"));
    let name = p
        .file_name()
        .ok_or_else(|| format!("socket path {} has no name", p.display()))?;
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ctx(format!("open {}", dir.display()), e))?;
    let short = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .join(name);
    Ok((fd, short))
}

/// H: listen on a proxy socket for every ssh mount of `mounts` (before C
/// is forked, so the sockets exist when the init mounts them).
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn listen(
    mounts: &[Mount],
    scratch: &Path,
) -> Result<Vec<(UnixListener, PathBuf)>, String> {
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let Mount::Ssh { host, .. } = m else {
            continue;
        };
        std::fs::create_dir_all(scratch)
            .map_err(|e| ctx(format!("create {}", scratch.display()), e))?;
        let path = proxy_path(scratch, i);
        let (_dir, at) = short(&path)?;
        let l =
            UnixListener::bind(&at).map_err(|e| ctx(format!("listen on {}", path.display()), e))?;
        out.push((l, host.clone()));
    }
    Ok(out)
}

/// C, as namespace root: give each proxy socket its mount's owner and mode.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn set_owners(mounts: &[Mount], scratch: &Path) -> Result<(), String> {
    for (i, m) in mounts.iter().enumerate() {
        let Mount::Ssh { uid, gid, mode, .. } = m else {
            continue;
        };
        let path = proxy_path(scratch, i);
        std::os::unix::fs::chown(&path, Some(*uid), Some(*gid))
            .map_err(|e| ctx(format!("chown the ssh socket to {uid}:{gid}"), e))?;
        std::fs::set_permissions(
            &path,
            std::os::unix::fs::PermissionsExt::from_mode(*mode & 0o7777),
        )
        .map_err(|e| ctx("chmod the ssh socket", e))?;
    }
    Ok(())
}

/// Serve each listener on its own thread: every connection is joined to a
/// new connection to the host agent. The threads end with the process.
pub(crate) fn serve(listeners: Vec<(UnixListener, PathBuf)>) {
    for (l, host) in listeners {
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(inner) = conn else { continue };
                let host = host.clone();
                std::thread::spawn(move || {
                    // A refused agent looks to the command like a closed one.
                    if let Ok(outer) = short(&host)
                        .and_then(|(_fd, at)| UnixStream::connect(at).map_err(|e| e.to_string()))
                    {
                        join(inner, outer);
                    }
                });
            }
        });
    }
}

/// Copy both ways until each side has closed its half.
fn join(a: UnixStream, b: UnixStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pipe(a, b));
    pipe(b2, a2);
    let _ = up.join();
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}
