//! The sandbox helper: the `cairn __sandbox RUN_DIR` process (H in the
//! module docs of [`super`]) and the code of its children C (namespace
//! root), I (pid 1, rootfs) and P (the command). A fresh exec, so it is
//! single-threaded and may `fork` and `unshare` freely.

use super::capture;
use super::copy;
use super::exec::{exec_command, Intercept};
use super::idmap::IdentityKind;
use super::namespaces::{self, STEP_FLAGS};
use super::ownership;
use super::protocol::RootfsKind;
use super::protocol::{Request, RequestKind, Response, REQUEST_FILE, RESULT_ERROR, RESULT_FILE};
use super::rootfs::{self, Paths};
use super::scaffold;
use super::state;
use super::sys::{self, ctx};
use super::{Network, RunSpec};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The hidden subcommand name.
pub const SUBCOMMAND: &str = "__sandbox";

/// Arguments of the hidden `cairn __sandbox` subcommand.
#[derive(Debug, clap::Args)]
pub struct HelperArgs {
    /// The run directory holding `request.json`.
    pub run_dir: PathBuf,
}

/// Entry point of the helper process.
pub fn main(args: HelperArgs) -> ExitCode {
    let result_path = args.run_dir.join(RESULT_FILE);
    let request: Request = match std::fs::read(args.run_dir.join(REQUEST_FILE))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            write_response(&result_path, &Response::error(format!("bad request: {e}")));
            return ExitCode::from(2);
        }
    };
    let identity = request.use_userns.then_some(&request.identity);
    let flags = match &request.kind {
        RequestKind::Run(spec) if spec.network == Network::None => STEP_FLAGS | libc::CLONE_NEWNET,
        RequestKind::Run(_) | RequestKind::Probe => STEP_FLAGS,
        RequestKind::Exec { .. } => 0,
    };
    // RUN --mount=type=ssh: H proxies to the host's agent (see super::ssh).
    let ssh = match &request.kind {
        RequestKind::Run(spec) => super::ssh::listen(
            &spec.mounts,
            &Paths {
                run: request.run_dir.clone(),
            }
            .scratch(),
        ),
        _ => Ok(Vec::new()),
    };
    let ssh = match ssh {
        Ok(l) => l,
        Err(e) => {
            write_response(&result_path, &Response::error(e));
            return ExitCode::SUCCESS;
        }
    };
    let spawned = namespaces::spawn_child(identity, flags, || match &request.kind {
        RequestKind::Run(spec) => child_run(&request, spec),
        RequestKind::Probe => child_probe(&request),
        RequestKind::Exec { argv, cwd } => child_exec(argv, cwd),
    });
    // Threads only after the fork.
    if spawned.is_ok() {
        super::ssh::serve(ssh);
    }
    let response = match spawned.and_then(|pid| namespaces::wait_or_kill(pid, 0)) {
        Ok(code) => match request.kind {
            RequestKind::Exec { .. } => Some(Response {
                exit_code: Some(code),
                ..Default::default()
            }),
            _ if result_path.exists() => None,
            _ => Some(Response::error(format!(
                "the sandbox exited with code {code} before reporting"
            ))),
        },
        Err(e) => Some(Response {
            userns_error: true,
            ..Response::error(e)
        }),
    };
    if let Some(r) = response {
        write_response(&result_path, &r);
    }
    ExitCode::SUCCESS
}

/// Write the result under a temporary name and rename it, so a partial
/// file is never read. When that fails (a full disk), the cause goes to
/// stderr as one [`RESULT_ERROR`] line, which the caller reports instead.
fn write_response(path: &Path, response: &Response) {
    let tmp = path.with_extension("json.tmp");
    let written = serde_json::to_vec(response)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| {
                    format!(
                        "cannot write {}: {e} (free space there, or use another --cache-dir)",
                        tmp.display()
                    )
                })
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // What the result would have said comes first: it is the cause
        // (a full disk also fails the capture, which names the file).
        let message = match &response.error {
            Some(first) => format!("{first}; then {e}"),
            None => e,
        };
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("\n{RESULT_ERROR}{}\n", message.replace('\n', " ")).as_bytes(),
        );
    }
}

/// Point stdin at /dev/null (the helper's stdin is the caller's lifeline).
fn null_stdin() {
    if let Ok(f) = std::fs::File::open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 0 with a valid fd.
        unsafe { libc::dup2(f.as_raw_fd(), 0) };
    }
}

fn child_exec(argv: &[String], cwd: &Path) -> i32 {
    use std::os::unix::process::CommandExt;
    null_stdin();
    let Some((prog, args)) = argv.split_first() else {
        return 127;
    };
    let err = std::process::Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .exec();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("cairn sandbox: exec {prog}: {err}\n").as_bytes(),
    );
    127
}

/// C for a RUN step: prepare, run I, capture, report. Always writes the result.
fn child_run(request: &Request, spec: &RunSpec) -> i32 {
    null_stdin();
    let paths = Paths {
        run: request.run_dir.clone(),
    };
    state::sweep(&request.state_dir, &request.run_dir);
    let mut response = run_and_capture(request, spec, &paths).unwrap_or_else(Response::error);
    if request.use_userns && request.identity.kind != IdentityKind::Root {
        capture::hand_back(
            &paths.run,
            request.identity.kind == IdentityKind::Subordinate,
        );
    }
    if response.error.is_some() {
        response.entries.clear();
    }
    write_response(&paths.run.join(RESULT_FILE), &response);
    0
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn run_and_capture(request: &Request, spec: &RunSpec, paths: &Paths) -> Result<Response, String> {
    for l in &spec.lowers {
        if !l.is_absolute() || !l.is_dir() {
            return Err(format!(
                "layer directory {} is not an absolute directory",
                l.display()
            ));
        }
    }
    let mut spec = scaffold::resolve_mount_targets(spec, &spec.lowers)?;
    secrets_into_env(&mut spec)?;
    let spec = &spec;
    for d in [
        paths.upper(),
        paths.work(),
        paths.merged(),
        paths.scaffold(),
        paths.generated().join("etc"),
        paths.scratch(),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| ctx(format!("create {}", d.display()), e))?;
    }
    let copy = request.rootfs == RootfsKind::Copy;
    let (placed, snapshot) = if copy {
        let root = paths.rootfs();
        std::fs::create_dir_all(&root).map_err(|e| ctx(format!("create {}", root.display()), e))?;
        copy::assemble(&spec.lowers, &root)?;
        let placed = scaffold::build_in_place(&root, spec)?;
        (placed, Some(copy::Snapshot::take(&root)?))
    } else {
        (
            scaffold::build(&paths.scaffold(), &spec.lowers, spec)?,
            None,
        )
    };
    write_generated(&paths.generated(), spec)?;
    let scaffold_dir = paths.scaffold();
    let mut top_first: Vec<&Path> = vec![&scaffold_dir];
    top_first.extend(spec.lowers.iter().rev().map(PathBuf::as_path));
    let opts = InitOptions {
        devpts_gid5: !request.use_userns || request.identity.maps_gid(5),
        set_groups: !request.use_userns || request.identity.kind != IdentityKind::Single,
        rootfs: request.rootfs,
    };

    super::ssh::set_owners(&spec.mounts, &paths.scratch())?;
    let (report_r, report_w) = sys::pipe()?;
    let init = sys::fork()?;
    if init == 0 {
        sys::close(report_r);
        let report = match sys::die_with_parent(None) {
            Ok(()) => init_main(spec, paths, &top_first, &opts),
            Err(e) => format!("E{e}"),
        };
        sys::write_all_fd(report_w, report.as_bytes());
        // SAFETY: plain exit.
        unsafe { libc::_exit(0) }
    }
    sys::close(report_w);
    let report = String::from_utf8_lossy(&sys::read_to_end_fd(report_r)).into_owned();
    sys::close(report_r);
    let status = sys::wait(init)?;
    let (nanos, code) = match report.strip_prefix('E') {
        Some(msg) => return Err(msg.to_owned()),
        None => parse_report(&report).ok_or_else(|| {
            format!(
                "the sandbox init ended ({}) without a report",
                sys::exit_code(status)
            )
        })?,
    };
    let capture_started = std::time::Instant::now();
    let entries = match (code, &snapshot) {
        (0, Some(before)) => copy::diff(&paths.rootfs(), before, spec.epoch, &placed)?,
        (0, None) => capture::capture(
            &paths.upper(),
            &top_first[1..],
            spec.epoch,
            &placed,
            !opts.set_groups,
        )?,
        _ => Vec::new(),
    };
    Ok(Response {
        exit_code: Some(code),
        command_nanos: nanos,
        capture_nanos: u64::try_from(capture_started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        entries,
        content_dir: if copy { "rootfs" } else { "upper" }.into(),
        ..Default::default()
    })
}

/// Append `RUN --mount=type=secret,env=NAME` variables to the command's
/// environment, read from their host files here (before the rootfs is
/// entered), so the values live only in this process and the command's.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn secrets_into_env(spec: &mut RunSpec) -> Result<(), String> {
    for (name, host) in std::mem::take(&mut spec.secret_env) {
        let bytes = std::fs::read(&host).map_err(|e| {
            ctx(
                format!("read the secret for ${name} from {}", host.display()),
                e,
            )
        })?;
        let value = String::from_utf8(bytes).map_err(|_| {
            format!("the secret for ${name} is not UTF-8 text: mount it as a file instead of env=")
        })?;
        spec.env.push((name, value));
    }
    Ok(())
}

fn parse_report(s: &str) -> Option<(u64, i32)> {
    let rest = s.strip_prefix('T')?;
    let (n, c) = rest.split_once(' ')?;
    Some((n.parse().ok()?, c.parse().ok()?))
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn write_generated(dir: &Path, spec: &RunSpec) -> Result<(), String> {
    let resolv = match spec.network {
        Network::None => String::new(),
        Network::Default | Network::Host => {
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        }
    };
    let h = &spec.hostname;
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{h}\n"
    );
    // `--add-host`, after the defaults as Docker writes them.
    for (name, address) in &spec.extra_hosts {
        hosts.push_str(&format!("{address}\t{name}\n"));
    }
    for (name, text) in [
        ("resolv.conf", resolv),
        ("hosts", hosts),
        ("hostname", format!("{h}\n")),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| ctx(format!("write {}", p.display()), e))?;
        // 0644 as in a BuildKit or runc container, whatever the umask of whoever started cairn.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|e| ctx(format!("chmod {}", p.display()), e))?;
    }
    Ok(())
}

/// How the init sets up the step.
struct InitOptions {
    /// gid 5 (tty) is mapped, so devpts may use it.
    devpts_gid5: bool,
    /// setgroups is allowed (false under a single-id mapping).
    set_groups: bool,
    /// How the rootfs is built.
    rootfs: RootfsKind,
}

/// I: pid 1 of the step. Returns the report for C: `E<message>` or
/// `T<nanos> <exit code>`.
fn init_main(spec: &RunSpec, paths: &Paths, top_first: &[&Path], opts: &InitOptions) -> String {
    let set_groups = opts.set_groups;
    if let Err(e) = sys::private_mount_ns()
        .and_then(|()| rootfs::enter(spec, paths, top_first, opts.devpts_gid5, opts.rootfs))
    {
        return format!("E{e}");
    }
    let (err_r, err_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => return format!("E{e}"),
    };
    // Single-id mapping: the command's chown calls come to us (ownership.rs).
    let pipes = if set_groups {
        None
    } else {
        match sys::pipe().and_then(|a| sys::pipe().map(|b| (a, b))) {
            Ok(p) => Some(p),
            Err(e) => return format!("E{e}"),
        }
    };
    let started = Instant::now();
    let cmd = match sys::fork() {
        Ok(0) => {
            sys::close(err_r);
            null_stdin();
            let intercept = pipes.map(|((fd_r, send), (ack, ack_w))| {
                sys::close(fd_r);
                sys::close(ack_w);
                Intercept { send, ack }
            });
            // Limits before the drop to USER: raising a soft limit up to the hard one needs no privilege.
            let msg = match super::limits::apply(&spec.ulimits) {
                Err(e) => e,
                Ok(()) => exec_command(
                    &spec.argv, &spec.env, &spec.cwd, &spec.user, set_groups, intercept,
                ),
            };
            sys::write_all_fd(err_w, msg.as_bytes());
            // SAFETY: plain exit.
            unsafe { libc::_exit(127) }
        }
        Ok(pid) => pid,
        Err(e) => return format!("E{e}"),
    };
    sys::close(err_w);
    let status = match pipes {
        None => reap_until(cmd),
        Some(((fd_r, fd_w), (ack_r, ack_w))) => {
            sys::close(fd_w);
            sys::close(ack_r);
            let listener = take_listener(cmd, fd_r);
            sys::close(fd_r);
            if listener.is_ok() {
                sys::write_all_fd(ack_w, b"A");
            }
            sys::close(ack_w);
            match listener {
                Ok(Some((pidfd, l))) => supervise(cmd, &pidfd, &l),
                // The command failed before exec and reports why itself.
                Ok(None) | Err(_) => reap_until(cmd),
            }
        }
    };
    let nanos = started.elapsed().as_nanos() as u64;
    // RUN semantics: when the command exits, whatever it left running dies.
    // SAFETY: kill(-1) from pid 1 reaches every other process in the pid ns.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    reap_until(-1);
    let err = sys::read_to_end_fd(err_r);
    if !err.is_empty() {
        return format!("E{}", String::from_utf8_lossy(&err));
    }
    format!("T{nanos} {}", sys::exit_code(status))
}

/// The command's seccomp listener (fd number read from `fd_r`), or `None`
/// when the command died before sending it.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn take_listener(
    cmd: libc::pid_t,
    fd_r: libc::c_int,
) -> Result<Option<(OwnedFd, OwnedFd)>, String> {
    let text = String::from_utf8_lossy(&sys::read_to_end_fd(fd_r)).into_owned();
    let Ok(fd) = text.parse::<libc::c_int>() else {
        return Ok(None);
    };
    // SAFETY: pidfd_open returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, cmd, 0) };
    if pidfd < 0 {
        return Err(ctx("pidfd_open", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as libc::c_int) };
    let listener = ownership::take_fd(pidfd.as_raw_fd(), fd)?;
    Ok(Some((pidfd, listener)))
}

/// Serve chown notifications until `cmd` exits; reap orphans meanwhile.
fn supervise(cmd: libc::pid_t, pidfd: &OwnedFd, listener: &OwnedFd) -> libc::c_int {
    let mut watch = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if watch { listener.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: valid pollfd array; the timeout bounds zombie lifetime.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
        if fds[1].revents & libc::POLLIN != 0 {
            if ownership::handle_one(listener.as_raw_fd()).is_err() {
                watch = false;
            }
        } else if fds[1].revents != 0 {
            watch = false;
        }
        loop {
            let mut status = 0;
            // SAFETY: valid out pointer.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r == cmd {
                return status;
            }
            if r <= 0 {
                break;
            }
        }
    }
}

/// Reap children until `pid` exits (its status) or none are left (`-1`).
fn reap_until(pid: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        // SAFETY: valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == -1 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return -1;
        }
        if r == pid {
            return status;
        }
    }
}

/// C for the probe: can an overlay with `userxattr` be mounted and does
/// it write whiteouts? Writes the result; `error` = why not.
fn child_probe(request: &Request) -> i32 {
    let run = &request.run_dir;
    let res = (|| -> Result<(), String> {
        let (lower, upper, work, merged) = (
            run.join("lower"),
            run.join("upper"),
            run.join("work"),
            run.join("merged"),
        );
        for d in [&lower.join("d"), &upper, &work, &merged] {
            std::fs::create_dir_all(d).map_err(|e| ctx(format!("create {}", d.display()), e))?;
        }
        std::fs::write(lower.join("d/f"), b"x").map_err(|e| ctx("write probe file", e))?;
        sys::private_mount_ns()?;
        rootfs::mount_overlay(&[&lower], Some((&upper, &work)), &merged)?;
        std::fs::remove_dir_all(merged.join("d"))
            .map_err(|e| ctx("remove a lower dir through the overlay", e))?;
        std::fs::create_dir(merged.join("d")).map_err(|e| ctx("recreate it", e))?;
        let opaque =
            rustix::fs::lgetxattr(upper.join("d"), "user.overlay.opaque", &mut [0u8; 8][..]);
        if opaque != Ok(1) {
            return Err("overlay did not mark a recreated directory opaque".into());
        }
        Ok(())
    })();
    let response = match res {
        Ok(()) => Response {
            exit_code: Some(0),
            ..Default::default()
        },
        Err(e) => Response::error(e),
    };
    if request.use_userns && request.identity.kind != IdentityKind::Root {
        capture::hand_back(run, request.identity.kind == IdentityKind::Subordinate);
    }
    write_response(&run.join(RESULT_FILE), &response);
    0
}
