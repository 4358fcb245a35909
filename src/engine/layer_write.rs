//! The engine's one way to turn entries into a layer in the cache's store.

use super::build::BuildCtx;
use super::state::LayerDesc;
use cairn_layers::{sort_entries, write_layer, Entry, LayerOptions, MtimePolicy};

/// Sort `entries` and write them as a gzip layer with the given mtime policy.
pub fn write(
    ctx: &BuildCtx,
    mut entries: Vec<Entry>,
    mtime: MtimePolicy,
) -> anyhow::Result<LayerDesc> {
    sort_entries(&mut entries);
    entries.dedup_by(|b, a| a.path == b.path);
    let layer = write_layer(entries, &LayerOptions::new(mtime), &ctx.store)?;
    Ok(LayerDesc {
        digest: layer.digest,
        diff_id: layer.diff_id,
        size: layer.size,
        media_type: layer.media_type.to_owned(),
    })
}
