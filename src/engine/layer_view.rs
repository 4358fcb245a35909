//! What a build has of its image's layers besides their blobs, by diff_id:
//! the SBOM scan (`crate::attest::sbom`) reads these instead of
//! decompressing blobs it has just written. The engine makes them; they
//! live here so the engine never names the attest room.

use super::fs::EntryFs;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What the build already has of a layer, read instead of decompressing
/// its blob again right after writing it: the same files, so the same SBOM.
#[derive(Clone)]
pub enum LayerView {
    /// The entries the build wrote it from, or indexed in its plain stage
    /// blob (`engine::layer_write`): sources still on disk or in memory.
    Entries(Arc<EntryFs>),
    /// Its unpacked directory (`engine::layer_dirs`, overlay form:
    /// whiteout = character device 0/0, opaque directory = xattr).
    Dir(PathBuf),
}

impl std::fmt::Debug for LayerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerView::Entries(_) => f.write_str("LayerView::Entries"),
            LayerView::Dir(d) => write!(f, "LayerView::Dir({})", d.display()),
        }
    }
}

/// The views a build left of its image's layers, by diff_id.
pub type LayerViews = Arc<BTreeMap<String, LayerView>>;
