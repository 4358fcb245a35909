//! `cairn build --platform A,B,…`: one image per platform, one OCI index,
//! written where the single-platform build writes its image (the local
//! store, `type=oci,tar=false`, `type=image`/`type=registry` with push) and, as a
//! docker-archive holds one platform, one archive per platform
//! (`type=docker,dest=app.tar` → `app.linux-arm64.tar`). The platforms
//! build at the same time in one session ([`crate::engine::multi`]); the
//! index carries the `--annotation` levels only an index has.

use super::{BuildArgs, OutputSpec, Sink};
use crate::cli::output_spec::Dest;
use crate::cli::GlobalArgs;
use crate::engine::multi::IndexAnnotations;
use crate::engine::output;
use crate::engine::recompress::ExportOptions;
use crate::engine::request::BuildRequest;
use crate::engine::sources::Sources;
use crate::frontend::Platform;
use crate::registry::{Registry, RegistryOptions};
use crate::report::{Event, Reporter};
use anyhow::Context as _;
use std::process::ExitCode;
use std::sync::Arc;

/// Refuse, before any work, the outputs a multi-platform build does not write.
pub(super) fn check_outputs(outputs: &[OutputSpec]) -> anyhow::Result<()> {
    for o in outputs {
        let ok = match &o.sink {
            Sink::OciDir(_) | Sink::Image { .. } | Sink::Docker(Dest::File(_)) => {
                o.export == ExportOptions::default()
            }
            _ => false,
        };
        anyhow::ensure!(
            ok,
            crate::error::hint(
                anyhow::anyhow!(
                    "--output {:?}: not written for a multi-platform build (--platform with several platforms)",
                    o.sink
                ),
                "use type=oci,dest=DIR,tar=false (the index), type=docker,dest=FILE (one archive per platform) \
                 or type=image/registry (push), without compression or media-type options",
            )
        );
    }
    Ok(())
}

/// Build `req` for every platform and write the index to `outputs`.
pub(super) fn build(
    args: &BuildArgs,
    global: &GlobalArgs,
    req: &BuildRequest,
    (platforms, annotations): (&[Platform], &IndexAnnotations),
    (outputs, cache_flags): (&[OutputSpec], &super::cache_flags::CacheFlags),
    sources: &Sources,
    progress: Arc<crate::progress::Progress>,
) -> anyhow::Result<ExitCode> {
    let reporter: &dyn Reporter = &*progress;
    let started = std::time::Instant::now();
    let mut ix = super::cache_flags::retrying_refused(reporter, || {
        crate::engine::multi::build_platforms(req, platforms, annotations, sources, reporter)
    })?;
    let plan = super::attest_plan(args, req)?;
    for r in &mut ix.images {
        r.attest = plan.clone();
    }
    reporter.event(Event::Info(ix.summary(started.elapsed())));
    let cache = crate::cache::CacheLayout::new(&req.cache_dir);
    let store = cairn_layers::blob_store::BlobStore::open(cache.root())?;
    let local_store = cache.dir(crate::cache::Bucket::Images);
    let store_locally = |names: &[String]| -> anyhow::Result<()> {
        // The names as given, as a single-platform build stores them: the
        // local store is looked up by `NAME:TAG` (`cairn run myapp:dev`).
        let names: Vec<String> = if names.is_empty() {
            vec![format!("sha256-{}", ix.index_digest.hex())]
        } else {
            names.to_vec()
        };
        output::index_to_oci_layout(&ix, &store, &local_store, &names)?;
        reporter.event(Event::Info(format!(
            "index stored in oci:{} as {}",
            local_store.display(),
            names.join(", ")
        )));
        Ok(())
    };
    if outputs.is_empty() {
        store_locally(&args.tags)?;
    }
    for o in outputs {
        let names = if o.names.is_empty() {
            &args.tags
        } else {
            &o.names
        };
        let tags: Vec<String> = names.iter().map(|t| output::layout_tag(t)).collect();
        match &o.sink {
            Sink::OciDir(dir) => {
                output::index_to_oci_layout(&ix, &store, dir, &tags)?;
                reporter.event(Event::Info(format!("wrote OCI layout {}", dir.display())));
            }
            Sink::Docker(Dest::File(file)) => {
                for r in &ix.images {
                    let f = output::platform_archive_path(file, &r.platform);
                    output::to_docker_archive(r, &store, &f, names, reporter)?;
                    reporter.event(Event::Info(format!(
                        "wrote docker-archive {} ({})",
                        f.display(),
                        r.platform
                    )));
                }
            }
            Sink::Image { push, .. } => {
                store_locally(names)?;
                if *push {
                    let mut opts =
                        RegistryOptions::new(global.insecure_registries.clone(), progress.clone());
                    opts.blob_memo = Some(crate::cli::pull::blob_memo_file(&req.cache_dir));
                    let registry = Registry::new(opts)?;
                    let rt = crate::cli::pull::runtime()?;
                    let warn = |w: String| reporter.event(Event::Warning(w));
                    for (name, d) in output::push_index(&ix, &store, &registry, &rt, names, &warn)?
                    {
                        reporter.event(Event::Info(format!("pushed {name}@{d}")));
                    }
                }
            }
            // Refused before the build by check_outputs.
            _ => anyhow::bail!(
                "internal error: output {:?} of a multi-platform build",
                o.sink
            ),
        }
    }
    // Every platform's steps: their keys differ where their inputs do.
    let images: Vec<_> = ix.images.iter().collect();
    cache_flags.export(
        &req.dockerfile,
        &req.cache_dir,
        &images,
        &req.cache_from,
        reporter,
    )?;
    if let Some(s) = req.cache_from.summary() {
        reporter.event(Event::Info(s));
    }
    if let Some(f) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": ix.index_digest.to_string(),
            "containerimage.descriptor": ix.descriptor(),
            "containerimage.platforms": ix.images.iter().map(output::descriptor).collect::<Vec<_>>(),
            "image.name": args.tags.join(","),
        });
        std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    // As buildx: the image ID of a multi-platform build is the index digest.
    if let Some(f) = &args.iidfile {
        std::fs::write(f, ix.index_digest.to_string())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    crate::cli::print_digest(&ix.index_digest)?;
    Ok(ExitCode::SUCCESS)
}
