//! The image a stage is building: config, layers and history, plus the
//! cache key chain that identifies its filesystem.

use crate::image::Image;
use cairn_layers::Digest;

/// A stage's image while it is being built.
#[derive(Clone, Debug)]
pub struct ImageState {
    /// Config and layers (changed only through `Image`'s `with_*` methods).
    pub image: Image,
    /// Key of the filesystem: the base digest, then each RUN/WORKDIR step's cache
    /// key, or for a COPY/ADD layer its content (`stage_run::Chain`).
    pub fs_key: Digest,
    /// The registry image at the bottom of the `FROM` chain, if any.
    pub base: Option<BaseImage>,
}

/// The image a stage chain starts from: where its blobs may already be (a
/// push mounts them from there) and how many of the bottom layers are its
/// (their compression is kept unless `force-compression=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference as resolved (`registry/repo:tag`).
    pub reference: String,
    /// Its layer count.
    pub layers: usize,
    /// Its platform manifest's digest (provenance names bases by digest).
    pub digest: Digest,
}
