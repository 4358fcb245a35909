//! [`Platform`]: the one platform type (`os/arch[/variant]`) of `--platform`,
//! `FROM --platform`, the automatic `TARGET*`/`BUILD*` args, image configs and
//! index entries. One parser, normalizing as containerd's `platforms` package
//! (and so BuildKit) does, and matching with its fallback order
//! (`amd64/v3` → `amd64/v2` → `amd64` → `386`, `arm/v7` → `arm/v6` → `arm/v5`).
//!
//! The rules, in full:
//! * `os/arch` or `os/arch/variant`; a single word is an architecture on
//!   `linux` (`arm64`), except an OS name alone (`linux`), which is an error.
//!   Components are non-empty, of letters, digits, `_`, `-` and `.`.
//! * Everything is lowercased; `x86_64`/`x86-64` → `amd64`, `aarch64` → `arm64`,
//!   `i386` → `386` (variant dropped), `armhf` → `arm/v7`, `armel` → `arm/v6`.
//! * The default variant is no variant: `amd64/v1` → `amd64`; `arm` always
//!   has one: `arm` → `arm/v7`, `arm/7` → `arm/v7` (likewise 5, 6, 8).
//! * One exception to containerd: `arm64/v8` (also `8`, `v8.0`) is *kept* as
//!   `arm64/v8` where containerd drops it, because it is written into image
//!   configs and index entries (`TARGETVARIANT=v8`), and the pinned test base
//!   `testdata/base/node-alpine` (an index with an `arm64/v8` entry, as Docker
//!   Hub's node tags have) is built that way. It still *is* `arm64`: equality,
//!   hashing, ordering and matching treat `arm64/v8` and `arm64` as one
//!   platform ([`Platform::key`]).
//! * Any other variant is kept as written (`arm64/v8.2`).

use crate::image::manifest::PlatformSpec;
use std::fmt;
use std::str::FromStr;

/// A platform, normalized (see the module doc): two platforms are the same
/// exactly when they compare equal.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// CPU variant, `None` when it is the architecture's default (arm64 `v8`, amd64 `v1`).
    pub variant: Option<String>,
}

/// Why a platform string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: {reason}")]
pub struct PlatformError {
    input: String,
    reason: &'static str,
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty());
    match arch.as_str() {
        "i386" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => {
            let v = variant.filter(|v| v != "v1");
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            // `v8` is spelled one way but kept (module doc: the one exception).
            let v = variant.map(|v| match v.as_str() {
                "8" | "v8.0" => "v8".to_owned(),
                _ => v,
            });
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let v = match variant.as_deref() {
                None | Some("7") | Some("v7") => "v7",
                Some("5") | Some("v5") => "v5",
                Some("6") | Some("v6") => "v6",
                Some("8") | Some("v8") => "v8",
                Some(other) => return ("arm".into(), Some(other.to_owned())),
            };
            ("arm".into(), Some(v.into()))
        }
        _ => (arch, variant),
    }
}

impl PartialEq for Platform {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Platform {}

impl std::hash::Hash for Platform {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Platform {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Platform {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Platform {
    /// What makes two platforms the same: os, architecture and variant, with
    /// `arm64/v8` read as `arm64` (containerd's normal form).
    pub fn key(&self) -> (&str, &str, &str) {
        let variant = match (self.architecture.as_str(), self.variant_str()) {
            ("arm64", "v8") => "",
            (_, v) => v,
        };
        (&self.os, &self.architecture, variant)
    }

    /// Build a normalized platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// The platform of this machine (what cairn pulls by default).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// Parse `os/arch[/variant]` or a bare architecture (see the module doc).
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        s.parse()
    }

    /// The variant, `""` when there is none (the value of `TARGETVARIANT`).
    pub fn variant_str(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }

    /// As written in an index entry or a config.
    pub fn to_spec(&self) -> PlatformSpec {
        PlatformSpec {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            ..Default::default()
        }
    }

    /// From an index entry's platform.
    pub fn from_spec(p: &PlatformSpec) -> Self {
        Platform::new(&p.os, &p.architecture, p.variant.as_deref())
    }

    /// Platforms acceptable in place of `self`, most preferred first (containerd's `Only`).
    pub fn preference(&self) -> Vec<Platform> {
        let mk = |arch: &str, v: Option<String>| Platform {
            os: self.os.clone(),
            architecture: arch.into(),
            variant: v,
        };
        let level = |v: &Option<String>, prefix: char| -> Option<u32> {
            v.as_deref()?
                .strip_prefix(prefix)?
                .split('.')
                .next()?
                .parse()
                .ok()
        };
        match self.architecture.as_str() {
            "amd64" => {
                let n = level(&self.variant, 'v').unwrap_or(1);
                let mut out: Vec<_> = (2..=n)
                    .rev()
                    .map(|i| mk("amd64", Some(format!("v{i}"))))
                    .collect();
                out.push(mk("amd64", None));
                out.push(mk("386", None));
                out
            }
            "arm" => {
                let n = level(&self.variant, 'v').unwrap_or(7);
                (5..=n)
                    .rev()
                    .map(|i| mk("arm", Some(format!("v{i}"))))
                    .collect()
            }
            "arm64" => {
                let mut out = vec![self.clone()];
                if !self.key().2.is_empty() {
                    out.push(mk("arm64", None));
                }
                out
            }
            _ => vec![self.clone()],
        }
    }

    /// Whether an index entry with platform `p` is an exact match (after normalization).
    pub fn matches(&self, p: &PlatformSpec) -> bool {
        &Platform::from_spec(p) == self
    }
}

/// What a platform looks like, for error messages.
const USAGE: &str = "use os/arch[/variant], e.g. linux/arm64";

/// OS names that a single-word platform must not be (it would be read as an architecture).
const KNOWN_OS: [&str; 8] = [
    "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "android",
];

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = |reason| PlatformError {
            input: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(e(USAGE));
        }
        if parts.iter().any(|p| {
            !p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        }) {
            return Err(e(
                "only letters, digits, `_`, `-` and `.` are allowed; use os/arch[/variant], e.g. linux/arm64",
            ));
        }
        match parts.as_slice() {
            [os] if KNOWN_OS.contains(&os.to_ascii_lowercase().as_str()) => Err(e(
                "an OS alone names no architecture; use os/arch[/variant], e.g. linux/arm64",
            )),
            [arch] => Ok(Platform::new("linux", arch, None)),
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(e(USAGE)),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn normalizes_like_containerd() {
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/aarch64"), p("linux/arm64"));
        assert_eq!(p("linux/x86_64"), p("linux/amd64"));
        assert_eq!(p("linux/amd64/v1"), p("linux/amd64"));
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("Linux/AMD64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm64/v8.2").to_string(), "linux/arm64/v8.2");
        assert_eq!(p("linux/arm/6").to_string(), "linux/arm/v6");
        assert_eq!(p("linux/i386/v1").to_string(), "linux/386");
        assert_eq!(p("arm64"), p("linux/arm64"));
        assert_eq!(p("x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm64/v8").variant_str(), "v8");
        assert_eq!(p("linux/arm64/8").to_string(), "linux/arm64/v8");
        let set: std::collections::BTreeSet<_> = [p("linux/arm64/v8"), p("linux/aarch64")]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 1, "arm64/v8 and arm64 are one platform");
        assert_eq!(p("linux/arm/v7").variant_str(), "v7");
        assert_eq!(Platform::host().to_string(), "linux/amd64");
    }

    #[test]
    fn fallback_order() {
        let names = |v: Vec<Platform>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(p("linux/amd64/v3").preference()),
            [
                "linux/amd64/v3",
                "linux/amd64/v2",
                "linux/amd64",
                "linux/386"
            ]
        );
        assert_eq!(
            names(p("linux/arm/v7").preference()),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(names(p("linux/arm64").preference()), ["linux/arm64"]);
    }

    #[test]
    fn rejects_bad_strings() {
        for bad in [
            "linux",
            "Windows",
            "",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/am d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
