//! What can fail in running a step (COPY, ADD, RUN, WORKDIR, the config-only
//! instructions, ONBUILD) and in what the steps share (writing or reusing a
//! layer, snapshots, recompression, the build record artifact), and what the
//! user can do about it ([`Error::hint`]). The stage adds the Dockerfile's
//! `file:line:col` around a step's error; the variants name what and where
//! within the step.

use crate::engine::chmod::BadChmod;
use crate::engine::copy::CopyError;
use crate::engine::users::UserError;
use crate::frontend::diagnostic::Diagnostic;
use crate::frontend::expand::ExpandError;
use crate::registry::RegistryError;
use cairn_layers::blob_store::BlobError;
use cairn_layers::dockerignore::DockerignoreError;
use cairn_layers::Digest;
use std::io;
use std::path::PathBuf;

/// A step's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A step error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--chmod=` that is neither octal nor symbolic.
    #[error(transparent)]
    Chmod(BadChmod),
    /// `--exclude=` that is not a pattern.
    #[error("invalid --exclude pattern")]
    Exclude(#[source] DockerignoreError),
    /// Planning a COPY/ADD failed (a source missing, a destination in the way…).
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// The step's scratch directory in the cache cannot be made.
    #[error("creating a scratch directory in the cache")]
    Scratch(#[source] io::Error),
    /// `COPY`/`ADD` of a git URL.
    #[error("{keyword} from a git repository is not supported by cairn yet: `{url}`")]
    GitSource {
        /// `COPY` or `ADD`.
        keyword: &'static str,
        /// The URL, credentials and query left out.
        url: String,
    },
    /// A URL source of COPY.
    #[error("source can't be a URL for COPY: use ADD to download it")]
    UrlInCopy,
    /// A heredoc or `--mount` word does not expand.
    #[error(transparent)]
    Expand(#[from] ExpandError),
    /// `--checksum` without a URL source.
    #[error("checksum requires HTTP(S) or Git sources")]
    ChecksumWithoutUrl,
    /// `--checksum` with more than one URL source.
    #[error("--checksum needs exactly one URL source, got {count}")]
    ChecksumUrls {
        /// The URL sources given.
        count: usize,
    },
    /// `--checksum=` that is not a digest.
    #[error("invalid --checksum `{text}`: {reason}")]
    BadChecksum {
        /// What was written.
        text: String,
        /// Why it is not a digest (shown in the message, as a flag's value error).
        reason: cairn_layers::digest::DigestError,
    },
    /// A downloaded ADD source is not what `--checksum` says.
    #[error("checksum mismatch for {url}: expected {want}, downloaded content is {got}")]
    ChecksumMismatch {
        /// The URL, credentials and query left out.
        url: String,
        /// `--checksum`.
        want: Digest,
        /// What was downloaded.
        got: Digest,
    },
    /// The async runtime for a download cannot start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// An ADD URL cannot be downloaded.
    #[error("downloading {url}")]
    Download {
        /// The URL, credentials and query left out.
        url: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The HTTP request failed (the error carries no URL: it may hold credentials).
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The server refused a download.
    #[error("server answered {0}")]
    HttpStatus(reqwest::StatusCode),
    /// A file the step writes cannot be created.
    #[error("creating {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A context file's content cannot be read for the step's key.
    #[error("reading context file {}", path.display())]
    ReadContextFile {
        /// The file on the host.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file a layer is made of cannot be read for its content key.
    #[error("reading {}", path.display())]
    ReadFile {
        /// The file on the host (or the blob holding it).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--chown=` that does not resolve in the stage's passwd/group.
    #[error("--chown={spec}")]
    Chown {
        /// What was written.
        spec: String,
        /// Why.
        #[source]
        source: UserError,
    },
    /// The USER a WORKDIR is made for does not resolve.
    #[error(transparent)]
    User(UserError),
    /// A COPY source that exists but `.dockerignore` excludes.
    #[error(
        "source `{src}` exists but is excluded from the build context by .dockerignore{pattern}"
    )]
    Excluded {
        /// The source, cleaned.
        src: String,
        /// ` (pattern `…`)`, the pattern that decided it, or empty.
        pattern: String,
    },
    /// A COPY source that is a symlink leaving the context.
    #[error("source `{src}` is a symlink to `{target}`, which is not in the build context")]
    SymlinkOutside {
        /// The source, cleaned.
        src: String,
        /// Where it points.
        target: String,
    },
    /// A planned entry with a path the layer writer must not see (a bug).
    #[error("planned entry {path}")]
    PlannedEntry {
        /// The entry's path.
        path: String,
        /// Why.
        #[source]
        source: cairn_layers::entry::PathError,
    },
    /// `--from` names a stage that has not run (a bug).
    #[error("internal error: stage {stage} is not built yet")]
    StageNotBuilt {
        /// The stage's index.
        stage: usize,
    },
    /// The planner recorded no source for a `--from` (a bug).
    #[error("internal error: no source recorded for {what}")]
    NoSource {
        /// `--from` or `--mount from=`.
        what: &'static str,
    },
    /// A filesystem instruction reached the config-only dispatch (a bug).
    #[error("internal error: a filesystem step dispatched as config-only")]
    NotConfigOnly,
    /// An EXPOSE port that is not a number.
    #[error("invalid port `{word}`")]
    Port {
        /// The word as written.
        word: String,
        /// Why.
        #[source]
        source: std::num::ParseIntError,
    },
    /// An EXPOSE range that is empty or past 65535.
    #[error("invalid port range `{word}`")]
    PortRange {
        /// The word as written.
        word: String,
    },
    /// `VOLUME ""`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// A base image's ONBUILD trigger that does not parse.
    #[error("invalid ONBUILD trigger `{trigger}` in the base image: {diagnostic}")]
    TriggerParse {
        /// The stored trigger.
        trigger: String,
        /// Why (shown in the message).
        diagnostic: Box<Diagnostic>,
    },
    /// A base image's ONBUILD trigger that is a FROM.
    #[error("FROM isn't allowed as an ONBUILD trigger (`{trigger}` in the base image)")]
    TriggerFrom {
        /// The stored trigger.
        trigger: String,
    },
    /// A base image's empty ONBUILD trigger.
    #[error("empty ONBUILD trigger in the base image")]
    TriggerEmpty,
    /// `ONBUILD ONBUILD …`.
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed (`{trigger}`)")]
    TriggerChained {
        /// The stored trigger.
        trigger: String,
    },
    /// `ONBUILD MAINTAINER …`.
    #[error("MAINTAINER isn't allowed as an ONBUILD trigger (`{trigger}`)")]
    TriggerMaintainer {
        /// The stored trigger.
        trigger: String,
    },
    /// An ONBUILD COPY/ADD with `--from`.
    #[error("ONBUILD triggers with --from are not supported by cairn yet (`{trigger}`)")]
    TriggerCopyFrom {
        /// The stored trigger.
        trigger: String,
    },
    /// A trigger's words do not expand.
    #[error("ONBUILD {trigger}: {reason}")]
    TriggerExpand {
        /// The stored trigger.
        trigger: String,
        /// Why (shown in the message).
        reason: ExpandError,
    },
    /// A trigger's step failed.
    #[error("[{stage} ONBUILD] {text}")]
    Trigger {
        /// The stage running it.
        stage: String,
        /// The trigger as written.
        text: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A `--mount=` that does not parse.
    #[error("--mount={spec}: {reason}")]
    MountSpec {
        /// The mount as written.
        spec: String,
        /// Why (shown in the message).
        reason: crate::frontend::mount::MountError,
    },
    /// A cache mount's directory cannot be made.
    #[error("creating cache mount {}", path.display())]
    CacheMount {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A secret mount without an id, source or target to name it.
    #[error("secret mount needs id=")]
    SecretNoId,
    /// A required secret the build was not given.
    #[error("secret `{id}` is required but was not provided")]
    SecretRequired {
        /// The secret's id.
        id: String,
    },
    /// A required ssh agent the build was not given.
    #[error("ssh agent `{id}` is required but the build was not given it")]
    SshRequired {
        /// The agent's id.
        id: String,
    },
    /// A bind mount's `source=` that does not resolve in the context.
    #[error("bind mount source `{path}`: {reason}")]
    BindSource {
        /// `source=` as written.
        path: String,
        /// Why (shown in the message).
        reason: io::Error,
    },
    /// A bind mount's `source=` that is not in the (filtered) context.
    #[error("bind mount source `{path}` is not in the build context {}", context.display())]
    BindNotInContext {
        /// `source=` as written.
        path: String,
        /// The build context.
        context: PathBuf,
    },
    /// A layer cannot be written.
    #[error(transparent)]
    Layer(#[from] cairn_layers::LayerError),
    /// A stage layer's blob cannot be indexed.
    #[error("reading layer {digest} in {}", path.display())]
    IndexLayer {
        /// The layer.
        digest: Digest,
        /// Its blob.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A layer cannot be opened for recompression.
    #[error(transparent)]
    OpenLayer(#[from] OpenLayerError),
    /// The blob store refused a read or a write.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A layer does not decompress to its diff_id.
    #[error("layer {layer} decompressed to {got}, not its diff_id {want}")]
    DiffIdMismatch {
        /// The layer's digest.
        layer: Digest,
        /// What it decompressed to.
        got: Digest,
        /// Its diff_id.
        want: Digest,
    },
    /// A layer cannot be recompressed.
    #[error("recompressing layer {digest}")]
    Recompress {
        /// The layer's digest.
        digest: Digest,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The build record artifact cannot be stored.
    #[error(transparent)]
    StoreArtifact(#[from] StoreArtifactError),
    /// The build record cannot be pushed.
    #[error("pushing the build record of {repo}@{subject}: {reason}")]
    PushRecord {
        /// The repository.
        repo: String,
        /// The image it is attached to.
        subject: Digest,
        /// Why (shown in the message).
        reason: Box<RegistryError>,
    },
    /// A document (config, key, manifest) does not read or write as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The sandbox could not run a RUN command, or the command failed.
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// A file operation failed (the message is the system's).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The step cache or an imported cache (`--cache-from`) failed.
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
    /// A layer directory (unpacked base or stage layer, snapshot) failed.
    #[error(transparent)]
    LayerDirs(#[from] crate::sandbox::layer_dirs::Error),
    /// The engine's stage half failed under a step (its view, cache, context).
    #[error(transparent)]
    Engine(Box<crate::engine::Error>),
}

impl Error {
    /// The error a transparent variant holds (it shows as that error, so
    /// it is no link of the cause chain; `error::hint_of` and
    /// `error::links` look here), and the step error a trigger wraps.
    pub fn held(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            Error::Copy(e) => e,
            Error::Expand(e) => e,
            Error::Sandbox(e) => e,
            Error::Cache(e) => e,
            Error::LayerDirs(e) => e,
            Error::Engine(e) => &**e,
            Error::Trigger { source, .. } => &**source,
            _ => return None,
        })
    }

    /// What the user can do about it, when it is theirs to fix.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Chmod(_) => {
                "use an octal mode such as --chmod=755 or a symbolic one such as --chmod=u=rwX,go=rX"
                    .into()
            }
            Error::GitSource { .. } => {
                "clone it in a RUN step (or beside the Dockerfile) and COPY the files".into()
            }
            Error::BadChecksum { .. } => {
                "give the expected content digest as --checksum=sha256:<64 hex digits>".into()
            }
            Error::Excluded { src, .. } => format!(
                "see why with `cairn context ls --explain {src}`, or add `!{src}` to .dockerignore"
            ),
            Error::SymlinkOutside { .. } => {
                "symlinks resolve inside the context, never on the host: copy the target into the context"
                    .into()
            }
            Error::SecretRequired { id } => {
                format!("pass it with --secret id={id},src=PATH or --secret id={id},env=VAR")
            }
            Error::SshRequired { id } => missing_ssh_fix(id),
            Error::BindNotInContext { .. } => {
                "check the path, and that .dockerignore does not exclude it".into()
            }
            // The hint of the step the trigger ran (the wrapper hides its type).
            Error::Trigger { source, .. } => return crate::error::hint_of(&**source),
            _ => return None,
        })
    }
}

impl From<crate::engine::Error> for Error {
    fn from(e: crate::engine::Error) -> Self {
        Error::Engine(Box::new(e))
    }
}

/// What to do about a missing required ssh agent `id`.
pub(crate) fn missing_ssh_fix(id: &str) -> String {
    let flag = if id == "default" {
        "--ssh default (the agent of $SSH_AUTH_SOCK)".to_owned()
    } else {
        format!("--ssh {id}=SOCKET")
    };
    format!("pass {flag}, or drop `required` to run without it")
}

/// A layer blob that cannot be opened for reading.
#[derive(Debug, thiserror::Error)]
pub enum OpenLayerError {
    /// The blob is missing or cannot be opened.
    #[error("opening layer {digest}")]
    Open {
        /// The layer's digest.
        digest: Digest,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// Its first bytes (to tell the compression) cannot be read.
    #[error("reading layer {digest}")]
    Read {
        /// The layer's digest.
        digest: Digest,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// An artifact that cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreArtifactError {
    /// Its body or manifest cannot be written to the blob store.
    #[error("writing an artifact into the blob store")]
    Blob(#[from] BlobError),
    /// Its manifest cannot be written as JSON.
    #[error("writing an artifact's manifest")]
    Manifest(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// The stage's context over a step error, as the CLI shows it.
    #[derive(Debug, thiserror::Error)]
    #[error("Dockerfile:3:1: [2/3] RUN x")]
    struct AtStep(#[source] Error);

    fn rendered(e: Error) -> String {
        crate::error::rendered(&AtStep(e))
    }

    #[test]
    fn a_step_error_brings_its_hint_through_the_stage_context() {
        assert_eq!(
            rendered(Error::SecretRequired { id: "npm".into() }),
            "error: Dockerfile:3:1: [2/3] RUN x\n  Caused by: secret `npm` is required but was not provided\n\n\
             hint: pass it with --secret id=npm,src=PATH or --secret id=npm,env=VAR\n"
        );
    }

    #[test]
    fn a_trigger_shows_the_hint_of_the_step_it_ran() {
        let e = Error::Trigger {
            stage: "app".into(),
            text: "COPY x .".into(),
            source: Box::new(Error::SymlinkOutside {
                src: "x".into(),
                target: "/etc".into(),
            }),
        };
        let text = rendered(e);
        assert!(text.contains("  Caused by: [app ONBUILD] COPY x .\n  Caused by: source `x` is a symlink to `/etc`"), "{text}");
        assert_eq!(
            text.matches("hint: symlinks resolve inside the context")
                .count(),
            1,
            "{text}"
        );
    }
}
