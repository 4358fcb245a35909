//! What can fail in loading and comparing the two sides of `cairn diff`.

use crate::error::Hinted;
use crate::image::oci_layout::LayoutError;
use crate::registry::reference::ReferenceError;
use crate::registry::RegistryError;
use cairn_layers::blob_store::BlobError;
use std::path::PathBuf;

/// A `cairn diff` error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A side that is neither a layout, an archive, a stored tag nor a reference.
    #[error("`{text}` is not an image reference")]
    NotAReference {
        /// What the user wrote.
        text: String,
        /// The local image store (named in the hint).
        local_store: PathBuf,
        /// Why it does not parse as a reference.
        #[source]
        source: ReferenceError,
    },
    /// The registry client cannot be made.
    #[error(transparent)]
    Client(RegistryError),
    /// The async runtime for registry requests cannot start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A side's image config is not JSON of an image config.
    #[error("parsing the image config of {side}")]
    Config {
        /// The side as the user named it.
        side: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest and its config disagree on the number of layers.
    #[error("{side}: the {listing} lists {layers} layers but the config has {diff_ids} diff_ids")]
    LayerCount {
        /// The side as the user named it.
        side: String,
        /// What lists the layers (`manifest`, `manifest.json`).
        listing: &'static str,
        /// Layers listed.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// A config's diff_id is not a digest.
    #[error("{side}: invalid diff_id `{id}` in the image config")]
    DiffId {
        /// The side as the user named it.
        side: String,
        /// The text.
        id: String,
        /// Why.
        #[source]
        source: cairn_layers::digest::DigestError,
    },
    /// A docker archive's layer path names no digest.
    #[error("docker-archive {}: invalid layer path `{path}`", file.display())]
    ArchiveLayerPath {
        /// The archive.
        file: PathBuf,
        /// The layer's path in it.
        path: String,
        /// Why.
        #[source]
        source: cairn_layers::digest::DigestError,
    },
    /// A layer blob of an OCI layout cannot be opened.
    #[error("{side}: opening layer {digest}")]
    OpenLayer {
        /// The side as the user named it.
        side: String,
        /// The layer's digest.
        digest: String,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// A layer a docker archive's manifest names has no file.
    #[error("{side}: no layer file for {digest}")]
    NoLayerFile {
        /// The side as the user named it.
        side: String,
        /// The layer's digest.
        digest: String,
    },
    /// A docker archive lacks an entry its manifest names.
    #[error("{side}: the archive has no entry `{path}`")]
    NoArchiveEntry {
        /// The side as the user named it.
        side: String,
        /// The entry.
        path: String,
    },
    /// A docker archive cannot be opened.
    #[error("opening docker-archive {}", file.display())]
    OpenArchive {
        /// The archive.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A docker archive cannot be read.
    #[error("reading docker-archive {}", file.display())]
    ReadArchive {
        /// The archive.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A docker archive lacks a file cairn needs (`manifest.json`, a config, a layer).
    #[error("docker-archive {} has no {what}`{path}`", file.display())]
    ArchiveMissing {
        /// The archive.
        file: PathBuf,
        /// `layer ` for a layer, else empty.
        what: &'static str,
        /// The entry.
        path: String,
    },
    /// A docker archive's metadata file is larger than any real one.
    #[error("docker-archive {}: `{path}` is too large ({size} bytes)", file.display())]
    ArchiveEntryTooLarge {
        /// The archive.
        file: PathBuf,
        /// The entry.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A docker archive's `manifest.json` is not one.
    #[error("parsing manifest.json of {}", file.display())]
    ArchiveManifest {
        /// The archive.
        file: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A docker archive without an image.
    #[error("docker-archive {} holds no image (manifest.json is empty)", file.display())]
    ArchiveEmpty {
        /// The archive.
        file: PathBuf,
    },
    /// An OCI layout cannot be opened.
    #[error("opening OCI layout {}", dir.display())]
    OpenLayout {
        /// The layout's directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// A layout's index or tag cannot be read (the layout error says which).
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A blob of a layout cannot be read (the store's error names it).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A side's image index is not an index.
    #[error("{side}: parsing index {digest}")]
    Index {
        /// The side as the user named it (empty: listing platforms).
        side: String,
        /// The index's digest.
        digest: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A multi-platform image's index is not an index.
    #[error("parsing the index")]
    ParseIndex(#[source] serde_json::Error),
    /// A side's image manifest is not one.
    #[error("{side}: parsing manifest {digest}")]
    Manifest {
        /// The side as the user named it.
        side: String,
        /// The manifest's digest.
        digest: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A side's config blob cannot be read.
    #[error("{side}: reading config {digest}")]
    ReadConfig {
        /// The side as the user named it.
        side: String,
        /// The config's digest.
        digest: String,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// The platform asked for is not in an index.
    #[error(transparent)]
    Platform(RegistryError),
    /// A registry side's manifest cannot be fetched.
    #[error("reading {reference}")]
    Fetch {
        /// The reference.
        reference: String,
        /// Why (with what to do when the user can fix it).
        #[source]
        source: Box<Hinted>,
    },
    /// A layer of a registry side cannot be fetched.
    #[error("fetching layer {digest} of {reference}")]
    FetchLayer {
        /// The layer's digest.
        digest: String,
        /// The reference.
        reference: String,
        /// Why (with what to do when the user can fix it).
        #[source]
        source: Box<Hinted>,
    },
    /// The temporary blob store for a registry side cannot be made.
    #[error("creating a temporary blob store")]
    TempStore(#[source] std::io::Error),
    /// A layer cannot be read for the comparison.
    #[error("reading layer {digest} of {side}")]
    ReadLayer {
        /// The side as the user named it.
        side: String,
        /// The layer's digest.
        digest: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A thread reading or comparing layers panicked (a bug).
    #[error("layer {0} panicked")]
    Panicked(&'static str),
}

impl Error {
    /// What the user can do about it, when it is theirs to fix.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotAReference { local_store, .. } => Some(format!(
                "name an image as REGISTRY/REPO[:TAG|@DIGEST], oci:DIR[:TAG], docker-archive:FILE or a tag of the local store oci:{}",
                local_store.display()
            )),
            Error::Platform(_) => Some("choose a platform with `--platform`".into()),
            _ => None,
        }
    }
}
