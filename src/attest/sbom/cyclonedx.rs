//! CycloneDX 1.6 JSON: the image as `metadata.component`, one component per
//! package with its purl, license, hash and cairn's properties (`cairn:layer`,
//! `cairn:step`, `cairn:path`, `cairn:lockfile`, `cairn:apk:origin`), and one
//! dependency entry naming them all. The serial number is a UUID derived from
//! the image id and the timestamp is the build epoch: reproducible.
//!
//! The model is ours: the `cyclonedx-bom` crate (0.8) writes CycloneDX
//! 1.3–1.5 only, not the 1.6 this writes, and brings an XML stack and a
//! validator cairn has no use for; the subset an image SBOM needs is small.

use super::spdx::{license_expression, names};
use super::{Ecosystem, Inventory};
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Component,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize, Default)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

/// The CycloneDX 1.6 JSON document of `inv`.
pub fn write(inv: &Inventory) -> Result<Vec<u8>, serde_json::Error> {
    let (ns, name) = names(inv);
    let mut components = Vec::new();
    for (i, p) in inv.packages.iter().enumerate() {
        let kind = match (p.ecosystem, p.project) {
            (Ecosystem::Image, _) => "container",
            (Ecosystem::Npm, true) | (Ecosystem::Generic, _) => "application",
            _ => "library",
        };
        let licenses = match (
            &p.license,
            p.license.as_deref().and_then(license_expression),
        ) {
            (_, Some(e)) => vec![serde_json::json!({ "expression": e })],
            (Some(raw), None) => vec![serde_json::json!({ "license": { "name": raw } })],
            (None, None) => Vec::new(),
        };
        let mut properties = Vec::new();
        let mut prop = |name, value: Option<String>| {
            if let Some(value) = value {
                properties.push(Property { name, value });
            }
        };
        prop(
            "cairn:layer",
            p.layer.as_ref().map(|(i, d)| format!("{i} {d}")),
        );
        prop("cairn:step", p.step.clone());
        prop("cairn:path", Some(p.path.clone()).filter(|s| !s.is_empty()));
        prop("cairn:lockfile", p.lock.clone());
        prop("cairn:apk:origin", p.origin.clone());
        prop("cairn:apk:arch", p.arch.clone());
        components.push(Component {
            kind,
            bom_ref: Some(format!("pkg-{i}")),
            name: p.name.clone(),
            version: Some(p.version.clone()),
            purl: Some(p.purl.clone()),
            licenses,
            hashes: p
                .checksum
                .iter()
                .map(|(alg, v)| Hash {
                    alg: if *alg == "SHA1" { "SHA-1" } else { "SHA-256" },
                    content: v.clone(),
                })
                .collect(),
            properties,
        });
    }
    let bom = Bom {
        schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: format!("urn:uuid:{}", super::uuid_from(ns.as_bytes())),
        version: 1,
        metadata: Metadata {
            timestamp: crate::image::mutate::rfc3339(inv.epoch),
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    name: "cairn".into(),
                    version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..Default::default()
                }],
            },
            component: Component {
                kind: "container",
                bom_ref: Some("image".into()),
                name,
                version: Some(inv.config_digest.to_string()),
                hashes: vec![Hash {
                    alg: "SHA-256",
                    content: inv.config_digest.hex().to_owned(),
                }],
                ..Default::default()
            },
        },
        dependencies: vec![Dependency {
            reference: "image".into(),
            depends_on: components
                .iter()
                .filter_map(|c| c.bom_ref.clone())
                .collect(),
        }],
        components,
    };
    serde_json::to_vec_pretty(&bom)
}
