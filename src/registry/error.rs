//! Registry errors: typed, with the request that failed (URL without its query,
//! which may carry upload state or signed tokens) and the registry's own error
//! codes. No credential or token ever reaches these values.

use super::reference::ReferenceError;
use cairn_layers::blob_store::BlobError;
use cairn_layers::Digest;
use serde::Deserialize;
use std::fmt;

/// One entry of a registry's `{"errors":[…]}` body (distribution-spec "Error Codes").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OciError {
    /// `BLOB_UNKNOWN`, `DENIED`, `TOOMANYREQUESTS`, …
    pub code: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
}

/// The registry's error entries, printed as `CODE: message; …`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciErrors(pub Vec<OciError>);

impl OciErrors {
    /// Parse an error body; anything unparseable yields no entries.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<OciError>,
        }
        OciErrors(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }

    /// Whether any entry has `code`.
    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for OciErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            // Messages come from the server: keep them short and on one line.
            let msg: String = e
                .message
                .chars()
                .take(300)
                .filter(|c| !c.is_control())
                .collect();
            write!(f, "{}: {}", e.code, msg)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: HTTP {status}{}", fmt_codes(.errors))]
    Status {
        /// Request method.
        method: String,
        /// Request URL without query.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The registry's error entries.
        errors: OciErrors,
    },
    /// The request could not be completed (connection, TLS, timeout, body).
    #[error("{method} {url}: {what}")]
    Transport {
        /// Request method.
        method: String,
        /// Request URL without query.
        url: String,
        /// Short classification (`connection failed`, `timed out`, …).
        what: &'static str,
        /// The cause (its URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the request budget (the registry accepts connections
    /// but does not respond).
    #[error("{method} {url}: no answer within {secs} s; the registry accepts connections but does not respond — check that it is up, or that a proxy is not holding the request")]
    NoAnswer {
        /// Request method.
        method: String,
        /// Request URL without query.
        url: String,
        /// The budget.
        secs: u64,
    },
    /// The registry speaks TLS but its certificate could not be verified.
    #[error("cannot verify the TLS certificate of {registry}; trust its CA with SSL_CERT_FILE, or pass `--insecure-registry {registry}` to skip verification")]
    Tls {
        /// Registry host[:port].
        registry: String,
        /// The TLS failure.
        #[source]
        source: reqwest::Error,
    },
    /// A response body ended before its announced length.
    #[error("{url}: the body ended after {got} of {want} bytes")]
    Incomplete {
        /// The request URL without query.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// Authentication failed or was refused.
    #[error("authentication with {registry} failed: {reason}")]
    Auth {
        /// Registry host.
        registry: String,
        /// What went wrong (never contains a secret).
        reason: String,
    },
    /// Content did not match its digest.
    #[error("{what} from {url} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: &'static str,
        /// Where from.
        url: String,
        /// The announced digest.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A manifest could not be used.
    #[error("manifest {reference}: {reason}")]
    Manifest {
        /// The reference or digest.
        reference: String,
        /// Why.
        reason: String,
    },
    /// No manifest for the requested platform in an index.
    #[error("{reference} has no image for platform {wanted}; available: {}", .available.join(", "))]
    PlatformNotFound {
        /// The reference.
        reference: String,
        /// The requested platform.
        wanted: String,
        /// The platforms the index offers.
        available: Vec<String>,
    },
    /// The local blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A local I/O error.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// What a blob's bytes were streamed into as they arrived (an unpack)
    /// failed: the blob is not kept.
    #[error("blob {digest}: its bytes were verified, but what they were streamed into failed")]
    Sink {
        /// The blob.
        digest: Digest,
        /// The consumer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry broke the protocol (missing header, bad Location, …).
    #[error("{url}: {reason}")]
    Protocol {
        /// The request URL without query.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

fn fmt_codes(e: &OciErrors) -> String {
    if e.0.is_empty() {
        String::new()
    } else {
        format!(" ({e})")
    }
}

impl RegistryError {
    /// Whether retrying the same request may succeed: connection problems,
    /// timeouts, `5xx`, `429`.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Status { status, errors, .. } => {
                *status == 429 || *status >= 500 || errors.has("TOOMANYREQUESTS")
            }
            RegistryError::Transport { .. } | RegistryError::Incomplete { .. } => true,
            _ => false,
        }
    }

    /// Whether a push lost a race with another pusher of the same blob: a
    /// registry may refuse one of two concurrent uploads of one blob
    /// (distribution's filesystem driver: `DIGEST_INVALID`, then the
    /// manifest's `MANIFEST_BLOB_UNKNOWN`). Pushing again, HEAD first, finds
    /// the blob the other pusher committed.
    pub fn is_lost_upload_race(&self) -> bool {
        match self {
            RegistryError::Status { errors, .. } => {
                errors.has("DIGEST_INVALID") || errors.has("MANIFEST_BLOB_UNKNOWN")
            }
            _ => false,
        }
    }

    /// The HTTP status, if this is a status error.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A URL for messages: scheme, host, path; never the query or userinfo.
pub fn redact_url(u: &url::Url) -> String {
    format!(
        "{}://{}{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + u.path()
}

/// Wrap a reqwest error with the request it belongs to.
pub fn transport(method: &reqwest::Method, url: &url::Url, e: reqwest::Error) -> RegistryError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body interrupted"
    } else {
        "request failed"
    };
    RegistryError::Transport {
        method: method.to_string(),
        url: redact_url(url),
        what,
        source: e.without_url(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_shows_codes_and_no_query() {
        let u: url::Url = "http://user:pw@h:5000/v2/x/blobs/uploads/abc?_state=SECRET&digest=y"
            .parse()
            .unwrap();
        let e = RegistryError::Status {
            method: "PUT".into(),
            url: redact_url(&u),
            status: 400,
            errors: OciErrors::parse(br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match"}]}"#),
        };
        assert!(e.is_lost_upload_race() && !e.is_retryable());
        let s = e.to_string();
        assert_eq!(s, "PUT http://h:5000/v2/x/blobs/uploads/abc: HTTP 400 (DIGEST_INVALID: provided digest did not match)");
        assert!(!s.contains("SECRET") && !s.contains("pw"));
        assert!(!e.is_retryable());
    }

    #[test]
    fn retryable_statuses() {
        let mk = |status| RegistryError::Status {
            method: "GET".into(),
            url: "u".into(),
            status,
            errors: OciErrors::default(),
        };
        assert!(mk(500).is_retryable());
        assert!(mk(503).is_retryable());
        assert!(mk(429).is_retryable());
        assert!(!mk(404).is_retryable());
        assert!(!mk(401).is_retryable());
    }
}
