//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): one image
//! per target platform, joined into one OCI image index.
//!
//! The platforms are built one after another on the same cache, so what does
//! not depend on the target platform is done once: a `FROM
//! --platform=$BUILDPLATFORM` stage (cross-compilation) is built for the
//! first platform and is a cache hit for every later one, context files are
//! hashed once (the context hash cache), and a COPY whose bytes are the same
//! on every platform writes one blob. Every platform's plan is checked (base
//! platforms, RUN emulation) before the first one starts.

use super::bases::ImageSource;
use super::build::{build, preflight, BuildResult};
use super::request::BuildRequest;
use crate::frontend::Platform;
use crate::image::manifest::{Descriptor, OCI_INDEX};
use crate::report::{Event, Reporter};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;

/// The images of a multi-platform build and the index naming them.
#[derive(Clone, Debug)]
pub struct IndexResult {
    /// Canonical index bytes.
    pub index_raw: Vec<u8>,
    /// The index digest (what is pushed and tagged).
    pub index_digest: Digest,
    /// One image per platform, in `--platform` order.
    pub images: Vec<BuildResult>,
}

impl IndexResult {
    /// The index's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            OCI_INDEX,
            self.index_digest.clone(),
            self.index_raw.len() as u64,
        )
    }

    /// The image built for `p`.
    pub fn image(&self, p: &Platform) -> Option<&BuildResult> {
        self.images.iter().find(|r| &r.platform == p)
    }
}

/// The index of `images` (entries in the given order), stored in `store`.
pub fn index(images: Vec<BuildResult>, store: &BlobStore) -> anyhow::Result<IndexResult> {
    let manifests: Vec<Descriptor> = images.iter().map(super::output::descriptor).collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let index_raw = serde_json::to_vec(&index)?;
    let index_digest = store.put_bytes(&index_raw)?;
    Ok(IndexResult {
        index_raw,
        index_digest,
        images,
    })
}

/// Build `req` for each of `platforms` (at least two, distinct) and join the
/// images into an index in the cache's blob store.
pub fn build_platforms(
    req: &BuildRequest,
    platforms: &[Platform],
    images: &dyn ImageSource,
    reporter: &dyn Reporter,
) -> anyhow::Result<IndexResult> {
    let for_platform = |p: &Platform| BuildRequest {
        platform: Some(p.clone()),
        ..req.clone()
    };
    for p in platforms {
        preflight(&for_platform(p)).map_err(|e| e.context(format!("building for platform {p}")))?;
    }
    let mut out = Vec::with_capacity(platforms.len());
    for p in platforms {
        reporter.event(Event::Info(format!("building for platform {p}")));
        let r = build(&for_platform(p), images, reporter)
            .map_err(|e| e.context(format!("building for platform {p}")))?;
        out.push(r);
    }
    index(out, &BlobStore::open(&req.cache_dir)?)
}
