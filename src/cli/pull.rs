//! `cairn pull`.

use super::GlobalArgs;
use crate::cli::hint::registry_hinted;
use crate::image::oci_layout::{split_dir_tag, OciLayout};
use crate::registry::{Platform, Reference, Registry, RegistryOptions};
use crate::report::{Event, Reporter};
use anyhow::Context as _;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `cairn pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image to pull (`node:22-alpine`, `localhost:5000/app:1`, `repo@sha256:…`).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Platform to select from a multi-platform image (os/arch[/variant]); default: this machine's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Where to write the image: `oci:DIR` (an OCI layout, tagged with the reference's tag).
    #[arg(long, short, value_name = "oci:DIR")]
    pub output: String,
}

/// Plain status lines on stderr for registry transfers.
pub(crate) struct StderrReporter;

impl Reporter for StderrReporter {
    fn event(&self, event: Event) {
        let line = match event {
            Event::Warning(w) => format!("warning: {w}"),
            Event::Info(i) => i,
            Event::BlobStart {
                digest,
                size,
                action,
            } => {
                let size = size.map(human_size).unwrap_or_default();
                let verb = match action {
                    "exists" => "exists ",
                    "mount" => "mounted",
                    "pull" => "pulling",
                    "push" => "pushing",
                    other => other,
                };
                format!("{verb} {} {size}", short(&digest))
            }
            _ => return,
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

/// `1.2 MB` style sizes (decimal units, as registries show them).
pub(crate) fn human_size(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// A tokio runtime for the registry commands.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A registry client configured from the global flags; pushes remember
/// where blobs went in the cache directory (`--cache-dir`).
pub(crate) fn registry(global: &GlobalArgs) -> anyhow::Result<Registry> {
    let mut opts =
        RegistryOptions::new(global.insecure_registries.clone(), Arc::new(StderrReporter));
    opts.blob_memo = Some(blob_memo_file(global.cache().root()));
    Ok(Registry::new(opts)?)
}

/// The file of the pushed-blob memo in cache directory `cache`.
pub(crate) fn blob_memo_file(cache: &std::path::Path) -> std::path::PathBuf {
    crate::cache::CacheLayout::new(cache).memo(crate::cache::Memo::RegistryBlobs)
}

/// Parse `--platform` (default: the host's).
pub(crate) fn platform(p: Option<&str>) -> anyhow::Result<Platform> {
    Ok(match p {
        Some(p) => p.parse()?,
        None => Platform::host(),
    })
}

/// The directory of an `oci:DIR` output.
pub(crate) fn oci_dir(s: &str) -> anyhow::Result<&str> {
    s.strip_prefix("oci:").ok_or_else(|| {
        crate::cli::hint::hint(
            anyhow::anyhow!("unsupported destination `{s}`"),
            "write to an OCI layout directory with `--output oci:DIR`",
        )
    })
}

/// Run `cairn pull`.
pub fn run(args: PullArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let reference: Reference = args.reference.parse()?;
    let platform = platform(args.platform.as_deref())?;
    let (dir, tag) = split_dir_tag(oci_dir(&args.output)?);
    let tag = tag.or(reference.tag());
    let layout = OciLayout::create(dir)?;
    let reg = registry(global)?;
    let image = runtime()?
        .block_on(reg.pull_image(&reference, &platform, layout.store()))
        .map_err(|e| registry_hinted(e, &reference))
        .with_context(|| format!("pulling {reference}"))?;
    let mut desc = image.manifest.descriptor();
    desc.platform = Some(platform.to_spec());
    layout.tag(&desc, tag)?;
    StderrReporter.event(Event::Info(format!(
        "pulled {reference} ({platform}) into {dir}"
    )));
    writeln!(std::io::stdout().lock(), "{}", image.digest)?;
    Ok(ExitCode::SUCCESS)
}
