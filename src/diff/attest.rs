//! The attestations section of `cairn diff`: what differs between the SBOMs
//! and provenance attached to A and to B (`--ignore attestations` skips it).
//!
//! Attestations are matched by kind (`sbom`, `sbom (stage S)`, `provenance`)
//! and format. For an SBOM the difference is in packages (by purl: added,
//! removed); for provenance, the JSON fields that differ, except those that
//! only restate which image it is about (the subject's digest, the
//! invocation id derived from it), which differ whenever the images do, and
//! with `--ignore timestamps` the build epoch. Both sides must
//! carry attestations for a difference to count: a docker-archive, or an
//! image built before attestations existed, has none, and that alone is not
//! a difference between images.

use crate::attest::read::Attestation;
use crate::image::MediaType;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// How many changed packages or fields one attestation lists at most.
const SHOWN: usize = 20;

/// One attestation that differs between A and B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttestationDiff {
    /// `sbom`, `sbom (stage NAME)` or `provenance`.
    pub kind: String,
    /// Its artifact type.
    pub artifact_type: MediaType,
    /// The artifact manifest digest in A (`None`: only in B).
    pub a: Option<String>,
    /// In B.
    pub b: Option<String>,
    /// What changed: `+ purl`, `- purl`, `FIELD: A → B`.
    pub changes: Vec<String>,
    /// How many more changes there are than listed.
    pub more: usize,
}

/// The purls an SBOM (SPDX or CycloneDX JSON) lists.
fn purls(doc: &Value) -> BTreeSet<String> {
    let spdx = doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["externalRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["referenceType"] == "purl")
                .filter_map(|r| r["referenceLocator"].as_str())
        });
    let cdx = doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["purl"].as_str());
    spdx.chain(cdx).map(str::to_owned).collect()
}

/// Every leaf of a JSON document by its path (`a.b[2].c`).
fn leaves(v: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{path}[{i}]"), out);
            }
        }
        other => {
            out.insert(path, other.to_string());
        }
    }
}

/// Provenance fields that name the image itself (they differ whenever the images do).
fn restates_the_image(path: &str) -> bool {
    path.starts_with("subject[") || path == "predicate.runDetails.metadata.invocationId"
}

fn changes(a: &Attestation, b: &Attestation, ignore_timestamps: bool) -> Vec<String> {
    let (Ok(x), Ok(y)) = (
        serde_json::from_slice::<Value>(&a.body),
        serde_json::from_slice::<Value>(&b.body),
    ) else {
        return vec!["the document changed (not JSON)".into()];
    };
    if a.predicate.is_none() {
        let (pa, pb) = (purls(&x), purls(&y));
        let mut out: Vec<String> = pa.difference(&pb).map(|p| format!("- {p}")).collect();
        out.extend(pb.difference(&pa).map(|p| format!("+ {p}")));
        return out;
    }
    let (mut la, mut lb) = (BTreeMap::new(), BTreeMap::new());
    leaves(&x, String::new(), &mut la);
    leaves(&y, String::new(), &mut lb);
    let keys: BTreeSet<&String> = la.keys().chain(lb.keys()).collect();
    let epoch = "predicate.buildDefinition.internalParameters.sourceDateEpoch";
    keys.into_iter()
        .filter(|k| !(restates_the_image(k) || ignore_timestamps && k.as_str() == epoch))
        .filter(|k| la.get(*k) != lb.get(*k))
        .map(|k| {
            let show =
                |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or_else(|| "-".into());
            format!("{k}: {} → {}", show(&la), show(&lb))
        })
        .collect()
}

/// What differs between A's attestations and B's (nothing when either side
/// has none); `ignore_timestamps`: not the build epoch.
pub fn compare(
    a: &[Attestation],
    b: &[Attestation],
    ignore_timestamps: bool,
) -> Vec<AttestationDiff> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let key = |x: &Attestation| (x.kind(), x.artifact_type.clone());
    let by_key = |list: &[Attestation]| -> BTreeMap<(String, MediaType), Attestation> {
        list.iter().map(|x| (key(x), x.clone())).collect()
    };
    let (ma, mb) = (by_key(a), by_key(b));
    let keys: BTreeSet<&(String, MediaType)> = ma.keys().chain(mb.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (x, y) = (ma.get(k), mb.get(k));
        let mut list = match (x, y) {
            (Some(x), Some(y)) if x.body == y.body => continue,
            (Some(x), Some(y)) => changes(x, y, ignore_timestamps),
            (Some(_), None) => vec!["only in A".into()],
            (None, _) => vec!["only in B".into()],
        };
        if list.is_empty() {
            continue;
        }
        let more = list.len().saturating_sub(SHOWN);
        list.truncate(SHOWN);
        out.push(AttestationDiff {
            kind: k.0.clone(),
            artifact_type: k.1.clone(),
            a: x.map(|x| x.digest.to_string()),
            b: y.map(|y| y.digest.to_string()),
            changes: list,
            more,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_layers::Digest;

    fn att(body: &str, predicate: Option<&str>) -> Attestation {
        Attestation {
            digest: Digest::of(body.as_bytes()),
            artifact_type: if predicate.is_some() {
                MediaType::parse(crate::attest::IN_TOTO_TYPE)
            } else {
                MediaType::parse(crate::attest::SPDX_TYPE)
            },
            subject: Digest::of(b"image"),
            predicate: predicate.map(str::to_owned),
            stage: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn packages_and_fields_that_changed() {
        let sbom = |purls: &[&str]| {
            let packages: Vec<Value> = purls
                .iter()
                .map(|p| serde_json::json!({"externalRefs": [{"referenceType": "purl", "referenceLocator": p}]}))
                .collect();
            serde_json::json!({ "packages": packages }).to_string()
        };
        let a = [
            att(&sbom(&["pkg:npm/ms@2.1.2", "pkg:npm/debug@4.3.7"]), None),
            att(r#"{"predicate":{"x":{"digest":"a"}}}"#, Some("slsa")),
        ];
        let b = [
            att(&sbom(&["pkg:npm/ms@2.1.3", "pkg:npm/debug@4.3.7"]), None),
            att(r#"{"predicate":{"x":{"digest":"b"}}}"#, Some("slsa")),
        ];
        let d = compare(&a, &b, false);
        assert_eq!(d.len(), 2, "{d:?}");
        let sbom_diff = d.iter().find(|x| x.kind == "sbom").unwrap();
        assert_eq!(
            sbom_diff.changes,
            ["- pkg:npm/ms@2.1.2", "+ pkg:npm/ms@2.1.3"]
        );
        let prov = d.iter().find(|x| x.kind == "provenance").unwrap();
        assert_eq!(prov.changes, [r#"predicate.x.digest: "a" → "b""#]);
        assert!(compare(&a, &a, false).is_empty());
        assert!(
            compare(&a, &[], false).is_empty(),
            "a side without attestations is no difference"
        );
        let only = compare(&a, &b[1..], false);
        assert_eq!(only.len(), 2);
        assert_eq!(
            only.iter().find(|x| x.kind == "sbom").unwrap().changes,
            ["only in A"]
        );
        // The subject (another image) and, ignoring timestamps, the epoch are no difference.
        let prov = |digest: &str, epoch: u64| {
            let body = serde_json::json!({"subject": [{"digest": {"sha256": digest}}],
                "predicate": {"buildDefinition": {"internalParameters": {"sourceDateEpoch": epoch}}}});
            [att(&body.to_string(), Some("slsa"))]
        };
        assert!(compare(&prov("aa", 1), &prov("bb", 1), false).is_empty());
        assert_eq!(compare(&prov("aa", 1), &prov("bb", 2), false).len(), 1);
        assert!(compare(&prov("aa", 1), &prov("bb", 2), true).is_empty());
    }
}
