//! Entering the sandbox namespaces: fork a child that unshares, let the
//! parent (still in the host user namespace) install its id maps, then
//! become root inside. Also the parent's wait that kills the child when the
//! caller disappears.

use super::idmap::{Identity, IdentityKind};
use super::sys;

/// Namespaces the helper's child unshares besides the user namespace (the
/// init unshares its own mount namespace, so the child keeps the host view
/// for capture).
pub(crate) const STEP_FLAGS: libc::c_int =
    libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;

/// Fork a child that unshares `flags` (plus `CLONE_NEWUSER` when
/// `identity` is given), waits until this process has written its maps,
/// becomes namespace root and exits with `body()`'s code. Returns its pid.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn spawn_child(
    identity: Option<&Identity>,
    flags: libc::c_int,
    body: impl FnOnce() -> i32,
) -> Result<libc::pid_t, String> {
    let (ready_r, ready_w) = sys::pipe()?;
    let (go_r, go_w) = sys::pipe()?;
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    let pid = sys::fork()?;
    if pid == 0 {
        sys::close(ready_r);
        sys::close(go_w);
        let code = match child_setup(identity, flags, parent, ready_w, go_r) {
            Ok(()) => body(),
            Err(msg) => {
                sys::write_all_fd(ready_w, format!("E{msg}").as_bytes());
                126
            }
        };
        // SAFETY: leave without running the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
    sys::close(ready_w);
    sys::close(go_r);
    let said = sys::read_to_end_fd(ready_r);
    sys::close(ready_r);
    let result = match said.first() {
        Some(b'K') => match identity {
            Some(id) => id.apply(pid),
            None => Ok(()),
        },
        Some(b'E') => Err(String::from_utf8_lossy(&said[1..]).into_owned()),
        _ => Err("the sandbox child exited during setup".into()),
    };
    if result.is_ok() {
        sys::write_all_fd(go_w, b"G");
    }
    sys::close(go_w);
    if let Err(e) = result {
        let _ = sys::wait(pid);
        return Err(e);
    }
    Ok(pid)
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn child_setup(
    identity: Option<&Identity>,
    flags: libc::c_int,
    parent: libc::pid_t,
    ready_w: libc::c_int,
    go_r: libc::c_int,
) -> Result<(), String> {
    sys::die_with_parent(Some(parent))?;
    let user = if identity.is_some() {
        libc::CLONE_NEWUSER
    } else {
        0
    };
    sys::unshare(flags | user)?;
    sys::write_all_fd(ready_w, b"K");
    sys::close(ready_w);
    let go = sys::read_to_end_fd(go_r);
    sys::close(go_r);
    if go.first() != Some(&b'G') {
        // The parent failed to write the maps and reports why itself.
        // SAFETY: plain exit.
        unsafe { libc::_exit(126) }
    }
    match identity {
        Some(id) => sys::become_root(id.kind != IdentityKind::Single),
        None => Ok(()),
    }
}

/// Wait for `pid`; if `lifeline` (the caller's pipe on our stdin) closes
/// first, SIGKILL `pid` — its PDEATHSIG chain then ends the whole sandbox.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn wait_or_kill(pid: libc::pid_t, lifeline: libc::c_int) -> Result<i32, String> {
    // SAFETY: pidfd_open with valid arguments; returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if pidfd >= 0 {
        let mut watch_lifeline = true;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if watch_lifeline { lifeline } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: valid pollfd array.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                break;
            }
            if fds[1].revents != 0 {
                let mut b = [0u8; 64];
                // SAFETY: valid buffer.
                let r = unsafe { libc::read(lifeline, b.as_mut_ptr().cast(), b.len()) };
                if r <= 0 {
                    // EOF: the caller is gone.
                    // SAFETY: plain signal.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    watch_lifeline = false;
                }
            }
        }
        sys::close(pidfd);
    }
    sys::wait(pid).map(sys::exit_code)
}
