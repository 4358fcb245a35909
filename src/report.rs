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
    /// The command failed with this error (as printed after the progress):
    /// only the JSON renderer shows it, so a consumer of the stream learns
    /// the outcome; the others leave it to the error message.
    Failed(String),
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
