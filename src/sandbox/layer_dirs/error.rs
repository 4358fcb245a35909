//! What can fail in unpacking, snapshotting, serializing and removing layer
//! directories. Named for the layer-directory store rather than the whole
//! sandbox: a RUN step's own failures are [`crate::sandbox::SandboxError`],
//! which this error carries when a user-namespace helper could not run.

use crate::sandbox::SandboxError;
use cairn_layers::blob_store::BlobError;
use cairn_layers::unpack::UnpackError;
use cairn_layers::{DiffId, Digest, LayerError};
use std::path::PathBuf;
use std::sync::Arc;

/// A layer-directory error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory could not be created.
    #[error("creating {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A fresh file or directory in `dir` could not be created.
    #[error("creating a {what} in {}", dir.display())]
    CreateIn {
        /// `file` or `directory`.
        what: &'static str,
        /// Where.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Every staging directory made was taken by a concurrent sweep.
    #[error(
        "cannot create a staging directory in {}: another process keeps removing them",
        root.display()
    )]
    StagingRace {
        /// The directory of layer directories.
        root: PathBuf,
    },
    /// The build's sandbox could not be made (probed once, shared by every caller).
    #[error(transparent)]
    Sandbox(Arc<SandboxError>),
    /// The user-namespace helper could not run.
    #[error(transparent)]
    Exec(#[from] SandboxError),
    /// The user-namespace helper ran and failed.
    #[error("`{command}` exited with code {code}: {output}")]
    HelperFailed {
        /// Its arguments after the executable.
        command: String,
        /// Its exit code.
        code: i32,
        /// What it printed.
        output: String,
    },
    /// The layer blob of a remote cache hit could not be fetched.
    #[error("fetching layer {digest}")]
    Fetch {
        /// The layer blob.
        digest: Digest,
        /// Why (the cache's error, kept whole: a refused blob makes the
        /// build run again without it).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A layer blob could not be opened.
    #[error("opening layer {digest}")]
    OpenLayer {
        /// The layer blob.
        digest: Digest,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// A layer could not be unpacked.
    #[error("unpacking layer {digest} (diff_id {diff_id})")]
    UnpackLayer {
        /// The layer blob.
        digest: Digest,
        /// Its diff_id.
        diff_id: DiffId,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A layer could not be unpacked in the user namespace.
    #[error("unpacking layer {digest} (diff_id {diff_id}) in the user namespace")]
    UnpackLayerInUserns {
        /// The layer blob.
        digest: Digest,
        /// Its diff_id.
        diff_id: DiffId,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A blob file could not be unpacked (the user-namespace helper).
    #[error("unpacking {}", blob.display())]
    UnpackBlob {
        /// The blob file.
        blob: PathBuf,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The unpack found a layer whose bytes are not its diff_id.
    #[error(
        "{0}: the image's config lies about this layer (tampered or corrupt image); \
         refusing it — nothing was kept in the cache. Rebuild or re-push the base image"
    )]
    LyingConfig(UnpackError),
    /// The unpack failed (the unpack error names the entry).
    #[error(transparent)]
    Unpack(UnpackError),
    /// An unpacked layer could not be moved into place.
    #[error("moving unpacked layer to {}", dest.display())]
    MoveUnpacked {
        /// Its place.
        dest: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot could not be moved into place.
    #[error("moving a snapshot to {}", dest.display())]
    MoveSnapshot {
        /// Its place.
        dest: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path handed to the helper is not UTF-8.
    #[error("path {} is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// The donor list could not be encoded.
    #[error(transparent)]
    EncodeDonors(serde_json::Error),
    /// The donor list could not be decoded (the user-namespace helper).
    #[error("reading the donor list {}", path.display())]
    DecodeDonors {
        /// The list's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A file could not be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tree could not be removed.
    #[error("removing {}", path.display())]
    Remove {
        /// The tree.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path outside the cache was asked to be removed (a bug).
    #[error("refusing to remove {}: not under {}", path.display(), root.display())]
    RemoveOutside {
        /// The path.
        path: PathBuf,
        /// The cache.
        root: PathBuf,
    },
    /// A snapshot was asked for where layer directories have no owners (a bug).
    #[error("internal error: a snapshot needs layer directories with owners")]
    NoOwners,
    /// The blob store could not be opened (the user-namespace helper).
    #[error("opening the blob store {}", path.display())]
    OpenStore {
        /// The store's root.
        path: PathBuf,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] BlobError),
    /// A layer with neither a blob nor a directory.
    #[error("layer {0} has neither a blob nor a directory in the cache; rebuild with --no-cache")]
    NoLayer(Digest),
    /// A layer could not be written back from its snapshot.
    #[error("writing layer {digest} from its snapshot {}", dir.display())]
    Serialize {
        /// The layer blob.
        digest: Digest,
        /// Its directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A snapshot's directory no longer gives its digest back.
    #[error("{0}: the directory no longer holds the layer it was made as")]
    Changed(BlobError),
    /// A layer directory could not be walked (the error names the path).
    #[error(transparent)]
    Walk(crate::sandbox::capture::Error),
    /// A layer's tar could not be written.
    #[error(transparent)]
    Tar(#[from] LayerError),
    /// A pipe could not be made.
    #[error("creating a pipe")]
    CreatePipe(#[source] rustix::io::Errno),
    /// The snapshot's FIFO could not be made.
    #[error("creating the pipe {}", path.display())]
    CreateFifo {
        /// The FIFO.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustix::io::Errno,
    },
    /// The snapshot's FIFO could not be opened.
    #[error("opening the pipe {}", path.display())]
    OpenFifo {
        /// The FIFO.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustix::io::Errno,
    },
    /// The snapshot's FIFO could not be set to block.
    #[error(transparent)]
    Fifo(rustix::io::Errno),
    /// A directory for the snapshot's FIFO could not be made.
    #[error("creating a directory in the cache")]
    TempDir(#[source] std::io::Error),
    /// The unpacking side of a snapshot panicked (a bug).
    #[error("the snapshot unpack panicked")]
    Panicked,
    /// A snapshot could not be unpacked.
    #[error("unpacking a snapshot")]
    UnpackSnapshot(#[source] Box<Error>),
    /// A snapshot could not be unpacked in the user namespace.
    #[error("unpacking a snapshot in the user namespace")]
    UnpackSnapshotInUserns(#[source] Box<Error>),
    /// Both sides of a snapshot's stream failed: the unpack's causes, then
    /// the writer's error (one side's failure ends the other).
    #[error("{}", chain_text(unpacked.as_ref()))]
    Both {
        /// The unpack's error.
        unpacked: Box<Error>,
        /// The writer's error.
        #[source]
        written: Box<Error>,
    },
}

/// `e` and its causes on one line, `: `-separated (as a warning shows them).
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    #[test]
    fn a_fetch_error_stays_findable_in_the_chain() {
        // The CLI reruns a build when a refused cache blob is in the chain.
        let e = Error::Fetch {
            digest: Digest::of(b"x"),
            source: Box::new(Refused),
        };
        let cause = std::error::Error::source(&e).unwrap();
        assert!(cause.is::<Refused>());
    }

    #[test]
    fn when_both_sides_fail_the_unpack_comes_first_on_one_line() {
        let unpacked = Error::UnpackSnapshot(Box::new(Error::Panicked));
        let written = Error::CreatePipe(rustix::io::Errno::PIPE);
        let e = Error::Both {
            unpacked: Box::new(unpacked),
            written: Box::new(written),
        };
        assert_eq!(
            chain_text(&e),
            format!(
                "unpacking a snapshot: the snapshot unpack panicked: creating a pipe: {}",
                rustix::io::Errno::PIPE
            )
        );
    }
}
