//! The build: parse → plan → stages (independent ones in parallel) → the
//! target image's config and manifest in the blob store.

use super::bases::ImageSource;
use super::ctx::BuildCtx;
use super::record::BuildRecord;
use super::request::BuildRequest;
use super::session::Session;
use super::stage::run_stage;
use super::stage_run::StageResult;
use super::state::ImageState;
use super::Error;
use crate::frontend::{self, BuildOptions, BuildPlan, Dockerfile, Platform};
use crate::image::Layer;
use crate::report::{Event, Reporter};
use cairn_layers::Digest;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The built image: its blobs are in the cache's blob store.
#[derive(Clone, Debug)]
pub struct BuildResult {
    /// Canonical config bytes.
    pub config_raw: Vec<u8>,
    /// Digest of the config.
    pub config_digest: Digest,
    /// Canonical manifest bytes.
    pub manifest_raw: Vec<u8>,
    /// The media type the manifest declares (Docker's with `oci-mediatypes=false`).
    pub manifest_media_type: crate::image::MediaType,
    /// Digest of the manifest: the image digest.
    pub manifest_digest: Digest,
    /// The layers.
    pub layers: Vec<Layer>,
    /// The platform built for.
    pub platform: Platform,
    /// Per-step cache inputs (for `cairn diff`).
    pub record: BuildRecord,
    /// The registry image the target's `FROM` chain starts from.
    pub base: Option<super::state::BaseImage>,
    /// Annotations of the image manifest (`--annotation`).
    pub annotations: BTreeMap<String, String>,
    /// Time inside RUN commands (the rest of the wall time is builder overhead).
    pub run_command_time: std::time::Duration,
    /// Time of whole RUN steps (setup + command + capture).
    pub run_step_time: std::time::Duration,
    /// The other stages built for it, by name (for `--sbom scan-stage=true`
    /// and the bases named in provenance).
    pub stages: Vec<(String, ImageState)>,
    /// What the build has of the image's layers (written entries, unpacked
    /// directories), by diff_id: the SBOM scan reads them instead of the blobs.
    pub layer_views: super::layer_view::LayerViews,
}

/// Parse and plan `req`, and check that this machine can RUN every stage's
/// platform: what can be known before any work.
pub fn preflight(req: &BuildRequest) -> Result<(Dockerfile, BuildPlan), Error> {
    let df = frontend::parse(&req.dockerfile_source, &req.dockerfile)?;
    let opts = BuildOptions {
        target: req.target.clone(),
        build_args: req.build_args.clone(),
        target_platform: req.platform.clone(),
        named_contexts: super::named_context::for_planning(&req.named_contexts),
        ..BuildOptions::default()
    };
    let plan = frontend::plan(&df, &opts)?;
    check_no_cache_filter(&df, &req.no_cache_filter)?;
    super::step::run::mounts::check_ssh(&df, &plan, &req.run_options.ssh)?;
    check_runnable(&df, &plan, crate::sandbox::binfmt::support)?;
    Ok((df, plan))
}

/// Run a build to the end; the image's blobs are in `BlobStore::open(cache_dir)`.
pub fn build(
    req: &BuildRequest,
    images: &dyn ImageSource,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let (df, plan) = preflight(req)?;
    let session = Session::open(req, reporter)?;
    let r = build_in(&session, req, (&df, &plan), images, reporter);
    session.save();
    r
}

/// Run the build of `req`, planned as `(df, plan)` by [`preflight`], in
/// `session` (which the caller saves).
pub fn build_in(
    session: &Session,
    req: &BuildRequest,
    (df, plan): (&Dockerfile, &BuildPlan),
    images: &dyn ImageSource,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    for w in df
        .warnings
        .iter()
        .chain(&super::secret_names::warnings(df))
        .chain(&plan.warnings)
    {
        reporter.event(Event::Warning(w.to_string()));
    }
    let ctx = BuildCtx {
        req,
        df,
        plan,
        store: session.store.clone(),
        cache: session.cache.clone(),
        layer_dirs: &session.layer_dirs,
        images,
        reporter,
        session,
        next_step: AtomicUsize::new(0),
        record: Mutex::new(BuildRecord::default()),
        created: crate::image::mutate::rfc3339(req.epoch),
        run_nanos: (AtomicU64::new(0), AtomicU64::new(0)),
        written: &session.written,
        exported: exported_stages(plan),
    };
    let mut done = run_stages(&ctx, plan)?;
    let target = done.remove(&plan.target).ok_or(Error::TargetNotBuilt)?;
    let platform = plan
        .stage(plan.target)
        .map(|s| s.platform.clone())
        .unwrap_or_else(Platform::host);
    let mut record = ctx.record.lock().map(|r| r.clone()).unwrap_or_default();
    record.normalize();
    let mut result = finalize(&ctx, target.image, platform, record)?;
    result.stages = done
        .into_iter()
        .map(|(i, st)| {
            let name = plan.stage(i).and_then(|s| s.name.clone());
            (name.unwrap_or_else(|| i.to_string()), st.image)
        })
        .collect();
    result.run_command_time =
        std::time::Duration::from_nanos(ctx.run_nanos.0.load(Ordering::Relaxed));
    result.run_step_time = std::time::Duration::from_nanos(ctx.run_nanos.1.load(Ordering::Relaxed));
    Ok(result)
}

/// Every stage of the plan on its own thread, each waiting for what it reads
/// of another stage at the step that reads it ([`super::schedule`]). On a
/// failure the error is the failing stage's own: of the stages that failed
/// by themselves (not stopped by another's failure), the first in plan order.
fn run_stages(ctx: &BuildCtx, plan: &BuildPlan) -> Result<BTreeMap<usize, StageResult>, Error> {
    // Indexed by stage index (the plan leaves unused stages out).
    let slots = plan.stages.iter().map(|s| s.index + 1).max().unwrap_or(0);
    let table = super::schedule::Table::new(slots);
    let order: Vec<usize> = plan.parallel.iter().flatten().copied().collect();
    let results: Vec<(usize, Result<(), Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = order
            .iter()
            .filter_map(|i| plan.stage(*i))
            .map(|st| {
                let table = &table;
                let h = s.spawn(move || {
                    // Waiters wake even if this thread panics.
                    let guard = FailOnDrop(table, st.index);
                    let r = run_stage(ctx, st, table.view(st.index));
                    std::mem::forget(guard);
                    match r {
                        Ok(done) => {
                            table.finish(st.index, done);
                            Ok(())
                        }
                        Err(e) => {
                            table.fail(st.index);
                            Err(e)
                        }
                    }
                });
                (st.index, h)
            })
            .collect();
        handles
            .into_iter()
            .map(|(i, h)| (i, h.join().unwrap_or(Err(Error::StagePanicked(i)))))
            .collect()
    });
    let mut first_stopped = None;
    for (i, r) in results {
        if let Err(e) = r {
            if !table.stopped(i) {
                return Err(e);
            }
            first_stopped.get_or_insert(e);
        }
    }
    match first_stopped {
        Some(e) => Err(e),
        None => Ok(table.into_results()),
    }
}

/// Marks a stage failed when its thread unwinds.
struct FailOnDrop<'t>(&'t super::schedule::Table<StageResult>, usize);

impl Drop for FailOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fail(self.1);
    }
}

/// `--no-cache-filter` names stages that exist (a typo would otherwise do nothing).
fn check_no_cache_filter(df: &Dockerfile, filter: &[String]) -> Result<(), Error> {
    let names: Vec<String> = df
        .stages
        .iter()
        .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
        .collect();
    for f in filter {
        let known = df
            .stages
            .iter()
            .any(|s| s.name.as_deref() == Some(f.as_str()) || s.index.to_string() == *f);
        if !known {
            return Err(Error::NoSuchStage {
                stage: f.clone(),
                names,
            });
        }
    }
    Ok(())
}

/// Before any work: every stage with a RUN builds for a platform this machine
/// can execute, natively or through binfmt_misc emulation; otherwise the
/// error points at the stage's first RUN and says how to enable emulation.
fn check_runnable(
    df: &Dockerfile,
    plan: &BuildPlan,
    support: impl Fn(&Platform) -> crate::sandbox::binfmt::Support,
) -> Result<(), Error> {
    for st in &plan.stages {
        let Some(run) = st
            .steps
            .iter()
            .find(|s| matches!(s.instruction, crate::frontend::Instruction::Run(_)))
        else {
            continue;
        };
        if let crate::sandbox::binfmt::Support::No(why) = support(&st.platform) {
            return Err(run
                .error(
                    df,
                    format!(
                        "RUN for platform {}: {}",
                        st.platform,
                        crate::sandbox::binfmt::explain(&st.platform, &why)
                    ),
                )
                .into());
        }
    }
    Ok(())
}

/// The target stage and the stages it is built `FROM`, transitively.
fn exported_stages(plan: &BuildPlan) -> std::collections::BTreeSet<usize> {
    let mut out = std::collections::BTreeSet::new();
    let mut next = Some(plan.target);
    while let Some(i) = next {
        if !out.insert(i) {
            break;
        }
        next = match plan.stage(i).map(|s| &s.base) {
            Some(crate::frontend::graph::Base::Stage(j)) => Some(*j),
            _ => None,
        };
    }
    out
}

fn finalize(
    ctx: &BuildCtx,
    mut image: ImageState,
    platform: Platform,
    record: BuildRecord,
) -> Result<BuildResult, Error> {
    // Only plain stage layers are read here (gzipped below); the others a
    // remote cache hit left remote are fetched by the outputs that need
    // their bytes (`crate::publish`): a push mounts them registry-side.
    let plain: Vec<crate::image::Layer> = image
        .image
        .layers
        .iter()
        .filter(|l| l.media_type == crate::image::MediaType::StageLayer)
        .cloned()
        .collect();
    super::cache_import::materialize(ctx, &plain)?;
    let layer_views = layer_views(ctx, &image.image.layers);
    // Plain layers of stages that were not exported when they were built.
    image.image.layers = image
        .image
        .layers
        .iter()
        .map(|l| super::layer_write::gzip_for_export(ctx, l).map_err(Error::from))
        .collect::<Result<_, Error>>()?;
    if !ctx.req.labels.is_empty() {
        let rc = image.image.config.run_config_mut();
        let labels = rc.labels.get_or_insert_with(Default::default);
        for (k, v) in &ctx.req.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    let done = image
        .image
        .finalize(&ctx.req.annotations)
        .map_err(Error::ImageJson)?;
    let config_digest = ctx.store.put_bytes(&done.config.bytes)?;
    let config_raw = done.config.bytes;
    let manifest_raw = done.manifest.bytes;
    let manifest_digest = ctx.store.put_bytes(&manifest_raw)?;
    Ok(BuildResult {
        config_raw,
        config_digest,
        manifest_raw,
        manifest_media_type: done.manifest.media_type,
        manifest_digest,
        layers: image.image.layers,
        platform,
        record,
        base: image.base.clone(),
        annotations: ctx.req.annotations.clone(),
        run_command_time: std::time::Duration::ZERO,
        run_step_time: std::time::Duration::ZERO,
        stages: Vec::new(),
        layer_views,
    })
}

/// What this build has of `layers` besides their blobs: the entries it
/// wrote them from (or indexed in a plain stage blob), else their unpacked
/// directories when this session unpacked layers at all.
fn layer_views(ctx: &BuildCtx, layers: &[crate::image::Layer]) -> super::layer_view::LayerViews {
    use super::layer_view::LayerView;
    let views = layers
        .iter()
        .filter_map(|l| {
            let view = super::layer_write::indexed(ctx, l)
                .map(LayerView::Entries)
                .or_else(|| ctx.layer_dirs.unpacked(l).map(LayerView::Dir))?;
            Some((l.diff_id.to_string(), view))
        })
        .collect();
    std::sync::Arc::new(views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::binfmt::Support;

    /// A cross-compiling Dockerfile: the builder stage runs on the build
    /// platform, the final stage's RUN on the target platform.
    const CROSS: &str = "FROM --platform=$BUILDPLATFORM scratch AS b\nRUN make\n\
                         FROM scratch\nCOPY --from=b / /\nRUN check\n";

    fn plan_for(target: &str) -> (Dockerfile, BuildPlan) {
        let df = frontend::parse(CROSS, std::path::Path::new("Dockerfile")).unwrap();
        let opts = BuildOptions {
            target_platform: Some(Platform::parse(target).unwrap()),
            build_platform: Platform::parse("linux/amd64").unwrap(),
            ..BuildOptions::default()
        };
        let plan = frontend::plan(&df, &opts).unwrap();
        (df, plan)
    }

    fn only_amd64(p: &Platform) -> Support {
        if p.architecture == "amd64" {
            Support::Native
        } else {
            Support::No("no binfmt_misc handler".into())
        }
    }

    #[test]
    fn a_run_for_an_unrunnable_platform_fails_before_work_at_its_line() {
        let (df, plan) = plan_for("linux/amd64");
        check_runnable(&df, &plan, only_amd64).unwrap();
        let (df, plan) = plan_for("linux/arm64");
        let e = check_runnable(&df, &plan, only_amd64)
            .unwrap_err()
            .to_string();
        // The builder stage runs on the build platform: the error is the final stage's RUN.
        assert!(e.contains("Dockerfile:5:1"), "{e}");
        assert!(e.contains("RUN for platform linux/arm64"), "{e}");
        assert!(e.contains("cannot run linux/arm64 binaries"), "{e}");
    }
}
