//! What travels with an image: its build record (for `cairn diff`) and its
//! attestations (`--sbom`, `--provenance`, made by [`crate::attest`]), each
//! an OCI 1.1 artifact whose `subject` is the image. In an OCI layout they
//! are blobs named by annotations of the image's `index.json` entry; in a
//! registry they are referrers of the image.

use super::{Built, Error};
use crate::engine::record_artifact;
use crate::engine::BuildResult;
use crate::image::manifest::Descriptor;
use crate::image::MediaType;
use crate::registry::{Reference, Registry};
use cairn_layers::blob_store::BlobStore;

/// An SBOM reads the image's layers (and, with `scan-stage=true`, the
/// other stages'): fetch the ones still lazy.
fn fetch_scanned(built: &Built<'_>, r: &BuildResult) -> Result<(), Error> {
    let sbom = built.attest.and_then(|p| p.options.sbom.as_ref());
    let Some(&(_, stages)) = sbom else {
        return Ok(());
    };
    built.fetch(r.layers.iter().map(|l| &l.digest))?;
    if stages {
        for (_, st) in &r.stages {
            built.fetch(st.image.layers.iter().map(|l| &l.digest))?;
        }
    }
    Ok(())
}

/// Store `r`'s record and attestations in `into` (a layout's store): the
/// image's `index.json` entry pointing at its record, and the
/// attestations' descriptors.
pub fn into_layout(
    built: &Built<'_>,
    r: &BuildResult,
    into: &BlobStore,
) -> Result<(Descriptor, Vec<Descriptor>), Error> {
    fetch_scanned(built, r)?;
    let desc = r.descriptor();
    let (_, record) = record_artifact::store_record(r, into, &desc)?;
    let attached = crate::attest::attach(r, built.attest, built.store, into, &desc)?;
    Ok((
        record_artifact::annotate(&desc, &record),
        attached.into_iter().map(|(_, d)| d).collect(),
    ))
}

/// Push `r`'s record and attestations to `reference`'s repository as
/// referrers of the image; one that cannot be pushed is a warning (`what`
/// names the image): the image is complete and usable without it.
pub fn push(
    built: &Built<'_>,
    r: &BuildResult,
    (registry, runtime): (&Registry, &tokio::runtime::Runtime),
    reference: &Reference,
    what: &str,
) -> Result<(), Error> {
    let store = built.store;
    let warn = |w: String| built.reporter.event(crate::report::Event::Warning(w));
    let record = record_artifact::store_record(r, store, &r.descriptor())?;
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
    fetch_scanned(built, r)?;
    for (bytes, desc) in crate::attest::attach(r, built.attest, store, store, &r.descriptor())? {
        let pushed = runtime.block_on(registry.push_referrer(
            reference.repository(),
            &bytes,
            &desc,
            &r.manifest_digest,
            store,
        ));
        if let Err(e) = pushed {
            warn(format!(
                "{what} was pushed, but its attestation {} was not: {e} (push again to add it)",
                desc.artifact_type
                    .as_ref()
                    .map(MediaType::as_str)
                    .unwrap_or("")
            ));
        }
    }
    Ok(())
}
