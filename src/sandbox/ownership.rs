//! Ownership changes under a single-id mapping (no subordinate ids).
//!
//! With only `0 UID 1` mapped, `chown` to any other id fails with EINVAL,
//! so `adduser -u 1001 x` or `chown -R x /app` would break the step. In
//! that mode the command runs under a seccomp filter that sends the
//! chown family (`chown`, `lchown`, `fchown`, `fchownat`) to the sandbox
//! init (`SECCOMP_RET_USER_NOTIF`). The init, as namespace root:
//!
//! - lets the real call proceed when every requested id is mapped (0 or -1),
//!   and drops any earlier record;
//! - otherwise records the requested owner in the xattr
//!   [`OWNER_XATTR`] = `"UID:GID"` on the target (overlay copies it up) and
//!   reports success without changing the inode.
//!
//! Capture then reports the recorded owner (umoci's rootless approach,
//! with the record kept on the inode). Honest limits: inside the step
//! `stat` still shows uid 0; user xattrs cannot be set on symlinks, so an
//! `lchown` of a symlink is reported as done but not recorded; `setuid` to
//! another id (`USER node`, `su`) still fails; layer directories for this
//! mode must carry their non-root owners in the same xattr.

use super::sys::{self, ctx};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The xattr holding a recorded owner, `"UID:GID"`.
pub const OWNER_XATTR: &str = "user.cairn.owner";

/// `AUDIT_ARCH_*` of this build (seccomp_data.arch).
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xC000_00B7;

/// The syscalls to intercept on this architecture.
fn syscalls() -> Vec<u32> {
    let mut v = vec![libc::SYS_fchown as u32, libc::SYS_fchownat as u32];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_chown as u32, libc::SYS_lchown as u32]);
    v
}

/// Parse an [`OWNER_XATTR`] value.
pub fn parse_owner(value: &[u8]) -> Option<(u32, u32)> {
    let s = std::str::from_utf8(value).ok()?;
    let (u, g) = s.split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// In the command process, before exec: install the filter and return the
/// listener fd (the init takes a copy with `pidfd_getfd`).
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn install_filter() -> Result<RawFd, String> {
    let calls = syscalls();
    let n = calls.len() as u8;
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let mut prog = vec![
        stmt(ld, 4), // seccomp_data.arch
        jeq(ARCH, 1, 0),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(ld, 0), // seccomp_data.nr
    ];
    for (i, nr) in calls.iter().enumerate() {
        // Jump to the USER_NOTIF return after the remaining checks + ALLOW.
        prog.push(jeq(*nr, n - i as u8, 0));
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_USER_NOTIF,
    ));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: prctl/seccomp with a valid filter program that outlives the call.
    unsafe {
        sys::cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            .map_err(|e| ctx("prctl(NO_NEW_PRIVS)", e))?;
        let fd = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        );
        if fd < 0 {
            return Err(ctx(
                "install the chown seccomp filter",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(fd as RawFd)
    }
}

/// In the init: a copy of fd `fd` of process `pidfd`.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn take_fd(pidfd: RawFd, fd: RawFd) -> Result<OwnedFd, String> {
    // SAFETY: pidfd_getfd returns a new fd we own, or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if r < 0 {
        return Err(ctx("pidfd_getfd", std::io::Error::last_os_error()));
    }
    // SAFETY: r is a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Handle one notification on `listener`. Errors are per-request and
/// answered to the caller; only a broken listener returns `Err`.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn handle_one(listener: RawFd) -> Result<(), String> {
    // SAFETY: zeroed plain-data structs filled by the kernel.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a correctly sized out struct.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            // The caller died or was interrupted: nothing to answer.
            Some(libc::ENOENT) | Some(libc::EINTR) => Ok(()),
            _ => Err(ctx("seccomp notification", e)),
        };
    }
    let (flags, error) = match decide(&req, listener) {
        Ok(Action::Continue) => (libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32, 0),
        Ok(Action::Done) => (0, 0),
        Err(errno) => (0, -errno),
    };
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error,
        flags,
    };
    // SAFETY: ioctl with a valid response struct. ENOENT = the caller is gone.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    Ok(())
}

enum Action {
    Continue,
    Done,
}

/// Where the call points, whether to follow a final symlink, and the ids.
fn decide(req: &libc::seccomp_notif, listener: RawFd) -> Result<Action, i32> {
    let a = req.data.args;
    let pid = req.pid;
    let nr = i64::from(req.data.nr);
    let proc_ = PathBuf::from(format!("/proc/{pid}"));
    let id = |v: u64| v as u32; // -1 = unchanged
    let (target, follow, uid, gid) = if nr == libc::SYS_fchown {
        (
            proc_.join(format!("fd/{}", a[0] as i32)),
            true,
            id(a[1]),
            id(a[2]),
        )
    } else if nr == libc::SYS_fchownat {
        let path = read_path(pid, a[1])?;
        let dirfd = a[0] as i32;
        let flags = a[4] as i32;
        let base = if dirfd == libc::AT_FDCWD {
            proc_.join("cwd")
        } else {
            proc_.join(format!("fd/{dirfd}"))
        };
        let t = if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            base
        } else if path.starts_with('/') {
            // The init shares the command's root.
            PathBuf::from(path)
        } else {
            base.join(path)
        };
        (
            t,
            flags & libc::AT_SYMLINK_NOFOLLOW == 0,
            id(a[2]),
            id(a[3]),
        )
    } else {
        // chown / lchown (x86_64)
        let path = read_path(pid, a[0])?;
        let t = if path.starts_with('/') {
            PathBuf::from(path)
        } else {
            proc_.join("cwd").join(path)
        };
        #[cfg(target_arch = "x86_64")]
        let follow = nr == libc::SYS_chown;
        #[cfg(not(target_arch = "x86_64"))]
        let follow = true;
        (t, follow, id(a[1]), id(a[2]))
    };
    // The path was read from the caller's memory: make sure it still waits.
    let mut nid = req.id;
    // SAFETY: ioctl with a valid u64.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut nid) } != 0 {
        return Err(libc::ENOENT);
    }
    let mapped = |v: u32| v == 0 || v == u32::MAX;
    let errno = |e: rustix::io::Errno| e.raw_os_error();
    if mapped(uid) && mapped(gid) {
        let r = if follow {
            rustix::fs::removexattr(&target, OWNER_XATTR)
        } else {
            rustix::fs::lremovexattr(&target, OWNER_XATTR)
        };
        return match r {
            Ok(()) | Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::PERM) => {
                Ok(Action::Continue)
            }
            Err(e) => Err(errno(e)),
        };
    }
    let current = current_owner(&target, follow).map_err(errno)?;
    let new_uid = if uid == u32::MAX { current.0 } else { uid };
    let new_gid = if gid == u32::MAX { current.1 } else { gid };
    let value = format!("{new_uid}:{new_gid}");
    let flags = rustix::fs::XattrFlags::empty();
    let r = if follow {
        rustix::fs::setxattr(&target, OWNER_XATTR, value.as_bytes(), flags)
    } else {
        rustix::fs::lsetxattr(&target, OWNER_XATTR, value.as_bytes(), flags)
    };
    match r {
        Ok(()) => Ok(Action::Done),
        // Symlinks cannot carry user xattrs: pretend, as documented above.
        Err(rustix::io::Errno::PERM) if !follow => Ok(Action::Done),
        Err(e) => Err(errno(e)),
    }
}

fn current_owner(target: &std::path::Path, follow: bool) -> Result<(u32, u32), rustix::io::Errno> {
    let mut buf = [0u8; 32];
    let r = if follow {
        rustix::fs::getxattr(target, OWNER_XATTR, &mut buf[..])
    } else {
        rustix::fs::lgetxattr(target, OWNER_XATTR, &mut buf[..])
    };
    if let Ok(n) = r {
        if let Some(o) = parse_owner(&buf[..n]) {
            return Ok(o);
        }
    }
    let st = if follow {
        rustix::fs::stat(target)?
    } else {
        rustix::fs::lstat(target)?
    };
    Ok((st.st_uid, st.st_gid))
}

/// A NUL-terminated path from the caller's memory.
fn read_path(pid: u32, addr: u64) -> Result<String, i32> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|_| libc::EFAULT)?;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < libc::PATH_MAX as usize {
        // Read up to the page end so an unmapped next page cannot fail us.
        let chunk = 4096 - (at % 4096) as usize;
        let mut buf = vec![0u8; chunk];
        let n = mem.read_at(&mut buf, at).map_err(|_| libc::EFAULT)?;
        if n == 0 {
            return Err(libc::EFAULT);
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return String::from_utf8(out).map_err(|_| libc::EINVAL);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Err(libc::ENAMETOOLONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_values() {
        assert_eq!(parse_owner(b"1001:1001"), Some((1001, 1001)));
        assert_eq!(parse_owner(b"1001"), None);
        assert_eq!(parse_owner(b"x:1"), None);
    }
}
