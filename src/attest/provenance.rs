//! SLSA provenance v1 (slsa.dev/provenance/v1) in an in-toto v1 statement:
//! how the image was built, from what.
//!
//! - `buildDefinition.externalParameters`: the Dockerfile (path in the
//!   context, digest), the context (digest over every context file a COPY or
//!   ADD read, as the build record names them), target, platform, build args
//!   (every name; the value where the image config already shows it as
//!   `NAME=value`, its digest otherwise, as the build record does);
//! - `resolvedDependencies`: every base image by digest (`FROM` of each
//!   stage, `COPY --from=IMAGE`);
//! - `internalParameters`: the build epoch; in `max` mode also every step
//!   (stage, number, instruction, cache key) under `buildConfig.steps`;
//! - `runDetails`: builder id (`--provenance builder-id=URI`, else
//!   [`DEFAULT_BUILDER_ID`](super::options::DEFAULT_BUILDER_ID)) and
//!   version; the invocation id is derived from
//!   the image digest. No start or finish time: a wall clock would make two
//!   builds of the same commit disagree.

use super::options::ProvenanceMode;
use super::Plan;
use crate::engine::build::BuildResult;
use crate::image::config::ImageConfig;
use cairn_layers::Digest;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this describes.
pub const BUILD_TYPE: &str = "https://cairn.invalid/buildtypes/dockerfile@v1";

fn sha256(d: &Digest) -> Value {
    json!({ "sha256": d.hex() })
}

/// Build-arg values as they may leave the machine: public only where the
/// image config already holds `NAME=value`.
fn public_args(plan: &Plan, config: &ImageConfig) -> BTreeMap<String, String> {
    let env: Vec<String> = config
        .config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    plan.build_args
        .iter()
        .map(|(k, v)| {
            let shown = if env.contains(&format!("{k}={v}")) {
                v.clone()
            } else {
                Digest::of(v.as_bytes()).to_string()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// `text` with the values of non-public build args replaced by `$NAME`
/// (an instruction is recorded after expansion).
fn scrub(text: &str, plan: &Plan, public: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in &plan.build_args {
        if v.len() >= 3 && public.get(k) != Some(v) {
            out = out.replace(v.as_str(), &format!("${k}"));
        }
    }
    out
}

/// The base images of `r`: (reference, digest), sorted, once each.
pub fn bases(r: &BuildResult) -> Vec<(String, Digest)> {
    let mut out: Vec<(String, Digest)> = r
        .base
        .iter()
        .chain(r.stages.iter().filter_map(|(_, s)| s.base.as_ref()))
        .map(|b| (super::public_reference(&b.reference), b.digest.clone()))
        .collect();
    for step in &r.record.steps {
        for i in &step.inputs.0 {
            if let (Some(reference), Ok(d)) = (i.name.strip_prefix("image "), i.value.parse()) {
                out.push((super::public_reference(reference), d));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A digest over the context files the build read (their names, types,
/// modes and digests as the record has them; not the destination path in
/// the image the record's value starts with), and how many there are.
fn context_digest(r: &BuildResult) -> (Digest, usize) {
    let mut lines: Vec<String> = r
        .record
        .steps
        .iter()
        .flat_map(|s| s.inputs.0.iter())
        .filter(|i| i.name.starts_with("context file "))
        .map(|i| {
            let facts = i.value.split_once(' ').map_or("", |(_, rest)| rest);
            format!("{}\t{facts}\n", i.name)
        })
        .collect();
    lines.sort();
    lines.dedup();
    (Digest::of(lines.concat().as_bytes()), lines.len())
}

/// The provenance statement of `r`, whose image manifest is `subject`.
pub fn statement(
    r: &BuildResult,
    plan: &Plan,
    mode: ProvenanceMode,
    subject: &Digest,
) -> Result<Vec<u8>, super::Error> {
    let config: ImageConfig =
        serde_json::from_slice(&r.config_raw).map_err(super::Error::Config)?;
    let public = public_args(plan, &config);
    let platform = r.platform.to_string();
    let (context, files) = context_digest(r);
    let deps: Vec<Value> = bases(r)
        .iter()
        .map(|(reference, d)| {
            json!({
                "uri": format!("pkg:docker/{reference}?platform={}", super::sbom::purl_escape(&platform)),
                "digest": sha256(d),
            })
        })
        .collect();
    let mut internal = json!({
        "builderVersion": env!("CARGO_PKG_VERSION"),
        "sourceDateEpoch": plan.epoch,
    });
    if mode == ProvenanceMode::Max {
        let steps: Vec<Value> = r
            .record
            .steps
            .iter()
            .map(|s| {
                json!({
                    "stage": s.stage,
                    "step": s.index,
                    "instruction": scrub(&s.instruction, plan, &public),
                    "cacheKey": s.key,
                })
            })
            .collect();
        internal["buildConfig"] = json!({ "steps": steps });
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": plan.name, "digest": sha256(subject) }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "configSource": {
                        "path": plan.dockerfile_name,
                        "digest": sha256(&plan.dockerfile_digest),
                    },
                    "context": { "digest": sha256(&context), "files": files },
                    "request": {
                        "target": plan.target,
                        "platform": platform,
                        "args": public,
                        "mode": match mode { ProvenanceMode::Min => "min", ProvenanceMode::Max => "max" },
                    },
                },
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": plan.options.builder_id.as_deref()
                        .unwrap_or(super::options::DEFAULT_BUILDER_ID),
                    "version": { "cairn": env!("CARGO_PKG_VERSION") },
                },
                "metadata": {
                    "invocationId": super::sbom::uuid_from(format!("{subject} provenance").as_bytes()),
                },
            },
        },
    });
    serde_json::to_vec_pretty(&statement).map_err(|source| super::Error::Encode {
        what: "provenance",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_args_are_digests_and_scrubbed() {
        let plan = Plan {
            options: Default::default(),
            dockerfile_name: "Dockerfile".into(),
            dockerfile_digest: Digest::of(b"FROM x"),
            target: None,
            build_args: [
                ("TOKEN".to_owned(), "s3cr3t".to_owned()),
                ("NODE_ENV".to_owned(), "production".to_owned()),
            ]
            .into_iter()
            .collect(),
            epoch: 0,
            name: "image".into(),
            cache_dir: Default::default(),
        };
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["NODE_ENV=production"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let public = public_args(&plan, &config);
        assert_eq!(public["NODE_ENV"], "production");
        assert_eq!(public["TOKEN"], Digest::of(b"s3cr3t").to_string());
        assert_eq!(
            scrub("RUN echo s3cr3t production", &plan, &public),
            "RUN echo $TOKEN production"
        );
    }
}
