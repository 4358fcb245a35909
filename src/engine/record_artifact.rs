//! The build record as an OCI 1.1 artifact attached to its image.
//!
//! The record is an image manifest with `artifactType`
//! [`ARTIFACT_TYPE`], an empty config, one layer (the record JSON) and a
//! `subject` naming the image manifest, so the image and its digest are
//! untouched. Where it goes:
//! - in an OCI layout, its blobs sit in `blobs/` but it is *not* an entry of
//!   `index.json` (skopeo, umoci and podman would then have to choose between
//!   two top-level manifests); the image's entry points at it with the
//!   annotation [`RECORD_ANNOTATION`];
//! - in a registry, it is pushed by digest as a referrer of the image: the
//!   referrers API indexes it, or (registries without it) it is added to the
//!   index tagged `sha256-<image hex>` (the referrers tag schema).
//!
//! Build-arg and env values are not written as they are: see [`redacted`].

use super::build::BuildResult;
use super::record::{BuildRecord, ARTIFACT_TYPE};
use crate::image::config::ImageConfig;
use crate::image::manifest::{Descriptor, ImageManifest, OCI_MANIFEST};
use crate::image::oci_layout::OciLayout;
use crate::image::MediaType;
use crate::registry::{Registry, Repository};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;

/// The annotation, on an image's `index.json` entry, naming the digest of
/// its build record's artifact manifest in the same layout.
pub const RECORD_ANNOTATION: &str = "vnd.cairn.build-record.digest";

/// The record as it may leave the machine: every `env NAME` input (the ARG
/// and ENV values a RUN step saw) becomes `sha256:<digest of the value>`,
/// unless the image config already holds `NAME=value` (then it is public
/// anyway, as in BuildKit's history). `cairn diff` still sees *which* value
/// changed, because the digests differ.
pub fn redacted(record: &BuildRecord, config: &ImageConfig) -> BuildRecord {
    let public: Vec<String> = config
        .config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    let mut out = record.clone();
    for step in &mut out.steps {
        for input in &mut step.inputs.0 {
            let Some(name) = input.name.strip_prefix("env ") else {
                continue;
            };
            if !public.contains(&format!("{name}={}", input.value)) {
                input.value = Digest::of(input.value.as_bytes()).to_string();
            }
        }
    }
    out
}

/// Store the record artifact of `r` (subject: `image`) in `store`; returns
/// its manifest bytes and descriptor (with `artifactType`).
pub fn store_record(
    r: &BuildResult,
    store: &BlobStore,
    image: &Descriptor,
) -> crate::engine::step::error::Result<(Vec<u8>, Descriptor)> {
    let config: ImageConfig = serde_json::from_slice(&r.config_raw)?;
    let record = serde_json::to_vec(&redacted(&r.record, &config))?;
    Ok(store_artifact(
        store,
        image,
        ARTIFACT_TYPE,
        &record,
        &Default::default(),
    )?)
}

pub use super::step::error::StoreArtifactError;

/// Store an OCI 1.1 artifact in `store`: an image manifest of
/// `artifact_type` with an empty config, one layer (`body`, of the same
/// media type), `annotations` and `subject` (the image); returns its manifest
/// bytes and descriptor (with `artifactType` and the annotations, as a
/// referrers list shows them). The build record and the attestations
/// (`crate::attest`) are attached this one way.
pub fn store_artifact(
    store: &BlobStore,
    image: &Descriptor,
    artifact_type: &str,
    body: &[u8],
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<(Vec<u8>, Descriptor), StoreArtifactError> {
    let body_digest = store.put_bytes(body)?;
    let empty = store.put_bytes(b"{}")?;
    let mut subject = image.clone();
    subject.platform = None;
    subject.annotations = None;
    subject.artifact_type = None;
    let bytes = crate::image::mutate::artifact(
        artifact_type,
        Descriptor::new(crate::image::MediaType::OciEmpty, empty, 2),
        vec![Descriptor::new(
            artifact_type,
            body_digest,
            body.len() as u64,
        )],
        subject,
        annotations,
    )?
    .bytes;
    let digest = store.put_bytes(&bytes)?;
    let mut d = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
    d.artifact_type = Some(artifact_type.into());
    if !annotations.is_empty() {
        d.annotations = Some(annotations.clone());
    }
    Ok((bytes, d))
}

/// `image` with the annotation pointing at `record`, for `index.json`.
pub fn annotate(image: &Descriptor, record: &Descriptor) -> Descriptor {
    let mut d = image.clone();
    d.annotations
        .get_or_insert_with(Default::default)
        .insert(RECORD_ANNOTATION.to_owned(), record.digest.to_string());
    d
}

/// The record artifact an `index.json` entry points at, if the layout holds
/// it: its manifest bytes and descriptor.
pub fn in_layout(
    layout: &OciLayout,
    entry: &Descriptor,
) -> Option<(Vec<u8>, Descriptor, ImageManifest)> {
    let digest: Digest = entry.annotation(RECORD_ANNOTATION)?.parse().ok()?;
    let bytes = layout.store().read_bytes(&digest).ok()?;
    let m: ImageManifest = serde_json::from_slice(&bytes).ok()?;
    if m.artifact_type.as_ref().map(MediaType::as_str) != Some(ARTIFACT_TYPE)
        || m.subject.as_ref().map(|s| &s.digest) != Some(&entry.digest)
    {
        return None;
    }
    let mut d = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
    d.artifact_type = Some(ARTIFACT_TYPE.into());
    Some((bytes, d, m))
}

/// The record inside an artifact manifest (its layer of type [`ARTIFACT_TYPE`]).
pub fn read_record<E>(
    manifest: &ImageManifest,
    read: impl Fn(&Descriptor) -> Result<Vec<u8>, E>,
) -> Option<BuildRecord> {
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == ARTIFACT_TYPE)?;
    let bytes = read(layer).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Push the record artifact (`bytes`, `desc`, blobs in `store`) to `repo` as
/// a referrer of `subject`.
pub fn push_record(
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    repo: &Repository,
    (bytes, desc): (&[u8], &Descriptor),
    subject: &Digest,
    store: &BlobStore,
) -> crate::engine::step::error::Result<()> {
    runtime
        .block_on(registry.push_referrer(repo, bytes, desc, subject, store))
        .map_err(|e| crate::engine::step::error::Error::PushRecord {
            repo: repo.to_string(),
            subject: subject.clone(),
            reason: Box::new(e),
        })
}

/// The newest build record attached to `subject` in `repo` (`None` when there
/// is none or it cannot be read: `cairn diff` then compares without it).
pub fn from_registry(
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    repo: &Repository,
    subject: &Digest,
    store: &BlobStore,
) -> Option<BuildRecord> {
    let found = runtime
        .block_on(registry.referrers(repo, subject, ARTIFACT_TYPE))
        .ok()?;
    let desc = found.last()?;
    let reference = crate::registry::Reference::new(repo.clone(), None, Some(desc.digest.clone()));
    let raw = runtime.block_on(registry.fetch_manifest(&reference)).ok()?;
    let m: ImageManifest = serde_json::from_slice(&raw.bytes).ok()?;
    if m.artifact_type.as_ref().map(MediaType::as_str) != Some(ARTIFACT_TYPE) {
        return None;
    }
    // Why a blob cannot be read does not matter here: `None` either way.
    read_record(&m, |l| -> Result<_, Box<dyn std::error::Error>> {
        runtime.block_on(registry.fetch_blob(&reference, l, store))?;
        Ok(store.read_bytes(&l.digest)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cache::Inputs;
    use crate::engine::record::StepEntry;

    #[test]
    fn env_values_not_in_the_config_become_digests() {
        let mut inputs = Inputs::default();
        inputs.push("parent", "sha256:aa");
        inputs.push("env NPM_TOKEN", "s3cr3t");
        inputs.push("env NODE_ENV", "production");
        let record = BuildRecord {
            steps: vec![StepEntry {
                stage: "build".into(),
                index: 1,
                instruction: "RUN npm ci".into(),
                key: None,
                inputs,
            }],
        };
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["NODE_ENV=production"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let out = redacted(&record, &config);
        let json = serde_json::to_string(&out).unwrap();
        assert!(!json.contains("s3cr3t"), "{json}");
        let v = |n: &str| {
            out.steps[0]
                .inputs
                .0
                .iter()
                .find(|i| i.name == n)
                .map(|i| i.value.clone())
                .unwrap()
        };
        assert_eq!(v("env NPM_TOKEN"), Digest::of(b"s3cr3t").to_string());
        assert_eq!(v("env NODE_ENV"), "production", "already in the config");
        assert_eq!(v("parent"), "sha256:aa");
    }
}
