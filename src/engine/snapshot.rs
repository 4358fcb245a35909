//! Snapshots on the engine's side: the layer of a RUN step in a stage that
//! no output exports (and no `--cache-to mode=max` or `--sbom
//! scan-stage=true` asks for) stays a layer directory, shared as an overlay
//! lower by the next steps and read in place by `COPY --from`; it is never
//! written as a tar during the build (`sandbox::layer_dirs::snapshot`).
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

/// The snapshot of `entries` with mtimes by `mtime`: its layer directory
/// made, its descriptor returned (no blob).
pub fn make(ctx: &BuildCtx, mut entries: Vec<Entry>, mtime: MtimePolicy) -> Result<Layer> {
    normalize(&mut entries);
    let (diff_id, size) = ctx.layer_dirs.snapshot(&entries, mtime)?;
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
