//! Finding the attestations of an image: in an OCI layout (the artifacts its
//! `index.json` entry names) or in a registry (its referrers).

use super::{LAYOUT_ANNOTATION, PREDICATE_ANNOTATION, STAGE_ANNOTATION, TYPES};
use crate::image::manifest::{Descriptor, ImageManifest};
use crate::image::oci_layout::OciLayout;
use crate::image::MediaType;
use crate::registry::{Reference, Registry, Repository};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;

/// An attestation attached to an image.
#[derive(Clone, Debug)]
pub struct Attestation {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// Its artifact type (SPDX, CycloneDX, in-toto).
    pub artifact_type: MediaType,
    /// The image manifest it is about.
    pub subject: Digest,
    /// The predicate type of an in-toto statement.
    pub predicate: Option<String>,
    /// The build stage of a stage SBOM.
    pub stage: Option<String>,
    /// The document.
    pub body: Vec<u8>,
}

impl Attestation {
    /// What it is, in a word: `sbom`, `sbom (stage NAME)`, `provenance`.
    pub fn kind(&self) -> String {
        match (&self.predicate, &self.stage) {
            (Some(_), _) => "provenance".into(),
            (None, Some(s)) => format!("sbom (stage {s})"),
            (None, None) => "sbom".into(),
        }
    }
}

fn parse(
    digest: Digest,
    manifest: &ImageManifest,
    read: impl Fn(&Descriptor) -> Option<Vec<u8>>,
) -> Option<Attestation> {
    let artifact_type = manifest.artifact_type.clone()?;
    if !TYPES.contains(&artifact_type.as_str()) {
        return None;
    }
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == artifact_type)?;
    let annotation = |k: &str| manifest.annotations.as_ref()?.get(k).cloned();
    Some(Attestation {
        digest,
        subject: manifest.subject.as_ref()?.digest.clone(),
        predicate: annotation(PREDICATE_ANNOTATION),
        stage: annotation(STAGE_ANNOTATION),
        body: read(layer)?,
        artifact_type,
    })
}

/// The attestation artifacts the layout entry `entry` names, as stored:
/// manifest bytes, descriptor, subject (to push them along with the image).
pub fn artifacts_in_layout(
    layout: &OciLayout,
    entry: &Descriptor,
) -> Vec<(Vec<u8>, Descriptor, Digest)> {
    let Some(list) = entry.annotation(LAYOUT_ANNOTATION) else {
        return Vec::new();
    };
    list.split(',')
        .filter_map(|d| d.parse::<Digest>().ok())
        .filter_map(|d| {
            let bytes = layout.store().read_bytes(&d).ok()?;
            let m: ImageManifest = serde_json::from_slice(&bytes).ok()?;
            let subject = m.subject.as_ref()?.digest.clone();
            let mut desc =
                Descriptor::new(crate::image::manifest::OCI_MANIFEST, d, bytes.len() as u64);
            desc.artifact_type = m.artifact_type.clone();
            desc.annotations = m.annotations.clone();
            Some((bytes, desc, subject))
        })
        .collect()
}

/// The attestations of `subject` that the layout entry `entry` names.
pub fn in_layout(layout: &OciLayout, entry: &Descriptor, subject: &Digest) -> Vec<Attestation> {
    let Some(list) = entry.annotation(LAYOUT_ANNOTATION) else {
        return Vec::new();
    };
    let store = layout.store();
    list.split(',')
        .filter_map(|d| d.parse::<Digest>().ok())
        .filter_map(|d| {
            let bytes = store.read_bytes(&d).ok()?;
            let m: ImageManifest = serde_json::from_slice(&bytes).ok()?;
            parse(d, &m, |l| store.read_bytes(&l.digest).ok())
        })
        .filter(|a| &a.subject == subject)
        .collect()
}

/// The attestations of `subject` in `repo` (its referrers of cairn's
/// attestation types), blobs fetched into `store`.
pub fn in_registry(
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    repo: &Repository,
    subject: &Digest,
    store: &BlobStore,
) -> Result<Vec<Attestation>, super::Error> {
    let mut out = Vec::new();
    for t in TYPES {
        let found = runtime
            .block_on(registry.referrers(repo, subject, t))
            .map_err(|source| super::Error::Referrers {
                repo: repo.to_string(),
                subject: subject.clone(),
                source: Box::new(source),
            })?;
        for desc in found {
            let reference = Reference::new(repo.clone(), None, Some(desc.digest.clone()));
            let raw = runtime
                .block_on(registry.fetch_manifest(&reference))
                .map_err(|source| super::Error::Fetch {
                    reference: reference.to_string(),
                    source: Box::new(source),
                })?;
            let m: ImageManifest =
                serde_json::from_slice(&raw.bytes).map_err(|source| super::Error::Manifest {
                    reference: reference.to_string(),
                    source,
                })?;
            let a = parse(desc.digest.clone(), &m, |l| {
                runtime
                    .block_on(registry.fetch_blob(&reference, l, store))
                    .ok()?;
                store.read_bytes(&l.digest).ok()
            });
            out.extend(a.filter(|a| &a.subject == subject));
        }
    }
    Ok(out)
}
