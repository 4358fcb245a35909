//! HTTP transport to registries: TLS verified by default (system roots, plus
//! `SSL_CERT_FILE` through rustls-native-certs), `--insecure-registry` hosts
//! and loopback registries may use plain HTTP (docker's rule), proxies from
//! the environment, timeouts, retries with backoff (connection errors, `5xx`,
//! `429` honouring `Retry-After`), and authentication on `401`. Redirects are
//! followed by reqwest, which drops `Authorization` when the host or port
//! changes.

use super::auth::Authenticator;
use super::credentials::{Credential, DockerConfig};
use super::error::{redact_url, transport, OciErrors, RegistryError};
use crate::report::{Event, Reporter};
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use url::Url;

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`).
    #[default]
    DockerConfig,
    /// A given config file.
    ConfigFile(std::path::PathBuf),
    /// Exactly these credentials (registry host → credential); nothing else.
    Fixed(HashMap<String, Credential>),
    /// Anonymous only.
    Anonymous,
}

/// Options of a [`Transport`].
#[derive(Clone)]
pub struct TransportOptions {
    /// Registries (HOST[:PORT]) reached over plain HTTP or unverified TLS.
    pub insecure: Vec<String>,
    /// Where credentials come from.
    pub credentials: CredentialSource,
    /// Receives retry warnings.
    pub reporter: Arc<dyn Reporter>,
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// First backoff delay (doubled per retry, capped at 10 s).
    pub backoff: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout between two reads of a response.
    pub read_timeout: Duration,
    /// How long one request (all its attempts) may wait for an answer: no
    /// attempt waits past it and no retry starts after it. A registry that
    /// accepts connections and never answers fails within it.
    pub request_budget: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            insecure: Vec::new(),
            credentials: CredentialSource::default(),
            reporter: Arc::new(()),
            max_retries: 5,
            backoff: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            request_budget: Duration::from_secs(60),
        }
    }
}

/// Per-registry state: base URL (scheme decided once) and authentication.
pub struct Host {
    name: String,
    insecure: bool,
    base: OnceCell<Url>,
    /// Authentication state of this registry.
    pub auth: Authenticator,
}

impl Host {
    /// The registry host[:port].
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Shared HTTP machinery for all registries of one cairn run.
pub struct Transport {
    secure: reqwest::Client,
    unverified: reqwest::Client,
    opts: TransportOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

/// Whether `host[:port]` names a loopback address (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(host_port: &str) -> bool {
    let host = if host_port.parse::<IpAddr>().is_ok() {
        host_port
    } else if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Transport {
    /// Build the HTTP clients.
    pub fn new(opts: TransportOptions) -> Result<Self, RegistryError> {
        let build = |unverified: bool| {
            reqwest::Client::builder()
                .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(opts.connect_timeout)
                .read_timeout(opts.read_timeout)
                .danger_accept_invalid_certs(unverified)
                .pool_max_idle_per_host(16)
                .build()
                .map_err(|e| RegistryError::Transport {
                    method: "INIT".into(),
                    url: String::new(),
                    what: "cannot set up the HTTP client",
                    source: e,
                })
        };
        Ok(Transport {
            secure: build(false)?,
            unverified: build(true)?,
            opts,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// The options in use.
    pub fn options(&self) -> &TransportOptions {
        &self.opts
    }

    fn credential_for(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        let cfg = match &self.opts.credentials {
            CredentialSource::Anonymous => return Ok(None),
            CredentialSource::Fixed(m) => return Ok(m.get(registry).cloned()),
            CredentialSource::DockerConfig => DockerConfig::load_default(),
            CredentialSource::ConfigFile(p) => DockerConfig::load(p),
        };
        cfg.and_then(|c| c.credential(registry))
            .map_err(|e| RegistryError::Auth {
                registry: registry.to_owned(),
                reason: format!("cannot read credentials: {e}"),
            })
    }

    /// The state of registry `registry` (as named in references, e.g. `docker.io`),
    /// reached at `api_host`.
    pub fn host(&self, registry: &str, api_host: &str) -> Result<Arc<Host>, RegistryError> {
        if let Some(h) = self
            .hosts
            .lock()
            .ok()
            .and_then(|m| m.get(api_host).cloned())
        {
            return Ok(h);
        }
        let cred = self.credential_for(registry)?;
        let insecure = self
            .opts
            .insecure
            .iter()
            .any(|i| i == api_host || i == registry);
        let h = Arc::new(Host {
            name: api_host.to_owned(),
            insecure,
            base: OnceCell::new(),
            auth: Authenticator::new(api_host, cred),
        });
        if let Ok(mut m) = self.hosts.lock() {
            Ok(m.entry(api_host.to_owned()).or_insert(h).clone())
        } else {
            Ok(h)
        }
    }

    fn client(&self, host: &Host) -> &reqwest::Client {
        if host.insecure {
            &self.unverified
        } else {
            &self.secure
        }
    }

    /// `scheme://host/` for `host`: HTTPS, except that insecure and loopback
    /// registries fall back to HTTP when HTTPS cannot be spoken.
    pub async fn base(&self, host: &Host) -> Result<Url, RegistryError> {
        let u = host
            .base
            .get_or_try_init(|| async {
                let https = parse_base("https", &host.name)?;
                if !(host.insecure || is_loopback(&host.name)) {
                    return Ok(https);
                }
                let probe = https.join("v2/").map_err(|e| bad_url(&host.name, e))?;
                // Two probes at most: a twelfth of the request budget each.
                let probe_timeout = (self.opts.request_budget / 12).min(Duration::from_secs(10));
                let tls_err = match self
                    .client(host)
                    .get(probe)
                    .timeout(probe_timeout)
                    .send()
                    .await
                {
                    Ok(_) => return Ok(https),
                    Err(e) => e,
                };
                let http = parse_base("http", &host.name)?;
                let plain = http.join("v2/").map_err(|e| bad_url(&host.name, e))?;
                // A TLS server answers plain HTTP with 400: then HTTPS it is, and its
                // certificate is what failed. Report that rather than a confusing 400 later.
                match self
                    .client(host)
                    .get(plain)
                    .timeout(probe_timeout)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::BAD_REQUEST => Err(RegistryError::Tls {
                        registry: host.name.clone(),
                        source: tls_err.without_url(),
                    }),
                    _ => Ok(http),
                }
            })
            .await?;
        Ok(u.clone())
    }

    /// Send a request with authentication and, when `retry`, retries. `build` adds
    /// headers and body and is called once per attempt. Returns the final response,
    /// whatever its status.
    pub async fn send(
        &self,
        host: &Host,
        scopes: &[String],
        method: Method,
        url: &Url,
        retry: bool,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let client = self.client(host);
        let (mut attempt, mut auth_rounds) = (0u32, 0u32);
        let started = std::time::Instant::now();
        let budget = self.opts.request_budget;
        // Uploads may take long to send their body: only bodiless requests
        // are cut at the budget (uploads keep the per-read timeout).
        let bodiless = method == Method::GET || method == Method::HEAD;
        loop {
            let mut rb = client.request(method.clone(), url.clone());
            let sent = host.auth.header(scopes);
            if let Some(h) = &sent {
                rb = rb.header(AUTHORIZATION, h);
            }
            let answer = if bodiless {
                let left = budget.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, build(rb).send()).await {
                    Ok(r) => r.map_err(|e| transport(&method, url, e)),
                    Err(_) => {
                        return Err(RegistryError::NoAnswer {
                            method: method.to_string(),
                            url: redact_url(url),
                            secs: budget.as_secs(),
                        })
                    }
                }
            } else {
                build(rb)
                    .send()
                    .await
                    .map_err(|e| transport(&method, url, e))
            };
            let in_budget = started.elapsed() + self.backoff(attempt) < budget;
            match answer {
                Err(e) => {
                    if retry && attempt < self.opts.max_retries && in_budget {
                        self.wait(&e.to_string(), None, attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(e);
                }
                Ok(resp) => {
                    self.show_warnings(resp.headers());
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED && auth_rounds < 2 {
                        let www = resp
                            .headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let www = (!www.is_empty()).then_some(www);
                        if host
                            .auth
                            .on_unauthorized(self, client, www.as_deref(), scopes, sent.as_deref())
                            .await?
                        {
                            auth_rounds += 1;
                            continue;
                        }
                        return Ok(resp);
                    }
                    if retry
                        && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                        && attempt < self.opts.max_retries
                        && in_budget
                    {
                        let after = retry_after(resp.headers());
                        let why = format!("{method} {}: HTTP {}", redact_url(url), status.as_u16());
                        self.wait(&why, after, attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// Show registry `Warning: 299 - "text"` headers to the user (distribution-spec "Warnings").
    fn show_warnings(&self, h: &HeaderMap) {
        for v in h
            .get_all(reqwest::header::WARNING)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            if let Some(text) = v.strip_prefix("299 - ") {
                let text: String = text
                    .trim_matches('"')
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(500)
                    .collect();
                self.opts
                    .reporter
                    .event(Event::Warning(format!("registry {text}")));
            }
        }
    }

    /// Backoff delay for retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        (self.opts.backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(10))
    }

    /// Sleep before retry number `attempt` (0-based), telling the user why.
    pub async fn wait(&self, why: &str, after: Option<Duration>, attempt: u32) {
        let d = after
            .unwrap_or_else(|| self.backoff(attempt))
            .min(Duration::from_secs(60));
        self.opts.reporter.event(Event::Warning(format!(
            "{why}; retrying in {:.1}s (retry {}/{})",
            d.as_secs_f64(),
            attempt + 1,
            self.opts.max_retries
        )));
        tokio::time::sleep(d).await;
    }

    /// The client used for `host` (for token requests made outside [`Transport::send`]).
    pub fn http(&self, host: &Host) -> &reqwest::Client {
        self.client(host)
    }
}

fn parse_base(scheme: &str, host: &str) -> Result<Url, RegistryError> {
    format!("{scheme}://{host}/")
        .parse()
        .map_err(|e| bad_url(host, e))
}

fn bad_url(host: &str, e: url::ParseError) -> RegistryError {
    RegistryError::Protocol {
        url: host.to_owned(),
        reason: format!("cannot build a URL for this registry: {e}"),
    }
}

/// `Retry-After` in seconds (HTTP-dates are rare from registries and fall back to backoff).
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// Turn a non-success response into a [`RegistryError::Status`] with the registry's error codes.
pub async fn status_error(method: &Method, url: &Url, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    RegistryError::Status {
        method: method.to_string(),
        url: redact_url(url),
        status,
        errors: OciErrors::parse(&body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.9.9",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let t = Transport::new(TransportOptions::default()).unwrap();
        assert_eq!(t.backoff(0), Duration::from_millis(200));
        assert_eq!(t.backoff(2), Duration::from_millis(800));
        assert_eq!(t.backoff(30), Duration::from_secs(10));
    }
}
