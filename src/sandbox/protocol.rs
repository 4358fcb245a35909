//! What the caller and the helper exchange through files in the run
//! directory: `request.json` in, `result.json` out.

use super::idmap::Identity;
use super::RunSpec;
use cairn_layers::entry::{EntryKind, Source};
use cairn_layers::Entry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Request file name inside the run directory.
pub(crate) const REQUEST_FILE: &str = "request.json";
/// Result file name inside the run directory.
pub(crate) const RESULT_FILE: &str = "result.json";
/// Starts the stderr line of a helper that could not write its result.
pub(crate) const RESULT_ERROR: &str = "cairn sandbox: no result: ";

/// One job for the helper.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub kind: RequestKind,
    pub identity: Identity,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    /// False only for `Isolation::None` (real root, no user namespace).
    pub use_userns: bool,
    /// How the rootfs is built.
    pub rootfs: RootfsKind,
}

/// How a step's root filesystem is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RootfsKind {
    /// Kernel overlayfs (also for `Isolation::None`).
    Overlay,
    /// fuse-overlayfs.
    Fuse,
    /// Copied layers + snapshot comparison.
    Copy,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RequestKind {
    /// A RUN step.
    Run(Box<RunSpec>),
    /// Check that an overlay mounts inside the user namespace.
    Probe,
    /// Exec argv as namespace root on the host filesystem.
    Exec { argv: Vec<String>, cwd: PathBuf },
}

/// The helper's answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Response {
    /// Setup or capture failure (not a command failure).
    pub error: Option<String>,
    /// The failure happened entering the user namespace (unshare or maps).
    #[serde(default)]
    pub userns_error: bool,
    /// Exit code of the command (128+N for signal N).
    pub exit_code: Option<i32>,
    /// Nanoseconds from fork of the command to its exit.
    pub command_nanos: u64,
    /// Nanoseconds scanning the upper directory for the changes.
    #[serde(default)]
    pub capture_nanos: u64,
    /// Captured entries, paths of file content relative to `content_dir`.
    pub entries: Vec<WireEntry>,
    /// Run-dir subdirectory holding file content (`upper` when empty).
    #[serde(default)]
    pub content_dir: String,
}

impl Response {
    pub fn error(message: String) -> Self {
        Response {
            error: Some(message),
            ..Default::default()
        }
    }
}

/// A serializable [`Entry`]; file content is a path relative to the upper
/// dir (`None` = empty in-memory content, used by whiteouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireEntry {
    pub path: String,
    pub kind: WireKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireKind {
    Dir,
    File {
        size: u64,
        upper_path: Option<String>,
    },
    Symlink {
        target: String,
    },
    Hardlink {
        target: String,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl WireEntry {
    /// Convert to an [`Entry`] whose file sources point into `upper`.
    pub fn into_entry(self, upper: &Path) -> Entry {
        let kind = match self.kind {
            WireKind::Dir => EntryKind::Dir,
            WireKind::File { size, upper_path } => EntryKind::File {
                size,
                source: match upper_path {
                    Some(p) => Source::Path(upper.join(cairn_layers::raw_name::to_os(&p))),
                    None => Source::Bytes(Arc::from(&[][..])),
                },
            },
            WireKind::Symlink { target } => EntryKind::Symlink { target },
            WireKind::Hardlink { target } => EntryKind::Hardlink { target },
            WireKind::CharDevice { major, minor } => EntryKind::CharDevice { major, minor },
            WireKind::BlockDevice { major, minor } => EntryKind::BlockDevice { major, minor },
            WireKind::Fifo => EntryKind::Fifo,
        };
        Entry {
            path: self.path,
            kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs: self.xattrs,
        }
    }
}
