//! What can fail in the cache room beyond plain io (the local cache's
//! records, locks and pruning are `io::Result`): sizes on the command line,
//! and the shared caches of `--cache-to/--cache-from` ([`super::remote`]),
//! whose errors share this one type so that the engine, the outputs and the
//! CLI ask one type whether a cache blob was refused ([`Error::refused`])
//! and what the user can do ([`Error::hint`]).

use super::remote::{InvalidEntry, Refused};
use crate::registry::reference::ReferenceError;
use crate::registry::RegistryError;
use cairn_layers::blob_store::BlobError;
use cairn_layers::context::ContextError;
use cairn_layers::digest::DigestError;
use cairn_layers::unpack::UnpackError;
use cairn_layers::LayerError;
use std::path::PathBuf;

/// A cache error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A size that is not a number.
    #[error("invalid size `{text}`: expected a number and a unit such as 512MB")]
    InvalidSize {
        /// What was written.
        text: String,
    },
    /// A size with a unit cairn does not know.
    #[error("invalid size unit `{unit}` in `{text}` (use B, KB, MB, GB or TB)")]
    InvalidSizeUnit {
        /// The unit.
        unit: String,
        /// What was written.
        text: String,
    },
    /// A `--cache-to/--cache-from` value that does not say a cache.
    #[error("{flag} {value}: {why}")]
    BadSpec {
        /// `--cache-to` or `--cache-from`.
        flag: String,
        /// What was written.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// `cache-mounts=` without a value.
    #[error("cache-mounts=: use true, false or ID[:ID…]")]
    CacheMountsEmpty,
    /// `cache-mounts-max=` that is not a size.
    #[error("cache-mounts-max={value}: {why}")]
    CacheMountsMax {
        /// What was written.
        value: String,
        /// Why it is not a size (part of the message, as a flag's value error).
        why: Box<Error>,
    },
    /// `ref=` that is not a registry reference.
    #[error("cache ref {reference}: {why}")]
    BadRef {
        /// What was written.
        reference: String,
        /// Why (part of the message, as a flag's value error).
        why: ReferenceError,
    },
    /// A cache failed and does not ignore errors.
    #[error("importing from the {cache}")]
    Import {
        /// The cache, as messages name it.
        cache: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A cache entry that is not what its name says (it is refused, and its step built).
    #[error(transparent)]
    InvalidEntry(#[from] InvalidEntry),
    /// A cache blob that does not verify (the build runs again without it).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A lazily pulled base layer could not be fetched (the engine's fetch,
    /// its cause chain and hint kept as they are).
    #[error(transparent)]
    BaseLayer(Box<dyn std::error::Error + Send + Sync>),
    /// An entry name that could name a path.
    #[error("invalid entry name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A local cache's blob store cannot be opened.
    #[error("opening {}", path.display())]
    OpenStore {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// A blob of a local cache cannot be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory of a local cache cannot be created.
    #[error("creating {}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of a local cache cannot be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A local cache's entries cannot be listed.
    #[error("listing {}", path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A local cache's entry does not parse.
    #[error("{} is not a cairn {what}", path.display())]
    NotARecord {
        /// The file.
        path: PathBuf,
        /// `step record`, `cache mount record`.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A blob cannot be copied into a local cache.
    #[error("copying {digest} to {}", dir.display())]
    CopyBlob {
        /// The blob.
        digest: cairn_layers::Digest,
        /// The cache.
        dir: PathBuf,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// A registry cache's entry cannot be written.
    #[error("writing cache entry {entry}")]
    WriteEntry {
        /// The entry's reference.
        entry: String,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// A registry refused an entry in both shapes.
    #[error(
        "the registry refused the cache entry both as an OCI artifact and as an image manifest"
    )]
    RefusedBothShapes {
        /// The cache's repository (named in the hint).
        repo: String,
        /// The last refusal ([`Error::WriteEntry`]).
        #[source]
        source: Box<Error>,
    },
    /// A cache mount directory cannot be walked.
    #[error("reading {}", dir.display())]
    Walk {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: walkdir::Error,
    },
    /// A cache mount directory cannot be read for packing.
    #[error("reading {}", dir.display())]
    ReadMount {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: ContextError,
    },
    /// A cache mount cannot be packed.
    #[error("packing cache mount {}", dir.display())]
    PackMount {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A cache mount's blob cannot be unpacked.
    #[error("unpacking cache mount {id}")]
    UnpackMount {
        /// The mount's id.
        id: String,
        /// Why.
        #[source]
        source: Box<UnpackError>,
    },
    /// A cache mount cannot be restored and errors are not ignored.
    #[error("restoring cache mount {id} from the {cache}")]
    RestoreMount {
        /// The mount's id.
        id: String,
        /// The cache.
        cache: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A cache mount entry of another mount than its name says.
    #[error("entry {name} is the cache mount {found_id:?} of {found_platform:?}, not {id:?} of {platform:?}")]
    MountEntryMismatch {
        /// The entry.
        name: String,
        /// The mount it holds.
        found_id: String,
        /// Its platform.
        found_platform: String,
        /// The mount asked for.
        id: String,
        /// Its platform.
        platform: String,
    },
    /// A cache mount entry larger than `cache-mounts-max=`.
    #[error("{bytes} bytes, over cache-mounts-max={max} (raise it on --cache-from to import it)")]
    MountTooLarge {
        /// Its file data.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// A cache mount to export cannot be measured.
    #[error("cache mount {id}")]
    MeasureMount {
        /// The mount's id.
        id: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A cache mount directory entry cannot be read.
    #[error(transparent)]
    WalkEntry(#[from] walkdir::Error),
    /// A file index read from a cache that is not a content record.
    #[error("not a layer-by-content record")]
    IndexNotContent,
    /// A file index whose inputs were changed.
    #[error("its inputs do not hash to its key")]
    IndexKeyMismatch,
    /// A file index of another layer.
    #[error("it describes the layer {described}, not {layer}")]
    IndexOtherLayer {
        /// The layer it describes (`(none)`).
        described: String,
        /// The layer asked for.
        layer: cairn_layers::Digest,
    },
    /// A thread exporting entries panicked (a bug).
    #[error("a cache export thread panicked")]
    ExportPanicked,
    /// A registry request failed (the registry's error says which).
    #[error(transparent)]
    Registry(#[from] Box<RegistryError>),
    /// A blob store failed (its error names the blob).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A step key that is not a digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A record or manifest cannot be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A file or directory operation failed (the io error says what).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        Error::Registry(Box::new(e))
    }
}

impl Error {
    /// What the user can do about it, when it is theirs to fix.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::BadSpec { flag, .. } => Some(format!(
                "write {flag} type=registry,ref=REGISTRY/REPO or {flag} type=local,{}=DIR",
                if flag == "--cache-to" { "dest" } else { "src" }
            )),
            Error::BadRef { .. } => Some(
                "write ref=REGISTRY/REPOSITORY, e.g. ref=registry.example.com/app/cache".into(),
            ),
            Error::RefusedBothShapes { repo, .. } => Some(format!(
                "export to a registry or repository that accepts OCI image manifests with custom layer types, \
                 or to type=local,dest=DIR; to build without the export meanwhile, drop ignore-error=false or --cache-to {repo}"
            )),
            // A transparent variant hides the error it holds from the cause chain: bring its hint.
            Error::BaseLayer(e) => crate::error::hint_of(&**e),
            _ => None,
        }
    }

    /// The refused cache blob this is, when it is one: the build is then
    /// run again without that entry.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            Error::Refused(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::remote::CacheSpec;

    #[test]
    fn a_bad_cache_flag_says_what_to_write() {
        let e = CacheSpec::parse("--cache-from", "type=local,dest=/c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cache-from type=local,dest=/c: type=local needs src=DIR"
        );
        assert_eq!(
            e.hint().as_deref(),
            Some("write --cache-from type=registry,ref=REGISTRY/REPO or --cache-from type=local,src=DIR")
        );
    }

    #[test]
    fn a_base_layer_fetch_keeps_its_hint() {
        let fetch =
            crate::error::Hinted::new(std::io::Error::other("401 Unauthorized"), "log in first");
        let e = Error::BaseLayer(Box::new(fetch));
        assert_eq!(
            crate::error::rendered(&e),
            "error: 401 Unauthorized\n\nhint: log in first\n"
        );
    }

    #[test]
    fn a_warning_says_the_whole_chain_on_one_line() {
        let e = Error::Import {
            cache: "local cache /c".into(),
            source: Box::new(Error::Read {
                path: "/c/entries/s1.json".into(),
                source: std::io::ErrorKind::PermissionDenied.into(),
            }),
        };
        assert_eq!(
            crate::error::one_line(&e),
            "importing from the local cache /c: reading /c/entries/s1.json: permission denied"
        );
    }
}
