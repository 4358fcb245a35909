//! The engine's one way to turn entries into a layer in the cache's store.

use super::ctx::BuildCtx;
use super::fs::EntryFs;
use super::step::error::{Error, Result};
use crate::image::{Layer, MediaType};
use crate::report::Event;
use cairn_layers::{
    gzip_blob, sort_entries, write_layer, Compression, Entry, LayerOptions, MtimePolicy,
};
use std::sync::Arc;

// A stage whose layers no image of this build exports (`deps`, `builder`)
// writes them as plain tars (`MediaType::StageLayer`): only later steps read
// them, so deflating would be wasted CPU. Never written into a manifest:
// [`gzip_for_export`] turns one into the gzip blob a direct write would have
// made, byte for byte, when an exported image does contain it.

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

/// Sort `entries` and write them as a layer of stage `stage` with the given
/// mtime policy: gzip if the build exports the stage's layers, else plain.
pub fn write(
    ctx: &BuildCtx,
    mut entries: Vec<Entry>,
    mtime: MtimePolicy,
    index: Index,
    stage: usize,
) -> Result<Layer> {
    normalize(&mut entries);
    write_normalized(ctx, entries, mtime, index, stage)
}

/// [`write`] for entries already passed through [`normalize`].
pub fn write_normalized(
    ctx: &BuildCtx,
    entries: Vec<Entry>,
    mtime: MtimePolicy,
    index: Index,
    stage: usize,
) -> Result<Layer> {
    let kept = (index == Index::Keep).then(|| entries.clone());
    // Found before the entries go to the writer, offered once the digest is known.
    let donors = ctx.layer_dirs.donors_among(&entries);
    let mut opts = LayerOptions::new(mtime);
    let exported = ctx.exported.contains(&stage);
    if !exported {
        opts.compression = Compression::None;
    }
    let layer = write_layer(entries, &opts, &ctx.store)?;
    let desc = Layer {
        digest: layer.digest,
        diff_id: layer.diff_id,
        size: layer.size,
        media_type: if exported {
            MediaType::from(layer.media_type)
        } else {
            MediaType::StageLayer
        },
    };
    ctx.layer_dirs.offer_donors(&desc.digest, donors);
    if let Some(entries) = kept {
        remember(ctx, &desc, entries, mtime);
    }
    Ok(desc)
}

/// Keep `entries` (the sorted content of `layer`) as its in-memory view,
/// with mtimes as the writer stored them. Layers with hardlinks are left to
/// be unpacked: a merged view reads hardlinked files as plain files.
pub fn remember(ctx: &BuildCtx, layer: &Layer, mut entries: Vec<Entry>, mtime: MtimePolicy) {
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

/// A plain stage layer that is not unpacked yet, indexed where it lies in
/// its blob (and kept as the layer's in-memory view); `None` when it is
/// unpacked already or holds what only an unpack handles (whiteouts, hard
/// links).
pub fn index_stage_layer(ctx: &BuildCtx, l: &Layer) -> Result<Option<Arc<EntryFs>>> {
    if l.media_type != MediaType::StageLayer || ctx.layer_dirs.path(l).is_dir() {
        return Ok(None);
    }
    let blob = ctx.store.path(&l.digest);
    let Some(entries) =
        cairn_layers::tar_index::index_plain(&blob).map_err(|source| Error::IndexLayer {
            digest: l.digest.clone(),
            path: blob.clone(),
            source,
        })?
    else {
        return Ok(None);
    };
    ctx.layer_dirs.note_members(&l.digest, &entries);
    let fs = Arc::new(EntryFs::new(entries));
    if let Ok(mut w) = ctx.written.lock() {
        w.entry(l.digest.clone()).or_insert_with(|| Arc::clone(&fs));
    }
    Ok(Some(fs))
}

/// The in-memory view of a layer this build wrote, if it kept one.
pub fn indexed(ctx: &BuildCtx, layer: &Layer) -> Option<Arc<EntryFs>> {
    ctx.written.lock().ok()?.get(&layer.digest).cloned()
}

/// The gzip form of layer `l` for an exported image: `l` itself unless it is
/// a plain stage layer, whose gzip blob is made once and remembered.
pub fn gzip_for_export(ctx: &BuildCtx, l: &Layer) -> Result<Layer> {
    if l.media_type != MediaType::StageLayer {
        return Ok(l.clone());
    }
    let gz = |digest, size| Layer {
        digest,
        diff_id: l.diff_id.clone(),
        size,
        media_type: MediaType::OciLayerGzip,
    };
    if let Some((d, size)) = ctx.cache.gzip_memo(&l.digest) {
        if ctx.store.contains(&d) {
            return Ok(gz(d, size));
        }
    }
    let name = l.digest.to_string();
    ctx.reporter.event(Event::BlobStart {
        digest: name.clone(),
        size: Some(l.size),
        action: "compress",
    });
    let (d, size) = gzip_blob(&ctx.store, &l.digest, 0)?;
    ctx.reporter.event(Event::BlobDone { digest: name });
    // Losing the memo only costs a second compression.
    let _ = ctx.cache.set_gzip_memo(&l.digest, &d, size);
    Ok(gz(d, size))
}
