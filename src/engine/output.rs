//! Where a built image goes: an OCI layout, a docker-archive, a registry.

use super::build::BuildResult;
use super::record::ARTIFACT_TYPE;
use crate::image::docker_archive::{write_docker_archive, ArchiveLayer};
use crate::image::manifest::{Descriptor, PlatformSpec, OCI_MANIFEST};
use crate::image::oci_layout::OciLayout;
use crate::registry::{Reference, Registry};
use crate::report::Reporter;
use anyhow::Context as _;
use cairn_layers::blob_store::BlobStore;
use std::path::Path;

/// The manifest descriptor of a result, with its platform.
pub fn descriptor(r: &BuildResult) -> Descriptor {
    let mut d = Descriptor::new(
        OCI_MANIFEST,
        r.manifest_digest.clone(),
        r.manifest_raw.len() as u64,
    );
    d.platform = Some(PlatformSpec {
        os: r.platform.os.clone(),
        architecture: r.platform.architecture.clone(),
        variant: Some(r.platform.variant.clone()).filter(|v| !v.is_empty()),
        ..Default::default()
    });
    d
}

/// The tag an OCI layout records for a `-t` reference (`app:1.0` → `1.0`).
pub fn layout_tag(reference: &str) -> String {
    match reference.parse::<Reference>() {
        Ok(r) => r.tag().unwrap_or("latest").to_owned(),
        Err(_) => reference.to_owned(),
    }
}

/// Write the image (and its build record, as an artifact whose `subject` is
/// the image, so the image digest is unchanged) into an OCI layout.
pub fn to_oci_layout(
    r: &BuildResult,
    store: &BlobStore,
    dir: &Path,
    tags: &[String],
) -> anyhow::Result<()> {
    let layout =
        OciLayout::create(dir).with_context(|| format!("creating OCI layout {}", dir.display()))?;
    layout.store().copy_from(store, &r.manifest_digest)?;
    layout.store().copy_from(store, &r.config_digest)?;
    for l in &r.layers {
        layout.store().copy_from(store, &l.digest)?;
    }
    let desc = descriptor(r);
    // Untagged builds are tagged `latest`, as `docker build` names them.
    let default = ["latest".to_owned()];
    let tags = if tags.is_empty() { &default[..] } else { tags };
    for t in tags {
        layout.tag(&desc, Some(t))?;
    }
    write_record(r, &layout, &desc)?;
    Ok(())
}

/// The build record as an OCI 1.1 artifact manifest whose `subject` is the
/// image (so the image digest does not change), stored in `store`.
/// Returns the manifest bytes and digest.
fn record_manifest(
    r: &BuildResult,
    store: &BlobStore,
    subject: &Descriptor,
) -> anyhow::Result<(Vec<u8>, cairn_layers::Digest)> {
    let record = serde_json::to_vec(&serde_json::to_value(&r.record)?)?;
    let record_digest = store.put_bytes(&record)?;
    let empty = store.put_bytes(b"{}")?;
    let mut subj = subject.clone();
    subj.platform = None;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": ARTIFACT_TYPE, "digest": record_digest.to_string(), "size": record.len()}],
        "subject": subj,
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let digest = store.put_bytes(&bytes)?;
    Ok((bytes, digest))
}

/// The build record, tagged `cairn-record-<image hex>` in the layout.
fn write_record(r: &BuildResult, layout: &OciLayout, subject: &Descriptor) -> anyhow::Result<()> {
    let (bytes, digest) = record_manifest(r, layout.store(), subject)?;
    let mut d = Descriptor::new(OCI_MANIFEST, digest, bytes.len() as u64);
    d.artifact_type = Some(ARTIFACT_TYPE.into());
    layout.tag(
        &d,
        Some(&format!("cairn-record-{}", r.manifest_digest.hex())),
    )?;
    Ok(())
}

/// Write a docker-archive (`docker load` / `podman load`).
pub fn to_docker_archive(
    r: &BuildResult,
    store: &BlobStore,
    file: &Path,
    tags: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let layers: Vec<ArchiveLayer> = r
        .layers
        .iter()
        .map(|l| ArchiveLayer {
            digest: l.digest.clone(),
            diff_id: l.diff_id.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
        })
        .collect();
    write_docker_archive(file, &r.config_raw, &layers, store, tags, reporter)
        .with_context(|| format!("writing docker-archive {}", file.display()))?;
    Ok(())
}

/// Push to every reference in `tags`; the manifest goes up only after all
/// blobs. The build record follows each image; a record that cannot be
/// pushed is reported to `warn`: the image is complete and usable without it.
pub fn push(
    r: &BuildResult,
    store: &BlobStore,
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    tags: &[String],
    mount_from: &[crate::registry::Repository],
    warn: &dyn Fn(String),
) -> anyhow::Result<Vec<(String, cairn_layers::Digest)>> {
    anyhow::ensure!(
        !tags.is_empty(),
        crate::error::hint(
            anyhow::anyhow!("nothing to push to"),
            "name the image with `-t REGISTRY/REPO:TAG`"
        )
    );
    let mut out = Vec::new();
    for t in tags {
        let reference: Reference = t.parse().with_context(|| {
            format!(
                "invalid tag `{}`",
                crate::registry::reference::redact_credentials(t)
            )
        })?;
        let d = runtime
            .block_on(registry.push_image(
                &reference,
                &r.manifest_raw,
                OCI_MANIFEST,
                store,
                mount_from,
            ))
            .map_err(|e| crate::cli::pull::hinted(e, &reference))
            .with_context(|| format!("pushing {reference}"))?;
        anyhow::ensure!(
            d == r.manifest_digest,
            "registry reported digest {d} for {reference}, expected {}",
            r.manifest_digest
        );
        // The build record goes next to the image under the tag schema
        // `sha256-<hex>.cairn-record` (found without the referrers API);
        // `cairn diff` reads it from there.
        let (record, _) = record_manifest(r, store, &descriptor(r))?;
        let record_ref: Reference = format!(
            "{}:sha256-{}.cairn-record",
            reference.repository(),
            r.manifest_digest.hex()
        )
        .parse()
        .with_context(|| format!("naming the build record of {reference}"))?;
        if let Err(e) =
            runtime.block_on(registry.push_image(&record_ref, &record, OCI_MANIFEST, store, &[]))
        {
            warn(format!(
                "{reference} was pushed, but its build record {record_ref} was not: {e} \
                 (`cairn diff` against this image has no step record; push again to add it)"
            ));
        }
        out.push((reference.to_string(), d));
    }
    Ok(out)
}
