//! Where a built image goes: an OCI layout, a docker-archive, a registry.

use super::build::BuildResult;
use super::multi::IndexResult;
use super::record_artifact;
use crate::image::docker_archive::write_docker_archive;
use crate::image::manifest::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use crate::image::oci_layout::OciLayout;
use crate::registry::{Reference, Registry};
use crate::report::Reporter;
use anyhow::Context as _;
use cairn_layers::blob_store::BlobStore;
use std::path::Path;

/// The media type the result's manifest declares (Docker's with `oci-mediatypes=false`).
fn manifest_media_type(r: &BuildResult) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.manifest_raw)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| OCI_MANIFEST.to_owned())
}

/// The manifest descriptor of a result, with its platform.
pub fn descriptor(r: &BuildResult) -> Descriptor {
    let mut d = Descriptor::new(
        manifest_media_type(r),
        r.manifest_digest.clone(),
        r.manifest_raw.len() as u64,
    );
    d.platform = Some(r.platform.to_spec());
    d
}

/// The tag an OCI layout records for a `-t` reference (`app:1.0` → `1.0`).
pub fn layout_tag(reference: &str) -> String {
    match reference.parse::<Reference>() {
        Ok(r) => r.tag().unwrap_or("latest").to_owned(),
        Err(_) => reference.to_owned(),
    }
}

/// Write the image into an OCI layout, one `index.json` entry per tag; its
/// build record goes in as an attached artifact (see [`super::record_artifact`]).
pub fn to_oci_layout(
    r: &BuildResult,
    store: &BlobStore,
    dir: &Path,
    tags: &[String],
) -> anyhow::Result<()> {
    write_layout(&[r], None, store, dir, tags)
}

/// Write a multi-platform build into an OCI layout: every platform's image
/// and build record, and the index under each tag.
pub fn index_to_oci_layout(
    ix: &IndexResult,
    store: &BlobStore,
    dir: &Path,
    tags: &[String],
) -> anyhow::Result<()> {
    let images: Vec<&BuildResult> = ix.images.iter().collect();
    write_layout(&images, Some(ix), store, dir, tags)
}

/// Copy `images` (blobs and build records) into the layout at `dir`, and tag
/// the index if there is one, else the (one) image, with each of `tags`
/// (untagged builds are tagged `latest`, as `docker build` names them).
fn write_layout(
    images: &[&BuildResult],
    index: Option<&IndexResult>,
    store: &BlobStore,
    dir: &Path,
    tags: &[String],
) -> anyhow::Result<()> {
    let layout =
        OciLayout::create(dir).with_context(|| format!("creating OCI layout {}", dir.display()))?;
    let mut top = None;
    let mut attestations = Vec::new();
    for r in images {
        layout.store().copy_from(store, &r.manifest_digest)?;
        layout.store().copy_from(store, &r.config_digest)?;
        for l in &r.layers {
            layout.store().copy_from(store, &l.digest)?;
        }
        let desc = descriptor(r);
        let (_, record) = record_artifact::store_record(r, layout.store(), &desc)?;
        let attached = crate::attest::attach(r, store, layout.store(), &desc)?;
        attestations.extend(attached.into_iter().map(|(_, d)| d));
        top.get_or_insert(record_artifact::annotate(&desc, &record));
    }
    if let Some(ix) = index {
        layout.store().copy_from(store, &ix.index_digest)?;
        top = Some(ix.descriptor());
    }
    let top = top.ok_or_else(|| anyhow::anyhow!("internal error: no image to write"))?;
    let top = crate::attest::annotate(&top, &attestations);
    let latest = ["latest".to_owned()];
    for t in if tags.is_empty() { &latest[..] } else { tags } {
        layout.tag(&top, Some(t))?;
    }
    Ok(())
}

/// Where the docker-archive of one platform of a multi-platform build goes:
/// `app.tar` → `app.linux-arm64.tar` (a docker-archive holds one platform).
pub fn platform_archive_path(file: &Path, p: &crate::frontend::Platform) -> std::path::PathBuf {
    let name = p.to_string().replace('/', "-");
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
    let ext = file.extension().map(|e| e.to_string_lossy().into_owned());
    let leaf = match (stem, ext) {
        (Some(stem), Some(ext)) => format!("{stem}.{name}.{ext}"),
        (Some(stem), None) => format!("{stem}.{name}"),
        _ => name,
    };
    file.with_file_name(leaf)
}

/// Write a docker-archive (`docker load` / `podman load`).
pub fn to_docker_archive(
    r: &BuildResult,
    store: &BlobStore,
    file: &Path,
    tags: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    write_docker_archive(file, &r.config_raw, &r.layers, store, tags, reporter)
        .with_context(|| format!("writing docker-archive {}", file.display()))?;
    Ok(())
}

/// What a push sends: a manifest or index, its media type and digest, and
/// the repositories whose blobs may be mounted instead of uploaded.
struct Upload<'a> {
    raw: &'a [u8],
    media_type: &'a str,
    digest: &'a cairn_layers::Digest,
    mount_from: Vec<crate::registry::Repository>,
}

/// The repositories of the images' bases: on the same registry their blobs
/// are mounted (cross-repository mount), not uploaded again.
fn base_repositories<'a>(
    images: impl IntoIterator<Item = &'a BuildResult>,
) -> Vec<crate::registry::Repository> {
    let mut repos: Vec<crate::registry::Repository> = images
        .into_iter()
        .filter_map(|r| r.base.as_ref()?.reference.parse::<Reference>().ok())
        .map(|r| r.repository().clone())
        .collect();
    repos.sort();
    repos.dedup();
    repos
}

/// Push `up` under every tag in `tags` (all blobs before the manifest, so a
/// tag never points at missing blobs), check the digest the registry
/// reports, then call `then` with the reference to push what travels with it.
fn push_to_tags(
    up: &Upload<'_>,
    store: &BlobStore,
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    tags: &[String],
    mut then: impl FnMut(&Reference) -> anyhow::Result<()>,
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
            .block_on(registry.push_image(&reference, up.raw, up.media_type, store, &up.mount_from))
            .map_err(|e| crate::error::registry_hinted(e, &reference))
            .with_context(|| format!("pushing {reference}"))?;
        anyhow::ensure!(
            &d == up.digest,
            "registry reported digest {d} for {reference}, expected {}",
            up.digest
        );
        then(&reference)?;
        out.push((reference.to_string(), d));
    }
    Ok(out)
}

/// Push `r`'s build record to `reference`'s repository as a referrer of the
/// image; one that cannot be pushed is reported to `warn` (`what` names the
/// image): the image is complete and usable without it.
fn push_record_or_warn(
    r: &BuildResult,
    store: &BlobStore,
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    reference: &Reference,
    what: &str,
    warn: &dyn Fn(String),
) -> anyhow::Result<()> {
    let record = record_artifact::store_record(r, store, &descriptor(r))?;
    if let Err(e) = record_artifact::push_record(
        registry,
        runtime,
        reference.repository(),
        (&record.0, &record.1),
        &r.manifest_digest,
        store,
    ) {
        warn(format!(
            "{what} was pushed, but its build record was not: {e:#} \
             (`cairn diff` against this image has no step record; push again to add it)"
        ));
    }
    // The attestations go the same way (`--sbom`, `--provenance`).
    for (bytes, desc) in crate::attest::attach(r, store, store, &descriptor(r))? {
        let repo = reference.repository();
        let pushed = runtime.block_on(registry.push_referrer(
            repo,
            &bytes,
            &desc,
            &r.manifest_digest,
            store,
        ));
        if let Err(e) = pushed {
            warn(format!(
                "{what} was pushed, but its attestation {} was not: {e} (push again to add it)",
                desc.artifact_type.as_deref().unwrap_or("")
            ));
        }
    }
    Ok(())
}

/// Push to every reference in `tags`; the manifest goes up only after all
/// blobs, the base image's mounted from its repository. The build record
/// follows each image (a warning, not an error, when it cannot be pushed).
pub fn push(
    r: &BuildResult,
    store: &BlobStore,
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    tags: &[String],
    warn: &dyn Fn(String),
) -> anyhow::Result<Vec<(String, cairn_layers::Digest)>> {
    let up = Upload {
        raw: &r.manifest_raw,
        media_type: &manifest_media_type(r),
        digest: &r.manifest_digest,
        mount_from: base_repositories([r]),
    };
    push_to_tags(&up, store, registry, runtime, tags, |reference| {
        let what = reference.to_string();
        push_record_or_warn(r, store, registry, runtime, reference, &what, warn)
    })
}

/// Push a multi-platform build to every reference in `tags`: the platforms'
/// manifests (by digest) before the index, every base's blobs mounted, then
/// each platform's build record (as for one image).
pub fn push_index(
    ix: &IndexResult,
    store: &BlobStore,
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    tags: &[String],
    warn: &dyn Fn(String),
) -> anyhow::Result<Vec<(String, cairn_layers::Digest)>> {
    let up = Upload {
        raw: &ix.index_raw,
        media_type: OCI_INDEX,
        digest: &ix.index_digest,
        mount_from: base_repositories(&ix.images),
    };
    push_to_tags(&up, store, registry, runtime, tags, |reference| {
        for r in &ix.images {
            let what = format!("{reference} ({})", r.platform);
            push_record_or_warn(r, store, registry, runtime, reference, &what, warn)?;
        }
        Ok(())
    })
}
