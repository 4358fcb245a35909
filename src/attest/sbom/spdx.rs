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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedLicense>,
}

/// A `LicenseRef-…` a declared license uses (SPDX 2.3 clause 10).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedLicense {
    license_id: String,
    extracted_text: String,
    name: String,
    comment: String,
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

/// A license id of the SPDX license list (the `spdx` crate carries the
/// whole list, deprecated ids included), in its canonical spelling. Ids are
/// matched case-insensitively, as SPDX 2.3 annex D says; a trailing `+`
/// ("or later") is kept.
fn list_license(token: &str) -> Option<String> {
    let (id, plus) = match token.strip_suffix('+') {
        Some(id) => (id, "+"),
        None => (token, ""),
    };
    let canonical = spdx::license_id(id).map(|l| l.name).or_else(|| {
        spdx::identifiers::LICENSES
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(id))
            .map(|l| l.name)
    })?;
    Some(format!("{canonical}{plus}"))
}

/// An exception id of the SPDX exception list, canonically spelled.
fn list_exception(token: &str) -> Option<String> {
    spdx::exception_id(token)
        .map(|e| e.name.to_owned())
        .or_else(|| {
            spdx::identifiers::EXCEPTIONS
                .iter()
                .find(|e| e.name.eq_ignore_ascii_case(token))
                .map(|e| e.name.to_owned())
        })
}

/// `raw` as an SPDX license expression: its ids as the SPDX lists spell
/// them; an id on neither list goes through `other` (which names a
/// `LicenseRef-…` for it), or makes the result `None` when `other` does.
/// `None` also when `raw` is not an expression at all (`SEE LICENSE IN x`,
/// `Apache 2.0`).
fn expression_with(raw: &str, mut other: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let spaced = raw.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let (mut depth, mut want_id, mut after_with) = (0i32, true, false);
    for t in &tokens {
        match *t {
            "(" if want_id => {
                depth += 1;
                out.push("(".to_owned());
            }
            ")" if !want_id => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                out.push(")".to_owned());
            }
            "AND" | "OR" if !want_id => {
                want_id = true;
                out.push((*t).to_owned());
            }
            "WITH" if !want_id && !after_with => {
                want_id = true;
                after_with = true;
                out.push("WITH".to_owned());
                continue;
            }
            "(" | ")" | "AND" | "OR" | "WITH" => return None,
            id if want_id => {
                let known = if after_with {
                    list_exception(id)
                } else {
                    list_license(id)
                };
                out.push(known.or_else(|| other(id))?);
                want_id = false;
            }
            _ => return None,
        }
        after_with = false;
    }
    (!tokens.is_empty() && !want_id && depth == 0)
        .then(|| out.join(" ").replace("( ", "(").replace(" )", ")"))
}

/// `raw` as a valid SPDX license expression over the SPDX license and
/// exception lists only, if it is one.
pub fn license_expression(raw: &str) -> Option<String> {
    expression_with(raw, |_| None)
}

/// The `LicenseRef-…` ids of one document and what each stands for, so
/// that every license a package declares is kept, valid SPDX 2.3 or not:
/// SPDX requires a `hasExtractedLicensingInfos` entry for each.
#[derive(Default)]
struct LicenseRefs {
    /// id → the declared text it stands for.
    by_id: std::collections::BTreeMap<String, String>,
}

impl LicenseRefs {
    /// The id standing for `text`: `LicenseRef-` and `text` with every
    /// character SPDX does not allow in an id turned into `-`; when two texts
    /// would get one id, the later gets a digest suffix.
    fn id_for(&mut self, text: &str) -> String {
        let clean: String = text
            .strip_prefix("LicenseRef-")
            .unwrap_or(text)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let clean = clean
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let mut id = format!("LicenseRef-{clean}");
        if clean.is_empty() || self.by_id.get(&id).is_some_and(|t| t != text) {
            id = format!(
                "LicenseRef-{clean}{}{}",
                if clean.is_empty() { "" } else { "-" },
                &cairn_layers::Digest::of(text.as_bytes()).hex()[..12]
            );
        }
        self.by_id.insert(id.clone(), text.to_owned());
        id
    }

    /// What a package declaring `raw` carries as its declared license.
    fn declared(&mut self, raw: &str) -> String {
        match raw.trim() {
            "NONE" | "NOASSERTION" => raw.trim().to_owned(),
            raw => {
                // Ids are named only once the whole is known to be an
                // expression: `SEE LICENSE IN x` defines no `LicenseRef-SEE`.
                let parsed = expression_with(raw, |_| Some(String::new()))
                    .and_then(|_| expression_with(raw, |id| Some(self.id_for(id))));
                match parsed {
                    Some(e) => e,
                    None => self.id_for(raw),
                }
            }
        }
    }

    fn into_infos(self) -> Vec<ExtractedLicense> {
        self.by_id
            .into_iter()
            .map(|(license_id, text)| ExtractedLicense {
                license_id,
                name: text.clone(),
                extracted_text: text,
                comment: "the license as the package's metadata names it (apk's `L:`, \
                          package.json's `license`), not an SPDX license list id; \
                          cairn reads no license texts"
                    .into(),
            })
            .collect()
    }
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
pub fn write(inv: &Inventory) -> Result<Vec<u8>, serde_json::Error> {
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
    let mut refs = LicenseRefs::default();
    for (i, p) in inv.packages.iter().enumerate() {
        let (prefix, purpose) = match (p.ecosystem, p.project) {
            (Ecosystem::Image, _) => ("Image", "CONTAINER"),
            (Ecosystem::Apk, _) => ("apk", "LIBRARY"),
            (Ecosystem::Npm, true) => ("npm", "APPLICATION"),
            (Ecosystem::Npm, false) => ("npm", "LIBRARY"),
            (Ecosystem::Generic, _) => ("generic", "APPLICATION"),
        };
        let id = spdx_id(prefix, i, &p.name);
        let declared = p.license.as_deref().map(|raw| (raw, refs.declared(raw)));
        packages.push(SpdxPackage {
            spdx_id: id.clone(),
            name: p.name.clone(),
            version_info: p.version.clone(),
            download_location: "NOASSERTION",
            files_analyzed: false,
            license_concluded: "NOASSERTION",
            license_declared: declared
                .as_ref()
                .map_or_else(|| "NOASSERTION".into(), |(_, d)| d.clone()),
            license_comments: declared
                .as_ref()
                .filter(|(raw, d)| raw != d)
                .map(|(raw, _)| format!("declared: {raw}")),
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
        has_extracted_licensing_infos: refs.into_infos(),
    };
    serde_json::to_vec_pretty(&doc)
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
        // The whole SPDX list, not a hand-picked part: rarer ids, exceptions,
        // deprecated ids, `+`, and case as the list spells it.
        for (raw, want) in [
            ("BSD-3-Clause-Clear", "BSD-3-Clause-Clear"),
            (
                "Apache-2.0 WITH LLVM-exception",
                "Apache-2.0 WITH LLVM-exception",
            ),
            ("GPL-2.0+", "GPL-2.0+"),
            (
                "LGPL-2.1-or-later AND BSD-Source-Code",
                "LGPL-2.1-or-later AND BSD-Source-Code",
            ),
            ("mit OR apache-2.0", "MIT OR Apache-2.0"),
            (
                "OpenSSL AND SSLeay-standalone",
                "OpenSSL AND SSLeay-standalone",
            ),
        ] {
            assert_eq!(license_expression(raw).as_deref(), Some(want), "{raw}");
        }
        for bad in [
            "",
            "GPL2",
            "MIT AND",
            "(MIT",
            "MIT)",
            "AND MIT",
            "MIT WITH MIT",
            "MIT and Apache-2.0",
            "SEE LICENSE IN x",
            "custom",
        ] {
            assert_eq!(license_expression(bad), None, "{bad}");
        }
    }

    #[test]
    fn other_licenses_become_license_refs() {
        let mut refs = LicenseRefs::default();
        assert_eq!(refs.declared("MIT"), "MIT");
        assert_eq!(refs.declared("MIT AND custom"), "MIT AND LicenseRef-custom");
        assert_eq!(
            refs.declared("SEE LICENSE IN LICENSE.md"),
            "LicenseRef-SEE-LICENSE-IN-LICENSE.md"
        );
        assert_eq!(refs.declared("LicenseRef-Mine"), "LicenseRef-Mine");
        assert_eq!(refs.declared("NONE"), "NONE");
        // Another text that would get the same id gets its own.
        let clash = refs.declared("SEE LICENSE IN  LICENSE.md");
        assert!(
            clash.starts_with("LicenseRef-SEE-LICENSE-IN-LICENSE.md-") && clash.len() > 40,
            "{clash}"
        );
        assert_eq!(refs.declared("!!!").len(), "LicenseRef-".len() + 12);
        let infos = refs.into_infos();
        assert_eq!(infos.len(), 5, "no ref for a word of a non-expression");
        let custom = infos
            .iter()
            .find(|i| i.license_id == "LicenseRef-custom")
            .unwrap();
        assert_eq!(custom.extracted_text, "custom");
        assert!(infos.iter().all(|i| i.license_id[11..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')));
    }
}
