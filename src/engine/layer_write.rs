//! The engine's one way to turn entries into a layer in the cache's store.

use super::build::BuildCtx;
use super::fs::EntryFs;
use super::state::LayerDesc;
use cairn_layers::{sort_entries, write_layer, Entry, LayerOptions, MtimePolicy};
use std::sync::Arc;

/// Whether later steps may read a written layer from its entries in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Yes: every file's source outlives the build step (context files,
    /// unpacked layer directories, bytes in memory).
    Keep,
    /// No: sources live in a step's scratch directory (RUN's upper dir, ADD's
    /// downloads), so the layer is unpacked from its blob when needed.
    Drop,
}

/// Sort `entries` the way the layer writer wants them, dropping duplicates.
pub fn normalize(entries: &mut Vec<Entry>) {
    sort_entries(entries);
    entries.dedup_by(|b, a| a.path == b.path);
}

/// Sort `entries` and write them as a gzip layer with the given mtime policy.
pub fn write(
    ctx: &BuildCtx,
    mut entries: Vec<Entry>,
    mtime: MtimePolicy,
    index: Index,
) -> anyhow::Result<LayerDesc> {
    normalize(&mut entries);
    let kept = (index == Index::Keep).then(|| entries.clone());
    let layer = write_layer(entries, &LayerOptions::new(mtime), &ctx.store)?;
    let desc = LayerDesc {
        digest: layer.digest,
        diff_id: layer.diff_id,
        size: layer.size,
        media_type: layer.media_type.to_owned(),
    };
    if let Some(entries) = kept {
        remember(ctx, &desc, entries, mtime);
    }
    Ok(desc)
}

/// Keep `entries` (the sorted content of `layer`) as its in-memory view,
/// with mtimes as the writer stored them. Layers with hardlinks are left to
/// be unpacked: a merged view reads hardlinked files as plain files.
pub fn remember(ctx: &BuildCtx, layer: &LayerDesc, mut entries: Vec<Entry>, mtime: MtimePolicy) {
    if entries
        .iter()
        .any(|e| matches!(e.kind, cairn_layers::EntryKind::Hardlink { .. }))
    {
        return;
    }
    for e in &mut entries {
        e.mtime = mtime.apply(e.mtime);
    }
    if let Ok(mut w) = ctx.written.lock() {
        w.entry(layer.digest.clone())
            .or_insert_with(|| Arc::new(EntryFs::new(entries)));
    }
}

/// The in-memory view of a layer this build wrote, if it kept one.
pub fn indexed(ctx: &BuildCtx, layer: &LayerDesc) -> Option<Arc<EntryFs>> {
    ctx.written.lock().ok()?.get(&layer.digest).cloned()
}
