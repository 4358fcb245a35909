//! The types of the sandbox seam: what a RUN step needs ([`RunSpec`]),
//! what it gives back ([`RunOutcome`]) and how it fails ([`SandboxError`]).

use super::idmap;
use super::Captured;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How many output lines a failed step keeps for its error report.
pub const TAIL_LINES: usize = 20;

/// Which network a RUN step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Network {
    /// Docker's default for builds: the host network namespace.
    #[default]
    Default,
    /// The host network namespace, asked for explicitly.
    Host,
    /// A new, empty network namespace with only loopback up.
    None,
}

/// The isolation the caller asks for (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Isolation {
    /// The strongest mode the probe found working.
    #[default]
    Auto,
    /// User namespace + kernel overlayfs (`userxattr`).
    Overlay,
    /// User namespace + fuse-overlayfs (when the kernel's overlayfs cannot
    /// be mounted in a user namespace; needs the binary and /dev/fuse).
    FuseOverlay,
    /// User namespace + a copied rootfs and a tree comparison (slow: cost
    /// grows with the rootfs; the last rung when no overlay mounts).
    Copy,
    /// No user namespace: real root in mount/pid namespaces. Root only, for
    /// throwaway build containers; never chosen by `Auto`.
    None,
}

impl Isolation {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Overlay => "overlay",
            Isolation::FuseOverlay => "fuse-overlay",
            Isolation::Copy => "copy",
            Isolation::None => "none",
        }
    }
}

/// A `RUN --mount` after the engine resolved its sources to host paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// `type=cache`: a persistent host directory mounted read-write.
    Cache {
        /// Host directory (created by the engine; its root gets `uid`/`gid`/`mode`).
        host: PathBuf,
        /// Absolute target in the rootfs.
        target: String,
        /// Owner of the cache root, container id.
        uid: u32,
        /// Group of the cache root, container id.
        gid: u32,
        /// Mode of the cache root.
        mode: u32,
        /// Give everything under it to `uid`/`gid` too: its contents were
        /// just restored from a remote cache by the builder (owned by the
        /// namespace's root), and a `RUN` as another user must write them.
        #[serde(default)]
        own_contents: bool,
    },
    /// `type=secret`: a host file, copied into a private tmpfs and bound read-only.
    Secret {
        /// Host file holding the secret.
        host: PathBuf,
        /// Absolute target in the rootfs.
        target: String,
        /// Owner, container id.
        uid: u32,
        /// Group, container id.
        gid: u32,
        /// Mode (buildkit default 0400).
        mode: u32,
    },
    /// `type=bind`: a path inside the union of `from` (layer or rootfs
    /// directories, bottom first). With `rw`, writes land in a throwaway upper.
    Bind {
        /// Host directories, bottom first (one for a context dir or rootfs).
        from: Vec<PathBuf>,
        /// Path inside `from` (resolved without escaping it).
        source: String,
        /// Absolute target in the rootfs.
        target: String,
        /// Writable (writes are discarded after the step).
        rw: bool,
    },
    /// `type=tmpfs`: an empty tmpfs.
    Tmpfs {
        /// Absolute target in the rootfs.
        target: String,
    },
    /// `type=ssh`: a socket at `target` that forwards each connection to the
    /// host's ssh agent socket `host` (a proxy in the sandbox, so the socket
    /// the command sees gets its own owner and mode, and the host's is never
    /// touched).
    Ssh {
        /// The host's agent socket.
        host: PathBuf,
        /// Absolute target in the rootfs.
        target: String,
        /// Owner, container id.
        uid: u32,
        /// Group, container id.
        gid: u32,
        /// Mode (BuildKit default 0600).
        mode: u32,
    },
}

impl Mount {
    /// The absolute target path in the rootfs.
    pub fn target(&self) -> &str {
        match self {
            Mount::Cache { target, .. }
            | Mount::Secret { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Ssh { target, .. }
            | Mount::Tmpfs { target } => target,
        }
    }
}

/// Everything one RUN step needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Unpacked layer directories, bottom first, never written to.
    pub lowers: Vec<PathBuf>,
    /// The command, already shell-wrapped for the shell form.
    pub argv: Vec<String>,
    /// The environment, in order (later duplicates win).
    pub env: Vec<(String, String)>,
    /// `RUN --mount=type=secret,env=NAME`: NAME is set, for the command
    /// only, to the content of the host file (read by the sandbox just
    /// before it starts the command, so the value is never in the request,
    /// a record or a layer).
    #[serde(default)]
    pub secret_env: Vec<(String, PathBuf)>,
    /// Working directory (absolute; created when missing, as buildkit does).
    pub cwd: String,
    /// `USER` as written (`name`, `uid`, `name:group`, `uid:gid`; empty = root),
    /// resolved against the rootfs /etc/passwd and /etc/group.
    pub user: String,
    /// Hostname inside the step.
    pub hostname: String,
    /// Network namespace choice.
    pub network: Network,
    /// `RUN --mount`s.
    pub mounts: Vec<Mount>,
    /// `cairn build --add-host`: extra /etc/hosts lines (name, address).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `cairn build --ulimit`: resource limits of the command.
    #[serde(default)]
    pub ulimits: Vec<super::limits::Ulimit>,
    /// `cairn build --shm-size`, bytes; `None`: [`super::limits::DEFAULT_SHM_SIZE`].
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// Captured mtimes are clamped to this (seconds since 1970).
    pub epoch: u64,
    /// Requested isolation.
    pub isolation: Isolation,
    /// Step id for [`crate::report::Event::StepOutput`].
    pub step_id: usize,
    /// The instruction as shown to people (`RUN npm ci`), for errors.
    pub label: String,
}

impl RunSpec {
    /// A spec with Docker's defaults: root, `/`, hostname `buildkitsandbox`
    /// (what buildkit uses, so scripts see the same), default network, epoch 0.
    pub fn new(lowers: Vec<PathBuf>, argv: Vec<String>) -> Self {
        let label = format!("RUN {}", argv.join(" "));
        RunSpec {
            lowers,
            argv,
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            secret_env: Vec::new(),
            cwd: "/".into(),
            user: String::new(),
            hostname: "buildkitsandbox".into(),
            network: Network::Default,
            mounts: Vec::new(),
            extra_hosts: Vec::new(),
            ulimits: Vec::new(),
            shm_size: None,
            epoch: 0,
            isolation: Isolation::Auto,
            step_id: 0,
            label,
        }
    }
}

/// The isolation actually used for a step, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    /// The mode.
    pub isolation: Isolation,
    /// The identity mapping kind.
    pub identity: idmap::IdentityKind,
    /// One sentence for people.
    pub why: String,
}

/// A successful RUN step (exit code 0).
#[derive(Debug)]
pub struct RunOutcome {
    /// The change, as layer entries; keeps the upper directory alive.
    pub captured: Captured,
    /// Wall time from the command's fork to its exit (excludes setup and capture).
    pub duration_in_command: Duration,
    /// Wall time scanning the upper directory for the changes.
    pub duration_capture: Duration,
    /// Wall time of the whole `run` call.
    pub duration_total: Duration,
    /// What isolation was used.
    pub chosen: Chosen,
}

/// Why a RUN step did not produce a layer.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The command ran and exited non-zero (or was killed by a signal: 128+N).
    #[error("{}", failed_message(.label, *.code, .tail))]
    Failed {
        /// The instruction as shown to people.
        label: String,
        /// Exit code (128+signal when killed).
        code: i32,
        /// The last [`TAIL_LINES`] lines of output.
        tail: Vec<String>,
    },
    /// The requested isolation cannot work on this machine.
    #[error("isolation `{}` is not available: {why}", .asked.name())]
    Unavailable {
        /// What was asked for.
        asked: Isolation,
        /// Why not (from the probe).
        why: String,
    },
    /// The helper process could not be started.
    #[error("cannot start the sandbox helper `{}`", .path.display())]
    Spawn {
        /// The helper executable.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Preparing or cleaning the step's state directory failed.
    #[error("cannot {what} `{}`", .path.display())]
    State {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The step was canceled ([`super::Cancel`]): killed, or not started.
    #[error("`{label}` was canceled")]
    Canceled {
        /// The instruction as shown to people.
        label: String,
    },
    /// Setting up the namespaces, mounts or user failed, or capture failed
    /// (the message comes from the helper and names the step and path).
    #[error("sandbox for `{label}` failed: {message}")]
    Setup {
        /// The instruction as shown to people.
        label: String,
        /// What failed inside the helper.
        message: String,
    },
}

fn failed_message(label: &str, code: i32, tail: &[String]) -> String {
    let mut s = format!("`{label}` exited with code {code}");
    if !tail.is_empty() {
        s.push_str("; last lines of output:");
        for line in tail {
            s.push_str("\n  ");
            s.push_str(line);
        }
    }
    s
}
