//! Push in go-containerregistry's order: every blob first (HEAD → skip,
//! cross-repository mount, monolithic upload for small blobs, resumable
//! chunked upload for large ones), the manifest only once every blob is
//! confirmed, so a tag never points at a missing blob. An index pushes its
//! image manifests by digest first, then itself.

use super::auth::repository_scope;
use super::error::{redact_url, RegistryError};
use super::traffic::Action;
use super::transport::{status_error, Host};
use super::{repo_url, Reference, Registry, Repository};
use crate::image::manifest::{Descriptor, ImageIndex, ImageManifest, ManifestKind, OCI_INDEX};
use crate::report::Event;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};
use std::path::PathBuf;
use url::Url;

const OCTET: &str = "application/octet-stream";

/// Where one push goes, and the scopes it needs.
struct Target {
    host: std::sync::Arc<Host>,
    base: Url,
    repo: Repository,
    scopes: Vec<String>,
    mounts: Vec<Repository>,
}

/// A request body streaming `len` bytes of `path` from `offset`; the file is
/// opened when the body is first polled, so each attempt gets a fresh body.
fn file_body(path: PathBuf, offset: u64, len: u64) -> reqwest::Body {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let open = async move {
        let mut f = tokio::fs::File::open(&path).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::with_capacity(
            f.take(len),
            256 * 1024,
        ))
    };
    reqwest::Body::wrap_stream(futures_util::stream::once(open).try_flatten())
}

fn location(url: &Url, resp: &Response) -> Result<Url, RegistryError> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            url: redact_url(url),
            reason: "no Location header in the upload response".into(),
        })?;
    url.join(loc).map_err(|e| RegistryError::Protocol {
        url: redact_url(url),
        reason: format!("invalid Location header: {e}"),
    })
}

fn with_digest(loc: &Url, d: &Digest) -> Url {
    let mut u = loc.clone();
    u.query_pairs_mut().append_pair("digest", &d.to_string());
    u
}

/// The end offset (exclusive) from a `Range: 0-<last>` header.
fn range_end(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(RANGE)?.to_str().ok()?;
    let last: u64 = v
        .trim()
        .trim_start_matches("bytes=")
        .split_once('-')?
        .1
        .parse()
        .ok()?;
    // distribution reports an empty upload as `0-0`; chunks are never 1 byte, so read it as 0.
    Some(if last == 0 { 0 } else { last + 1 })
}

impl Registry {
    /// Push the manifest `manifest` (exact bytes, of `media_type`) and everything it
    /// references from `store` to `target` (by tag, or by digest). `mount_from` names
    /// repositories of the same registry that may hold the blobs already (e.g. the
    /// base image's). Returns the pushed manifest digest.
    pub async fn push_image(
        &self,
        target: &Reference,
        manifest: &[u8],
        media_type: &(impl AsRef<str> + ?Sized),
        store: &BlobStore,
        mount_from: &[Repository],
    ) -> Result<Digest, RegistryError> {
        let media_type = media_type.as_ref();
        let t = self.target(target, mount_from).await?;
        let digest = Digest::of(manifest);
        if let Some(want) = target.digest() {
            if want != &digest {
                return Err(RegistryError::DigestMismatch {
                    what: "manifest to push",
                    url: target.to_string(),
                    expected: want.clone(),
                    actual: digest,
                });
            }
        }
        let tag = target
            .tag()
            .map(str::to_owned)
            .unwrap_or_else(|| digest.to_string());
        // CI runners push the same layers at the same time (images sharing a
        // base, cache entries); a push that lost such a race is pushed again.
        let mut attempt = 0;
        loop {
            let pushed = match self.push_tree(&t, manifest, media_type, store, 0).await {
                Ok(()) => self.put_manifest(&t, &tag, manifest, media_type).await,
                Err(e) => Err(e),
            };
            // Only a hint for later pushes: failing to write it is not an error.
            let _ = self.memo.save();
            match pushed {
                Err(e) if e.is_lost_upload_race() && attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn target(
        &self,
        target: &Reference,
        mount_from: &[Repository],
    ) -> Result<Target, RegistryError> {
        let repo = target.repository().clone();
        let (host, base) = self.endpoint(&repo).await?;
        let mounts: Vec<Repository> = mount_from
            .iter()
            .filter(|m| m.registry() == repo.registry() && m.path() != repo.path())
            .cloned()
            .collect();
        let mut scopes = vec![repository_scope(repo.path(), true)];
        scopes.extend(mounts.iter().map(|m| repository_scope(m.path(), false)));
        Ok(Target {
            host,
            base,
            repo,
            scopes,
            mounts,
        })
    }

    /// Push an OCI 1.1 referrer (an image manifest with a `subject`, described
    /// by `desc`, whose blobs are in `store`) into `repo` by digest. A registry
    /// with the referrers API says so with an `OCI-Subject` header; for one
    /// without it (distribution 2.8), the referrers tag schema: the index
    /// tagged `<alg>-<subject hex>` lists the referrers, so `desc` is added to
    /// it (distribution-spec "Pushing Manifests with Subject").
    pub async fn push_referrer(
        &self,
        repo: &Repository,
        manifest: &[u8],
        desc: &Descriptor,
        subject: &Digest,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        let reference = Reference::new(repo.clone(), None, Some(desc.digest.clone()));
        let t = self.target(&reference, &[]).await?;
        self.push_tree(&t, manifest, desc.media_type.as_str(), store, 0)
            .await?;
        let (_, indexed) = self
            .put_manifest_subject(
                &t,
                &desc.digest.to_string(),
                manifest,
                desc.media_type.as_str(),
            )
            .await?;
        if indexed {
            return Ok(());
        }
        let tag = referrers_tag(subject);
        let tagged = Reference::new(repo.clone(), Some(tag.clone()), None);
        let mut index = match self.fetch_manifest(&tagged).await {
            Ok(raw) => serde_json::from_slice::<ImageIndex>(&raw.bytes).map_err(|e| {
                RegistryError::Manifest {
                    reference: tagged.to_string(),
                    reason: format!("the referrers tag does not hold an index: {e}"),
                }
            })?,
            Err(RegistryError::Status { status: 404, .. }) => ImageIndex {
                schema_version: 2,
                media_type: Some(OCI_INDEX.into()),
                manifests: Vec::new(),
                annotations: None,
            },
            Err(e) => return Err(e),
        };
        if index.manifests.iter().any(|d| d.digest == desc.digest) {
            return Ok(());
        }
        index.manifests.push(desc.clone());
        let bytes = serde_json::to_vec(&index).map_err(|e| RegistryError::Manifest {
            reference: tagged.to_string(),
            reason: e.to_string(),
        })?;
        self.put_manifest(&t, &tag, &bytes, OCI_INDEX).await?;
        Ok(())
    }

    /// Push what `manifest` references (recursively for an index), not the manifest itself.
    fn push_tree<'a>(
        &'a self,
        t: &'a Target,
        manifest: &'a [u8],
        media_type: &'a str,
        store: &'a BlobStore,
        depth: u32,
    ) -> futures_util::future::BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let bad = |reason: String| RegistryError::Manifest {
                reference: Digest::of(manifest).to_string(),
                reason,
            };
            match ManifestKind::of(media_type) {
                Some(ManifestKind::Image) => {
                    let m: ImageManifest = serde_json::from_slice(manifest)
                        .map_err(|e| bad(format!("invalid image manifest: {e}")))?;
                    let mut blobs: Vec<&Descriptor> = m.layers.iter().collect();
                    blobs.push(&m.config);
                    let uploads: Vec<_> = blobs
                        .into_iter()
                        .map(|d| self.push_blob(t, d, store))
                        .collect();
                    futures_util::stream::iter(uploads)
                        .buffer_unordered(self.parallel)
                        .try_collect::<Vec<()>>()
                        .await?;
                    Ok(())
                }
                Some(ManifestKind::Index) if depth < 4 => {
                    let idx: ImageIndex = serde_json::from_slice(manifest)
                        .map_err(|e| bad(format!("invalid index: {e}")))?;
                    for child in &idx.manifests {
                        if ManifestKind::of(&child.media_type).is_none() {
                            // Not a manifest (e.g. an artifact blob): push it as a blob.
                            self.push_blob(t, child, store).await?;
                            continue;
                        }
                        if self.manifest_exists(t, &child.digest).await? {
                            continue;
                        }
                        let bytes = store.read_bytes(&child.digest)?;
                        self.push_tree(t, &bytes, child.media_type.as_str(), store, depth + 1)
                            .await?;
                        self.put_manifest(
                            t,
                            &child.digest.to_string(),
                            &bytes,
                            child.media_type.as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                }
                Some(ManifestKind::Index) => Err(bad("indexes nested too deeply".into())),
                None => Err(bad(format!("cannot push media type `{media_type}`"))),
            }
        })
    }

    /// Whether the target repository already has the manifest `d` (HEAD by digest).
    async fn manifest_exists(&self, t: &Target, d: &Digest) -> Result<bool, RegistryError> {
        let url = repo_url(&t.base, &t.repo, &format!("manifests/{d}"))?;
        let resp = self
            .t
            .send(&t.host, &t.scopes, Method::HEAD, &url, true, &|r| {
                r.header(
                    reqwest::header::ACCEPT,
                    crate::image::manifest::MANIFEST_ACCEPT,
                )
            })
            .await?;
        let same = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|h| h == d.to_string());
        Ok(resp.status().is_success() && same)
    }

    /// PUT a manifest under `reference` (tag or digest) and check the digest the registry reports.
    async fn put_manifest(
        &self,
        t: &Target,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        Ok(self
            .put_manifest_subject(t, reference, bytes, media_type)
            .await?
            .0)
    }

    /// [`Self::put_manifest`], also telling whether the registry answered
    /// `OCI-Subject` (it indexed the manifest's `subject` as a referrer).
    async fn put_manifest_subject(
        &self,
        t: &Target,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(Digest, bool), RegistryError> {
        let digest = Digest::of(bytes);
        let url = repo_url(&t.base, &t.repo, &format!("manifests/{reference}"))?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        let m = Method::PUT;
        let resp = self
            .t
            .send(&t.host, &t.scopes, m.clone(), &url, true, &|r| {
                r.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(status_error(&m, &url, resp).await);
        }
        if let Some(Ok(h)) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::parse::<Digest>)
        {
            if h != digest {
                return Err(RegistryError::DigestMismatch {
                    what: "pushed manifest (Docker-Content-Digest)",
                    url: redact_url(&url),
                    expected: digest,
                    actual: h,
                });
            }
        }
        Ok((digest, resp.headers().contains_key("oci-subject")))
    }

    /// Make sure the repository of `target` holds the blob `desc` without
    /// sending its bytes: HEAD, then a cross-repository mount from the
    /// repositories this machine pushed it to before and from `mount_from`.
    /// `false`: it is not there, and only an upload can put it there (the
    /// caller then needs the bytes). Counted in the traffic as present or mounted.
    pub async fn place_blob(
        &self,
        target: &Reference,
        desc: &Descriptor,
        mount_from: &[Repository],
    ) -> Result<bool, RegistryError> {
        let t = self.target(target, mount_from).await?;
        let placed = self.place_remotely(&t, desc).await?;
        let _ = self.memo.save();
        match placed {
            Ok(()) => Ok(true),
            Err(session) => {
                if let Some(url) = session {
                    // The upload a refused mount opened is not used: close it.
                    let _ = self
                        .t
                        .send(&t.host, &t.scopes, Method::DELETE, &url, true, &|r| r)
                        .await;
                }
                Ok(false)
            }
        }
    }

    /// HEAD, then mounts (see [`Self::place_blob`]). `Err(session)`: not
    /// there; `session` is the upload a refused mount opened, if any.
    async fn place_remotely(
        &self,
        t: &Target,
        desc: &Descriptor,
    ) -> Result<Result<(), Option<Url>>, RegistryError> {
        let reporter = self.reporter();
        let digest = desc.digest.to_string();
        let placed = |action, counted| {
            reporter.event(Event::BlobStart {
                digest: digest.clone(),
                size: Some(desc.size),
                action,
            });
            reporter.event(Event::BlobDone {
                digest: digest.clone(),
            });
            self.count(&t.repo, counted, desc);
            self.remember(t, &desc.digest);
        };
        let blob_url = repo_url(&t.base, &t.repo, &format!("blobs/{}", desc.digest))?;
        if self.blob_exists(t, &blob_url).await? {
            placed("exists", Action::Present);
            return Ok(Ok(()));
        }
        // Where this machine pushed the blob before, then the caller's hints.
        let remembered = self
            .memo
            .source(t.repo.registry(), &desc.digest)
            .filter(|r| r != t.repo.path());
        let mut sources: Vec<String> = remembered.into_iter().collect();
        for m in &t.mounts {
            if !sources.iter().any(|s| s == m.path()) {
                sources.push(m.path().to_owned());
            }
        }
        for from in &sources {
            let mut url = repo_url(&t.base, &t.repo, "blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", &digest)
                .append_pair("from", from);
            let mut scopes = t.scopes.clone();
            let from_scope = repository_scope(from, false);
            if !scopes.contains(&from_scope) {
                scopes.push(from_scope);
            }
            // A mount is only an optimization: a source the credentials may not
            // read (a token server can refuse its scope) means uploading instead.
            let Ok(resp) = self
                .t
                .send(&t.host, &scopes, Method::POST, &url, true, &|r| {
                    r.header(CONTENT_LENGTH, 0)
                })
                .await
            else {
                continue;
            };
            match resp.status() {
                StatusCode::CREATED => {
                    placed("mount", Action::Mounted);
                    return Ok(Ok(()));
                }
                StatusCode::ACCEPTED => return Ok(Err(Some(location(&url, &resp)?))),
                _ => {}
            }
        }
        Ok(Err(None))
    }

    async fn push_blob(
        &self,
        t: &Target,
        desc: &Descriptor,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        let mut session = match self.place_remotely(t, desc).await? {
            Ok(()) => return Ok(()),
            Err(session) => session,
        };
        let digest = desc.digest.to_string();
        let size = store.size(&desc.digest)?;
        if size != desc.size {
            return Err(RegistryError::Manifest {
                reference: digest.clone(),
                reason: format!(
                    "the store holds {size} bytes, the descriptor says {}",
                    desc.size
                ),
            });
        }
        let reporter = self.reporter();
        reporter.event(Event::BlobStart {
            digest: digest.clone(),
            size: Some(desc.size),
            action: "push",
        });
        let blob_url = repo_url(&t.base, &t.repo, &format!("blobs/{}", desc.digest))?;
        let path = store.path(&desc.digest);
        let mut restarts = 0;
        loop {
            let loc = match session.take() {
                Some(l) => l,
                None => self.start_upload(t).await?,
            };
            let r = if size <= self.chunk_size {
                self.put_whole(t, loc, &desc.digest, &path, size).await
            } else {
                self.put_chunked(t, loc, &desc.digest, &path, size).await
            };
            match r {
                Ok(()) => break,
                Err(e) if e.is_retryable() && restarts < self.t.options().max_retries => {
                    // The blob may have landed although its answer was lost.
                    if self.blob_exists(t, &blob_url).await? {
                        break;
                    }
                    self.t.wait(&e.to_string(), None, restarts).await;
                    restarts += 1;
                }
                Err(e) => return Err(e),
            }
        }
        reporter.event(Event::BlobDone { digest });
        self.count(&t.repo, Action::Uploaded, desc);
        self.remember(t, &desc.digest);
        Ok(())
    }

    /// Note that the target repository holds `digest` (for later mounts).
    fn remember(&self, t: &Target, digest: &Digest) {
        self.memo.record(t.repo.registry(), t.repo.path(), digest);
    }

    /// HEAD a blob: `true` when the repository has it. `401`/`403` count as
    /// "absent" so that the upload is tried anyway, as containerd does.
    async fn blob_exists(&self, t: &Target, blob_url: &Url) -> Result<bool, RegistryError> {
        let resp = self
            .t
            .send(&t.host, &t.scopes, Method::HEAD, blob_url, true, &|r| r)
            .await?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 | 401 | 403 => Ok(false),
            _ => Err(status_error(&Method::HEAD, blob_url, resp).await),
        }
    }

    /// `POST …/blobs/uploads/` → the upload session URL.
    async fn start_upload(&self, t: &Target) -> Result<Url, RegistryError> {
        let url = repo_url(&t.base, &t.repo, "blobs/uploads/")?;
        let resp = self
            .t
            .send(&t.host, &t.scopes, Method::POST, &url, true, &|r| {
                r.header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(&Method::POST, &url, resp).await);
        }
        location(&url, &resp)
    }

    /// Monolithic upload: `PUT <session>?digest=` with the whole blob.
    async fn put_whole(
        &self,
        t: &Target,
        loc: Url,
        d: &Digest,
        path: &std::path::Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        let url = with_digest(&loc, d);
        let m = Method::PUT;
        let resp = self
            .t
            .send(&t.host, &t.scopes, m.clone(), &url, false, &|r| {
                r.header(CONTENT_TYPE, OCTET)
                    .header(CONTENT_LENGTH, size)
                    .body(file_body(path.to_owned(), 0, size))
            })
            .await?;
        self.check_committed(&m, &url, resp, d).await
    }

    async fn check_committed(
        &self,
        m: &Method,
        url: &Url,
        resp: Response,
        d: &Digest,
    ) -> Result<(), RegistryError> {
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(m, url, resp).await);
        }
        if let Some(Ok(h)) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::parse::<Digest>)
        {
            if &h != d {
                return Err(RegistryError::DigestMismatch {
                    what: "uploaded blob (Docker-Content-Digest)",
                    url: redact_url(url),
                    expected: d.clone(),
                    actual: h,
                });
            }
        }
        Ok(())
    }

    /// Chunked upload with `PATCH` + `Content-Range`; after a failure, ask the
    /// session where it stands (`GET <session>` → `Range`) and resume from there.
    async fn put_chunked(
        &self,
        t: &Target,
        mut loc: Url,
        d: &Digest,
        path: &std::path::Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        let mut offset = 0u64;
        let mut failures = 0u32;
        let digest = d.to_string();
        while offset < size {
            let len = self.chunk_size.min(size - offset);
            let m = Method::PATCH;
            let range = format!("{offset}-{}", offset + len - 1);
            let sent = self
                .t
                .send(&t.host, &t.scopes, m.clone(), &loc, false, &|r| {
                    r.header(CONTENT_TYPE, OCTET)
                        .header(CONTENT_LENGTH, len)
                        .header("content-range", range.as_str())
                        .body(file_body(path.to_owned(), offset, len))
                })
                .await;
            let err = match sent {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    let next = location(&loc, &resp)?;
                    offset = range_end(&resp).unwrap_or(offset + len);
                    loc = next;
                    self.reporter().event(Event::BlobProgress {
                        digest: digest.clone(),
                        done: offset,
                    });
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                    status_error(&m, &loc, resp).await
                }
                Ok(resp) => {
                    let e = status_error(&m, &loc, resp).await;
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    e
                }
                Err(e) => e,
            };
            if failures >= self.t.options().max_retries {
                return Err(err);
            }
            self.t.wait(&err.to_string(), None, failures).await;
            failures += 1;
            // Where does the session stand? A lost session is retryable from scratch.
            let resp = self
                .t
                .send(&t.host, &t.scopes, Method::GET, &loc, true, &|r| r)
                .await?;
            match resp.status() {
                StatusCode::NO_CONTENT => {}
                // The session is gone: report the original (retryable) failure so the caller starts over.
                StatusCode::NOT_FOUND => return Err(err),
                _ => return Err(status_error(&Method::GET, &loc, resp).await),
            }
            offset = range_end(&resp).unwrap_or(0);
            if let Ok(l) = location(&loc, &resp) {
                loc = l;
            }
        }
        let url = with_digest(&loc, d);
        let m = Method::PUT;
        let resp = self
            .t
            .send(&t.host, &t.scopes, m.clone(), &url, true, &|r| {
                r.header(CONTENT_TYPE, OCTET).header(CONTENT_LENGTH, 0)
            })
            .await?;
        self.check_committed(&m, &url, resp, d).await
    }
}

/// The referrers tag schema's tag for `subject`: `<alg>-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}
