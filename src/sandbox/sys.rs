//! Thin, checked wrappers over the few raw syscalls rustix does not cover
//! (fork, unshare, id changes, mount(2)). Errors name the call and path.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// A failed call with its context, as text for the helper's report.
pub(crate) fn ctx(what: impl std::fmt::Display, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// `-1` → `Err(last_os_error)`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path as a C string (paths with NUL bytes are rejected).
pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `mount(2)`, with `source`/`fstype`/`data` optional.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let conv = || -> io::Result<_> {
        let s = source.map(cpath).transpose()?;
        let t = cpath(target)?;
        let f = fstype
            .map(|f| CString::new(f).map_err(|_| io::ErrorKind::InvalidInput))
            .transpose()?;
        let d = data
            .map(|d| CString::new(d).map_err(|_| io::ErrorKind::InvalidInput))
            .transpose()?;
        Ok((s, t, f, d))
    };
    let (s, t, f, d) = conv().map_err(|e| ctx(format!("mount {}", target.display()), e))?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string.
    let r = unsafe {
        libc::mount(
            ptr(&s),
            t.as_ptr(),
            ptr(&f),
            flags,
            ptr(&d) as *const libc::c_void,
        )
    };
    cvt(r).map(drop).map_err(|e| {
        ctx(
            format!(
                "mount {} on {} ({})",
                source.map_or("-".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("bind")
            ),
            e,
        )
    })
}

/// `fork()`. Only called from the single-threaded helper.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn fork() -> Result<libc::pid_t, String> {
    // SAFETY: the helper is single-threaded (a fresh exec of cairn), so the
    // child may allocate and run arbitrary code.
    let pid = unsafe { libc::fork() };
    cvt(pid).map_err(|e| ctx("fork", e))
}

/// `waitpid(pid)` retrying on EINTR; returns the raw status.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn wait(pid: libc::pid_t) -> Result<libc::c_int, String> {
    loop {
        let mut status = 0;
        // SAFETY: plain syscall with a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        match cvt(r) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ctx(format!("waitpid {pid}"), e)),
        }
    }
}

/// Shell-style exit code of a wait status: the code, or 128+signal.
pub(crate) fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    }
}

/// Kill this process with SIGKILL when its parent dies; fails when the
/// parent is already gone (then the caller should exit). `expected_parent`
/// is `None` for pid 1 of a new pid namespace, whose parent is invisible.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn die_with_parent(expected_parent: Option<libc::pid_t>) -> Result<(), String> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })
        .map_err(|e| ctx("prctl(PR_SET_PDEATHSIG)", e))?;
    // SAFETY: getppid cannot fail.
    if expected_parent.is_some_and(|p| unsafe { libc::getppid() } != p) {
        return Err("parent exited during setup".into());
    }
    Ok(())
}

/// `unshare(flags)`.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn unshare(flags: libc::c_int) -> Result<(), String> {
    // SAFETY: called in a single-threaded process.
    cvt(unsafe { libc::unshare(flags) })
        .map(drop)
        .map_err(|e| ctx("unshare", e))
}

/// Enter a new mount namespace whose mounts never propagate to the host.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn private_mount_ns() -> Result<(), String> {
    unshare(libc::CLONE_NEWNS)?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
}

/// Become root of the current user namespace: gid, groups, then uid.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn become_root(set_groups: bool) -> Result<(), String> {
    // SAFETY: plain id syscalls.
    unsafe {
        cvt(libc::setresgid(0, 0, 0)).map_err(|e| ctx("setresgid(0)", e))?;
        if set_groups {
            cvt(libc::setgroups(0, std::ptr::null())).map_err(|e| ctx("setgroups([])", e))?;
        }
        cvt(libc::setresuid(0, 0, 0)).map_err(|e| ctx("setresuid(0)", e))?;
    }
    Ok(())
}

/// Write all of `buf` to raw fd `fd`, ignoring errors (reporting channels).
pub(crate) fn write_all_fd(fd: libc::c_int, buf: &[u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: valid buffer slice.
        let n = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        off += n as usize;
    }
}

/// Read raw fd `fd` to EOF.
pub(crate) fn read_to_end_fd(fd: libc::c_int) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            out.extend_from_slice(&buf[..n as usize]);
        } else if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            return out;
        }
    }
}

/// A pipe (both ends close-on-exec) as raw fds `(read, write)`.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn pipe() -> Result<(libc::c_int, libc::c_int), String> {
    let mut fds = [0; 2];
    // SAFETY: valid out array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).map_err(|e| ctx("pipe2", e))?;
    Ok((fds[0], fds[1]))
}

/// Close a raw fd, ignoring errors.
pub(crate) fn close(fd: libc::c_int) {
    // SAFETY: the caller owns fd.
    unsafe {
        libc::close(fd);
    }
}
