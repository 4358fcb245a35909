//! Supply-chain attestations of built images: an SBOM ([`sbom`]: SPDX 2.3
//! or CycloneDX 1.6 JSON) and SLSA v1 provenance ([`provenance`]).
//!
//! **Attached, not mixed in.** Each document is an OCI 1.1 artifact whose
//! `subject` is the image manifest, stored the one way cairn attaches
//! anything to an image (`engine::record_artifact::store_artifact`, as the
//! build record): beside the image in an OCI layout (its `index.json` entry
//! names the artifacts in the annotation [`LAYOUT_ANNOTATION`]; they are not
//! entries themselves, so skopeo/umoci/podman still see one image), and in a
//! registry as referrers (referrers API, or the `sha256-<hex>` tag schema).
//! The image's digest never changes.
//!
//! **Reproducible.** No wall-clock time, no random id: document namespaces,
//! serial numbers and invocation ids derive from digests; times are the
//! build epoch (SOURCE_DATE_EPOCH). The same inputs give the same bytes.
//!
//! **Cached with the image.** An SBOM is a function of the image id, the
//! options and the epoch; it is scanned once and remembered in
//! `CACHE/attest/` (a memo naming the document's blob), so a no-op rebuild
//! does not read a layer. Provenance is a few hundred bytes written from the
//! build record already in memory.
//!
//! **Adding an attachment.** A new SBOM format is a writer beside
//! [`sbom::spdx`] and [`sbom::cyclonedx`] over the same [`sbom::Inventory`],
//! named in [`options`] and [`documents`]; a new package source is a reader
//! beside [`sbom::apk`] and [`sbom::node`]. Every sink attaches whatever
//! [`documents`] returns (`publish::attachments`), so nothing else changes.

mod error;
pub mod options;
pub mod provenance;
pub mod read;
pub mod sbom;

pub use error::Error;
pub use options::{Options, ProvenanceMode, SbomFormat};

use crate::engine::build::BuildResult;
use crate::engine::request::BuildRequest;
use crate::image::config::ImageConfig;
use crate::image::manifest::Descriptor;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Artifact (and layer) media type of an SPDX JSON document.
pub const SPDX_TYPE: &str = "application/spdx+json";
/// Artifact (and layer) media type of a CycloneDX JSON document.
pub const CYCLONEDX_TYPE: &str = "application/vnd.cyclonedx+json";
/// Artifact (and layer) media type of an in-toto statement.
pub const IN_TOTO_TYPE: &str = "application/vnd.in-toto+json";
/// Every attestation artifact type cairn writes.
pub const TYPES: [&str; 3] = [SPDX_TYPE, CYCLONEDX_TYPE, IN_TOTO_TYPE];
/// The annotation naming an in-toto statement's predicate type (as BuildKit's).
pub const PREDICATE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The annotation naming the build stage an SBOM describes (`scan-stage=true`).
pub const STAGE_ANNOTATION: &str = "vnd.cairn.sbom.stage";
/// The annotation, on an image's (or index's) `index.json` entry, listing
/// its attestation artifacts' manifest digests, comma-separated.
pub const LAYOUT_ANNOTATION: &str = "vnd.cairn.attestations";

/// A base image reference as the documents show it: an OCI layout on this
/// machine (`oci:/path/to/dir:tag`) becomes `oci-layout://DIRNAME:tag`, so
/// the documents do not depend on where the layout lies; credentials never
/// show.
pub fn public_reference(reference: &str) -> String {
    match reference.strip_prefix("oci:") {
        Some(spec) => {
            let (dir, tag) = crate::image::oci_layout::split_dir_tag(spec);
            let name = std::path::Path::new(dir)
                .file_name()
                .map_or_else(|| "layout".into(), |n| n.to_string_lossy().into_owned());
            match tag {
                Some(t) => format!("oci-layout://{name}:{t}"),
                None => format!("oci-layout://{name}"),
            }
        }
        None => crate::registry::reference::redact_credentials(reference),
    }
}

/// What a build attests, and what from its request the documents need.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `--sbom`, `--provenance`.
    pub options: Options,
    /// The Dockerfile's path relative to the context (its file name when
    /// outside), so the checkout directory does not show.
    pub dockerfile_name: String,
    /// The Dockerfile's digest.
    pub dockerfile_digest: Digest,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg` (values shown only where the image config has them).
    pub build_args: BTreeMap<String, String>,
    /// The build epoch.
    pub epoch: u64,
    /// The image's name in the documents: the repository of the first tag,
    /// else `image`.
    pub name: String,
    /// The cache directory (the SBOM memo).
    pub cache_dir: PathBuf,
}

impl Plan {
    /// The plan of `req` built under `tags`.
    pub fn new(req: &BuildRequest, options: Options, tags: &[String]) -> Self {
        let dockerfile_name = req
            .dockerfile
            .strip_prefix(&req.context)
            .ok()
            .or_else(|| req.dockerfile.file_name().map(std::path::Path::new))
            .map_or_else(
                || "Dockerfile".to_owned(),
                |p| p.to_string_lossy().into_owned(),
            );
        let name = tags
            .first()
            .and_then(|t| t.parse::<crate::registry::Reference>().ok())
            .map_or_else(|| "image".to_owned(), |r| r.repository().to_string());
        Plan {
            options,
            dockerfile_name,
            dockerfile_digest: Digest::of(req.dockerfile_source.as_bytes()),
            target: req.target.clone(),
            build_args: req.build_args.clone(),
            epoch: req.epoch,
            name,
            cache_dir: req.cache_dir.clone(),
        }
    }
}

/// One document to attach: its artifact type, bytes and annotations.
#[derive(Clone, Debug)]
pub struct Document {
    /// [`SPDX_TYPE`], [`CYCLONEDX_TYPE`] or [`IN_TOTO_TYPE`].
    pub artifact_type: &'static str,
    /// The document.
    pub body: Vec<u8>,
    /// Annotations of its artifact manifest.
    pub annotations: BTreeMap<String, String>,
}

/// The SBOM of one image or stage: from the memo when it was made before,
/// else scanned (layers from what the build has of them, `views`, else
/// their blobs in `store`) and remembered.
fn sbom_document(
    plan: &Plan,
    (store, views): (
        &BlobStore,
        &BTreeMap<String, crate::engine::layer_view::LayerView>,
    ),
    format: SbomFormat,
    image: &crate::engine::state::ImageState,
    stage: Option<&str>,
) -> Result<Vec<u8>, Error> {
    let config_raw = image
        .image
        .config
        .to_canonical_json()
        .map_err(Error::Config)?;
    let config_digest = Digest::of(&config_raw);
    let base = image.base.as_ref();
    let key = Digest::of(
        format!(
            "cairn-sbom-v1\n{format:?}\n{}\n{config_digest}\n{}\n{}\n{}\n",
            stage.unwrap_or(""),
            plan.name,
            plan.epoch,
            base.map(|b| format!("{} {} {}", b.reference, b.digest, b.layers))
                .unwrap_or_default()
        )
        .as_bytes(),
    );
    let memo = crate::cache::CacheLayout::new(&plan.cache_dir)
        .dir(crate::cache::Bucket::Attest)
        .join(key.hex());
    let remembered: Option<Digest> = crate::memo_file::read_json::<String>(&memo).parse().ok();
    if let Some(d) = remembered.filter(|d| store.contains(d)) {
        if let Ok(bytes) = store.read_bytes(&d) {
            return Ok(bytes);
        }
    }
    let shown = base.map(|b| public_reference(&b.reference));
    let b = base.zip(shown.as_deref()).map(|(b, reference)| sbom::Base {
        reference,
        digest: &b.digest,
        layers: b.layers,
    });
    let inv = sbom::scan(
        (store, views),
        &image.image.layers,
        &image.image.config,
        b.as_ref(),
        (
            plan.name.clone(),
            stage.map(str::to_owned),
            config_digest,
            plan.epoch,
        ),
    )?;
    let body = match format {
        SbomFormat::Spdx => sbom::spdx::write(&inv),
        SbomFormat::CycloneDx => sbom::cyclonedx::write(&inv),
    }
    .map_err(|source| Error::Encode {
        what: "SBOM",
        source,
    })?;
    let d = store.put_bytes(&body).map_err(Error::Store)?;
    // Only a time saver: a memo that cannot be written is made again next time.
    let _ = crate::memo_file::write_json(&memo, &d.to_string());
    Ok(body)
}

/// The documents `r` is to carry (none without a plan), its image manifest
/// being `subject`; layers are read from `store` (the cache).
pub fn documents(
    r: &BuildResult,
    plan: Option<&Plan>,
    store: &BlobStore,
    subject: &Digest,
) -> Result<Vec<Document>, Error> {
    let Some(plan) = plan else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some((format, stages)) = plan.options.sbom {
        let artifact_type = match format {
            SbomFormat::Spdx => SPDX_TYPE,
            SbomFormat::CycloneDx => CYCLONEDX_TYPE,
        };
        let config: ImageConfig = serde_json::from_slice(&r.config_raw).map_err(Error::Config)?;
        let image = crate::engine::state::ImageState {
            image: crate::image::Image {
                config,
                layers: r.layers.clone(),
                created: String::new(),
            },
            fs_key: r.manifest_digest.clone(),
            base: r.base.clone(),
        };
        out.push(Document {
            artifact_type,
            body: sbom_document(plan, (store, &r.layer_views), format, &image, None)?,
            annotations: BTreeMap::new(),
        });
        if stages {
            for (name, st) in &r.stages {
                out.push(Document {
                    artifact_type,
                    body: sbom_document(plan, (store, &r.layer_views), format, st, Some(name))?,
                    annotations: [(STAGE_ANNOTATION.to_owned(), name.clone())].into(),
                });
            }
        }
    }
    if let Some(mode) = plan.options.provenance {
        out.push(Document {
            artifact_type: IN_TOTO_TYPE,
            body: provenance::statement(r, plan, mode, subject)?,
            annotations: [(
                PREDICATE_ANNOTATION.to_owned(),
                provenance::PREDICATE_TYPE.to_owned(),
            )]
            .into(),
        });
    }
    Ok(out)
}

/// Store `r`'s attestations as artifacts whose subject is `image` in
/// `into` (layers read from `from`); their manifest bytes and descriptors.
pub fn attach(
    r: &BuildResult,
    plan: Option<&Plan>,
    from: &BlobStore,
    into: &BlobStore,
    image: &Descriptor,
) -> Result<Vec<(Vec<u8>, Descriptor)>, Error> {
    documents(r, plan, from, &image.digest)?
        .iter()
        .map(|d| {
            crate::engine::record_artifact::store_artifact(
                into,
                image,
                d.artifact_type,
                &d.body,
                &d.annotations,
            )
            .map_err(|source| Error::Attach {
                image: image.digest.clone(),
                source,
            })
        })
        .collect()
}

/// `entry` (an `index.json` entry) also naming `artifacts`.
pub fn annotate(entry: &Descriptor, artifacts: &[Descriptor]) -> Descriptor {
    let mut d = entry.clone();
    if artifacts.is_empty() {
        return d;
    }
    let list: Vec<String> = artifacts.iter().map(|a| a.digest.to_string()).collect();
    d.annotations
        .get_or_insert_with(Default::default)
        .insert(LAYOUT_ANNOTATION.to_owned(), list.join(","));
    d
}
