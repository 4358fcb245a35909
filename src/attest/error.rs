//! What can fail in making, attaching and reading attestations, and what
//! the user can do about the flag errors ([`Error::hint`]).

use crate::engine::recompress::OpenLayerError;
use crate::engine::record_artifact::StoreArtifactError;
use crate::registry::RegistryError;
use cairn_layers::blob_store::BlobError;
use cairn_layers::Digest;
use std::path::PathBuf;

/// An attestation error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boolean setting of `--sbom`/`--provenance` that is not one.
    #[error("{flag}: `{value}` is not true or false")]
    NotBool {
        /// The flag and setting (`--sbom scan-stage`).
        flag: &'static str,
        /// What was written.
        value: String,
    },
    /// A `--sbom` setting cairn does not know.
    #[error("--sbom: unknown setting `{key}={value}`")]
    UnknownSbomSetting {
        /// The setting's name.
        key: String,
        /// Its value.
        value: String,
    },
    /// A `--provenance` setting cairn does not know.
    #[error("--provenance: unknown setting `{key}={value}`")]
    UnknownProvenanceSetting {
        /// The setting's name.
        key: String,
        /// Its value.
        value: String,
    },
    /// `builder-id=` that is not an absolute URI.
    #[error("--provenance builder-id: `{raw}` is not an absolute URI ({reason})")]
    BuilderIdNotUri {
        /// What was written.
        raw: String,
        /// Why it does not parse (shown in the message, as a flag's value error).
        reason: url::ParseError,
    },
    /// `builder-id=` with a user name or password in it.
    #[error("--provenance builder-id: the URI carries credentials, and provenance is published")]
    BuilderIdCredentials,
    /// The SBOM's package manifests are more than cairn keeps in memory.
    #[error(
        "layer {index} ({digest}): the package manifests of this image exceed {limit_mib} MiB; \
         build without --sbom, or find what writes so many"
    )]
    TooManyManifests {
        /// The layer (from the bottom) where the limit was passed.
        index: usize,
        /// Its digest.
        digest: Digest,
        /// The limit.
        limit_mib: u64,
    },
    /// A package manifest in a layer could not be read.
    #[error("reading /{path} of layer {index} ({digest}) for the SBOM")]
    ReadFile {
        /// The file in the layer.
        path: String,
        /// The layer (from the bottom).
        index: usize,
        /// Its digest.
        digest: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer's archive could not be read.
    #[error("reading layer {index} ({digest}) for the SBOM")]
    ReadLayer {
        /// The layer (from the bottom).
        index: usize,
        /// Its digest.
        digest: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer's blob could not be opened.
    #[error("scanning layer {index} for the SBOM")]
    OpenLayer {
        /// The layer (from the bottom).
        index: usize,
        /// Why.
        #[source]
        source: OpenLayerError,
    },
    /// A layer directory the build made could not be walked.
    #[error("walking {}", path.display())]
    Walk {
        /// The directory or the entry in it.
        path: PathBuf,
        /// Why.
        #[source]
        source: walkdir::Error,
    },
    /// A layer scan thread panicked (a bug).
    #[error("a layer scan panicked")]
    ScanPanicked,
    /// A layer was left unscanned (a bug).
    #[error("layer {0} was not scanned")]
    NotScanned(usize),
    /// The image config does not read or write as JSON.
    #[error("the image config is not valid JSON")]
    Config(#[source] serde_json::Error),
    /// A document could not be written as JSON.
    #[error("writing the {what} as JSON")]
    Encode {
        /// The document (`SPDX SBOM`, `provenance`).
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A document could not be stored in the blob store.
    #[error("storing the SBOM")]
    Store(#[source] BlobError),
    /// A document could not be attached to the image.
    #[error("attaching the attestations to {image}")]
    Attach {
        /// The image manifest's digest.
        image: Digest,
        /// Why.
        #[source]
        source: StoreArtifactError,
    },
    /// The registry's referrers of an image could not be listed.
    #[error("listing the referrers of {repo}@{subject}")]
    Referrers {
        /// The repository.
        repo: String,
        /// The image manifest's digest.
        subject: Digest,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// An attestation in a registry could not be fetched.
    #[error("fetching {reference}")]
    Fetch {
        /// The attestation's reference.
        reference: String,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// An attestation's manifest in a registry is not an image manifest.
    #[error("reading the manifest of {reference}")]
    Manifest {
        /// The attestation's reference.
        reference: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// What the user can do about it, when it is theirs to fix.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NotBool { .. } => "write true or false".into(),
            Error::UnknownSbomSetting { .. } => {
                "write --sbom, --sbom=false, --sbom=format=spdx|cyclonedx or add ,scan-stage=true"
                    .into()
            }
            Error::UnknownProvenanceSetting { .. } => {
                "write --provenance, --provenance=false or --provenance=mode=min|max \
                 (and ,builder-id=URI)"
                    .into()
            }
            Error::BuilderIdNotUri { .. } => {
                "write an absolute URI, e.g. builder-id=https://ci.example/jobs/42".into()
            }
            Error::BuilderIdCredentials => "leave the user name and password out of the URI".into(),
            _ => return None,
        })
    }
}
