//! Image references, parsed and normalized as docker does
//! (`distribution/reference` `ParseNormalizedNamed`): `node:22-alpine` is
//! `docker.io/library/node:22-alpine`, served by `registry-1.docker.io`.

use cairn_layers::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry docker.io names.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Upper bound of a repository name's length, domain included (docker's `NameTotalLengthMax`).
pub const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Why a reference is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid reference `{input}`: {reason}{}",
    if *.credentials { "; a reference carries no credentials: log in with `cairn login` instead" } else { "" }
)]
pub struct ReferenceError {
    /// The text as given (credentials redacted).
    pub input: String,
    /// What is wrong with it (boxed: the error travels inside others).
    pub reason: Box<Reason>,
    /// The text carried `user:password@` (the message says to log in instead).
    pub credentials: bool,
}

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Nothing at all.
    #[error("empty reference")]
    Empty,
    /// 64 hex digits.
    #[error("a 64-character hexadecimal string is an image id, not a reference")]
    ImageId,
    /// A repository name with a tag or digest.
    #[error("a repository name cannot have a tag or digest")]
    NotARepository,
    /// `@` and no digest.
    #[error("bad digest: {0}")]
    Digest(std::sync::Arc<cairn_layers::digest::DigestError>),
    /// No repository after the registry.
    #[error("missing repository name")]
    NoRepository,
    /// Longer than [`NAME_MAX`].
    #[error("repository name is {0} characters long, at most {NAME_MAX} are allowed")]
    NameTooLong(usize),
    /// `//` or a trailing `/`.
    #[error("empty path component (`//` or a trailing `/`)")]
    EmptyComponent,
    /// Upper case in the repository path.
    #[error("repository name component `{0}` must be lowercase")]
    Uppercase(String),
    /// A path component starting or ending with a separator.
    #[error("repository name component `{0}` must start and end with a lowercase letter or digit")]
    ComponentEdge(String),
    /// A separator docker does not allow.
    #[error(
        "repository name component `{component}` has invalid characters `{separator}` (allowed: a-z 0-9 and single `.`, `_`, `__` or dashes between them)"
    )]
    Separator {
        /// The path component.
        component: String,
        /// The separator in it.
        separator: String,
    },
    /// `[` without `]`.
    #[error("unterminated `[` in registry address")]
    UnterminatedBracket,
    /// Something other than `:port` after `]`.
    #[error("junk after `]` in registry address")]
    JunkAfterBracket,
    /// Brackets around something else.
    #[error("`{0}` is not an IPv6 address")]
    NotIpv6(String),
    /// A port that is not a number.
    #[error("registry port `{0}` is not a number")]
    Port(String),
    /// A host name docker does not allow.
    #[error("`{0}` is not a valid registry host name")]
    Host(String),
    /// `name:` and nothing.
    #[error("empty tag")]
    EmptyTag,
    /// Longer than 128 characters.
    #[error("tag is {0} characters long, at most {TAG_MAX} are allowed")]
    TagTooLong(usize),
    /// A tag starting with `.` or `-`.
    #[error("tag `{0}` must start with a letter, digit or `_`")]
    TagStart(String),
    /// A character a tag cannot hold.
    #[error("tag `{tag}` contains `{bad}` (allowed: letters, digits, `_`, `.`, `-`)")]
    TagChar {
        /// The tag.
        tag: String,
        /// The character.
        bad: char,
    },
}

/// A repository on a registry: `docker.io` + `library/node`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    path: String,
}

impl Repository {
    /// The registry as named (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/node`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host[:port] that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// Parse a repository name (no tag, no digest), normalized like a reference.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        match parse_raw(s)? {
            (repo, None, None) => Ok(repo),
            _ => Err(err(s, Reason::NotARepository)),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// A normalized image reference: repository plus tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    repo: Repository,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn err(input: &str, reason: Reason) -> ReferenceError {
    let redacted = redact_credentials(input);
    ReferenceError {
        credentials: redacted != input,
        input: redacted,
        reason: Box::new(reason),
    }
}

/// `text` (a reference or URL as typed) with any `user:password@` before
/// the host replaced by `***@`, for messages. A digest (`name@sha256:…`) is
/// not a credential.
pub fn redact_credentials(text: &str) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => ("", text),
    };
    let first = &rest[..rest.find('/').unwrap_or(rest.len())];
    match first.rfind('@') {
        Some(at)
            if !["sha256:", "sha512:"]
                .iter()
                .any(|d| rest[at + 1..].starts_with(d)) =>
        {
            format!("{scheme}***@{}", &rest[at + 1..])
        }
        _ => text.to_owned(),
    }
}

impl Reference {
    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The tag, if one was given (or `latest` was implied: see [`Reference::from_str`]).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to put in `/v2/<name>/manifests/<reference>`: the digest when there is one (it wins), else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        check_tag(tag).map_err(|r| err(tag, r))?;
        Ok(Reference {
            repo: self.repo.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            repo: self.repo.clone(),
            tag: self.tag.clone(),
            digest: Some(digest),
        }
    }

    /// A reference to `repo` by tag or digest.
    pub fn new(repo: Repository, tag: Option<String>, digest: Option<Digest>) -> Self {
        Reference { repo, tag, digest }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_path_component(c: &str) -> Result<(), Reason> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err(Reason::EmptyComponent);
    }
    if c.bytes().any(|x| x.is_ascii_uppercase()) {
        return Err(Reason::Uppercase(c.to_owned()));
    }
    if !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return Err(Reason::ComponentEdge(c.to_owned()));
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err(Reason::Separator {
                component: c.to_owned(),
                separator: sep.to_owned(),
            });
        }
    }
    Ok(())
}

/// Domain: components of `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` joined by `.`, optional `:port`,
/// or a bracketed IPv6 address.
fn check_domain(d: &str) -> Result<(), Reason> {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let end = rest.find(']').ok_or(Reason::UnterminatedBracket)?;
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(Reason::JunkAfterBracket)?),
        };
        if rest[..end].parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Reason::NotIpv6(rest[..end].to_owned()));
        }
        (None, port)
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reason::Port(p.to_owned()));
        }
    }
    if let Some(h) = host {
        for comp in h.split('.') {
            let b = comp.as_bytes();
            let ok = !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-');
            if !ok {
                return Err(Reason::Host(h.to_owned()));
            }
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn check_tag(t: &str) -> Result<(), Reason> {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty() {
        return Err(Reason::EmptyTag);
    }
    if b.len() > TAG_MAX {
        return Err(Reason::TagTooLong(b.len()));
    }
    if !word(b[0]) {
        return Err(Reason::TagStart(t.to_owned()));
    }
    if let Some(bad) = b
        .iter()
        .find(|x| !(word(**x) || **x == b'.' || **x == b'-'))
    {
        return Err(Reason::TagChar {
            tag: t.to_owned(),
            bad: *bad as char,
        });
    }
    Ok(())
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Parse and normalize like docker: a first component is a registry iff it contains
    /// `.` or `:`, is `localhost`, or has upper-case letters; otherwise `docker.io` is
    /// implied, with `library/` for single-component names. No tag and no digest means `:latest`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (repo, tag, digest) = parse_raw(s)?;
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(Reference { repo, tag, digest })
    }
}

type Parts = (Repository, Option<String>, Option<Digest>);

fn parse_raw(s: &str) -> Result<Parts, ReferenceError> {
    {
        if s.is_empty() {
            return Err(err(s, Reason::Empty));
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(s, Reason::ImageId));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let d: Digest = d.parse().map_err(|e: cairn_layers::digest::DigestError| {
                    err(s, Reason::Digest(std::sync::Arc::new(e)))
                })?;
                (r, Some(d))
            }
            None => (s, None),
        };
        // A `:` after the last `/` starts the tag (a `:` before it is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                check_tag(t).map_err(|r| err(s, r))?;
                (&rest[..last_slash + i], Some(t.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        check_domain(&registry).map_err(|r| err(s, r))?;
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.is_empty() {
            return Err(err(s, Reason::NoRepository));
        }
        for c in path.split('/') {
            check_path_component(c).map_err(|r| err(s, r))?;
        }
        if registry.len() + 1 + path.len() > NAME_MAX {
            return Err(err(s, Reason::NameTooLong(registry.len() + 1 + path.len())));
        }
        Ok((Repository { registry, path }, tag, digest))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_a_reference_never_reach_the_error() {
        for typed in [
            "user:hunter2@registry.example.com/app:1",
            "https://user:hunter2@registry.example.com/app",
            "user:hunter2@registry.example.com",
            "hunter2@localhost:5000/app",
        ] {
            let e = typed.parse::<Reference>().unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("***@") && e.contains("cairn login"), "{e}");
        }
        let digest = format!("node@sha256:{}", "a".repeat(64));
        assert_eq!(redact_credentials(&digest), digest);
        assert_eq!(redact_credentials("node:22-alpine"), "node:22-alpine");
    }

    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        for (input, want) in [
            ("node:22-alpine", "docker.io/library/node:22-alpine"),
            ("ubuntu", "docker.io/library/ubuntu:latest"),
            ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
            (
                "index.docker.io/library/ubuntu:22.04",
                "docker.io/library/ubuntu:22.04",
            ),
            ("me/app", "docker.io/me/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
            ("ghcr.io/o/r/s:v1.2", "ghcr.io/o/r/s:v1.2"),
            ("[::1]:5000/x:y", "[::1]:5000/x:y"),
        ] {
            assert_eq!(norm(input), want, "{input}");
        }
        let r: Reference = "node:22-alpine".parse().unwrap();
        assert_eq!(r.repository().api_host(), "registry-1.docker.io");
        assert_eq!(r.repository().path(), "library/node");
        let r: Reference = "localhost:5000/x".parse().unwrap();
        assert_eq!(r.repository().api_host(), "localhost:5000");
    }

    #[test]
    fn digests_win_and_digest_only_has_no_tag() {
        let r: Reference = format!("host:5000/a/b:tag@{D}").parse().unwrap();
        assert_eq!(r.repository().registry(), "host:5000");
        assert_eq!(r.repository().path(), "a/b");
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.manifest_reference(), D);
        let r: Reference = format!("alpine@{D}").parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D}"));
    }

    #[test]
    fn rejects_with_reasons() {
        for (input, why) in [
            ("", "empty"),
            ("docker.io/Library/x", "lowercase"),
            ("Foo", "lowercase"),
            ("x:bad!tag", "contains `!`"),
            ("x:.dot", "must start"),
            (&format!("x:{}", "a".repeat(129)), "at most 128"),
            (&format!("h.io/{}", "a".repeat(260)), "at most 255"),
            ("x@sha256:abc", "bad digest"),
            ("x@md5:abc", "bad digest"),
            ("a//b", "empty path component"),
            ("a/b-/c", "start and end"),
            ("a/b..c", "invalid characters"),
            ("h:port/x", "not a number"),
            (&"a".repeat(64), "image id"),
            ("-bad.io/x", "registry host"),
        ] {
            let e = input.parse::<Reference>().unwrap_err().to_string();
            assert!(e.contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn separators_allowed_by_the_grammar() {
        for ok in ["a_b", "a__b", "a---b", "a.b", "a1/b2/c3"] {
            ok.parse::<Reference>().unwrap();
        }
    }

    #[test]
    fn repository_parse_refuses_tags() {
        assert_eq!(
            Repository::parse("library/node").unwrap().to_string(),
            "docker.io/library/node"
        );
        // A bare name normalizes to `:latest`, which is not a user-given tag.
        assert!(Repository::parse("x:1").is_err());
    }
}
