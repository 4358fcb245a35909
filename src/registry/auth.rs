//! Registry authentication: `WWW-Authenticate` challenges (RFC 7235/6750),
//! Basic, and the Bearer token flow of distribution's `token.md`/`oauth.md`
//! with tokens cached per scope set and refreshed when they expire.
//! Tokens and passwords live only in [`Secret`]s.

use super::credentials::{Credential, Secret};
use super::error::{redact_url, transport, RegistryError};
use super::transport::Transport;
use base64::Engine as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm=… service=… scope=…`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// Service name to request.
        service: Option<String>,
        /// Scopes the registry asked for (space-separated in the header).
        scopes: Vec<String>,
    },
}

/// Parse all challenges of a header value; Bearer first when both are offered.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut scheme: Option<String> = None;
    let mut params: Vec<(String, String)> = Vec::new();
    let flush = |scheme: &mut Option<String>,
                 params: &mut Vec<(String, String)>,
                 out: &mut Vec<Challenge>| {
        if let Some(s) = scheme.take() {
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(pk, _)| pk == k)
                    .map(|(_, v)| v.clone())
            };
            match s.to_ascii_lowercase().as_str() {
                "basic" => out.push(Challenge::Basic),
                "bearer" => {
                    if let Some(realm) = get("realm") {
                        out.push(Challenge::Bearer {
                            realm,
                            service: get("service"),
                            scopes: get("scope")
                                .map(|s| {
                                    s.split(' ')
                                        .filter(|x| !x.is_empty())
                                        .map(str::to_owned)
                                        .collect()
                                })
                                .unwrap_or_default(),
                        })
                    }
                }
                _ => {}
            }
        }
        params.clear();
    };
    let b = header.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',' || b[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'=' | b',' | b'\t') {
            i += 1;
        }
        let token = &header[start..i];
        if token.is_empty() {
            break;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch_len = header[i..].chars().next().map_or(1, char::len_utf8);
                    v.push_str(&header[i..i + ch_len]);
                    i += ch_len;
                }
                i += 1;
                v
            } else {
                let s = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                header[s..i].trim().to_owned()
            };
            params.push((token.to_ascii_lowercase(), value));
        } else {
            flush(&mut scheme, &mut params, &mut out);
            scheme = Some(token.to_owned());
        }
    }
    flush(&mut scheme, &mut params, &mut out);
    out.sort_by_key(|c| matches!(c, Challenge::Basic));
    out
}

/// `repository:<path>:<actions>`.
pub fn repository_scope(path: &str, push: bool) -> String {
    format!(
        "repository:{path}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

#[derive(Clone)]
struct Token {
    value: Secret,
    expires: Instant,
}

/// What to send on a request to one registry: learned from its challenge.
#[derive(Default)]
pub struct Authenticator {
    registry: String,
    credential: Option<Credential>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, Token>>,
    /// One token request at a time, so parallel requests answered 401 share one token.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("registry", &self.registry)
            .field("has_credential", &self.credential.is_some())
            .finish_non_exhaustive()
    }
}

fn scope_key(scopes: &[String]) -> String {
    scopes
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

fn basic_value(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

impl Authenticator {
    /// An authenticator for `registry` with optional credentials.
    pub fn new(registry: &str, credential: Option<Credential>) -> Self {
        Authenticator {
            registry: registry.to_owned(),
            credential,
            ..Default::default()
        }
    }

    /// Whether credentials are configured.
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The `Authorization` header value to send for `scopes`, if one is known without a round trip.
    pub fn header(&self, scopes: &[String]) -> Option<String> {
        let ch = self.challenge.lock().ok()?.clone()?;
        match ch {
            Challenge::Basic => match &self.credential {
                Some(Credential::UserPassword { username, password }) => {
                    Some(basic_value(username, password.expose()))
                }
                _ => None,
            },
            Challenge::Bearer { .. } => {
                if let Some(Credential::RegistryToken(t)) = &self.credential {
                    return Some(format!("Bearer {}", t.expose()));
                }
                let tokens = self.tokens.lock().ok()?;
                let t = tokens.get(&scope_key(scopes))?;
                (t.expires > Instant::now()).then(|| format!("Bearer {}", t.value.expose()))
            }
        }
    }

    /// Handle a 401 to a request sent with `sent` (its `Authorization` value): remember
    /// the challenge and, for Bearer, fetch a token for `scopes` (plus any the registry
    /// asked for) unless another request just did. Returns whether retrying makes sense.
    pub async fn on_unauthorized(
        &self,
        t: &Transport,
        client: &reqwest::Client,
        www_authenticate: Option<&str>,
        scopes: &[String],
        sent: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let challenges = www_authenticate.map(parse_challenges).unwrap_or_default();
        let Some(ch) = challenges.into_iter().next() else {
            return Err(
                self.fail("the registry answered 401 without a usable WWW-Authenticate challenge")
            );
        };
        let had = self.challenge.lock().map(|c| c.clone()).unwrap_or(None);
        if let Ok(mut c) = self.challenge.lock() {
            *c = Some(ch.clone());
        }
        match ch {
            Challenge::Basic => {
                match &self.credential {
                    Some(Credential::UserPassword { .. }) => Ok(had != Some(Challenge::Basic)),
                    _ => Err(self
                        .fail("the registry requires a username and password (run `cairn login`)")),
                }
            }
            Challenge::Bearer {
                realm,
                service,
                scopes: asked,
            } => {
                if matches!(self.credential, Some(Credential::RegistryToken(_))) {
                    return Ok(had.is_none());
                }
                let _one_at_a_time = self.fetching.lock().await;
                if let Some(now) = self.header(scopes) {
                    if Some(now.as_str()) != sent {
                        return Ok(true);
                    }
                }
                let mut all: Vec<String> = scopes.to_vec();
                for s in asked {
                    if !all.contains(&s) {
                        all.push(s);
                    }
                }
                let token = self
                    .fetch_token(t, client, &realm, service.as_deref(), &all)
                    .await?;
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(scope_key(scopes), token);
                }
                Ok(true)
            }
        }
    }

    fn fail(&self, reason: &str) -> RegistryError {
        RegistryError::Auth {
            registry: self.registry.clone(),
            reason: reason.to_owned(),
        }
    }

    async fn fetch_token(
        &self,
        t: &Transport,
        client: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token, RegistryError> {
        let mut url: url::Url = realm
            .parse()
            .map_err(|_| self.fail("the token realm in the challenge is not a URL"))?;
        let mut form: Vec<(&str, &str)> = Vec::new();
        let joined = scopes.join(" ");
        if let Some(Credential::IdentityToken { token, .. }) = &self.credential {
            // OAuth2 refresh-token grant (distribution `oauth.md`).
            form.extend([
                ("grant_type", "refresh_token"),
                ("refresh_token", token.expose()),
                ("client_id", "cairn"),
            ]);
            if let Some(s) = service {
                form.push(("service", s));
            }
            if !scopes.is_empty() {
                form.push(("scope", &joined));
            }
        } else {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let request = || match &self.credential {
            Some(Credential::IdentityToken { .. }) => client.post(url.clone()).form(&form),
            Some(Credential::UserPassword { username, password }) => client
                .get(url.clone())
                .basic_auth(username, Some(password.expose())),
            _ => client.get(url.clone()),
        };
        let method = if matches!(self.credential, Some(Credential::IdentityToken { .. })) {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        // Retried like any registry request: a refused connection, a 5xx or
        // 429, or a reply cut off mid-body.
        let mut attempt = 0;
        // The same answer budget as registry requests (see TransportOptions).
        let started = Instant::now();
        let budget = t.options().request_budget;
        let (status, body) = loop {
            let again = attempt < t.options().max_retries
                && started.elapsed() + t.backoff(attempt) < budget;
            let left = budget.saturating_sub(started.elapsed());
            let Ok(sent) = tokio::time::timeout(left, request().send()).await else {
                return Err(RegistryError::NoAnswer {
                    method: method.to_string(),
                    url: redact_url(&url),
                    secs: budget.as_secs(),
                });
            };
            let failure = match sent {
                Ok(resp)
                    if again
                        && (resp.status().is_server_error()
                            || resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS) =>
                {
                    format!(
                        "token service {}: HTTP {}",
                        redact_url(&url),
                        resp.status().as_u16()
                    )
                }
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) => break (status, body),
                        Err(e) if again => transport(&method, &url, e).to_string(),
                        Err(e) => return Err(transport(&method, &url, e)),
                    }
                }
                Err(e) if again => transport(&method, &url, e).to_string(),
                Err(e) => return Err(transport(&method, &url, e)),
            };
            t.wait(&failure, None, attempt).await;
            attempt += 1;
        };
        if !status.is_success() {
            return Err(self.fail(&format!(
                "the token service {} answered HTTP {}{}",
                redact_url(&url),
                status.as_u16(),
                if status.as_u16() == 401 {
                    " (wrong username or password?)"
                } else {
                    ""
                }
            )));
        }
        #[derive(serde::Deserialize)]
        struct Reply {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        url.set_query(None);
        let r: Reply = serde_json::from_slice(&body).map_err(|_| {
            self.fail(&format!(
                "the token service {} sent an unreadable reply",
                redact_url(&url)
            ))
        })?;
        let value = r
            .access_token
            .or(r.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.fail("the token service sent no token"))?;
        // Default lifetime 60 s (token.md); renew a little early.
        let life = Duration::from_secs(r.expires_in.unwrap_or(60).max(1));
        let margin = (life / 10).min(Duration::from_secs(10));
        Ok(Token {
            value: Secret::new(value),
            expires: Instant::now() + life - margin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge_with_commas_in_scope() {
        let ch = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push repository:x:pull""#,
        );
        assert_eq!(
            ch,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scopes: vec![
                    "repository:samalba/my-app:pull,push".into(),
                    "repository:x:pull".into()
                ],
            }]
        );
    }

    #[test]
    fn parses_basic_and_prefers_bearer() {
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        let both = parse_challenges(r#"Basic realm="r", Bearer realm="https://t/x",service=s"#);
        assert!(
            matches!(both[0], Challenge::Bearer { ref service, .. } if service.as_deref() == Some("s"))
        );
        assert_eq!(both[1], Challenge::Basic);
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("Bearer service=\"no realm\"").is_empty());
    }

    #[test]
    fn scope_keys_ignore_order() {
        assert_eq!(
            scope_key(&["b".into(), "a".into()]),
            scope_key(&["a".into(), "b".into()])
        );
        assert_eq!(
            repository_scope("library/node", true),
            "repository:library/node:pull,push"
        );
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let a = Authenticator::new(
            "h",
            Some(Credential::UserPassword {
                username: "u".into(),
                password: Secret::new("hunter2"),
            }),
        );
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
