//! Node packages: every `node_modules/[@scope/]NAME/package.json` in the
//! image, and the projects that ship them (a `package.json` beside a
//! `node_modules` or a `package-lock.json`), cross-checked with the
//! project's `package-lock.json` when it is in the image (npm's lockfile
//! v2/v3 `packages` map, keyed by the install path). `yarn.lock` and
//! `pnpm-lock.yaml` are not read: such packages show "no lockfile".

use std::collections::BTreeMap;

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
