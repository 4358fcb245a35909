//! Credentials from docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `credHelpers[registry]`, else `credsStore`, else
//! the `auths` entry (base64 `user:password`, `identitytoken`,
//! `registrytoken`). Helpers speak the `docker-credential-<name>`
//! `get`/`store`/`erase` protocol. `login`/`logout` write the file as docker
//! does (mode 0600, Docker Hub under `https://index.docker.io/v1/`).

use crate::env;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker Hub credentials are stored under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
const HELPER_PREFIX: &str = "docker-credential-";
const TOKEN_USERNAME: &str = "<token>";

/// A secret string: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (Basic, or the token endpoint's Basic).
    UserPassword {
        /// Username.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged with `grant_type=refresh_token`.
    IdentityToken {
        /// Username, if known.
        username: String,
        /// The refresh token.
        token: Secret,
    },
    /// A bearer token sent as-is (`registrytoken`).
    RegistryToken(Secret),
}

/// Credential-store errors.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The config file could not be read or written.
    #[error("cannot {action} docker config `{}`", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("docker config `{}` is invalid: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why (never includes secrets).
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper `{helper}` failed to {verb} credentials for {server}: {reason}")]
    Helper {
        /// The helper program.
        helper: String,
        /// `get`, `store` or `erase`.
        verb: &'static str,
        /// The server key.
        server: String,
        /// Its message (the helper's own stderr/stdout, first line).
        reason: String,
    },
    /// No config directory can be determined.
    #[error("cannot locate the docker config directory: neither $DOCKER_CONFIG nor $HOME is set")]
    NoHome,
}

/// The key docker uses for `registry` in `config.json`.
pub fn config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        other => other.to_owned(),
    }
}

/// Reduce a legacy key (`https://host/v1/`) to its host, as docker's `ConvertToHostname`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The docker CLI config: `config.json` in a directory.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    /// The config file path from `$DOCKER_CONFIG` or `$HOME/.docker`.
    pub fn default_path() -> Result<PathBuf, CredentialError> {
        if let Some(d) = std::env::var_os(env::DOCKER_CONFIG).filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(d).join("config.json"));
        }
        let home = std::env::var_os(env::HOME)
            .filter(|h| !h.is_empty())
            .ok_or(CredentialError::NoHome)?;
        Ok(PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// Load the default config (an absent file is an empty config).
    pub fn load_default() -> Result<Self, CredentialError> {
        Self::load(&Self::default_path()?)
    }

    /// Load `path` (an absent file is an empty config).
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        let doc = match std::fs::read(path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(invalid(path, "not a JSON object".into())),
                // serde_json's message holds a position, never file content.
                Err(e) => return Err(invalid(path, e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(CredentialError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(DockerConfig {
            path: path.to_owned(),
            doc,
        })
    }

    /// The file this config lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn str_field(&self, obj: &str, key: &str) -> Option<String> {
        self.doc
            .get(obj)?
            .as_object()?
            .get(key)?
            .as_str()
            .map(str::to_owned)
    }

    /// The helper to use for `registry`: `credHelpers[key]`, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let key = config_key(registry);
        self.str_field("credHelpers", &key)
            .or_else(|| self.doc.get("credsStore")?.as_str().map(str::to_owned))
            .filter(|h| !h.is_empty())
    }

    /// Credentials for `registry` (host[:port] as written in references), if any.
    pub fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let key = config_key(registry);
        if let Some(h) = self.helper_for(registry) {
            return helper_get(&h, &key);
        }
        let Some(auths) = self.doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_host(k) == key_host(&key))
                .map(|(_, v)| v)
        });
        match entry.and_then(Value::as_object) {
            Some(e) => self.decode_entry(&key, e),
            None => Ok(None),
        }
    }

    fn decode_entry(
        &self,
        key: &str,
        e: &Map<String, Value>,
    ) -> Result<Option<Credential>, CredentialError> {
        let get = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let (mut username, mut password) = (String::new(), None);
        if let Some(auth) = get("auth") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| invalid(&self.path, format!("`auths.{key}.auth` is not base64")))?;
            let s = String::from_utf8(raw)
                .map_err(|_| invalid(&self.path, format!("`auths.{key}.auth` is not UTF-8")))?;
            let (u, p) = s.split_once(':').ok_or_else(|| {
                invalid(
                    &self.path,
                    format!("`auths.{key}.auth` is not `user:password`"),
                )
            })?;
            if u.is_empty() {
                return Err(invalid(
                    &self.path,
                    format!("`auths.{key}.auth` has an empty username"),
                ));
            }
            username = u.to_owned();
            password = Some(Secret::new(p.trim_end_matches('\0')));
        }
        if let Some(t) = get("identitytoken") {
            return Ok(Some(Credential::IdentityToken {
                username,
                token: Secret::new(t),
            }));
        }
        if let Some(t) = get("registrytoken") {
            return Ok(Some(Credential::RegistryToken(Secret::new(t))));
        }
        Ok(password.map(|password| Credential::UserPassword { username, password }))
    }

    /// Store credentials for `registry` as `docker login` does: through the
    /// configured helper, else base64 in `auths`. Writes the file (0600).
    pub fn store(
        &mut self,
        registry: &str,
        username: &str,
        password: &Secret,
    ) -> Result<(), CredentialError> {
        let key = config_key(registry);
        let helper = self.helper_for(registry);
        let entry = match &helper {
            Some(h) => {
                helper_store(h, &key, username, password)?;
                // docker keeps an empty entry so that the registry is listed.
                Map::new()
            }
            None => {
                let enc = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                Map::from_iter([("auth".to_owned(), Value::String(enc))])
            }
        };
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(auths) = auths.as_object_mut() {
            auths.insert(key, Value::Object(entry));
        }
        self.save()
    }

    /// Remove credentials for `registry`. Returns whether any were stored.
    pub fn erase(&mut self, registry: &str) -> Result<bool, CredentialError> {
        let key = config_key(registry);
        let mut found = false;
        if let Some(h) = self.helper_for(registry) {
            found |= helper_erase(&h, &key)?;
        }
        if let Some(auths) = self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            found |= auths.remove(&key).is_some();
        }
        self.save()?;
        Ok(found)
    }

    /// Write the file atomically with mode 0600.
    pub fn save(&self) -> Result<(), CredentialError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |action, source| CredentialError::Io {
            action,
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json")
            .tempfile_in(dir)
            .map_err(|e| io("write", e))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("set permissions on", e))?;
        let mut bytes = serde_json::to_vec_pretty(&self.doc).map_err(|e| io("write", e.into()))?;
        bytes.push(b'\n');
        tmp.write_all(&bytes).map_err(|e| io("write", e))?;
        tmp.as_file().sync_all().map_err(|e| io("write", e))?;
        tmp.persist(&self.path).map_err(|e| io("write", e.error))?;
        Ok(())
    }
}

fn invalid(path: &Path, reason: String) -> CredentialError {
    CredentialError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

/// Run `docker-credential-<helper> <verb>` with `input` on stdin.
fn run_helper(
    helper: &str,
    verb: &'static str,
    server: &str,
    input: &[u8],
) -> Result<(bool, Vec<u8>), CredentialError> {
    let program = format!("{HELPER_PREFIX}{helper}");
    let fail = |reason: String| CredentialError::Helper {
        helper: program.clone(),
        verb,
        server: server.to_owned(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot wait for it: {e}")))?;
    Ok((out.status.success(), out.stdout))
}

fn helper_message(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credential>, CredentialError> {
    let (ok, out) = run_helper(helper, "get", key, key.as_bytes())?;
    if !ok {
        let msg = helper_message(&out);
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(CredentialError::Helper {
            helper: format!("{HELPER_PREFIX}{helper}"),
            verb: "get",
            server: key.to_owned(),
            reason: msg,
        });
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let r: Reply = serde_json::from_slice(&out).map_err(|_| CredentialError::Helper {
        helper: format!("{HELPER_PREFIX}{helper}"),
        verb: "get",
        server: key.to_owned(),
        reason: "its output is not the expected JSON".into(),
    })?;
    if r.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if r.username == TOKEN_USERNAME {
        Credential::IdentityToken {
            username: String::new(),
            token: Secret::new(r.secret),
        }
    } else {
        Credential::UserPassword {
            username: r.username,
            password: Secret::new(r.secret),
        }
    }))
}

fn helper_store(
    helper: &str,
    key: &str,
    username: &str,
    secret: &Secret,
) -> Result<(), CredentialError> {
    let body =
        serde_json::json!({"ServerURL": key, "Username": username, "Secret": secret.expose()});
    let (ok, out) = run_helper(helper, "store", key, body.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(CredentialError::Helper {
            helper: format!("{HELPER_PREFIX}{helper}"),
            verb: "store",
            server: key.to_owned(),
            reason: helper_message(&out),
        })
    }
}

fn helper_erase(helper: &str, key: &str) -> Result<bool, CredentialError> {
    let (ok, out) = run_helper(helper, "erase", key, key.as_bytes())?;
    let msg = helper_message(&out);
    match (ok, msg.contains("credentials not found")) {
        (true, _) => Ok(true),
        (false, true) => Ok(false),
        (false, false) => Err(CredentialError::Helper {
            helper: format!("{HELPER_PREFIX}{helper}"),
            verb: "erase",
            server: key.to_owned(),
            reason: msg,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        let c = DockerConfig::load(&p).unwrap();
        (d, c)
    }

    #[test]
    fn reads_auths_with_docker_hub_key_and_legacy_keys() {
        let (_d, c) = cfg(r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
            "https://legacy.example:5000/v1/":{"auth":"YTpi"},
            "tok.example":{"identitytoken":"refresh-me"}}}"#);
        match c.credential("docker.io").unwrap() {
            Some(Credential::UserPassword { username, password }) => {
                assert_eq!(username, "user");
                assert_eq!(password.expose(), "pa:ss", "split at the first colon");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.credential("legacy.example:5000").unwrap(),
            Some(Credential::UserPassword { .. })
        ));
        assert!(matches!(
            c.credential("tok.example").unwrap(),
            Some(Credential::IdentityToken { .. })
        ));
        assert_eq!(c.credential("other.example").unwrap(), None);
    }

    #[test]
    fn empty_username_is_an_error_without_the_secret() {
        let (_d, c) = cfg(r#"{"auths":{"h":{"auth":"OnNlY3JldA=="}}}"#);
        let e = c.credential("h").unwrap_err().to_string();
        assert!(e.contains("empty username"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let c = Credential::UserPassword {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn store_and_erase_write_docker_shape_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let (d, mut c) = cfg(r#"{"psFormat":"keep me"}"#);
        c.store("docker.io", "me", &Secret::new("pw")).unwrap();
        let p = d.path().join("config.json");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["auths"][DOCKER_HUB_KEY]["auth"], "bWU6cHc=");
        assert_eq!(v["psFormat"], "keep me");
        let mut c = DockerConfig::load(&p).unwrap();
        assert!(c.erase("docker.io").unwrap());
        assert!(!c.erase("docker.io").unwrap());
        assert_eq!(
            DockerConfig::load(&p)
                .unwrap()
                .credential("docker.io")
                .unwrap(),
            None
        );
    }

    #[test]
    fn credential_helper_protocol() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        // A helper that stores one credential in a file, speaking docker's protocol.
        let store = d.path().join("store.json");
        let script = format!(
            r#"#!/bin/sh
case "$1" in
  get) read -r url; if [ -f {s} ] && grep -q "\"$url\"" {s}; then cat {s}; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > {s} ;;
  erase) read -r url; if [ -f {s} ]; then rm {s}; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#,
            s = store.display()
        );
        let helper = d.path().join("docker-credential-cairntest");
        std::fs::write(&helper, script).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::var(crate::env::PATH).unwrap_or_default();
        // Tests in this module run in one process: prefix PATH only for the helper lookups.
        std::env::set_var("PATH", format!("{}:{path}", d.path().display()));
        let p = d.path().join("config.json");
        std::fs::write(&p, r#"{"credHelpers":{"reg.example":"cairntest"}}"#).unwrap();
        let mut c = DockerConfig::load(&p).unwrap();
        assert_eq!(c.credential("reg.example").unwrap(), None);
        c.store("reg.example", "bob", &Secret::new("s3cret"))
            .unwrap();
        let raw = std::fs::read_to_string(&p).unwrap();
        assert!(
            !raw.contains("s3cret"),
            "a helper-managed secret must not land in config.json"
        );
        match c.credential("reg.example").unwrap() {
            Some(Credential::UserPassword { username, password }) => {
                assert_eq!((username.as_str(), password.expose()), ("bob", "s3cret"));
            }
            other => panic!("{other:?}"),
        }
        assert!(c.erase("reg.example").unwrap());
        assert_eq!(c.credential("reg.example").unwrap(), None);
        // The same helper as the default store for every registry.
        std::fs::write(&p, r#"{"credsStore":"cairntest"}"#).unwrap();
        let mut c = DockerConfig::load(&p).unwrap();
        c.store("docker.io", "hub", &Secret::new("t0k")).unwrap();
        assert!(
            matches!(c.credential("docker.io").unwrap(), Some(Credential::UserPassword { username, .. }) if username == "hub")
        );
        assert!(!std::fs::read_to_string(&p).unwrap().contains("t0k"));
    }
}
