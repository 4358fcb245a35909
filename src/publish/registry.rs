//! `--push`, `type=registry`, `type=image,push=true`: the image (or index)
//! to every named reference, in go-containerregistry's order (every blob,
//! then the manifest, so a tag never points at missing blobs), checked
//! against the digest the registry reports; then what travels with it
//! ([`super::attachments`]) as referrers.
//!
//! Blobs the registry may already hold are not sent: the base images'
//! repositories and the `--cache-from` registries' are mount sources
//! (cross-repository mount, after a HEAD). A layer a remote cache hit left
//! in its cache is first placed registry-side (HEAD, mount) and downloaded
//! only when the registry cannot mount it: a fresh CI runner pushing an
//! image whose steps all hit the registry cache downloads no layer.

use super::{Built, Error, Publisher, Subject};
use crate::engine::BuildResult;
use crate::error::Hinted;
use crate::image::manifest::Descriptor;
use crate::image::MediaType;
use crate::registry::{Reference, Registry, Repository};
use crate::report::Event;

/// A push to `names`.
pub struct Push {
    /// The client (its traffic counted with the build's).
    pub registry: Registry,
    /// The runtime driving it.
    pub runtime: tokio::runtime::Runtime,
    /// The references pushed to (`-t`, `name=`).
    pub names: Vec<String>,
}

/// The repositories of the images' bases: on the same registry their blobs
/// are mounted (cross-repository mount), not uploaded again.
fn base_repositories(images: &[&BuildResult]) -> Vec<Repository> {
    images
        .iter()
        .filter_map(|r| r.base.as_ref()?.reference.parse::<Reference>().ok())
        .map(|r| r.repository().clone())
        .collect()
}

impl Publisher for Push {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        if self.names.is_empty() {
            return Err(Error::NothingToPush);
        }
        let images = built.subject.images();
        let mut mount_from = base_repositories(&images);
        mount_from.extend(built.lazy.origins());
        mount_from.sort();
        mount_from.dedup();
        let (raw, media_type) = match built.subject {
            Subject::Image(r) => (&r.manifest_raw, r.manifest_media_type.clone()),
            Subject::Index(ix) => (&ix.index_raw, MediaType::OciIndex),
        };
        let want = built.subject.digest();
        for t in &self.names {
            let reference: Reference = t.parse().map_err(|source| Error::InvalidTag {
                tag: crate::registry::reference::redact_credentials(t),
                source,
            })?;
            self.place_lazy_layers(built, &reference, &mount_from)?;
            let d = self
                .runtime
                .block_on(self.registry.push_image(
                    &reference,
                    raw,
                    &media_type,
                    built.store,
                    &mount_from,
                ))
                .map_err(|e| pushing(e, &reference))?;
            if &d != want {
                return Err(Error::DigestMismatch {
                    got: d,
                    reference: reference.to_string(),
                    want: want.clone(),
                });
            }
            let client = (&self.registry, &self.runtime);
            for r in &images {
                let what = match built.subject {
                    Subject::Image(_) => reference.to_string(),
                    Subject::Index(_) => format!("{reference} ({})", r.platform),
                };
                super::attachments::push(built, r, client, &reference, &what)?;
            }
            built
                .reporter
                .event(Event::Info(format!("pushed {reference}@{d}")));
        }
        Ok(())
    }
}

impl Push {
    /// Put every layer that is not in the store (a remote cache hit's) into
    /// `reference`'s repository registry-side; download only those the
    /// registry cannot mount, for the push to upload.
    fn place_lazy_layers(
        &self,
        built: &Built<'_>,
        reference: &Reference,
        mount_from: &[Repository],
    ) -> Result<(), Error> {
        for r in built.subject.images() {
            for l in r.layers.iter().filter(|l| !built.store.contains(&l.digest)) {
                let desc = Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size);
                let placed = self
                    .runtime
                    .block_on(self.registry.place_blob(reference, &desc, mount_from))
                    .map_err(|e| pushing(e, reference))?;
                if !placed {
                    built.fetch([&l.digest])?;
                }
            }
        }
        Ok(())
    }
}

/// A registry's refusal of a push to `reference`, with what to do about it.
fn pushing(e: crate::registry::RegistryError, reference: &Reference) -> Error {
    Error::Push {
        reference: reference.to_string(),
        source: Box::new(Hinted::registry(e, reference)),
    }
}
