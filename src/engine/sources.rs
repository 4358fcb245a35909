//! The real [`ImageSource`]: registries (through [`crate::registry`]) and
//! local OCI layouts (`oci:DIR[:tag]`). Blobs land in the build cache's
//! store, verified; a blob already there is never fetched again.

use super::bases::{BaseImage, ImageSource};
use super::Error;
use crate::image::config::ImageConfig;
use crate::image::manifest::{ImageIndex, ImageManifest, ManifestKind};
use crate::image::oci_layout::{split_dir_tag, OciLayout};
use crate::image::Layer;
use crate::registry::{Platform, Reference, Registry};
use crate::report::Reporter;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::{DiffId, Digest};

/// Fetches base images from registries and OCI layouts.
pub struct Sources {
    registry: std::sync::Arc<Registry>,
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
}

impl Sources {
    /// A source using `registry` (its reporter shows pull progress).
    pub fn new(registry: Registry) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Sources {
            registry: std::sync::Arc::new(registry),
            runtime: std::sync::Arc::new(runtime),
        })
    }
}

/// Join manifest layers with config diff_ids into [`Layer`]s.
fn layers(
    reference: &str,
    manifest: &ImageManifest,
    config: &ImageConfig,
) -> Result<Vec<Layer>, Error> {
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(Error::LayerCount {
            reference: reference.to_owned(),
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(d, id)| {
            Ok(Layer {
                digest: d.digest.clone(),
                diff_id: DiffId(id.parse::<Digest>().map_err(|source| Error::DiffId {
                    reference: reference.to_owned(),
                    id: id.clone(),
                    source,
                })?),
                size: d.size,
                media_type: d.media_type.clone(),
            })
        })
        .collect()
}

/// A base must be an image for the requested platform (or one containerd
/// accepts in its place, e.g. `arm/v6` for `arm/v7`): a single-platform
/// image of another architecture is an error, never a silent substitution.
/// A config without an architecture (hand-made images) is taken as is.
fn check_platform(reference: &str, p: &Platform, config: &ImageConfig) -> Result<(), Error> {
    if config.architecture.is_empty() {
        return Ok(());
    }
    let os = if config.os.is_empty() {
        "linux"
    } else {
        &config.os
    };
    let has = Platform::new(os, &config.architecture, config.variant.as_deref());
    if p.preference().contains(&has) {
        return Ok(());
    }
    Err(Error::NoImageForPlatform {
        reference: reference.to_owned(),
        wanted: Box::new(p.clone()),
        has: Box::new(has),
    })
}

fn from_layout(spec: &str, p: &Platform, store: &BlobStore) -> Result<BaseImage, Error> {
    // `DIR@sha256:…` (`--build-context NAME=oci-layout://DIR@…`): that manifest or index.
    if let Some((dir, digest)) = spec.rsplit_once('@') {
        return from_layout_at(std::path::Path::new(dir), Some(digest), spec, p, store);
    }
    let (dir, tag) = split_dir_tag(spec);
    from_layout_at(std::path::Path::new(dir), tag, spec, p, store)
}

/// The descriptor of `tag` in `layout`, or of the blob `sha256:…` that
/// `tag` names (found in the index, or read for its media type).
fn resolve_in_layout(
    layout: &OciLayout,
    tag: Option<&str>,
) -> Result<crate::image::manifest::Descriptor, Error> {
    let Some(digest) = tag.and_then(|t| t.parse::<Digest>().ok()) else {
        return Ok(layout.resolve(tag)?);
    };
    let index = layout.index()?;
    if let Some(d) = index.manifests.iter().find(|d| d.digest == digest) {
        return Ok(d.clone());
    }
    let raw = layout.store().read_bytes(&digest)?;
    let v: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|source| Error::LayoutBlob {
            digest: digest.clone(),
            source,
        })?;
    let media_type = v["mediaType"]
        .as_str()
        .unwrap_or(crate::image::manifest::OCI_MANIFEST)
        .to_owned();
    Ok(crate::image::manifest::Descriptor::new(
        media_type,
        digest,
        raw.len() as u64,
    ))
}

/// The image tagged `tag` (or the only one) in the layout `dir`, its blobs
/// copied into `store`; `spec` names it in messages (`oci:SPEC`).
pub fn from_layout_at(
    dir: &std::path::Path,
    tag: Option<&str>,
    spec: &str,
    p: &Platform,
    store: &BlobStore,
) -> Result<BaseImage, Error> {
    let layout = OciLayout::open(dir).map_err(|source| Error::OpenLayout {
        dir: dir.to_owned(),
        source,
    })?;
    let mut desc = resolve_in_layout(&layout, tag)?;
    if ManifestKind::of(&desc.media_type) == Some(ManifestKind::Index) {
        let index: ImageIndex = serde_json::from_slice(&layout.store().read_bytes(&desc.digest)?)
            .map_err(Error::LayoutIndex)?;
        let r = parse_reference("localhost/oci-layout:latest")?;
        desc = crate::registry::pull::select_platform(&r, &index, p)
            .map_err(|e| Error::LayoutPlatform {
                spec: spec.to_owned(),
                error: Box::new(e),
            })?
            .clone();
    }
    let manifest_raw = layout.store().read_bytes(&desc.digest)?;
    let invalid = |what| {
        move |source| Error::LayoutJson {
            spec: spec.to_owned(),
            what,
            source,
        }
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_raw).map_err(invalid("manifest"))?;
    let config_raw = layout.store().read_bytes(&manifest.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_raw).map_err(invalid("config"))?;
    check_platform(&format!("oci:{spec}"), p, &config)?;
    store.copy_from(layout.store(), &desc.digest)?;
    store.copy_from(layout.store(), &manifest.config.digest)?;
    for l in &manifest.layers {
        store.copy_from(layout.store(), &l.digest)?;
    }
    Ok(BaseImage {
        reference: format!("oci:{spec}"),
        layers: layers(spec, &manifest, &config)?,
        digest: desc.digest,
        config,
    })
}

impl ImageSource for Sources {
    fn fetch(
        &self,
        reference: &str,
        p: &Platform,
        store: &BlobStore,
        _reporter: &dyn Reporter,
    ) -> Result<BaseImage, Error> {
        if let Some(spec) = reference.strip_prefix("oci:") {
            return from_layout(spec, p, store);
        }
        Ok(self.pull(reference, p, store, true)?.1)
    }

    fn fetch_config(
        &self,
        reference: &str,
        p: &Platform,
        store: &BlobStore,
        reporter: &dyn Reporter,
    ) -> Result<(BaseImage, Option<super::bases::LayerFetch>), Error> {
        if reference.starts_with("oci:") {
            return Ok((self.fetch(reference, p, store, reporter)?, None));
        }
        let (r, base) = self.pull(reference, p, store, false)?;
        let (registry, runtime, from) = (self.registry.clone(), self.runtime.clone(), r.clone());
        let fetch: super::bases::LayerFetch =
            std::sync::Arc::new(move |l: &Layer, store: &BlobStore, sink| {
                runtime
                    .block_on(registry.fetch_blob_to(&from, &l.descriptor(), store, sink))
                    .map_err(|e| Error::PullLayer {
                        layer: l.digest.clone(),
                        reference: Box::new(from.clone()),
                        source: crate::error::Hinted::registry(e, &from),
                    })?;
                Ok(l.size)
            });
        Ok((base, Some(fetch)))
    }
}

impl Sources {
    /// `reference` from its registry: manifest and config, and the layers
    /// when `with_layers`.
    fn pull(
        &self,
        reference: &str,
        p: &Platform,
        store: &BlobStore,
        with_layers: bool,
    ) -> Result<(Reference, BaseImage), Error> {
        let r = parse_reference(reference)?;
        let pulled = match with_layers {
            true => self
                .runtime
                .block_on(self.registry.pull_image(&r, p, store)),
            false => self
                .runtime
                .block_on(self.registry.pull_manifest(&r, p, store)),
        }
        .map_err(|e| Error::Pull {
            reference: Box::new(r.clone()),
            source: crate::error::Hinted::registry(e, &r),
        })?;
        let config: ImageConfig =
            serde_json::from_slice(&pulled.config.bytes).map_err(|source| Error::PulledConfig {
                reference: Box::new(r.clone()),
                source,
            })?;
        check_platform(&r.to_string(), p, &config)?;
        let base = BaseImage {
            reference: r.to_string(),
            layers: layers(reference, &pulled.manifest.value, &config)?,
            digest: pulled.digest,
            config,
        };
        Ok((r, base))
    }
}

fn parse_reference(reference: &str) -> Result<Reference, Error> {
    reference.parse().map_err(|source| Error::Reference {
        shown: crate::registry::reference::redact_credentials(reference),
        source,
    })
}
