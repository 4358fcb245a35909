//! `cairn diff A B`: why two images differ. Report on stdout; exit 0 when
//! identical, 1 when different, 2 on error (diff(1)'s convention).

use super::pull::platform;
use super::GlobalArgs;
use crate::diff::image::Report;
use crate::diff::image::{compare_images, IgnoreOptions, ImageSide, LayerOpener};
use crate::diff::record::compare_records;
use crate::diff::render::{render, RenderOptions};
use crate::diff::source::{index_platforms, parse_source, LoadedImage, Remote, Source};
use crate::image::Layer;
use crate::registry::Platform;
use anyhow::Context as _;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// Arguments of `cairn diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each image is, in this order: oci:DIR[:TAG]; docker-archive:FILE; a reference naming its \
registry (host.tld/…, host:port/…, localhost/…) or pinned by @digest; a tag of the local store \
(oci:$CAIRN_CACHE_DIR/images, where `cairn build` without -o puts images); else Docker Hub.\n\
Only manifests and configs are read first; layers with equal digests are never read or fetched."
)]
pub struct DiffArgs {
    /// The first image: REF, oci:DIR[:TAG], docker-archive:FILE or a tag of the local store.
    #[arg(value_name = "A")]
    pub a: String,
    /// The second image, named the same ways.
    #[arg(value_name = "B")]
    pub b: String,
    /// Platform to select from multi-platform images (os/arch[/variant]); default: this machine's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Compare two multi-platform indexes platform by platform (every platform of either).
    #[arg(long, conflicts_with = "platform")]
    pub all_platforms: bool,
    /// Print the report as JSON (schema: docs/diff-json.md).
    #[arg(long)]
    pub json: bool,
    /// Show unified diffs of small text files that changed.
    #[arg(long)]
    pub text: bool,
    /// List every differing file (default: the first 10 per layer).
    #[arg(long)]
    pub files: bool,
    /// Differences to ignore: timestamps, order, history, attestations (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_parser = ["timestamps", "order", "history", "attestations"])]
    pub ignore: Vec<String>,
}

/// Run `cairn diff`.
pub fn run(args: DiffArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let local = super::local_store::dir(global)?;
    let platform = platform(args.platform.as_deref())?;
    let ignore = IgnoreOptions {
        timestamps: args.ignore.iter().any(|i| i == "timestamps"),
        order: args.ignore.iter().any(|i| i == "order"),
        history: args.ignore.iter().any(|i| i == "history"),
    };
    // One registry client for both sides, made only if a side needs it.
    let remote: OnceLock<Arc<Remote>> = OnceLock::new();
    let get_remote = || -> Result<Arc<Remote>, crate::diff::Error> {
        if let Some(r) = remote.get() {
            return Ok(r.clone());
        }
        let r = Arc::new(Remote::new(global.insecure_registries.clone())?);
        Ok(remote.get_or_init(|| r).clone())
    };
    let load = |name: &str, platform: &Platform| -> anyhow::Result<LoadedImage> {
        let source = parse_source(name, &local)?;
        if matches!(&source, Source::Layout { dir, .. } if *dir == local) {
            super::local_store::say_used(name, &local);
        }
        let hint = matches!(source, Source::Registry(_)) && !name.contains('/');
        LoadedImage::load(name, &source, platform, get_remote).map_err(|e| {
            if hint {
                crate::cli::hint::hint(
                    e,
                    format!(
                        "`{name}` is not a tag of the local store oci:{} either",
                        local.display()
                    ),
                )
            } else {
                e.into()
            }
        })
    };
    let compare = |platform: &Platform| -> anyhow::Result<Report> {
        // Both sides load at once: for registries that halves the round trips' latency.
        let (a, b) = std::thread::scope(|s| {
            let ha = s.spawn(|| load(&args.a, platform));
            let b = load(&args.b, platform);
            let a = ha
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("loading A panicked")));
            (a, b)
        });
        let a = a.with_context(|| format!("loading A ({})", args.a))?;
        let b = b.with_context(|| format!("loading B ({})", args.b))?;
        let open_a: &LayerOpener = &|l: &Layer| a.open_layer(l);
        let open_b: &LayerOpener = &|l: &Layer| b.open_layer(l);
        let side = |img: &LoadedImage, open| ImageSide {
            name: img.name.clone(),
            manifest_digest: img.manifest_digest.clone(),
            config_digest: img.config_digest.clone(),
            config: img.config.clone(),
            layers: img.layers.clone(),
            open,
        };
        let mut report = compare_images(&side(&a, open_a), &side(&b, open_b), &ignore, args.text)?;
        if let (Some(ra), Some(rb)) = (&a.record, &b.record) {
            report.attach_build(compare_records(ra, rb));
        }
        if !args.ignore.iter().any(|i| i == "attestations") {
            let d =
                crate::diff::attest::compare(&a.attestations, &b.attestations, ignore.timestamps);
            report.attach_attestations(d);
        }
        report.index_digests = [a.index_digest.clone(), b.index_digest.clone()];
        report.bytes_fetched = remote
            .get()
            .map_or(0, |r| r.fetched.load(Ordering::Relaxed));
        Ok(report)
    };
    let render_opts = RenderOptions {
        color: crate::progress::color_enabled()
            && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        all_files: args.files,
    };
    if args.all_platforms {
        let platforms = |name: &str| -> anyhow::Result<Vec<Platform>> {
            index_platforms(&parse_source(name, &local)?, get_remote)?.ok_or_else(|| {
                crate::cli::hint::hint(
                    anyhow::anyhow!("{name} is a single image, not a multi-platform index"),
                    "--all-platforms compares two indexes; compare single images without it",
                )
            })
        };
        let (pa, pb) = (platforms(&args.a)?, platforms(&args.b)?);
        return all_platforms(&pa, &pb, &compare, args.json, &render_opts);
    }
    let report = compare(&platform)?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render(&report, &render_opts)
    };
    finish(&text, report.equivalent)
}

/// Print the report; diff(1)'s exit code.
fn finish(text: &str, equivalent: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the report")?;
    Ok(if equivalent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--all-platforms`: every platform of either index, A's order first; a
/// platform only one side has is a difference.
fn all_platforms(
    pa: &[Platform],
    pb: &[Platform],
    compare: &dyn Fn(&Platform) -> anyhow::Result<Report>,
    json: bool,
    opts: &RenderOptions,
) -> anyhow::Result<ExitCode> {
    let mut all: Vec<&Platform> = pa.iter().collect();
    all.extend(pb.iter().filter(|p| !pa.contains(p)));
    let mut equivalent = true;
    let mut text = String::new();
    let mut entries = Vec::new();
    for p in all {
        let only = match (pa.contains(p), pb.contains(p)) {
            (true, false) => Some("A"),
            (false, true) => Some("B"),
            _ => None,
        };
        let report = match only {
            Some(_) => None,
            None => Some(compare(p).with_context(|| format!("comparing platform {p}"))?),
        };
        equivalent &= report.as_ref().is_some_and(|r| r.equivalent);
        text.push_str(&format!("=== {p} ===\n"));
        match (&report, only) {
            (Some(r), _) => text.push_str(&render(r, opts)),
            (None, Some(side)) => text.push_str(&format!("only in {side}\n")),
            (None, None) => {}
        }
        entries.push(serde_json::json!({
            "platform": p.to_string(),
            "only_in": only,
            "report": report,
        }));
    }
    if json {
        let v = serde_json::json!({"equivalent": equivalent, "platforms": entries});
        text = serde_json::to_string_pretty(&v)? + "\n";
    }
    finish(&text, equivalent)
}
