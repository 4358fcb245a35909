//! Rootless RUN sandbox: user/mount/pid namespaces, an overlay rootfs over
//! shared read-only layer directories, and capture of the overlay upper
//! directory as layer [`Entry`]s (cost proportional to the change).
//!
//! # The seam
//! The build engine calls [`Sandbox::run`] with a [`RunSpec`] and gets a
//! [`RunOutcome`] whose [`Captured`] entries feed the layer writer:
//!
//! ```no_run
//! # use cairn::sandbox::*;
//! # fn demo(lowers: Vec<std::path::PathBuf>) -> Result<(), SandboxError> {
//! let sandbox = Sandbox::new(cairn::cache::CacheLayout::from_flag(None).dir(cairn::cache::Bucket::Sandbox))?;
//! let spec = RunSpec::new(lowers, vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]);
//! let outcome = sandbox.run(&spec, &())?;
//! for entry in outcome.captured.entries() { /* write the layer */ }
//! # Ok(()) }
//! ```
//!
//! # Process layout
//! The caller (multithreaded: tokio) never calls `unshare`. It spawns the
//! `cairn` binary itself with the hidden `__sandbox RUN_DIR` subcommand
//! ([`helper`]), a fresh single-threaded process:
//!
//! - **H** (helper, host user namespace) forks **C**, writes C's uid/gid maps
//!   (directly as root, through `newuidmap`/`newgidmap` otherwise), and waits
//!   for C while watching its stdin: when the caller dies the pipe closes and
//!   H kills C, which takes the whole tree down. For `RUN --mount=type=ssh`
//!   H also proxies the step's socket to the host's agent (`ssh.rs`).
//! - **C** (inside the new user namespace, as its root) sweeps stale run
//!   directories, builds the scaffold lower, forks **I**, and after I exits
//!   captures the upper directory and writes `result.json`.
//! - **I** (pid 1 of a new pid namespace, in its own mount namespace) mounts
//!   the overlay, /dev, /proc, /sys and the RUN mounts, pivots into the
//!   rootfs, forks **P** (the command), reaps orphans, kills what is left
//!   when P exits. Every mount dies with I's mount namespace.
//!
//! # Identity
//! See [`idmap`]: as root `0 0 4294967295` written directly; as a user with
//! subordinate ids `0 UID 1` + `1 SUBID COUNT` through newuidmap/newgidmap
//! (rootless podman's layout, so namespace root owns the caller's state
//! directory; container id N ≥ 1 is host SUBID+N-1); otherwise a single
//! `0 UID 1` mapping under which [`ownership`] records chown to other ids
//! in an xattr (seccomp user notification) instead of failing. Entries
//! always carry container ids because capture runs inside the namespace,
//! so root and rootless runs capture identical entries (tested).
//!
//! # Isolation ladder ([`probe`], `cairn doctor`)
//! 1. `overlay`: kernel overlayfs with `userxattr` (and `volatile`: the
//!    upper dir is throwaway, so no syncfs of the whole disk per step);
//! 2. `fuse-overlay`: fuse-overlayfs, when the kernel's cannot be mounted;
//! 3. `copy`: copied layers + snapshot comparison ([`copy`]), slow;
//! 4. `none`: real root without a user namespace, on request only.
//!
//! `auto` takes the first that works; an explicit mode that cannot work is
//! an error ([`SandboxError::Unavailable`]), never a silent downgrade. All
//! modes capture the same entries for the same command (tested).
//!
//! # Layer directories
//! `lowers` are unpacked layer directories in overlay form (whiteout = char
//! device 0/0, opaque dir = xattr `user.overlay.opaque=y`; strip any
//! `user.overlay.*` a layer itself carries). For a non-root caller they
//! must be unpacked inside the same id mapping (see
//! [`Sandbox::exec_in_userns`]); for the single mapping, non-root owners
//! must be recorded as `user.cairn.owner` ([`ownership::OWNER_XATTR`]).
//!
//! # Cleanup
//! Mounts live in the step's mount namespace and vanish with it; every
//! process dies with the step's pid 1; the run directory goes when the
//! [`Captured`] guard drops, or — after a SIGKILL of cairn — at the next
//! step's sweep ([`state`]).

pub mod binfmt;
pub mod cancel;
pub mod capture;
pub mod copy;
pub mod exec;
pub mod helper;
pub mod idmap;
pub mod layer_dirs;
pub mod limits;
pub mod mounts;
pub mod namespaces;
pub mod ownership;
pub mod probe;
mod protocol;
pub mod rootfs;
pub mod scaffold;
mod spec;
mod ssh;
pub mod state;
mod sys;
pub mod user;

use crate::report::{Event, Reporter};
use cairn_layers::Entry;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use cancel::Cancel;
pub use probe::{Probe, Strength};
pub use spec::{Chosen, Isolation, Mount, Network, RunOutcome, RunSpec, SandboxError, TAIL_LINES};
pub use state::Captured;

/// A configured sandbox: state directory, helper executable and the probe.
#[derive(Debug, Clone)]
pub struct Sandbox {
    state_dir: PathBuf,
    helper: PathBuf,
    probe: Probe,
    /// Run directories of finished steps, removed with the last clone.
    retired: state::Retired,
}

impl Sandbox {
    /// Probe the machine (spawns the helper once, a few ms) using this
    /// executable as the helper, or `$CAIRN_SANDBOX_HELPER` when set.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self, SandboxError> {
        let helper = match std::env::var_os(crate::env::CAIRN_SANDBOX_HELPER) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => std::env::current_exe().map_err(|source| SandboxError::Spawn {
                path: "/proc/self/exe".into(),
                source,
            })?,
        };
        Self::with_helper(state_dir, helper)
    }

    /// Like [`Sandbox::new`] with an explicit `cairn` executable as helper
    /// (tests pass `CARGO_BIN_EXE_cairn`).
    pub fn with_helper(
        state_dir: impl Into<PathBuf>,
        helper: impl Into<PathBuf>,
    ) -> Result<Self, SandboxError> {
        let state_dir = state_dir.into();
        let helper = helper.into();
        state::ensure_dir(&state_dir)?;
        let probe = probe::run(&state_dir, &helper);
        Ok(Sandbox {
            state_dir,
            helper,
            probe,
            retired: state::Retired::default(),
        })
    }

    /// Use the single-id mapping (`0 UID 1`, chown recorded by
    /// [`ownership`]) even where more ids could be mapped, and re-probe.
    /// For testing that mode and for machines whose subordinate ids must
    /// not be used. Layer directories must be unpacked in this mapping.
    pub fn with_single_id_map(mut self) -> Self {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let identity = idmap::Identity::plan_single(uid, gid);
        self.probe = probe::run_with(&self.state_dir, &self.helper, identity);
        self
    }

    /// The `cairn` executable used as the helper.
    pub fn helper(&self) -> &Path {
        &self.helper
    }

    /// What the probe found.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Run one RUN step. `Ok` means exit code 0 and a captured change.
    pub fn run(&self, spec: &RunSpec, reporter: &dyn Reporter) -> Result<RunOutcome, SandboxError> {
        self.run_with(spec, reporter, &Cancel::default())
    }

    /// [`Sandbox::run`], killed when `cancel` is canceled (then
    /// [`SandboxError::Canceled`], also when it was before the start).
    pub fn run_with(
        &self,
        spec: &RunSpec,
        reporter: &dyn Reporter,
        cancel: &Cancel,
    ) -> Result<RunOutcome, SandboxError> {
        let canceled = || SandboxError::Canceled {
            label: spec.label.clone(),
        };
        if cancel.is_canceled() {
            return Err(canceled());
        }
        let started = std::time::Instant::now();
        let chosen = self.probe.choose(spec.isolation)?;
        let run = state::RunDir::create(&self.state_dir)?;
        let request = protocol::Request {
            kind: protocol::RequestKind::Run(Box::new(spec.clone())),
            identity: self.probe.identity.clone(),
            state_dir: self.state_dir.clone(),
            run_dir: run.path().to_path_buf(),
            use_userns: chosen.isolation != Isolation::None,
            rootfs: match chosen.isolation {
                Isolation::FuseOverlay => protocol::RootfsKind::Fuse,
                Isolation::Copy => protocol::RootfsKind::Copy,
                _ => protocol::RootfsKind::Overlay,
            },
        };
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut on_line = |line: String| {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
            reporter.event(Event::StepOutput {
                id: spec.step_id,
                line,
            });
        };
        let response = call_helper(
            &self.helper,
            &request,
            run.path(),
            &mut on_line,
            Some(cancel),
        )?;
        // Killed, or ended on its own while the cancel came: either way the
        // build is over, and a step that might be cut short is not kept.
        if cancel.is_canceled() {
            return Err(canceled());
        }
        if let Some(message) = response.error {
            return Err(SandboxError::Setup {
                label: spec.label.clone(),
                message,
            });
        }
        let code = response.exit_code.unwrap_or(-1);
        if code != 0 {
            return Err(SandboxError::Failed {
                label: spec.label.clone(),
                code,
                tail: tail.into(),
            });
        }
        let content = run.path().join(match response.content_dir.as_str() {
            "" => "upper",
            d => d,
        });
        let entries = response
            .entries
            .into_iter()
            .map(|e| e.into_entry(&content))
            .collect::<Vec<Entry>>();
        Ok(RunOutcome {
            captured: Captured::new(run, self.retired.clone(), content, entries),
            duration_in_command: Duration::from_nanos(response.command_nanos),
            duration_capture: Duration::from_nanos(response.capture_nanos),
            duration_total: started.elapsed(),
            chosen,
        })
    }

    /// Run `argv` as root of the sandbox's user namespace (same id mapping
    /// as RUN steps, no mount/pid namespace, host filesystem, cwd `cwd`).
    /// For a non-root caller this is how layer directories must be unpacked
    /// (`tar -xpf --numeric-owner`) so that their owners map. Returns the
    /// exit code; output goes to `on_line`.
    pub fn exec_in_userns(
        &self,
        argv: &[String],
        cwd: &Path,
        mut on_line: impl FnMut(String),
    ) -> Result<i32, SandboxError> {
        let run = state::RunDir::create(&self.state_dir)?;
        let request = protocol::Request {
            kind: protocol::RequestKind::Exec {
                argv: argv.to_vec(),
                cwd: cwd.to_path_buf(),
            },
            identity: self.probe.identity.clone(),
            state_dir: self.state_dir.clone(),
            run_dir: run.path().to_path_buf(),
            use_userns: true,
            rootfs: protocol::RootfsKind::Overlay,
        };
        let response = self.call(&request, &run, &mut on_line)?;
        if let Some(message) = response.error {
            return Err(SandboxError::Setup {
                label: argv.join(" "),
                message,
            });
        }
        Ok(response.exit_code.unwrap_or(-1))
    }

    /// Spawn the helper on `request`, stream its merged output to `on_line`,
    /// and read its response.
    fn call(
        &self,
        request: &protocol::Request,
        run: &state::RunDir,
        mut on_line: impl FnMut(String),
    ) -> Result<protocol::Response, SandboxError> {
        call_helper(&self.helper, request, run.path(), &mut on_line, None)
    }
}

/// Spawn `helper __sandbox RUN_DIR` with `request`, stream its merged
/// stdout/stderr line by line, wait, and read `result.json`. Canceling
/// `cancel` kills the helper's sandbox (its lifeline closes).
pub(crate) fn call_helper(
    helper: &Path,
    request: &protocol::Request,
    run_dir: &Path,
    on_line: &mut dyn FnMut(String),
    cancel: Option<&Cancel>,
) -> Result<protocol::Response, SandboxError> {
    let req_path = run_dir.join(protocol::REQUEST_FILE);
    let io_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::State { what, path, source }
    };
    let bytes = serde_json::to_vec(request)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .map_err(io_err("encode the request in", &req_path))?;
    std::fs::write(&req_path, bytes).map_err(io_err("write", &req_path))?;

    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
        .map_err(io_err("create a pipe for", run_dir))?;
    let writer2 = writer
        .try_clone()
        .map_err(io_err("create a pipe for", run_dir))?;
    let reader = std::fs::File::from(reader);
    let spawn_err = |source| SandboxError::Spawn {
        path: helper.to_path_buf(),
        source,
    };
    let mut cmd = Command::new(helper);
    cmd.arg(helper::SUBCOMMAND)
        .arg(run_dir)
        // The helper watches stdin: when this process dies the pipe closes
        // and the helper kills the whole sandbox.
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(writer2);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // The Command still holds the pipe's write ends; drop them so EOF comes.
    drop(cmd);
    let mut lifeline = child.stdin.take();
    // Registered, the lifeline lives in `cancel` (which may close it early).
    let _registered = match (cancel, lifeline.take()) {
        (Some(c), Some(l)) => c.register(l),
        (_, l) => {
            lifeline = l;
            None
        }
    };
    let mut unwritten = None;
    for line in BufReader::new(reader).split(b'\n') {
        let Ok(mut line) = line else { break };
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        line.truncate(8192);
        let line = String::from_utf8_lossy(&line).into_owned();
        if let Some(why) = line.strip_prefix(protocol::RESULT_ERROR) {
            // The first is the cause: the helper's own report of the
            // missing result comes after.
            unwritten.get_or_insert_with(|| why.to_owned());
            continue;
        }
        on_line(line);
    }
    let status = child.wait().map_err(spawn_err)?;
    drop(lifeline);
    let res_path = run_dir.join(protocol::RESULT_FILE);
    if let Some(why) = unwritten {
        return Ok(protocol::Response::error(why));
    }
    match std::fs::read(&res_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SandboxError::State {
            what: "decode the helper result",
            path: res_path,
            source: std::io::Error::other(e.to_string()),
        }),
        Err(_) => Ok(protocol::Response::error(format!(
            "the helper exited ({status}) without a result"
        ))),
    }
}
