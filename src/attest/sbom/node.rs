//! Node packages: every `node_modules/[@scope/]NAME/package.json` in the
//! image, and the projects that ship them (a `package.json` beside a
//! `node_modules` or a lockfile), cross-checked with the project's lockfile
//! when it is in the image: `package-lock.json` (npm's v2/v3 `packages` map,
//! keyed by install path), else `yarn.lock` (v1 and berry) or
//! `pnpm-lock.yaml` (v6–v9), which pin versions by name only.

use std::collections::{BTreeMap, BTreeSet};

/// The lockfiles read, in the order a project's is chosen.
pub const LOCKFILES: [&str; 3] = ["package-lock.json", "yarn.lock", "pnpm-lock.yaml"];

/// What a project's lockfile pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lockfile {
    /// `package-lock.json`: the version at each install path.
    Npm(BTreeMap<String, String>),
    /// `yarn.lock` or `pnpm-lock.yaml` (the file name): the versions of each name.
    ByName(&'static str, BTreeMap<String, BTreeSet<String>>),
}

impl Lockfile {
    /// Parse the lockfile `file` (one of [`LOCKFILES`]).
    pub fn parse(file: &str, bytes: &[u8]) -> Option<Lockfile> {
        let text = || String::from_utf8_lossy(bytes);
        match file {
            "package-lock.json" => lock_versions(bytes).map(Lockfile::Npm),
            "yarn.lock" => Some(Lockfile::ByName("yarn.lock", yarn_versions(&text()))),
            "pnpm-lock.yaml" => Some(Lockfile::ByName("pnpm-lock.yaml", pnpm_versions(&text()))),
            _ => None,
        }
    }

    /// What it says about `name@version` installed at `key` (`node_modules/…`).
    pub fn check(&self, key: &str, name: &str, version: &str) -> String {
        match self {
            Lockfile::Npm(l) => match l.get(key) {
                Some(v) if v == version => "matches package-lock.json".to_owned(),
                Some(v) => format!("package-lock.json pins {v}"),
                None => "not in package-lock.json".to_owned(),
            },
            Lockfile::ByName(file, l) => match l.get(name) {
                Some(vs) if vs.contains(version) => format!("matches {file}"),
                Some(vs) => format!(
                    "{file} pins {}",
                    vs.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                None => format!("not in {file}"),
            },
        }
    }
}

/// `name@range` → name (a scoped name keeps its leading `@`).
fn spec_name(spec: &str) -> Option<&str> {
    let at = spec.get(1..)?.find('@')? + 1;
    Some(&spec[..at])
}

/// The versions a `yarn.lock` pins, by name: an entry is a line of specs
/// (`"a@^1", a@~1.2:`) followed by an indented `version "1.2.3"` (v1) or
/// `version: 1.2.3` (berry).
pub fn yarn_versions(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') && !line.starts_with('#') {
            names = line
                .trim_end_matches(':')
                .split(", ")
                .filter_map(|s| spec_name(s.trim().trim_matches('"')).map(str::to_owned))
                .collect();
        } else if let Some(v) = line.trim_start().strip_prefix("version") {
            if line.starts_with("  ") && !line.starts_with("   ") && !names.is_empty() {
                let v = v
                    .trim_start_matches(':')
                    .trim()
                    .trim_matches('"')
                    .to_owned();
                for n in names.drain(..) {
                    out.entry(n).or_default().insert(v.clone());
                }
            }
        }
    }
    out
}

/// The versions a `pnpm-lock.yaml` pins, by name: the keys of its top-level
/// `packages:` map (`/name@1.0.0` in v6, `name@1.0.0` in v9, with a peer
/// suffix `(react@18.2.0)` sometimes).
pub fn pnpm_versions(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut in_packages = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_packages = line.trim_end() == "packages:";
            continue;
        }
        let Some(key) = line.strip_prefix("  ").filter(|k| !k.starts_with(' ')) else {
            continue;
        };
        if !in_packages || !key.ends_with(':') {
            continue;
        }
        let key = key
            .trim_end_matches(':')
            .trim_matches(|c| c == '\'' || c == '"');
        let key = key.trim_start_matches('/');
        let key = key.split('(').next().unwrap_or(key);
        if let Some(name) = spec_name(key) {
            out.entry(name.to_owned())
                .or_default()
                .insert(key[name.len() + 1..].to_owned());
        }
    }
    out
}

/// What a package's `package.json` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePackage {
    /// `name` (may be `@scope/name`).
    pub name: String,
    /// `version`.
    pub version: String,
    /// `license` (a string, or the old `{ "type": … }` form).
    pub license: Option<String>,
}

/// Parse a `package.json`; `None` without a name and version (a folder's
/// `package.json` that only sets `type`, a broken file).
pub fn parse_package_json(bytes: &[u8]) -> Option<NodePackage> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let s = |k: &str| v.get(k)?.as_str().map(str::to_owned);
    let license = match v.get("license") {
        Some(serde_json::Value::String(l)) => Some(l.clone()),
        Some(o) => o.get("type").and_then(|t| t.as_str()).map(str::to_owned),
        None => None,
    };
    Some(NodePackage {
        name: s("name").filter(|n| !n.is_empty())?,
        version: s("version").filter(|n| !n.is_empty())?,
        license,
    })
}

/// Whether `path` (normalized, no leading `/`) is the `package.json` of an
/// installed package: directly in `node_modules/NAME/` or
/// `node_modules/@scope/NAME/`.
pub fn is_installed_manifest(path: &str) -> bool {
    let Some(dir) = path.strip_suffix("/package.json") else {
        return false;
    };
    let parts: Vec<&str> = dir.split('/').collect();
    match parts.as_slice() {
        [.., "node_modules", name] => !name.starts_with('.') && !name.starts_with('@'),
        [.., "node_modules", scope, name] => scope.starts_with('@') && !name.starts_with('.'),
        _ => false,
    }
}

/// The project an installed package belongs to (what precedes the first
/// `node_modules/`), and its path relative to it as npm's lockfile keys it
/// (`node_modules/a/node_modules/b`).
pub fn project_and_key(path: &str) -> Option<(&str, &str)> {
    let dir = path.strip_suffix("/package.json")?;
    if dir.starts_with("node_modules/") {
        return Some(("", dir));
    }
    let i = dir.find("/node_modules/")?;
    Some((&dir[..i], &dir[i + 1..]))
}

/// The versions a `package-lock.json` (v2/v3) pins, by install path.
pub fn lock_versions(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let packages = v.get("packages")?.as_object()?;
    Some(
        packages
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .filter_map(|(k, p)| Some((k.clone(), p.get("version")?.as_str()?.to_owned())))
            .collect(),
    )
}

/// The version `node_version.h` defines (`NODE_MAJOR_VERSION` 22 …).
pub fn node_version_h(text: &str) -> Option<String> {
    let get = |name: &str| {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("#define") && w.next() == Some(name))
                .then(|| w.next())
                .flatten()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    Some(format!(
        "{}.{}.{}",
        get("NODE_MAJOR_VERSION")?,
        get("NODE_MINOR_VERSION")?,
        get("NODE_PATCH_VERSION")?
    ))
}

/// The purl of an npm package (`@scope` percent-encoded, as purl-spec says).
pub fn purl(name: &str, version: &str) -> String {
    let name = match name.split_once('/') {
        Some((scope, n)) if scope.starts_with('@') => {
            format!("{}/{}", super::purl_escape(scope), super::purl_escape(n))
        }
        _ => super::purl_escape(name),
    };
    format!("pkg:npm/{name}@{}", super::purl_escape(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_package_roots_only() {
        assert!(is_installed_manifest("app/node_modules/react/package.json"));
        assert!(is_installed_manifest(
            "app/node_modules/@next/env/package.json"
        ));
        assert!(is_installed_manifest(
            "app/node_modules/a/node_modules/b/package.json"
        ));
        assert!(!is_installed_manifest(
            "app/node_modules/react/cjs/package.json"
        ));
        assert!(!is_installed_manifest("app/package.json"));
        assert!(!is_installed_manifest("app/node_modules/.bin/package.json"));
        assert!(!is_installed_manifest("app/node_modules/@x/package.json"));
    }

    #[test]
    fn lock_keys() {
        assert_eq!(
            project_and_key("app/node_modules/a/node_modules/@s/b/package.json"),
            Some(("app", "node_modules/a/node_modules/@s/b"))
        );
        assert_eq!(
            project_and_key("node_modules/a/package.json"),
            Some(("", "node_modules/a"))
        );
        let lock = br#"{"lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/a":{"version":"1.0.0"}}}"#;
        let m = lock_versions(lock).unwrap();
        assert_eq!(m.get("node_modules/a").map(String::as_str), Some("1.0.0"));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn yarn_and_pnpm_locks() {
        let yarn = "# yarn lockfile v1\n\n\"@babel/core@^7.0.0\", \"@babel/core@^7.1.0\":\n  version \"7.24.0\"\n  resolved \"https://x\"\n  dependencies:\n    version \"0\"\n\nms@2.1.3:\n  version \"2.1.3\"\n";
        let y = yarn_versions(yarn);
        assert_eq!(y["@babel/core"], BTreeSet::from(["7.24.0".to_owned()]));
        assert_eq!(y["ms"], BTreeSet::from(["2.1.3".to_owned()]));
        assert_eq!(y.len(), 2);
        let berry = "\"ms@npm:^2.1.1\":\n  version: 2.1.3\n  resolution: \"ms@npm:2.1.3\"\n";
        assert_eq!(
            yarn_versions(berry)["ms"],
            BTreeSet::from(["2.1.3".to_owned()])
        );
        let pnpm = "lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\npackages:\n  '@next/env@15.0.0':\n    resolution: {}\n  react-dom@18.2.0(react@18.2.0):\n    resolution: {}\n  /ms@2.1.3:\n    dev: false\nsnapshots:\n  other@1.0.0:\n";
        let p = pnpm_versions(pnpm);
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            ["@next/env", "ms", "react-dom"]
        );
        assert_eq!(p["react-dom"], BTreeSet::from(["18.2.0".to_owned()]));
        let l = Lockfile::parse("yarn.lock", yarn.as_bytes()).unwrap();
        assert_eq!(
            l.check("node_modules/ms", "ms", "2.1.3"),
            "matches yarn.lock"
        );
        assert_eq!(
            l.check("node_modules/ms", "ms", "2.1.2"),
            "yarn.lock pins 2.1.3"
        );
        assert_eq!(l.check("node_modules/x", "x", "1.0.0"), "not in yarn.lock");
    }

    #[test]
    fn node_version_header() {
        let h = "#ifndef SRC_NODE_VERSION_H_\n#define NODE_MAJOR_VERSION 22\n#define NODE_MINOR_VERSION 20\n#define NODE_PATCH_VERSION 0\n#define NODE_VERSION_IS_RELEASE 1\n";
        assert_eq!(node_version_h(h).as_deref(), Some("22.20.0"));
        assert_eq!(node_version_h("#define NODE_MAJOR_VERSION 22\n"), None);
    }

    #[test]
    fn package_json_and_purl() {
        let p = parse_package_json(
            br#"{"name":"@next/env","version":"15.0.0","license":{"type":"MIT"}}"#,
        )
        .unwrap();
        assert_eq!(p.license.as_deref(), Some("MIT"));
        assert_eq!(purl(&p.name, &p.version), "pkg:npm/%40next/env@15.0.0");
        assert_eq!(parse_package_json(br#"{"type":"module"}"#), None);
    }
}
