//! Where base images (`FROM image`, `COPY --from=image`) come from: a
//! registry, or a local OCI layout (`oci:DIR[:tag]`).

use crate::frontend::Platform;
use crate::image::config::ImageConfig;
use crate::image::Layer;
use crate::report::Reporter;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;

use super::Error;

pub use crate::cache::remote::LayerFetch;

/// A base image fetched into the blob store (config and layers present).
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The reference as resolved (for messages and cache explanations).
    pub reference: String,
    /// The platform manifest's digest.
    pub digest: Digest,
    /// Its config.
    pub config: ImageConfig,
    /// Its layers, bottom first (blobs in the store).
    pub layers: Vec<Layer>,
}

/// Resolves and fetches base images.
pub trait ImageSource: Send + Sync {
    /// Fetch `reference` for `platform` into `store`.
    fn fetch(
        &self,
        reference: &str,
        platform: &Platform,
        store: &BlobStore,
        reporter: &dyn Reporter,
    ) -> Result<BaseImage, Error>;

    /// `reference`'s manifest and config into `store`, and how to fetch its
    /// layers when the build first needs them (`None`: they are fetched
    /// already, as by [`ImageSource::fetch`], which is the default).
    fn fetch_config(
        &self,
        reference: &str,
        platform: &Platform,
        store: &BlobStore,
        reporter: &dyn Reporter,
    ) -> Result<(BaseImage, Option<LayerFetch>), Error> {
        Ok((self.fetch(reference, platform, store, reporter)?, None))
    }
}

/// An image source that knows no images (builds from `scratch` only).
pub struct NoImages;

impl ImageSource for NoImages {
    fn fetch(
        &self,
        reference: &str,
        _: &Platform,
        _: &BlobStore,
        _: &dyn Reporter,
    ) -> Result<BaseImage, Error> {
        Err(Error::NoImageSource(reference.to_owned()))
    }
}
