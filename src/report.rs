//! The seam through which library code reports progress. `()` reports
//! nothing, so tests and library users pay nothing; `crate::progress` renders
//! events for people (indicatif bars, plain lines or JSON).

use std::time::Duration;

/// Something that happened during a build, pull, push or diff.
#[derive(Debug, Clone)]
pub enum Event {
    /// A build step started: `#id [stage i/n] TEXT`.
    StepStart {
        /// Sequence number of the step in this build (1-based).
        id: usize,
        /// Stage name or index as text.
        stage: String,
        /// 1-based position in the stage.
        index: usize,
        /// Steps in the stage.
        total: usize,
        /// The instruction as written (after expansion).
        text: String,
    },
    /// The step was served from the cache.
    StepCached {
        /// Step id.
        id: usize,
    },
    /// The step missed the cache, and why.
    StepMiss {
        /// Step id.
        id: usize,
        /// The first input that differs from the closest cached run.
        reason: String,
    },
    /// A line of output of a RUN step.
    StepOutput {
        /// Step id.
        id: usize,
        /// One line, without its newline.
        line: String,
    },
    /// The step finished.
    StepDone {
        /// Step id.
        id: usize,
        /// Wall time.
        elapsed: Duration,
    },
    /// Where a successful RUN step's time went, before its `StepDone`: inside
    /// the command, capturing its changes from the upper directory, writing
    /// them as a layer; the rest of the step is the sandbox's setup.
    RunTimes {
        /// Step id.
        id: usize,
        /// The split.
        times: RunTimes,
    },
    /// A blob transfer or write started (`action`: "pull", "push", "write", "mount", "exists").
    BlobStart {
        /// The blob's digest (or a placeholder while writing).
        digest: String,
        /// Expected size if known.
        size: Option<u64>,
        /// What is being done.
        action: &'static str,
    },
    /// More bytes of a blob were transferred.
    BlobProgress {
        /// The blob's digest.
        digest: String,
        /// Bytes done so far.
        done: u64,
    },
    /// The blob is done.
    BlobDone {
        /// The blob's digest.
        digest: String,
    },
    /// A warning for the user.
    Warning(String),
    /// A status line for the user.
    Info(String),
    /// Bytes moved between this machine and one registry during the command
    /// (one event per registry, at the end of a build).
    Transfer(Transfer),
    /// The command failed with this error (as printed after the progress):
    /// only the JSON renderer shows it, so a consumer of the stream learns
    /// the outcome; the others leave it to the error message.
    Failed(String),
}

/// Blobs and bytes of one kind of transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// Blobs.
    pub blobs: u64,
    /// Their bytes (layers, configs, cache records).
    pub bytes: u64,
    /// The bytes of those blobs that are layers.
    pub layer_bytes: u64,
}

/// What moved between this machine and one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    /// The registry (`HOST[:PORT]`).
    pub registry: String,
    /// Blobs fetched from it.
    pub downloaded: Moved,
    /// Blobs sent to it.
    pub uploaded: Moved,
    /// Blobs it copied from one of its repositories to another (cross-repository mount): no bytes sent.
    pub mounted: Moved,
    /// Blobs the target repository had already: no bytes sent.
    pub present: Moved,
}

impl std::fmt::Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |m: &Moved| {
            format!(
                "{} blob{} {} B",
                m.blobs,
                if m.blobs == 1 { "" } else { "s" },
                m.bytes
            )
        };
        write!(
            f,
            "{}: downloaded {} (layers {} B), uploaded {}, mounted {}, present {}",
            self.registry,
            part(&self.downloaded),
            self.downloaded.layer_bytes,
            part(&self.uploaded),
            part(&self.mounted),
            part(&self.present)
        )
    }
}

/// Where a RUN step's time went ([`Event::RunTimes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTimes {
    /// From the command's fork to its exit.
    pub command: Duration,
    /// Scanning the upper directory for the step's changes.
    pub capture: Duration,
    /// Everything else in the sandbox call: setup, mounts, teardown.
    pub setup: Duration,
    /// Writing (or finding) the layer of the changes; with `snapshot`,
    /// making its directory instead.
    pub write: Duration,
    /// The layer was kept as a snapshot directory, not written as a blob.
    pub snapshot: bool,
    /// Making the image's layers directories the sandbox can stack (unpacking those not yet unpacked),
    /// before the sandbox call.
    pub lowers: Duration,
}

/// Receives [`Event`]s. Must be cheap and thread-safe.
pub trait Reporter: Send + Sync {
    /// Handle one event.
    fn event(&self, event: Event);
}

impl Reporter for () {
    fn event(&self, _event: Event) {}
}

/// Collects events in memory (for tests).
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);

impl Reporter for Recorder {
    fn event(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}
