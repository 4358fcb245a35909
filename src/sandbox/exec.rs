//! The command process: after pivot_root, resolve `USER` in the rootfs,
//! drop to it, enter the working directory and `execve` the argv with the
//! step's environment (`PATH` searched inside the rootfs).

use super::sys;
use super::user;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Docker's default `PATH` when the environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The final environment: `env` in order (last duplicate wins, first
/// position kept), plus `PATH` and `HOME` when missing.
pub fn environment(env: &[(String, String)], home: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !out.iter().any(|(k, _)| k == "HOME") {
        out.push(("HOME".into(), home.into()));
    }
    out
}

/// Find `prog` like execvp: as is when it contains `/`, else in `path`.
pub fn find_program(prog: &str, path: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Some(PathBuf::from(prog));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file())
                && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
        })
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte: {s:?}"))
}

/// Pipes to hand the chown-interception listener to the init
/// ([`super::ownership`]): the fd number goes out on `send`, then the
/// command waits for a byte on `ack` before closing its copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intercept {
    pub send: libc::c_int,
    pub ack: libc::c_int,
}

/// Become the step's user and exec the command. Only returns on failure.
pub(crate) fn exec_command(
    argv: &[String],
    env: &[(String, String)],
    cwd: &str,
    user_spec: &str,
    set_groups: bool,
    intercept: Option<Intercept>,
) -> String {
    match try_exec(argv, env, cwd, user_spec, set_groups, intercept) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn try_exec(
    argv: &[String],
    env: &[(String, String)],
    cwd: &str,
    user_spec: &str,
    set_groups: bool,
    intercept: Option<Intercept>,
) -> Result<std::convert::Infallible, String> {
    let prog = argv.first().ok_or("empty command")?;
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    let u = user::resolve(user_spec, &read("/etc/passwd"), &read("/etc/group"))
        .map_err(|e| e.to_string())?;
    // The command's files must not depend on the umask of whoever started cairn: runc and BuildKit give every
    // process 0022, so a file RUN writes is 0644 on every machine.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o022) };
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    // buildkit creates a missing working directory, owned by root.
    std::fs::create_dir_all(cwd).map_err(|e| sys::ctx(format!("create working dir {cwd}"), e))?;
    let env = environment(env, &u.home);
    // SAFETY: plain id syscalls on a valid array.
    unsafe {
        if set_groups {
            let gids: Vec<libc::gid_t> = u.groups.clone();
            sys::cvt(libc::setgroups(gids.len(), gids.as_ptr()))
                .map_err(|e| sys::ctx(format!("setgroups {:?}", u.groups), e))?;
        }
        sys::cvt(libc::setresgid(u.gid, u.gid, u.gid))
            .map_err(|e| sys::ctx(format!("setgid {} for USER {user_spec}", u.gid), e))?;
        sys::cvt(libc::setresuid(u.uid, u.uid, u.uid))
            .map_err(|e| sys::ctx(format!("setuid {} for USER {user_spec}", u.uid), e))?;
    }
    std::env::set_current_dir(cwd).map_err(|e| sys::ctx(format!("chdir {cwd}"), e))?;
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let file = find_program(prog, path)
        .ok_or_else(|| format!("exec: \"{prog}\": executable file not found in $PATH"))?;
    let cfile = CString::new(file.as_os_str().as_bytes()).map_err(|_| "NUL in program path")?;
    let cargs = argv
        .iter()
        .map(|a| cstring(a, "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let cenv = env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}"), "environment"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pargs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    pargs.push(std::ptr::null());
    let mut penv: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    penv.push(std::ptr::null());
    if let Some(i) = intercept {
        let fd = super::ownership::install_filter()?;
        sys::write_all_fd(i.send, fd.to_string().as_bytes());
        sys::close(i.send);
        let mut ack = [0u8; 1];
        // SAFETY: valid one-byte buffer.
        let n = unsafe { libc::read(i.ack, ack.as_mut_ptr().cast(), 1) };
        sys::close(fd);
        if n != 1 {
            return Err("the sandbox init did not take the chown listener".into());
        }
    }
    // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(cfile.as_ptr(), pargs.as_ptr(), penv.as_ptr()) };
    Err(sys::ctx(
        format!("exec {}", file.display()),
        std::io::Error::last_os_error(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_dedups_and_defaults() {
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string()),
            ("A".to_string(), "3".to_string()),
        ];
        let got = environment(&env, "/root");
        let keys: Vec<String> = got.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            keys,
            ["A=3", "B=2", &format!("PATH={DEFAULT_PATH}"), "HOME=/root"]
        );
    }

    #[test]
    fn finds_programs_on_path() {
        assert_eq!(find_program("./x", ""), Some(PathBuf::from("./x")));
        assert_eq!(
            find_program("sh", "/nonexistent:/bin"),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(find_program("no-such-prog-xyz", "/bin"), None);
    }
}
