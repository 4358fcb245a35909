//! SPDX 2.3 JSON (spdx-spec v2.3, "SPDX JSON"): one package for the image,
//! one per package found, `DESCRIBES`/`CONTAINS`/`DESCENDANT_OF`
//! relationships. The document namespace is derived from the image id and
//! the creation time is the build epoch, so the document is reproducible.
//!
//! The model is ours, not a crate's: the SPDX crates on crates.io
//! (`spdx-rs`) stop at SPDX 2.2 and are not maintained; the part of the
//! format an image SBOM needs is these few structs.

use super::{Ecosystem, Inventory, Package};
use serde::Serialize;

/// The SPDX document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<SpdxPackage>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    license_concluded: &'static str,
    license_declared: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_comments: Option<String>,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    primary_package_purpose: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// SPDX license identifiers (and exceptions) accepted as they are in a
/// declared license. Anything else is kept as a comment, with
/// `NOASSERTION` as the declared license, so the document stays valid: the
/// common ones of Alpine's and npm's packages, all on the SPDX license list.
const KNOWN_IDS: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BlueOak-1.0.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "curl",
    "EPL-2.0",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];
const KNOWN_EXCEPTIONS: &[&str] = &[
    "Classpath-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-3.1",
    "LLVM-exception",
];

/// `raw` as a valid SPDX license expression over [`KNOWN_IDS`], if it is one.
pub fn license_expression(raw: &str) -> Option<String> {
    let spaced = raw.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let (mut depth, mut want_id, mut after_with) = (0i32, true, false);
    for t in &tokens {
        match *t {
            "(" if want_id => depth += 1,
            ")" if !want_id => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            "AND" | "OR" if !want_id => want_id = true,
            "WITH" if !want_id && !after_with => {
                want_id = true;
                after_with = true;
                continue;
            }
            id if want_id => {
                let ok = if after_with {
                    KNOWN_EXCEPTIONS.contains(&id)
                } else {
                    KNOWN_IDS.contains(&id)
                };
                if !ok {
                    return None;
                }
                want_id = false;
            }
            _ => return None,
        }
        after_with = false;
    }
    (!tokens.is_empty() && !want_id && depth == 0)
        .then(|| tokens.join(" ").replace("( ", "(").replace(" )", ")"))
}

fn spdx_id(prefix: &str, i: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{i}-{clean}")
}

/// Where a package came from, in words: its layer and step.
pub fn source_info(p: &Package) -> Option<String> {
    match (&p.layer, &p.step) {
        (Some((i, diff_id)), Some(step)) => {
            Some(format!("layer {i} ({diff_id}), made by `{step}`"))
        }
        (Some((i, diff_id)), None) => Some(format!("layer {i} ({diff_id})")),
        (None, Some(step)) => Some(format!("`{step}`")),
        (None, None) => None,
    }
}

/// What else there is to say about a package (path, apk origin, lockfile).
pub fn comment(p: &Package) -> Option<String> {
    let mut parts = Vec::new();
    if !p.path.is_empty() {
        parts.push(format!("found in {}", p.path));
    }
    if let Some(o) = &p.origin {
        parts.push(format!("origin {o}"));
    }
    if let Some(a) = &p.arch {
        parts.push(format!("arch {a}"));
    }
    if let Some(l) = &p.lock {
        parts.push(l.clone());
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The namespace and the name of the described element for `inv`.
pub fn names(inv: &Inventory) -> (String, String) {
    match &inv.stage {
        Some(s) => (
            format!("{}-stage-{s}", inv.config_digest.hex()),
            format!("{} (build stage {s})", inv.name),
        ),
        None => (inv.config_digest.hex().to_owned(), inv.name.clone()),
    }
}

/// The SPDX 2.3 JSON document of `inv`.
pub fn write(inv: &Inventory) -> anyhow::Result<Vec<u8>> {
    let (ns, name) = names(inv);
    let image_id = "SPDXRef-Image".to_owned();
    let mut packages = vec![SpdxPackage {
        spdx_id: image_id.clone(),
        name: name.clone(),
        version_info: inv.config_digest.to_string(),
        download_location: "NOASSERTION",
        files_analyzed: false,
        license_concluded: "NOASSERTION",
        license_declared: "NOASSERTION".into(),
        license_comments: None,
        copyright_text: "NOASSERTION",
        checksums: vec![Checksum {
            algorithm: "SHA256",
            checksum_value: inv.config_digest.hex().to_owned(),
        }],
        external_refs: Vec::new(),
        source_info: None,
        comment: Some("the image config's digest (image id)".into()),
        primary_package_purpose: "CONTAINER",
    }];
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: image_id.clone(),
    }];
    for (i, p) in inv.packages.iter().enumerate() {
        let (prefix, purpose) = match (p.ecosystem, p.project) {
            (Ecosystem::Image, _) => ("Image", "CONTAINER"),
            (Ecosystem::Apk, _) => ("apk", "LIBRARY"),
            (Ecosystem::Npm, true) => ("npm", "APPLICATION"),
            (Ecosystem::Npm, false) => ("npm", "LIBRARY"),
        };
        let id = spdx_id(prefix, i, &p.name);
        let expr = p.license.as_deref().and_then(license_expression);
        packages.push(SpdxPackage {
            spdx_id: id.clone(),
            name: p.name.clone(),
            version_info: p.version.clone(),
            download_location: "NOASSERTION",
            files_analyzed: false,
            license_concluded: "NOASSERTION",
            license_declared: expr.clone().unwrap_or_else(|| "NOASSERTION".into()),
            license_comments: match (&p.license, expr) {
                (Some(raw), None) => Some(format!("declared: {raw}")),
                _ => None,
            },
            copyright_text: "NOASSERTION",
            checksums: p
                .checksum
                .iter()
                .map(|(alg, v)| Checksum {
                    algorithm: alg,
                    checksum_value: v.clone(),
                })
                .collect(),
            external_refs: vec![ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: p.purl.clone(),
            }],
            source_info: source_info(p),
            comment: comment(p),
            primary_package_purpose: purpose,
        });
        relationships.push(Relationship {
            spdx_element_id: image_id.clone(),
            relationship_type: if p.ecosystem == Ecosystem::Image {
                "DESCENDANT_OF"
            } else {
                "CONTAINS"
            },
            related_spdx_element: id,
        });
    }
    let doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name,
        document_namespace: format!("https://cairn.invalid/spdx/{ns}"),
        creation_info: CreationInfo {
            created: crate::image::mutate::rfc3339(inv.epoch),
            creators: vec![format!("Tool: cairn-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        relationships,
    };
    Ok(serde_json::to_vec_pretty(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_expressions() {
        assert_eq!(license_expression("MIT").as_deref(), Some("MIT"));
        assert_eq!(
            license_expression("MPL-2.0 AND MIT").as_deref(),
            Some("MPL-2.0 AND MIT")
        );
        assert_eq!(
            license_expression("(MIT OR Apache-2.0)").as_deref(),
            Some("(MIT OR Apache-2.0)")
        );
        assert_eq!(
            license_expression("GPL-3.0-or-later WITH GCC-exception-3.1").as_deref(),
            Some("GPL-3.0-or-later WITH GCC-exception-3.1")
        );
        for bad in [
            "",
            "GPL2",
            "MIT AND",
            "(MIT",
            "MIT)",
            "AND MIT",
            "MIT WITH MIT",
            "SEE LICENSE IN x",
        ] {
            assert_eq!(license_expression(bad), None, "{bad}");
        }
    }
}
