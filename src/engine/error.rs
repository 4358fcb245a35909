//! What can fail in running a build (parse, plan, stages, bases, the
//! session's cache, context and sandbox), and what the user can do about it
//! ([`Error::hint`]). The step kinds' own failures come from [`super::step`].
//!
//! Messages are the ones users and the error goldens know: a variant whose
//! text was a bare cause before is `#[error(transparent)]`, named for what
//! failed; a context line is a variant with the cause as its `#[source]`.

use crate::error::{BoxError, Hinted, Shared};
use crate::frontend::{Diagnostic, Platform};
use crate::image::oci_layout::LayoutError;
use crate::registry::reference::ReferenceError;
use crate::registry::{Reference, RegistryError};
use cairn_layers::blob_store::BlobError;
use cairn_layers::Digest;
use std::io;
use std::path::PathBuf;

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile is wrong, at a place it names (`file:line:col`):
    /// parse, plan, expansion, a RUN for a platform this machine cannot run.
    #[error(transparent)]
    Dockerfile(#[from] Diagnostic),
    /// A step failed; `at` is its place and text in the Dockerfile.
    #[error("{at}")]
    Step {
        /// `Dockerfile:L:C: [stage i/N] INSTRUCTION`.
        at: Diagnostic,
        /// Why (an engine or a step error).
        #[source]
        source: BoxError,
    },
    /// A base image could not be had.
    #[error("{at}")]
    BaseImage {
        /// The `FROM`'s image, `cannot use base image …`.
        at: Diagnostic,
        /// Why (from the image source).
        #[source]
        source: BoxError,
    },
    /// One platform of a multi-platform build failed.
    #[error("building for platform {platform}")]
    Platform {
        /// The platform.
        platform: Box<Platform>,
        /// Why (an engine error).
        #[source]
        source: BoxError,
    },
    /// `--no-cache-filter` names a stage the Dockerfile does not have.
    #[error("--no-cache-filter {stage}: the Dockerfile has no such stage")]
    NoSuchStage {
        /// What was written.
        stage: String,
        /// The stages there are, for the hint.
        names: Vec<String>,
    },
    /// `--isolation` names no isolation.
    #[error("unknown isolation `{0}`")]
    UnknownIsolation(String),
    /// `SOURCE_DATE_EPOCH` (from the flag, a build arg or the environment) is no number.
    #[error("{from}={value:?} is not a number of seconds")]
    BadEpoch {
        /// Where it came from (`--source-date-epoch`, …).
        from: &'static str,
        /// What it said.
        value: String,
    },
    /// `CAIRN_PLATFORM_JOBS` is not a positive number.
    #[error("{var}={value:?} is not a number of platforms to build at once")]
    BadJobs {
        /// The variable.
        var: &'static str,
        /// What it said.
        value: String,
    },
    /// A base is not for the platform asked for.
    #[error("{reference} has no image for platform {wanted}; available: {has}")]
    NoImageForPlatform {
        /// The base as named.
        reference: String,
        /// The platform built for.
        wanted: Box<Platform>,
        /// The base's platform.
        has: Box<Platform>,
    },
    /// A base's manifest and config disagree on the number of layers.
    #[error(
        "image {reference} is inconsistent: {layers} layers in the manifest, {diff_ids} diff_ids in the config"
    )]
    LayerCount {
        /// The base as named.
        reference: String,
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// A base's config has a diff_id that is not a digest.
    #[error("image {reference}: bad diff_id {id}")]
    DiffId {
        /// The base as named.
        reference: String,
        /// The text.
        id: String,
        /// Why.
        #[source]
        source: cairn_layers::digest::DigestError,
    },
    /// A base image's reference does not parse.
    #[error("invalid image reference `{shown}`")]
    Reference {
        /// The reference, credentials redacted.
        shown: String,
        /// Why.
        #[source]
        source: ReferenceError,
    },
    /// A base image could not be pulled (hinted: log in, pick a platform, …).
    #[error("pulling {reference}")]
    Pull {
        /// The image.
        reference: Box<Reference>,
        /// Why.
        #[source]
        source: Hinted,
    },
    /// A layer of a base image could not be pulled.
    #[error("pulling layer {layer} of {reference}")]
    PullLayer {
        /// The layer's digest.
        layer: Digest,
        /// The image.
        reference: Box<Reference>,
        /// Why.
        #[source]
        source: Hinted,
    },
    /// A pulled image's config is not an image config.
    #[error("{reference}: invalid image config")]
    PulledConfig {
        /// The image.
        reference: Box<Reference>,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No image source is configured (a build that may not pull).
    #[error("cannot fetch base image `{0}`: no image source is configured")]
    NoImageSource(String),
    /// An OCI layout named as a base could not be opened.
    #[error("opening OCI layout {}", dir.display())]
    OpenLayout {
        /// Its directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// A layout's tag, index or blob could not be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A blob a layout's digest names is not a manifest.
    #[error("{digest} in the layout is not a manifest")]
    LayoutBlob {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A layout's index has no image for the platform.
    #[error("{spec}: {error}")]
    LayoutPlatform {
        /// The layout as named.
        spec: String,
        /// Why (shown in the message).
        error: Box<RegistryError>,
    },
    /// A layout's manifest, index or config is not what it says.
    #[error("{spec}: invalid {what}")]
    LayoutJson {
        /// The layout as named.
        spec: String,
        /// `manifest`, `config`.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A layout's image index is not JSON of an index.
    #[error(transparent)]
    LayoutIndex(serde_json::Error),
    /// The async runtime for registry requests cannot start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// The cache directory could not be opened.
    #[error("opening the cache at {}", dir.display())]
    OpenCache {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A step's record could not be written to the cache.
    #[error("writing the cache at {}", root.display())]
    WriteCache {
        /// The cache directory.
        root: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The image's config, manifest or index could not be written as JSON.
    #[error(transparent)]
    ImageJson(serde_json::Error),
    /// The image's `/etc/passwd` or `/etc/group` could not be read.
    #[error(transparent)]
    UserDb(io::Error),
    /// The build context (or a directory named context) could not be
    /// walked; shared by every step and platform that reads it.
    #[error(transparent)]
    Context(Shared),
    /// A context file could not be read for its digest.
    #[error("reading context file {}", path.display())]
    ReadContextFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A directory named context could not be planned as `COPY . /`.
    #[error(transparent)]
    CopyPlan(#[from] super::copy::CopyError),
    /// No private directory for a named context's bind mount.
    #[error("creating a directory for a named context")]
    NamedContextDir(#[source] io::Error),
    /// The directory of a bind mount could not be made.
    #[error("creating {} for a bind mount", dir.display())]
    MountDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file could not be copied into a bind mount's tree.
    #[error("copying {}", path.display())]
    MountCopy {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A bind mount's tree could not be written.
    #[error(transparent)]
    MountTree(io::Error),
    /// A context path is not one a tree may hold.
    #[error(transparent)]
    MountPath(#[from] cairn_layers::entry::PathError),
    /// The RUN sandbox could not be set up (kept for every RUN that asks).
    #[error(transparent)]
    Sandbox(Shared),
    /// The build was canceled (another platform failed).
    #[error(transparent)]
    Canceled(#[from] crate::sandbox::SandboxError),
    /// A stage's thread panicked (a bug).
    #[error("stage {0} panicked")]
    StagePanicked(usize),
    /// A stage was not built before a stage that needs it (a bug).
    #[error("internal error: stage {stage} not built before {name}")]
    StageNotBuilt {
        /// The stage needed.
        stage: usize,
        /// The stage that needs it.
        name: String,
    },
    /// The target stage was not built (a bug).
    #[error("internal error: the target stage was not built")]
    TargetNotBuilt,
    /// A platform was not built (a bug).
    #[error("internal error: platform {0} was not built")]
    PlatformNotBuilt(Box<Platform>),
    /// A platform failed without an error (a bug).
    #[error("internal error: platform {0} failed without an error")]
    PlatformNoError(Box<Platform>),
    /// A named context taken for a directory is not one (a bug).
    #[error("internal error: build context {0} is not a directory")]
    NotADirectory(String),
    /// The step cache or an imported cache (`--cache-from`) failed.
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
    /// The unpacked-layer store failed (unpacking, its sandbox).
    #[error(transparent)]
    LayerDirs(#[from] crate::sandbox::layer_dirs::Error),
    /// A step kind's own failure (COPY, ADD, RUN, WORKDIR, metadata, ONBUILD).
    #[error(transparent)]
    StepKind(#[from] super::step::Error),
}

impl Error {
    /// What the user can do about it, when it is theirs to fix.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoSuchStage { names, .. } => format!("name a stage: {}", names.join(", ")),
            Error::UnknownIsolation(_) => {
                "use --isolation auto, overlay, fuse-overlayfs, copy or none".into()
            }
            Error::BadEpoch { .. } => "SOURCE_DATE_EPOCH must be the number of seconds since \
                 1970-01-01 00:00 UTC, like `date +%s` prints"
                .into(),
            Error::BadJobs { var, .. } => {
                format!("set {var} to 1 (one platform after another) or more, or unset it")
            }
            Error::NoImageForPlatform { wanted, has, .. } => format!(
                "build for {has} (--platform {has}), or use a base that is an index with a {wanted} image"
            ),
            _ => return None,
        })
    }

    /// The error a transparent variant holds (see `crate::error::links`).
    pub fn held(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            Error::Dockerfile(e) => e,
            Error::Layout(e) => e,
            Error::LayoutIndex(e) | Error::ImageJson(e) => e,
            Error::Blob(e) => e,
            Error::UserDb(e) | Error::MountTree(e) => e,
            Error::Context(e) | Error::Sandbox(e) => e,
            Error::CopyPlan(e) => e,
            Error::MountPath(e) => e,
            Error::Canceled(e) => e,
            Error::Cache(e) => e,
            Error::LayerDirs(e) => e,
            Error::StepKind(e) => e,
            _ => return None,
        })
    }

    /// `source` failed in the step at `at`.
    pub fn in_step(at: Diagnostic, source: impl Into<Error>) -> Self {
        Error::Step {
            at,
            source: Box::new(source.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(e: &Error) -> String {
        crate::error::rendered(e)
    }

    #[test]
    fn a_hint_under_transparent_variants_reaches_the_user() {
        let probe = crate::error::hint(
            std::io::Error::other("no user namespaces"),
            "enable unprivileged user namespaces",
        );
        let e = Error::Platform {
            platform: Box::new(Platform::parse("linux/arm64").unwrap()),
            source: Box::new(Error::Sandbox(Shared::new(probe))),
        };
        assert_eq!(
            rendered(&e),
            "error: building for platform linux/arm64\n  Caused by: no user namespaces\n\n\
             hint: enable unprivileged user namespaces\n"
        );
    }

    #[test]
    fn a_flag_error_says_what_to_write() {
        let e = Error::NoSuchStage {
            stage: "biuld".into(),
            names: vec!["build".into(), "1".into()],
        };
        assert_eq!(
            rendered(&e),
            "error: --no-cache-filter biuld: the Dockerfile has no such stage\n\n\
             hint: name a stage: build, 1\n"
        );
    }
}
