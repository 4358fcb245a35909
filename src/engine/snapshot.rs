//! Snapshots on the engine's side: the layer of a RUN, COPY or ADD step in
//! a stage that no output exports (and no `--cache-to mode=max` or `--sbom
//! scan-stage=true` asks for), when a later RUN of the stage stacks it as
//! an overlay lower (which needs its directory anyway), stays a layer
//! directory, shared by the next steps and read in place by `COPY --from`;
//! it is never written as a tar during the build
//! (`sandbox::layer_dirs::snapshot`). A COPY's directory is made straight
//! from its entries: no blob, and no unpack of one before the next RUN.
//!
//! Its descriptor is the one a plain stage blob would have (digest =
//! diff_id, `MediaType::StageLayer`), so records, keys and images do not
//! change. The cache holds it as that record plus the directory: a record
//! is present while its blob *or* its directory is ([`present`]; `cache
//! prune` counts it so too, and drops the record with the directory). A
//! later build that exports the stage gets the blob made from the
//! directory, byte for byte, when it looks the step up.

use super::ctx::BuildCtx;
use super::layer_write::normalize;
use super::step::error::Result;
use crate::frontend::graph::PlannedStage;
use crate::frontend::Instruction;
use crate::image::{Layer, MediaType};
use crate::report::Event;
use cairn_layers::{Entry, MtimePolicy};

/// Whether a RUN step of stage `stage` leaves a snapshot instead of a blob.
pub fn wanted(ctx: &BuildCtx, stage: usize) -> bool {
    !ctx.exported.contains(&stage)
        && !ctx.req.stage_bytes
        && std::env::var_os(crate::env::CAIRN_NO_SNAPSHOTS).is_none_or(|v| v != "1")
        && ctx.layer_dirs.snapshots_possible()
}

/// Whether a RUN step comes after step `k` (0-based) of `stage`: then the
/// layer of step `k` is stacked as a lower, so its directory is made anyway.
/// The stage's last RUN stays a plain blob: `COPY --from` reads it in place,
/// and the copy's own directory moves the RUN's files in (donors) instead of
/// writing them. ONBUILD triggers (`k` = `usize::MAX`) keep blobs.
pub fn run_follows(stage: &PlannedStage, k: usize) -> bool {
    let Some(next) = k.checked_add(1) else {
        return false;
    };
    stage
        .steps
        .iter()
        .skip(next)
        .any(|s| matches!(s.instruction, Instruction::Run(_)))
}

/// Whether the layer of step `k` (0-based) of `stage` is made as a
/// snapshot: a later RUN of the stage stacks it ([`run_follows`]) and the
/// build allows snapshots there ([`wanted`]).
pub fn chosen(ctx: &BuildCtx, stage: &PlannedStage, k: usize) -> bool {
    run_follows(stage, k) && wanted(ctx, stage.index)
}

/// The snapshot of `entries` with mtimes by `mtime`: its layer directory
/// made, its descriptor returned (no blob).
pub fn make(ctx: &BuildCtx, mut entries: Vec<Entry>, mtime: MtimePolicy) -> Result<Layer> {
    normalize(&mut entries);
    make_normalized(ctx, &entries, mtime)
}

/// [`make`] for entries already passed through [`normalize`].
pub fn make_normalized(ctx: &BuildCtx, entries: &[Entry], mtime: MtimePolicy) -> Result<Layer> {
    let (diff_id, size) = ctx.layer_dirs.snapshot(entries, mtime)?;
    Ok(Layer {
        digest: diff_id.0.clone(),
        diff_id,
        size,
        media_type: MediaType::StageLayer,
    })
}

/// Whether the cache still has layer `l` for a step of stage `stage`: its
/// blob, or its snapshot directory — made into the blob first when this
/// build needs the bytes (the stage is exported, or every stage's bytes
/// are asked for). A snapshot that does not give its blob back is a miss
/// (the step runs again), said in a warning.
pub fn present(ctx: &BuildCtx, stage: usize, l: &Layer) -> bool {
    if ctx.store.contains(&l.digest) {
        return true;
    }
    if !is_snapshot(ctx, l) {
        return false;
    }
    if !(ctx.exported.contains(&stage) || ctx.req.stage_bytes) {
        return true;
    }
    match ctx.layer_dirs.serialize(l, &ctx.store) {
        Ok(()) => true,
        Err(e) => {
            ctx.reporter.event(Event::Warning(format!(
                "{}; the step runs again",
                crate::error::one_line(&e)
            )));
            false
        }
    }
}

/// A plain stage layer without its blob whose directory is there.
fn is_snapshot(ctx: &BuildCtx, l: &Layer) -> bool {
    l.media_type == MediaType::StageLayer
        && l.digest == l.diff_id.0
        && ctx.layer_dirs.path(l).is_dir()
}

#[cfg(test)]
mod tests {
    use super::run_follows;
    use crate::frontend::{self, BuildOptions};

    #[test]
    fn a_step_is_stacked_when_a_run_of_its_stage_follows() {
        let src = "FROM scratch AS deps\nCOPY a /a\nRUN one\nRUN two\nCOPY b /b\n\
                   FROM scratch\nCOPY --from=deps /a /a\nRUN x\n";
        let df = frontend::parse(src, std::path::Path::new("Dockerfile")).unwrap();
        let plan = frontend::plan(&df, &BuildOptions::default()).unwrap();
        let deps = plan.stage(0).unwrap();
        // COPY a, RUN one: a RUN follows; RUN two (the last), COPY b: none.
        let follows: Vec<bool> = (0..4).map(|k| run_follows(deps, k)).collect();
        assert_eq!(follows, [true, true, false, false]);
        let last = plan.stage(1).unwrap();
        assert!(run_follows(last, 0));
        assert!(!run_follows(last, 1));
        // ONBUILD triggers run past the end of the stage's steps.
        assert!(!run_follows(last, 7));
        assert!(!run_follows(last, usize::MAX));
    }
}
