//! Platforms (`os/arch[/variant]`), normalized and matched as containerd's
//! `platforms` package does, including its fallback order
//! (`amd64/v3` → `amd64/v2` → `amd64` → `386`, `arm/v7` → `arm/v6` → `arm/v5`).

use crate::image::manifest::PlatformSpec;
use std::fmt;
use std::str::FromStr;

/// A target platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[error("invalid platform `{input}`: {reason}")]
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
            let v = variant.filter(|v| !matches!(v.as_str(), "8" | "v8" | "v8.0"));
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

impl Platform {
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
                if self.variant.is_some() {
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

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = |reason| PlatformError {
            input: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(e(
                "empty component; expected os/arch[/variant], e.g. linux/amd64",
            ));
        }
        if parts.iter().any(|p| {
            !p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        }) {
            return Err(e("only letters, digits, `_`, `-` and `.` are allowed"));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(e(
                "expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
            )),
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
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
