//! Registry client: references, auth, pull and push over the distribution HTTP API.
//!
//! [`Registry`] is the entry point for the engine and the CLI:
//! [`Registry::pull_image`], [`Registry::pull_manifest`] + [`Registry::fetch_blob`]
//! (lazy), [`Registry::resolve`] (cheap tag → digest for cache keys) and
//! [`Registry::push_image`]. Blobs go through `cairn_layers::blob_store`, so
//! everything stored was verified against its digest.

pub mod auth;
pub mod blob_memo;
pub mod credentials;
pub mod error;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;
pub mod tags;
pub mod traffic;
pub mod transport;

pub use crate::image::platform::Platform;
pub use error::RegistryError;
pub use pull::PulledImage;
pub use reference::{Reference, Repository};
pub use transport::{CredentialSource, TransportOptions};

use crate::report::Reporter;
use std::sync::Arc;
use transport::{Host, Transport};
use url::Url;

/// Options of a [`Registry`] client.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Transport options (insecure registries, credentials, retries, timeouts).
    pub transport: TransportOptions,
    /// Blobs transferred at once.
    pub parallel: usize,
    /// Blobs larger than this are uploaded in chunks of this size (resumable); smaller ones in one PUT.
    pub chunk_size: u64,
    /// Where to remember which repository received each pushed blob (see [`blob_memo`]).
    pub blob_memo: Option<std::path::PathBuf>,
    /// Where blob transfers are counted (share one between the clients of a command).
    pub traffic: Arc<traffic::Traffic>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            transport: TransportOptions::default(),
            parallel: 4,
            chunk_size: 64 << 20,
            blob_memo: None,
            traffic: Arc::default(),
        }
    }
}

impl RegistryOptions {
    /// Default options with these insecure registries and this reporter,
    /// and the request budget of [`crate::env::CAIRN_REGISTRY_TIMEOUT`]
    /// when it is set (a value that is not a positive number of seconds is
    /// reported and the default kept).
    pub fn new(insecure: Vec<String>, reporter: Arc<dyn Reporter>) -> Self {
        let mut o = RegistryOptions::default();
        o.transport.insecure = insecure;
        if let Ok(v) = std::env::var(crate::env::CAIRN_REGISTRY_TIMEOUT) {
            match v.trim().parse::<u64>() {
                Ok(secs) if secs > 0 => {
                    o.transport.request_budget = std::time::Duration::from_secs(secs);
                }
                _ => reporter.event(crate::report::Event::Warning(format!(
                    "{}={v:?} is not a positive number of seconds; using {} s",
                    crate::env::CAIRN_REGISTRY_TIMEOUT,
                    o.transport.request_budget.as_secs()
                ))),
            }
        }
        o.transport.reporter = reporter;
        o
    }
}

/// A registry client (any number of registries; state per host).
pub struct Registry {
    t: Transport,
    parallel: usize,
    chunk_size: u64,
    memo: blob_memo::BlobMemo,
    traffic: Arc<traffic::Traffic>,
}

impl Registry {
    /// A client with `opts`.
    pub fn new(opts: RegistryOptions) -> Result<Self, RegistryError> {
        Ok(Registry {
            parallel: opts.parallel.max(1),
            chunk_size: opts.chunk_size.max(1 << 20),
            memo: opts
                .blob_memo
                .map(blob_memo::BlobMemo::load)
                .unwrap_or_default(),
            traffic: opts.traffic,
            t: Transport::new(opts.transport)?,
        })
    }

    /// Count a blob transfer for `repo`'s registry.
    fn count(
        &self,
        repo: &Repository,
        action: traffic::Action,
        desc: &crate::image::manifest::Descriptor,
    ) {
        self.traffic.count(
            (repo.registry(), repo.path()),
            action,
            (
                &desc.digest.to_string(),
                desc.media_type.as_str(),
                desc.size,
            ),
        );
    }

    fn reporter(&self) -> &dyn Reporter {
        &*self.t.options().reporter
    }

    async fn endpoint(&self, repo: &Repository) -> Result<(Arc<Host>, Url), RegistryError> {
        let host = self.t.host(repo.registry(), repo.api_host())?;
        let base = self.t.base(&host).await?;
        Ok((host, base))
    }

    /// Check that `registry` accepts the configured credentials (`cairn login`):
    /// `GET /v2/`, answering its challenge.
    pub async fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let repo = Repository::parse(&format!("{registry}/x"))?;
        let (host, base) = self.endpoint(&repo).await?;
        if !host.auth.has_credential() {
            return Err(RegistryError::Auth {
                registry: registry.to_owned(),
                reason: "no credentials given".into(),
            });
        }
        let url = join(&base, "v2/")?;
        let m = reqwest::Method::GET;
        let resp = self
            .t
            .send(&host, &[], m.clone(), &url, true, &|r| r)
            .await?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(RegistryError::Auth {
                registry: registry.to_owned(),
                reason: "the registry refused the username or password".into(),
            }),
            _ => Err(transport::status_error(&m, &url, resp).await),
        }
    }
}

/// `base` joined with a relative path.
fn join(base: &Url, path: &str) -> Result<Url, RegistryError> {
    base.join(path).map_err(|e| RegistryError::Protocol {
        url: error::redact_url(base),
        reason: format!("cannot build the URL for `{path}`: {e}"),
    })
}

/// `v2/<repo>/<rest>` under `base`.
fn repo_url(base: &Url, repo: &Repository, rest: &str) -> Result<Url, RegistryError> {
    join(base, &format!("v2/{}/{rest}", repo.path()))
}
