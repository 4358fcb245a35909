//! `cairn inspect`: an image's manifest, config, layers and history, from a
//! registry or an OCI layout. Data on stdout.

use super::pull::{human_size, platform, registry, runtime};
use super::GlobalArgs;
use crate::cli::hint::registry_hinted;
use crate::image::manifest::{Descriptor, ImageIndex, ImageManifest, ManifestKind, Raw};
use crate::image::oci_layout::{split_dir_tag, OciLayout};
use crate::registry::pull::select_platform;
use crate::registry::{Platform, Reference};
use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `cairn inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: a name in the local store, a reference (`localhost:5000/app:1`) or `oci:DIR[:TAG]`.
    #[arg(value_name = "NAME|REF|oci:DIR[:TAG]")]
    pub target: String,
    /// Print the manifest (or index) bytes exactly as stored.
    #[arg(long, conflicts_with = "config")]
    pub raw: bool,
    /// Print the config bytes exactly as stored.
    #[arg(long)]
    pub config: bool,
    /// Output format of the summary.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Platform to select from a multi-platform image; default: this machine's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// List the attestations attached to the image (SBOM, provenance) instead.
    #[arg(long, conflicts_with_all = ["raw", "config"])]
    pub attestations: bool,
}

/// What inspect shows.
struct Inspected {
    name: String,
    top: Vec<u8>,
    index_digest: Option<String>,
    manifest: Raw<ImageManifest>,
    config: Raw<Value>,
}

fn from_layout(spec: &str, platform: &Platform) -> anyhow::Result<Inspected> {
    let (dir, tag) = split_dir_tag(spec);
    from_layout_at(std::path::Path::new(dir), tag, spec, platform)
}

fn from_layout_at(
    dir: &std::path::Path,
    tag: Option<&str>,
    spec: &str,
    platform: &Platform,
) -> anyhow::Result<Inspected> {
    let layout = OciLayout::open(dir)?;
    let store = layout.store();
    let entry: Descriptor = layout.resolve(tag)?;
    let top = store.read_bytes(&entry.digest)?;
    let (desc, index_digest) = platform_manifest(&layout, entry, spec, platform)?;
    let manifest: Raw<ImageManifest> =
        Raw::parse(store.read_bytes(&desc.digest)?, desc.media_type.clone())
            .with_context(|| format!("parsing manifest {}", desc.digest))?;
    let cfg = &manifest.value.config;
    let config = Raw::parse(store.read_bytes(&cfg.digest)?, cfg.media_type.clone())
        .with_context(|| format!("parsing config {}", cfg.digest))?;
    Ok(Inspected {
        name: format!("oci:{spec}"),
        top,
        index_digest,
        manifest,
        config,
    })
}

/// The image manifest an `index.json` entry of `layout` leads to for
/// `platform` (through nested indexes), and the digest of the first index.
pub(super) fn platform_manifest(
    layout: &OciLayout,
    entry: Descriptor,
    spec: &str,
    platform: &Platform,
) -> anyhow::Result<(Descriptor, Option<String>)> {
    let mut desc = entry;
    let mut index_digest = None;
    let reference: Reference = "localhost/oci-layout".parse()?;
    for _ in 0..4 {
        if ManifestKind::of(&desc.media_type) != Some(ManifestKind::Index) {
            break;
        }
        index_digest.get_or_insert_with(|| desc.digest.to_string());
        let idx: ImageIndex = serde_json::from_slice(&layout.store().read_bytes(&desc.digest)?)
            .with_context(|| format!("parsing index {}", desc.digest))?;
        desc = select_platform(&reference, &idx, platform)
            .map_err(|e| {
                anyhow::anyhow!("{}", e.to_string().replace(&reference.to_string(), spec))
            })?
            .clone();
    }
    Ok((desc, index_digest))
}

fn from_registry(
    target: &str,
    platform: &Platform,
    global: &GlobalArgs,
) -> anyhow::Result<Inspected> {
    let reference: Reference = target.parse()?;
    let reg = registry(global)?;
    let tmp = tempfile::tempdir().context("creating a temporary blob store")?;
    let store = cairn_layers::blob_store::BlobStore::open(tmp.path())?;
    let rt = runtime()?;
    let top = rt
        .block_on(reg.fetch_manifest(&reference))
        .map_err(|e| registry_hinted(e, &reference))?;
    let image = rt
        .block_on(reg.pull_manifest(&reference, platform, &store))
        .map_err(|e| registry_hinted(e, &reference))
        .with_context(|| format!("inspecting {reference}"))?;
    Ok(Inspected {
        name: reference.to_string(),
        top: top.bytes,
        index_digest: image.index_digest.map(|d| d.to_string()),
        manifest: image.manifest,
        config: image.config,
    })
}

fn layers_json(m: &ImageManifest) -> Vec<Value> {
    m.layers
        .iter()
        .map(|l| json!({"digest": l.digest.to_string(), "size": l.size, "mediaType": l.media_type}))
        .collect()
}

/// Run `cairn inspect` (a closed stdout, `| head`, ends it quietly: see main).
pub fn run(args: InspectArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    inspect(args, global)
}

fn inspect(args: InspectArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.attestations {
        let p = args.platform.as_deref();
        return super::attest::list(&args.target, p, args.format == "json", global);
    }
    let platform = platform(args.platform.as_deref())?;
    let local = super::local_store::dir(global)?;
    let img = match args.target.strip_prefix("oci:") {
        Some(spec) => from_layout(spec, &platform)?,
        None => match super::local_store::find(&args.target, &local) {
            Some(tag) => {
                super::local_store::say_used(&args.target, &local);
                let mut img = from_layout_at(&local, Some(&tag), &args.target, &platform)?;
                img.name = args.target.clone();
                img
            }
            None => from_registry(&args.target, &platform, global)?,
        },
    };
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&img.top)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.config {
        out.write_all(&img.config.bytes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = &img.config.value;
    let history = cfg
        .get("history")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let plat = format!(
        "{}/{}{}",
        cfg["os"].as_str().unwrap_or("?"),
        cfg["architecture"].as_str().unwrap_or("?"),
        cfg["variant"]
            .as_str()
            .map(|v| format!("/{v}"))
            .unwrap_or_default()
    );
    if args.format == "json" {
        let v = json!({
            "name": img.name,
            "digest": img.manifest.digest.to_string(),
            "indexDigest": img.index_digest,
            "mediaType": img.manifest.media_type,
            "platform": plat,
            "config": {"digest": img.manifest.value.config.digest.to_string(), "value": cfg},
            "layers": layers_json(&img.manifest.value),
            "history": history,
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Name:      {}", img.name)?;
    writeln!(out, "Digest:    {}", img.manifest.digest)?;
    if let Some(i) = &img.index_digest {
        writeln!(out, "Index:     {i}")?;
    }
    writeln!(out, "MediaType: {}", img.manifest.media_type)?;
    writeln!(out, "Platform:  {plat}")?;
    writeln!(out, "Config:    {}", img.manifest.value.config.digest)?;
    let c = &cfg["config"];
    for key in ["Entrypoint", "Cmd", "WorkingDir", "User"] {
        if !c[key].is_null() {
            writeln!(out, "{key:<10} {}", c[key])?;
        }
    }
    if let Some(env) = c["Env"].as_array() {
        writeln!(out, "Env:")?;
        for e in env {
            writeln!(out, "  {}", e.as_str().unwrap_or(""))?;
        }
    }
    let total: u64 = img.manifest.value.layers.iter().map(|l| l.size).sum();
    writeln!(
        out,
        "Layers ({}, {}):",
        img.manifest.value.layers.len(),
        human_size(total)
    )?;
    for l in &img.manifest.value.layers {
        writeln!(
            out,
            "  {}  {:>9}  {}",
            l.digest,
            human_size(l.size),
            l.media_type
        )?;
    }
    writeln!(out, "History:")?;
    for h in history.as_array().into_iter().flatten() {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        writeln!(
            out,
            "  {}  {}{}",
            h["created"].as_str().unwrap_or("-"),
            h["created_by"].as_str().unwrap_or("").replace('\n', " "),
            if empty { "  (no layer)" } else { "" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
