//! `cairn push`.

use super::pull::{oci_dir, registry, runtime, StderrReporter};
use super::GlobalArgs;
use crate::cli::hint::registry_hinted;
use crate::engine::record_artifact;
use crate::image::oci_layout::{split_dir_tag, OciLayout};
use crate::image::MediaType;
use crate::registry::{Reference, Repository};
use crate::report::{Event, Reporter};
use anyhow::Context as _;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `cairn push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push: a name in the local store (what `cairn build -t NAME` left there), or
    /// `oci:DIR[:TAG]` (the tag may be left out when the layout holds one image).
    #[arg(value_name = "NAME|oci:DIR[:TAG]")]
    pub source: String,
    /// Where to push it (`localhost:5000/app:1`).
    #[arg(value_name = "REF")]
    pub destination: String,
    /// Repositories of the same registry that may already hold the blobs (mounted instead of uploaded).
    #[arg(long = "mount-from", value_name = "REPO")]
    pub mount_from: Vec<String>,
}

/// Run `cairn push`.
pub fn run(args: PushArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let local = super::local_store::dir(global)?;
    let (dir, tag) = match super::local_store::find(&args.source, &local) {
        Some(tag) => {
            super::local_store::say_used(&args.source, &local);
            (local.to_string_lossy().into_owned(), Some(tag))
        }
        None => {
            let spec = oci_dir(&args.source).map_err(|_| {
                crate::cli::hint::hint(
                    anyhow::anyhow!(
                        "`{}` is not in the local store oci:{}",
                        args.source,
                        local.display()
                    ),
                    "build it with `cairn build -t NAME`, or push a layout: oci:DIR[:TAG]",
                )
            })?;
            let (d, t) = split_dir_tag(spec);
            (d.to_owned(), t.map(str::to_owned))
        }
    };
    let (dir, tag) = (dir.as_str(), tag.as_deref());
    let target: Reference = args.destination.parse()?;
    let mounts = args
        .mount_from
        .iter()
        .map(|m| Repository::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    let layout = OciLayout::open(dir)?;
    let desc = layout.resolve(tag)?;
    let bytes = layout
        .store()
        .read_bytes(&desc.digest)
        .with_context(|| format!("reading manifest {} of {dir}", desc.digest))?;
    let reg = registry(global)?;
    let rt = runtime()?;
    let digest = rt
        .block_on(reg.push_image(
            &target,
            &bytes,
            desc.media_type.as_str(),
            layout.store(),
            &mounts,
        ))
        .map_err(|e| registry_hinted(e, &target))
        .with_context(|| format!("pushing {} to {target}", args.source))?;
    StderrReporter.event(Event::Info(format!("pushed {target}@{digest}")));
    // The build record cairn attached in the layout goes along, as a referrer.
    if let Some((record, record_desc, _)) = record_artifact::in_layout(&layout, &desc) {
        record_artifact::push_record(
            &reg,
            &rt,
            target.repository(),
            (&record, &record_desc),
            &digest,
            layout.store(),
        )?;
        StderrReporter.event(Event::Info(format!(
            "pushed its build record {} as a referrer",
            record_desc.digest
        )));
    }
    // So do the attestations (SBOM, provenance), each a referrer of its image.
    for (bytes, d, subject) in crate::attest::read::artifacts_in_layout(&layout, &desc) {
        rt.block_on(reg.push_referrer(target.repository(), &bytes, &d, &subject, layout.store()))
            .map_err(|e| anyhow::anyhow!("pushing attestation {} of {target}: {e}", d.digest))?;
        StderrReporter.event(Event::Info(format!(
            "pushed its attestation {} ({}) as a referrer",
            d.digest,
            d.artifact_type
                .as_ref()
                .map(MediaType::as_str)
                .unwrap_or("")
        )));
    }
    writeln!(std::io::stdout().lock(), "{digest}")?;
    Ok(ExitCode::SUCCESS)
}
