//! `RUN --mount=<csv>` specs (BuildKit `instructions/runmount.go`).

use super::expand::ExpandError;
use serde::Serialize;

/// What a mount provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A directory of the context or of another stage/image (read-only by default).
    Bind,
    /// A persistent cache directory shared between builds.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (never stored in a layer).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// How a cache mount is shared between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Used concurrently (default).
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A parsed `--mount` spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// `type=` (default `bind`).
    #[serde(rename = "type")]
    pub kind: MountType,
    /// `target=`/`dst=`/`destination=`; defaulted for secret (`/run/secrets/<id>`) and ssh.
    pub target: Option<String>,
    /// `source=`/`src=`: a path in `from` (bind, cache) or the secret/ssh id.
    pub source: Option<String>,
    /// `from=`: a stage name or index, or an image reference (bind, cache).
    pub from: Option<String>,
    /// `ro`/`readonly`, `rw`/`readwrite`; bind mounts default to read-only.
    pub readonly: bool,
    /// `id=`: cache id or secret/ssh id.
    pub id: Option<String>,
    /// `sharing=` for cache mounts.
    pub sharing: Option<Sharing>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `required` (secret, ssh): fail when not provided.
    pub required: bool,
    /// `size=` for tmpfs, in bytes.
    pub size: Option<u64>,
    /// `env=` for secrets: expose as this environment variable.
    pub env: Option<String>,
}

/// Expands one option value (the RUN's environment at that step).
pub type Expander<'a> = dyn Fn(&str) -> Result<String, ExpandError> + 'a;

/// What is wrong with a `--mount` value, in BuildKit's words (the caller
/// adds where: the flag's file:line:col, or the word that was expanded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// A quoted CSV field not closed, or text after its closing quote.
    #[error("extraneous or missing \" in quoted-field in {0:?}")]
    Quote(String),
    /// A quote inside an unquoted CSV field.
    #[error("bare \" in non-quoted-field in {0:?}")]
    BareQuote(String),
    /// A boolean that is not one.
    #[error("invalid boolean value {0:?}")]
    Bool(String),
    /// A size that is not one.
    #[error("invalid size: {0:?}")]
    Size(String),
    /// A number that is not one (`mode` is octal).
    #[error("invalid value {value:?} for {key}")]
    Number {
        /// What was written.
        value: String,
        /// `mode`, `uid`, `gid`.
        key: &'static str,
    },
    /// A key this mount type does not take.
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyOfOtherType {
        /// The key.
        key: String,
        /// The mount type.
        kind: String,
    },
    /// A key no mount type takes.
    #[error("unexpected key '{key}' in '{field}'")]
    UnknownKey {
        /// The key (lower-cased).
        key: String,
        /// The field as written.
        field: String,
    },
    /// A field without `=` that is no flag.
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    /// A `sharing=` that is not shared, private or locked.
    #[error("unsupported sharing value {0:?}")]
    Sharing(String),
    /// A secret with both `source=` and `id=`.
    #[error("both source and id can't be set")]
    SourceAndId,
    /// A secret naming nothing.
    #[error("invalid secret mount. one of source, target, id or env required")]
    SecretOfNothing,
    /// A mount without `target=`.
    #[error("mount type {0} requires a target")]
    NoTarget(String),
    /// A `type=` that is not one.
    #[error("unsupported mount type {0:?}")]
    UnknownType(String),
    /// An option value that does not expand.
    #[error("{0}")]
    Expand(ExpandError),
}

/// Split a CSV record the way Go's `encoding/csv` does for one line.
fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(MountError::Quote(s.to_owned())),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(_) => return Err(MountError::Quote(s.to_owned())),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some('"') => return Err(MountError::BareQuote(s.to_owned())),
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

fn parse_bool(v: &str) -> Result<bool, MountError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(MountError::Bool(v.to_owned())),
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1.5g`, `512` (binary multiples).
pub fn ram_in_bytes(v: &str) -> Result<u64, MountError> {
    let t = v.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let invalid = || MountError::Size(v.to_owned());
    let n: f64 = num.parse().map_err(|_| invalid())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024f64.powi(3),
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return Err(invalid()),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

fn num(v: &str, radix: u32, key: &'static str) -> Result<u32, MountError> {
    u32::from_str_radix(v, radix).map_err(|_| MountError::Number {
        value: v.to_owned(),
        key,
    })
}

impl Mount {
    /// Parse a `--mount` value; `expand` (if given) expands each option value, as BuildKit
    /// does when the RUN runs. Errors are lowercase messages without location.
    pub fn parse(spec: &str, expand: Option<&Expander>) -> Result<Mount, MountError> {
        let fields = csv_fields(spec)?;
        let mut m = Mount::of_kind(mount_type(&fields)?);
        for field in fields.iter().filter(|f| !f.is_empty()) {
            let Some((key, value)) = field.split_once('=') else {
                m.set_bare(field)?;
                continue;
            };
            let value = match expand {
                Some(f) => f(value).map_err(MountError::Expand)?,
                None => value.to_owned(),
            };
            m.set(&key.to_ascii_lowercase(), value, field)?;
        }
        m.complete()?;
        Ok(m)
    }

    /// A mount of `kind` with nothing set but the kind's default access.
    fn of_kind(kind: MountType) -> Mount {
        Mount {
            kind,
            target: None,
            source: None,
            from: None,
            readonly: matches!(kind, MountType::Bind | MountType::Secret | MountType::Ssh),
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            required: false,
            size: None,
            env: None,
        }
    }

    /// The type's name as BuildKit's messages spell it.
    fn type_name(&self) -> String {
        format!("{:?}", self.kind).to_ascii_lowercase()
    }

    /// The error for `key`, which this mount type does not take.
    fn wrong(&self, key: &str) -> Result<(), MountError> {
        Err(MountError::KeyOfOtherType {
            key: key.to_owned(),
            kind: self.type_name(),
        })
    }

    /// A field without `=`: a flag.
    fn set_bare(&mut self, field: &str) -> Result<(), MountError> {
        match field.to_ascii_lowercase().as_str() {
            "readonly" | "ro" => self.readonly = true,
            "readwrite" | "rw" => self.readonly = false,
            "required" if matches!(self.kind, MountType::Secret | MountType::Ssh) => {
                self.required = true
            }
            "required" => return self.wrong("required"),
            _ => return Err(MountError::NotKeyValue(field.to_owned())),
        }
        Ok(())
    }

    /// One `key=value` field (`key` lowercased, `value` expanded).
    fn set(&mut self, key: &str, value: String, field: &str) -> Result<(), MountError> {
        let kind = self.kind;
        match key {
            "type" => {}
            "from" => {
                if !matches!(kind, MountType::Bind | MountType::Cache) {
                    return self.wrong("from");
                }
                self.from = Some(value)
            }
            "source" | "src" => self.source = Some(value),
            "target" | "dst" | "destination" => self.target = Some(value),
            "readonly" | "ro" => self.readonly = parse_bool(&value)?,
            "readwrite" | "rw" => self.readonly = !parse_bool(&value)?,
            "required" if matches!(kind, MountType::Secret | MountType::Ssh) => {
                self.required = parse_bool(&value)?
            }
            "size" if kind == MountType::Tmpfs => self.size = Some(ram_in_bytes(&value)?),
            "id" => self.id = Some(value),
            "sharing" if kind == MountType::Cache => {
                self.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(MountError::Sharing(value)),
                })
            }
            "mode" => self.mode = Some(num(&value, 8, "mode")?),
            "uid" => self.uid = Some(num(&value, 10, "uid")?),
            "gid" => self.gid = Some(num(&value, 10, "gid")?),
            "env" if kind == MountType::Secret => self.env = Some(value),
            "required" | "size" | "sharing" | "env" => return self.wrong(key),
            _ => {
                return Err(MountError::UnknownKey {
                    key: key.to_owned(),
                    field: field.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// The kind's defaults and required fields, once every field is read.
    fn complete(&mut self) -> Result<(), MountError> {
        match self.kind {
            MountType::Secret => {
                if self.source.is_some() && self.id.is_some() {
                    return Err(MountError::SourceAndId);
                }
                if self.source.is_none()
                    && self.target.is_none()
                    && self.id.is_none()
                    && self.env.is_none()
                {
                    return Err(MountError::SecretOfNothing);
                }
                if self.id.is_none() {
                    self.id = self.source.take().or_else(|| {
                        self.target
                            .as_deref()
                            .and_then(|t| t.rsplit('/').next())
                            .map(str::to_owned)
                    });
                }
                if self.target.is_none() && self.env.is_none() {
                    self.target = self.id.as_ref().map(|id| format!("/run/secrets/{id}"));
                }
            }
            MountType::Ssh => {
                if self.id.is_none() {
                    self.id = Some(self.source.take().unwrap_or_else(|| "default".into()));
                }
            }
            _ => {
                if self.target.is_none() {
                    return Err(MountError::NoTarget(self.type_name()));
                }
            }
        }
        Ok(())
    }
}

/// The `type=` among `fields` (the last one wins; bind when there is none).
fn mount_type(fields: &[String]) -> Result<MountType, MountError> {
    let mut kind = MountType::Bind;
    for f in fields {
        if let Some((k, v)) = f.split_once('=') {
            if k.eq_ignore_ascii_case("type") {
                kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(MountError::UnknownType(v.to_owned())),
                };
            }
        }
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_shapes() {
        let m = Mount::parse("type=cache,target=/root/.npm,sharing=locked,id=npm", None).unwrap();
        assert_eq!(
            (m.kind, m.target.as_deref(), m.sharing, m.readonly),
            (
                MountType::Cache,
                Some("/root/.npm"),
                Some(Sharing::Locked),
                false
            )
        );
        let m = Mount::parse("target=/src,from=builder,source=/app,rw", None).unwrap();
        assert_eq!(
            (m.kind, m.from.as_deref(), m.readonly),
            (MountType::Bind, Some("builder"), false)
        );
        let m = Mount::parse("type=secret,id=npmrc,required", None).unwrap();
        assert_eq!(m.target.as_deref(), Some("/run/secrets/npmrc"));
        assert!(m.required);
        let m = Mount::parse("type=tmpfs,target=/t,size=64m", None).unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = Mount::parse("type=cache,target=/c,mode=0755,uid=1000", None).unwrap();
        assert_eq!((m.mode, m.uid), (Some(0o755), Some(1000)));
        let m = Mount::parse("type=ssh", None).unwrap();
        assert_eq!(m.id.as_deref(), Some("default"));
        let m = Mount::parse("\"type=bind\",\"target=/a,b\"", None).unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn rejects_bad_specs() {
        for (spec, msg) in [
            ("type=nfs,target=/x", "unsupported mount type \"nfs\""),
            ("type=bind", "mount type bind requires a target"),
            (
                "type=cache,target=/x,foo=1",
                "unexpected key 'foo' in 'foo=1'",
            ),
            (
                "type=cache,target=/x,shared",
                "invalid field 'shared' must be a key=value pair",
            ),
            (
                "type=bind,target=/x,sharing=locked",
                "unexpected key 'sharing' for mount type 'bind'",
            ),
            (
                "type=cache,target=/x,sharing=maybe",
                "unsupported sharing value \"maybe\"",
            ),
            (
                "type=cache,target=/x,mode=9",
                "invalid value \"9\" for mode",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target, id or env required",
            ),
            (
                "type=tmpfs,target=/x,from=a",
                "unexpected key 'from' for mount type 'tmpfs'",
            ),
            (
                "target=/x\"",
                "bare \" in non-quoted-field in \"target=/x\\\"\"",
            ),
        ] {
            assert_eq!(
                Mount::parse(spec, None).unwrap_err().to_string(),
                msg,
                "{spec}"
            );
        }
    }

    #[test]
    fn a_value_that_does_not_expand_names_the_word() {
        let exp = |v: &str| {
            crate::frontend::expand::Lexer::new('\\')
                .process_word(v, &crate::frontend::expand::NoEnv)
        };
        let e = Mount::parse("type=cache,target=${X", Some(&exp)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${X\": syntax error: missing '}'"
        );
    }

    #[test]
    fn expands_values_only_when_asked() {
        let exp = |v: &str| Ok(v.replace("$D", "/deps"));
        let m = Mount::parse("type=cache,target=$D", Some(&exp)).unwrap();
        assert_eq!(m.target.as_deref(), Some("/deps"));
    }
}
