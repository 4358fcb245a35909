//! `cairn sbom IMAGE` (print an image's SBOM) and `cairn inspect
//! --attestations IMAGE` (list what is attached): the image from the local
//! store, an OCI layout (`oci:DIR[:TAG]`) or a registry.

use super::pull::{platform, registry, runtime};
use super::GlobalArgs;
use crate::attest::read::{self, Attestation};
use crate::cli::hint::registry_hinted as hinted;
use crate::image::oci_layout::{split_dir_tag, OciLayout};
use crate::registry::{Platform, Reference};
use anyhow::Context as _;
use cairn_layers::Digest;
use clap::Args;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `cairn sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The image: a name in the local store, a reference or `oci:DIR[:TAG]`.
    #[arg(value_name = "NAME|REF|oci:DIR[:TAG]")]
    pub target: String,
    /// Which SBOM when several are attached: spdx or cyclonedx (default: the first).
    #[arg(long, value_parser = ["spdx", "cyclonedx"])]
    pub format: Option<String>,
    /// The SBOM of this build stage (`--sbom scan-stage=true`) instead of the image's.
    #[arg(long)]
    pub stage: Option<String>,
    /// Platform to select from a multi-platform image; default: this machine's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
}

/// The image manifest `tag` names in `layout` for `platform`, and the
/// attestations the layout holds for it.
fn from_layout(
    dir: &Path,
    tag: Option<&str>,
    spec: &str,
    platform: &Platform,
) -> anyhow::Result<(Digest, Vec<Attestation>)> {
    let layout = OciLayout::open(dir)?;
    let entry = layout.resolve(tag)?;
    let (desc, _) = super::inspect::platform_manifest(&layout, entry.clone(), spec, platform)?;
    let found = read::in_layout(&layout, &entry, &desc.digest);
    Ok((desc.digest, found))
}

/// The image `target` names and its attestations: `(name, manifest digest, attestations)`.
fn find(
    target: &str,
    platform_flag: Option<&str>,
    global: &GlobalArgs,
) -> anyhow::Result<(String, Digest, Vec<Attestation>)> {
    let platform = platform(platform_flag)?;
    let local = super::local_store::dir(global)?;
    if let Some(spec) = target.strip_prefix("oci:") {
        let (dir, tag) = split_dir_tag(spec);
        let (d, found) = from_layout(Path::new(dir), tag, target, &platform)?;
        return Ok((target.to_owned(), d, found));
    }
    if let Some(tag) = super::local_store::find(target, &local) {
        super::local_store::say_used(target, &local);
        let (d, found) = from_layout(&local, Some(&tag), target, &platform)?;
        return Ok((target.to_owned(), d, found));
    }
    let reference: Reference = target.parse()?;
    let reg = registry(global)?;
    let rt = runtime()?;
    let tmp = tempfile::tempdir().context("creating a temporary blob store")?;
    let store = cairn_layers::blob_store::BlobStore::open(tmp.path())?;
    let image = rt
        .block_on(reg.pull_manifest(&reference, &platform, &store))
        .map_err(|e| hinted(e, &reference))?;
    let subject = image.manifest.digest.clone();
    let found = read::in_registry(&reg, &rt, reference.repository(), &subject, &store)?;
    Ok((reference.to_string(), subject, found))
}

/// `cairn inspect --attestations`: one line per attestation (or JSON).
pub fn list(
    target: &str,
    platform_flag: Option<&str>,
    json: bool,
    global: &GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let (name, subject, found) = find(target, platform_flag, global)?;
    let mut out = std::io::stdout().lock();
    if json {
        let items: Vec<serde_json::Value> = found
            .iter()
            .map(|a| {
                serde_json::json!({
                    "kind": a.kind(),
                    "artifactType": a.artifact_type,
                    "digest": a.digest.to_string(),
                    "predicateType": a.predicate,
                    "stage": a.stage,
                    "size": a.body.len(),
                })
            })
            .collect();
        let v = serde_json::json!({"name": name, "subject": subject.to_string(), "attestations": items});
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Name:    {name}")?;
    writeln!(out, "Subject: {subject}")?;
    if found.is_empty() {
        writeln!(out, "Attestations: none")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Attestations ({}):", found.len())?;
    for a in &found {
        writeln!(
            out,
            "  {}  {:<22} {}{}",
            a.digest,
            a.kind(),
            a.artifact_type,
            a.predicate
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `cairn sbom`: the document on stdout, as attached.
pub fn run_sbom(args: SbomArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (name, subject, found) = find(&args.target, args.platform.as_deref(), global)?;
    let wanted = |a: &&Attestation| {
        a.predicate.is_none()
            && a.stage == args.stage
            && match args.format.as_deref() {
                Some("spdx") => a.artifact_type == crate::attest::SPDX_TYPE,
                Some("cyclonedx") => a.artifact_type == crate::attest::CYCLONEDX_TYPE,
                _ => true,
            }
    };
    let Some(a) = found.iter().find(wanted) else {
        let format = args
            .format
            .as_deref()
            .map(|f| format!("{f} "))
            .unwrap_or_default();
        let stage = args
            .stage
            .as_deref()
            .map(|s| format!(" of stage `{s}`"))
            .unwrap_or_default();
        return Err(crate::cli::hint::hint(
            anyhow::anyhow!("{name} ({subject}) has no {format}SBOM{stage} attached"),
            "build it with `cairn build --sbom` (stages: --sbom=scan-stage=true); \
             `cairn inspect --attestations IMAGE` lists what is attached",
        ));
    };
    std::io::stdout().lock().write_all(&a.body)?;
    Ok(ExitCode::SUCCESS)
}
