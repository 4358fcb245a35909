//! Pull: manifest (index → platform → image manifest), config and layers,
//! each verified against its digest and streamed into the blob store. Layers
//! download in parallel; a blob already in the store is never fetched again;
//! an interrupted blob download resumes with a `Range` request.
//!
//! One way to download a blob ([`Registry::fetch_blob_to`]): its bytes go
//! into the store, hashed as they arrive, and — for a caller that works on
//! them at once (an unpack) — into a [`BlobSink`] in the same pass. The sink
//! sees the bytes before they are verified: it is told at the end
//! ([`BlobSink::finish`]) that size and digest matched, and the blob is
//! committed only if the sink's work succeeded too; otherwise neither is
//! kept, and the caller discards what the sink made.

use super::auth::repository_scope;
use super::error::{redact_url, transport, RegistryError};
use super::transport::{status_error, Host};
use super::{repo_url, Platform, Reference, Registry};
use crate::image::manifest::{
    declared_media_type, Descriptor, ImageIndex, ImageManifest, ManifestKind, Raw, DOCKER_SCHEMA1,
    MANIFEST_ACCEPT, REFERENCE_TYPE,
};
use crate::report::Event;
use cairn_layers::blob_store::{BlobStore, BlobWriter};
use cairn_layers::Digest;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};
use std::io::Write;
use url::Url;

/// Where a blob's bytes go as they arrive, besides the store; see the module doc.
pub trait BlobSink {
    /// The next bytes, in order: a resumed download never repeats or skips any.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Every byte was written and they verified (size and digest): the
    /// sink's own result. The blob is committed only when this is `Ok`.
    fn finish(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// `sink` for one more call.
fn reborrow<'s>(sink: &'s mut Option<&mut dyn BlobSink>) -> Option<&'s mut dyn BlobSink> {
    match sink {
        Some(s) => Some(&mut **s),
        None => None,
    }
}

/// Manifests larger than this are refused (the spec asks registries to accept 4 MB).
const MANIFEST_MAX: usize = 8 << 20;
const DIGEST_HEADER: &str = "docker-content-digest";

/// A manifest document as served: exact bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The media type (from `Content-Type`, else the document's `mediaType`).
    pub media_type: String,
    /// sha256 of the bytes.
    pub digest: Digest,
}

/// A pulled image: its manifest and config (raw bytes kept), the layer
/// descriptors, and where it came from. Layers are in the store after
/// [`Registry::pull_image`], or fetched on demand with [`Registry::fetch_blob`].
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference pulled.
    pub reference: Reference,
    /// The platform's image manifest.
    pub manifest: Raw<ImageManifest>,
    /// The image config (raw bytes are the truth).
    pub config: Raw<serde_json::Value>,
    /// The layer descriptors, base first.
    pub layers: Vec<Descriptor>,
    /// The index the manifest was selected from, if the reference named one.
    pub index: Option<Raw<ImageIndex>>,
    /// The digest of that index.
    pub index_digest: Option<Digest>,
    /// The image manifest digest.
    pub digest: Digest,
}

fn manifest_error(reference: impl ToString, reason: impl Into<String>) -> RegistryError {
    RegistryError::Manifest {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn header_str(
    resp: &reqwest::Response,
    name: impl reqwest::header::AsHeaderName,
) -> Option<String> {
    resp.headers().get(name)?.to_str().ok().map(str::to_owned)
}

/// Whether an index entry is an attestation or otherwise not a runnable image.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotation(REFERENCE_TYPE) == Some("attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Pick the entry for `platform` from an index: most preferred platform
/// first, index order among equals; attestations skipped.
pub fn select_platform<'a>(
    reference: &Reference,
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, RegistryError> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !is_attestation(d) && ManifestKind::of(&d.media_type).is_some())
        .collect();
    for want in platform.preference() {
        if let Some(d) = candidates
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        {
            return Ok(d);
        }
    }
    let mut available: Vec<String> = candidates
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| Platform::from_spec(p).to_string())
        .collect();
    available.dedup();
    Err(RegistryError::PlatformNotFound {
        reference: reference.to_string(),
        wanted: platform.to_string(),
        available,
    })
}

impl Registry {
    /// The host, pull scope and URL of the manifest `reference` names.
    async fn manifest_url(
        &self,
        reference: &Reference,
    ) -> Result<
        (
            std::sync::Arc<super::transport::Host>,
            [String; 1],
            url::Url,
        ),
        RegistryError,
    > {
        let repo = reference.repository();
        let (host, base) = self.endpoint(repo).await?;
        let scopes = [repository_scope(repo.path(), false)];
        let url = repo_url(
            &base,
            repo,
            &format!("manifests/{}", reference.manifest_reference()),
        )?;
        Ok((host, scopes, url))
    }

    /// GET a manifest by tag or digest, verifying its digest.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<RawManifest, RegistryError> {
        let (host, scopes, url) = self.manifest_url(reference).await?;
        let m = Method::GET;
        // A body cut off mid-way is fetched again (send retries only what
        // fails before the body), then verified like any other.
        let mut attempt = 0;
        let (content_type, header_digest, bytes) = 'fetch: loop {
            let resp = self
                .t
                .send(&host, &scopes, m.clone(), &url, true, &|r| {
                    r.header(ACCEPT, MANIFEST_ACCEPT)
                })
                .await?;
            if !resp.status().is_success() {
                return Err(status_error(&m, &url, resp).await);
            }
            let content_type = header_str(&resp, CONTENT_TYPE)
                .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
                .filter(|c| !c.is_empty());
            let header_digest = header_str(&resp, DIGEST_HEADER);
            if resp
                .content_length()
                .is_some_and(|n| n > MANIFEST_MAX as u64)
            {
                return Err(manifest_error(
                    reference,
                    format!("larger than {MANIFEST_MAX} bytes"),
                ));
            }
            let mut bytes = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => bytes.extend_from_slice(&c),
                    Err(e) if attempt < self.t.options().max_retries => {
                        self.t
                            .wait(&transport(&m, &url, e).to_string(), None, attempt)
                            .await;
                        attempt += 1;
                        continue 'fetch;
                    }
                    Err(e) => return Err(transport(&m, &url, e)),
                }
                if bytes.len() > MANIFEST_MAX {
                    return Err(manifest_error(
                        reference,
                        format!("larger than {MANIFEST_MAX} bytes"),
                    ));
                }
            }
            break (content_type, header_digest, bytes);
        };
        let digest = Digest::of(&bytes);
        let mismatch = |expected: Digest| RegistryError::DigestMismatch {
            what: "manifest",
            url: redact_url(&url),
            expected,
            actual: digest.clone(),
        };
        if let Some(want) = reference.digest() {
            if want != &digest {
                return Err(mismatch(want.clone()));
            }
        }
        if let Some(Ok(h)) = header_digest.map(|h| h.parse::<Digest>()) {
            if h != digest {
                return Err(mismatch(h));
            }
        }
        let declared = declared_media_type(&bytes);
        let media_type = match (content_type, declared) {
            (Some(ct), Some(decl)) if ManifestKind::of(&ct).is_some() && ct != decl => {
                return Err(manifest_error(
                    reference,
                    format!("served as `{ct}` but declares mediaType `{decl}`"),
                ))
            }
            (Some(ct), _) if ManifestKind::of(&ct).is_some() || ct == DOCKER_SCHEMA1 => ct,
            (_, Some(decl)) => decl,
            (Some(ct), None) => ct,
            (None, None) => String::new(),
        };
        if media_type == DOCKER_SCHEMA1 {
            return Err(manifest_error(
                reference,
                "Docker schema 1 manifests are not supported; push the image again with a current client",
            ));
        }
        if ManifestKind::of(&media_type).is_none() {
            return Err(manifest_error(
                reference,
                format!("unsupported media type `{media_type}`"),
            ));
        }
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The digest of the image manifest `reference` names for `platform`
    /// (the index is resolved to the platform's entry). Cheap: HEAD when the
    /// registry says it is a single manifest.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Digest, RegistryError> {
        let (host, scopes, url) = self.manifest_url(reference).await?;
        let resp = self
            .t
            .send(&host, &scopes, Method::HEAD, &url, true, &|r| {
                r.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if resp.status().is_success() {
            let ct = header_str(&resp, CONTENT_TYPE).unwrap_or_default();
            let ct = ct.split(';').next().unwrap_or("").trim();
            if ManifestKind::of(ct) == Some(ManifestKind::Image) {
                if let Some(Ok(d)) = header_str(&resp, DIGEST_HEADER).map(|h| h.parse::<Digest>()) {
                    return Ok(d);
                }
            }
        }
        // An index: its entry for the platform names the digest; no need to fetch that manifest.
        let top = self.fetch_manifest(reference).await?;
        if ManifestKind::of(&top.media_type) == Some(ManifestKind::Image) {
            return Ok(top.digest);
        }
        let index: ImageIndex = serde_json::from_slice(&top.bytes)
            .map_err(|e| manifest_error(reference, format!("invalid index: {e}")))?;
        let chosen = select_platform(reference, &index, platform)?;
        if ManifestKind::of(&chosen.media_type) == Some(ManifestKind::Image) {
            return Ok(chosen.digest.clone());
        }
        let (_, m) = self.select_manifest(reference, platform).await?;
        Ok(m.digest)
    }

    /// Fetch the manifest for `reference` and, through indexes, the one for `platform`.
    /// Returns the top index (if any) and the image manifest.
    async fn select_manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(Option<RawManifest>, RawManifest), RegistryError> {
        let mut top = None;
        let mut current = self.fetch_manifest(reference).await?;
        // Nested indexes are allowed; bound the depth against loops.
        for _ in 0..4 {
            if ManifestKind::of(&current.media_type) == Some(ManifestKind::Image) {
                return Ok((top, current));
            }
            let index: ImageIndex = serde_json::from_slice(&current.bytes)
                .map_err(|e| manifest_error(reference, format!("invalid index: {e}")))?;
            let chosen = select_platform(reference, &index, platform)?.digest.clone();
            let next = self.fetch_manifest(&reference.with_digest(chosen)).await?;
            if top.is_none() {
                top = Some(current);
            }
            current = next;
        }
        Err(manifest_error(reference, "indexes nested too deeply"))
    }

    /// Fetch manifest and config for `platform` into `store` (layers are not fetched).
    pub async fn pull_manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &BlobStore,
    ) -> Result<PulledImage, RegistryError> {
        let (index, manifest) = self.select_manifest(reference, platform).await?;
        let manifest: Raw<ImageManifest> = Raw::parse(manifest.bytes, manifest.media_type)
            .map_err(|e| manifest_error(reference, format!("invalid image manifest: {e}")))?;
        if manifest.value.schema_version != 2 {
            return Err(manifest_error(reference, "schemaVersion is not 2"));
        }
        let index = match index {
            Some(i) => Some(
                Raw::<ImageIndex>::parse(i.bytes, i.media_type)
                    .map_err(|e| manifest_error(reference, format!("invalid index: {e}")))?,
            ),
            None => None,
        };
        store.put_bytes(&manifest.bytes)?;
        if let Some(i) = &index {
            store.put_bytes(&i.bytes)?;
        }
        let cfg_desc = manifest.value.config.clone();
        self.fetch_blob(reference, &cfg_desc, store).await?;
        let bytes = store.read_bytes(&cfg_desc.digest)?;
        let config = Raw::parse(bytes, cfg_desc.media_type.clone()).map_err(|e| {
            manifest_error(
                reference,
                format!("invalid image config {}: {e}", cfg_desc.digest),
            )
        })?;
        Ok(PulledImage {
            reference: reference.clone(),
            layers: manifest.value.layers.clone(),
            digest: manifest.digest.clone(),
            index_digest: index.as_ref().map(|i| i.digest.clone()),
            index,
            manifest,
            config,
        })
    }

    /// Pull the image for `platform`: manifest, config and every layer into `store`.
    pub async fn pull_image(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &BlobStore,
    ) -> Result<PulledImage, RegistryError> {
        let image = self.pull_manifest(reference, platform, store).await?;
        futures_util::stream::iter(
            image
                .layers
                .iter()
                .map(|d| self.fetch_blob(reference, d, store)),
        )
        .buffer_unordered(self.parallel)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(image)
    }

    /// Download one blob of `reference`'s repository into `store`, verified
    /// against `desc`. No-op when the store already has it.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        self.fetch_blob_to(reference, desc, store, None)
            .await
            .map(drop)
    }

    /// [`Registry::fetch_blob`], the bytes also streamed into `sink` as they
    /// arrive (see the module doc). Whether the blob was downloaded now:
    /// `false` when the store already had it (the sink got nothing).
    pub async fn fetch_blob_to(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        store: &BlobStore,
        mut sink: Option<&mut dyn BlobSink>,
    ) -> Result<bool, RegistryError> {
        let reporter = self.reporter();
        let digest = desc.digest.to_string();
        if store.contains(&desc.digest) {
            reporter.event(Event::BlobStart {
                digest: digest.clone(),
                size: Some(desc.size),
                action: "exists",
            });
            reporter.event(Event::BlobDone { digest });
            return Ok(false);
        }
        let repo = reference.repository();
        let (host, base) = self.endpoint(repo).await?;
        let url = repo_url(&base, repo, &format!("blobs/{}", desc.digest))?;
        reporter.event(Event::BlobStart {
            digest: digest.clone(),
            size: Some(desc.size),
            action: "pull",
        });
        let mut w = store.writer()?;
        let mut attempt = 0;
        loop {
            match self
                .download(&host, repo.path(), &url, desc, &mut w, reborrow(&mut sink))
                .await
            {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempt < self.t.options().max_retries => {
                    self.t.wait(&e.to_string(), None, attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        if w.len() != desc.size {
            return Err(RegistryError::Protocol {
                url: redact_url(&url),
                reason: format!(
                    "blob {} is {} bytes, the manifest says {}",
                    desc.digest,
                    w.len(),
                    desc.size
                ),
            });
        }
        let got = w.digest();
        if got != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                url: redact_url(&url),
                expected: desc.digest.clone(),
                actual: got,
            });
        }
        if let Some(s) = sink {
            s.finish().map_err(|source| RegistryError::Sink {
                digest: desc.digest.clone(),
                source,
            })?;
        }
        w.commit(Some(&desc.digest)).map_err(|e| match e {
            cairn_layers::blob_store::BlobError::Mismatch {
                expected, actual, ..
            } => RegistryError::DigestMismatch {
                what: "blob",
                url: redact_url(&url),
                expected,
                actual,
            },
            other => other.into(),
        })?;
        self.count(repo, super::traffic::Action::Downloaded, desc);
        reporter.event(Event::BlobDone { digest });
        Ok(true)
    }

    /// One download attempt, appending to `w` and `sink` (resuming with
    /// `Range` when `w` already holds bytes).
    async fn download(
        &self,
        host: &Host,
        path: &str,
        url: &Url,
        desc: &Descriptor,
        w: &mut BlobWriter,
        mut sink: Option<&mut dyn BlobSink>,
    ) -> Result<(), RegistryError> {
        let scopes = [repository_scope(path, false)];
        let from = w.len();
        let range = (from > 0).then(|| format!("bytes={from}-"));
        let m = Method::GET;
        let resp = self
            .t
            .send(host, &scopes, m.clone(), url, true, &|r| match &range {
                Some(v) => r.header(RANGE, v.as_str()),
                None => r,
            })
            .await?;
        // A server ignoring the range sends the whole blob again: the bytes
        // already written (and streamed) are skipped, so the writer's hash
        // covers exactly what the sink got (and the digest check all of it).
        let mut skip = match resp.status() {
            StatusCode::PARTIAL_CONTENT if from > 0 => 0,
            s if s.is_success() => from,
            _ => return Err(status_error(&m, url, resp).await),
        };
        let mut stream = resp.bytes_stream();
        let digest = desc.digest.to_string();
        let mut last_report = w.len();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport(&m, url, e))?;
            let skipped = chunk.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
            skip -= skipped as u64;
            let chunk = &chunk[skipped..];
            if w.len() + chunk.len() as u64 > desc.size {
                // More than announced: the registry is wrong; do not keep writing.
                return Err(RegistryError::Protocol {
                    url: redact_url(url),
                    reason: format!(
                        "blob {} is longer than the {} bytes announced",
                        desc.digest, desc.size
                    ),
                });
            }
            w.write_all(chunk).map_err(|source| RegistryError::Io {
                what: format!("cannot write blob {} into the store", desc.digest),
                source,
            })?;
            if let Some(s) = reborrow(&mut sink) {
                s.write(chunk).map_err(|source| RegistryError::Io {
                    what: format!("cannot stream blob {} into its consumer", desc.digest),
                    source,
                })?;
            }
            if w.len() - last_report >= 1 << 20 {
                last_report = w.len();
                self.reporter().event(Event::BlobProgress {
                    digest: digest.clone(),
                    done: w.len(),
                });
            }
        }
        if w.len() < desc.size {
            return Err(RegistryError::Incomplete {
                url: redact_url(url),
                got: w.len(),
                want: desc.size,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::PlatformSpec;
    use std::collections::BTreeMap;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        let mut d = Descriptor::new(crate::image::manifest::OCI_MANIFEST, Digest::of(&[n]), 1);
        d.platform = Some(PlatformSpec {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            ..Default::default()
        });
        d
    }

    fn index(entries: Vec<Descriptor>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: None,
            manifests: entries,
            annotations: None,
        }
    }

    #[test]
    fn selects_first_matching_and_skips_attestations() {
        let r: Reference = "x".parse().unwrap();
        let mut att = entry("unknown", "unknown", None, 9);
        att.annotations = Some(BTreeMap::from([(
            REFERENCE_TYPE.to_owned(),
            "attestation-manifest".to_owned(),
        )]));
        let idx = index(vec![
            att,
            entry("linux", "arm64", Some("v8"), 1),
            entry("linux", "amd64", None, 2),
            entry("linux", "amd64", None, 3),
        ]);
        let host = select_platform(&r, &idx, &"linux/amd64".parse().unwrap()).unwrap();
        assert_eq!(host.digest, Digest::of(&[2]));
        let arm = select_platform(&r, &idx, &"linux/arm64".parse().unwrap()).unwrap();
        assert_eq!(arm.digest, Digest::of(&[1]));
    }

    #[test]
    fn prefers_higher_variants_then_falls_back() {
        let r: Reference = "x".parse().unwrap();
        let idx = index(vec![
            entry("linux", "arm", Some("v6"), 1),
            entry("linux", "arm", Some("v7"), 2),
        ]);
        assert_eq!(
            select_platform(&r, &idx, &"linux/arm/v7".parse().unwrap())
                .unwrap()
                .digest,
            Digest::of(&[2])
        );
        let idx = index(vec![entry("linux", "arm", Some("v6"), 1)]);
        assert_eq!(
            select_platform(&r, &idx, &"linux/arm/v7".parse().unwrap())
                .unwrap()
                .digest,
            Digest::of(&[1])
        );
    }

    #[test]
    fn absent_platform_lists_the_available_ones() {
        let r: Reference = "node:22".parse().unwrap();
        let idx = index(vec![
            entry("linux", "amd64", None, 1),
            entry("linux", "arm64", Some("v8"), 2),
        ]);
        let e = select_platform(&r, &idx, &"linux/s390x".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "docker.io/library/node:22 has no image for platform linux/s390x; available: linux/amd64, linux/arm64/v8"
        );
    }
}
