//! What can fail in sending a built image to its outputs, and what the user
//! can do about it ([`Error::hint`]).

use crate::cache::remote::Refused;
use crate::engine::recompress::OpenLayerError;
use crate::error::Hinted;
use crate::image::docker_archive::DockerArchiveError;
use crate::image::oci_layout::LayoutError;
use crate::registry::reference::ReferenceError;
use cairn_layers::blob_store::BlobError;
use cairn_layers::unpack::UnpackError;
use cairn_layers::whiteout::WhiteoutError;
use cairn_layers::Digest;
use std::path::PathBuf;

/// A publish error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An output file or directory cannot be created.
    #[error("creating {}", path.display())]
    Create {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An output file cannot be written to the end.
    #[error("writing {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard output cannot be written to the end.
    #[error("writing to standard output")]
    WriteStdout(#[source] std::io::Error),
    /// Reading or writing an output's bytes failed (the io error says what;
    /// kept in the cause chain so a closed pipe is told from a failure).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A docker-archive cannot be written.
    #[error("writing docker-archive {}", file.display())]
    DockerArchive {
        /// The archive.
        file: PathBuf,
        /// Why.
        #[source]
        source: DockerArchiveError,
    },
    /// A multi-platform build's docker-archives were sent to standard output (a bug: refused earlier).
    #[error("internal error: a multi-platform docker-archive on standard output")]
    MultiPlatformArchiveToStdout,
    /// A filesystem output of a multi-platform build (a bug: refused earlier).
    #[error("internal error: a filesystem output of a multi-platform build")]
    MultiPlatformFilesystem,
    /// An OCI layout cannot be created.
    #[error("creating OCI layout {}", dir.display())]
    CreateLayout {
        /// The layout's directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// A layout cannot be tagged (the layout error says which).
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A blob cannot be copied or read (the store's error names it).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A layout was asked for with no image (a bug).
    #[error("internal error: no image to write")]
    NoImage,
    /// The staging directory of an OCI tarball cannot be made.
    #[error("creating a staging directory in {}", dir.display())]
    StagingDir {
        /// Where.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A blob of a staged layout cannot be opened for the tarball.
    #[error("reading {}", path.display())]
    ReadBlob {
        /// The blob's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An OCI tarball cannot be written (packing it failed).
    #[error("writing the OCI tarball to {dest}")]
    Tarball {
        /// Where it went (a file, or `standard output`).
        dest: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An OCI tarball cannot be written (its destination failed).
    #[error("writing the OCI tarball to {dest}")]
    TarballDest {
        /// Where it went.
        dest: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A layer cannot be opened for reading (the error names it).
    #[error(transparent)]
    OpenLayer(#[from] OpenLayerError),
    /// A layer cannot be unpacked into a `type=local` directory.
    #[error("unpacking layer {digest} into {}", dir.display())]
    Unpack {
        /// The layer's digest.
        digest: Digest,
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<UnpackError>,
    },
    /// A layer's tar cannot be read.
    #[error("reading layer {digest}")]
    ReadLayer {
        /// The layer's digest.
        digest: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer holds a whiteout that is not one.
    #[error("layer {digest}")]
    Whiteout {
        /// The layer's digest.
        digest: Digest,
        /// Why.
        #[source]
        source: WhiteoutError,
    },
    /// A push without a reference to push to.
    #[error("nothing to push to")]
    NothingToPush,
    /// A `-t`/`name=` that is not a reference.
    #[error("invalid tag `{tag}`")]
    InvalidTag {
        /// What was written (credentials redacted).
        tag: String,
        /// Why.
        #[source]
        source: ReferenceError,
    },
    /// The registry refused the image or one of its blobs.
    #[error("pushing {reference}")]
    Push {
        /// Where to.
        reference: String,
        /// Why (with what to do when the user can fix it).
        #[source]
        source: Box<Hinted>,
    },
    /// The registry stored the image under another digest than cairn's.
    #[error("registry reported digest {got} for {reference}, expected {want}")]
    DigestMismatch {
        /// What the registry said.
        got: Digest,
        /// Where to.
        reference: String,
        /// The image's digest.
        want: Digest,
    },
    /// A layer a `--cache-from` hit left in its cache cannot be fetched.
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
    /// An attestation cannot be made or attached.
    #[error(transparent)]
    Attest(#[from] crate::attest::Error),
    /// Recompressing a layer or storing/pushing the build record failed.
    #[error(transparent)]
    Step(#[from] crate::engine::step::Error),
}

impl Error {
    /// What the user can do about it, when it is theirs to fix.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NothingToPush => Some("name the image with `-t REGISTRY/REPO:TAG`".into()),
            Error::Attest(e) => e.hint(),
            Error::Cache(e) => e.hint(),
            Error::Step(e) => crate::error::hint_of(e),
            _ => None,
        }
    }

    /// The refused cache blob this is, when fetching a lazy layer refused
    /// one: the build is then run again without that entry.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            Error::Cache(e) => e.refused(),
            _ => None,
        }
    }

    /// `self` as the cause of writing an OCI tarball to `dest`: a bare io
    /// error directly (so a closed pipe is seen in the chain once).
    pub(crate) fn in_tarball(self, dest: String) -> Self {
        match self {
            Error::Io(source) => Error::Tarball { dest, source },
            e => Error::TarballDest {
                dest,
                source: Box::new(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn rendered(e: &Error) -> String {
        crate::error::rendered(e)
    }

    #[test]
    fn a_push_with_no_name_says_what_to_do() {
        assert_eq!(
            rendered(&Error::NothingToPush),
            "error: nothing to push to\n\nhint: name the image with `-t REGISTRY/REPO:TAG`\n"
        );
    }

    #[test]
    fn a_closed_pipe_is_seen_and_shown_once() {
        // Alone (`type=tar,dest=-`): the reader exited, cairn succeeds.
        let top = Error::Io(ErrorKind::BrokenPipe.into());
        assert!(crate::error::is_broken_pipe(&top));
        assert_eq!(rendered(&top), "error: broken pipe\n");
        // Under the tarball's context (`type=oci,dest=-`).
        let e = Error::Io(ErrorKind::BrokenPipe.into()).in_tarball("standard output".into());
        assert!(crate::error::is_broken_pipe(&e));
        assert_eq!(
            rendered(&e),
            "error: writing the OCI tarball to standard output\n  Caused by: broken pipe\n"
        );
    }

    #[test]
    fn a_refused_cache_blob_is_told_through_the_cache_variant() {
        let refused = Refused {
            source_name: "cache".into(),
            digest: "sha256:00".into(),
            key: "k".into(),
            why: "digest mismatch".into(),
        };
        let e = Error::from(crate::cache::Error::from(refused));
        assert_eq!(e.refused().map(|r| r.key.as_str()), Some("k"));
        assert!(Error::NothingToPush.refused().is_none());
    }
}
