//! The image a stage is building: config, layers and history, plus the
//! cache key chain that identifies its filesystem.

use crate::image::config::{History, ImageConfig};
use cairn_layers::{DiffId, Digest};

/// One layer of an image being built (from the base image or a step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDesc {
    /// Compressed blob digest.
    pub digest: Digest,
    /// Uncompressed diff_id.
    pub diff_id: DiffId,
    /// Compressed size.
    pub size: u64,
    /// Media type as it will appear in the manifest.
    pub media_type: String,
}

/// The comment cairn writes into history entries (BuildKit writes `buildkit.dockerfile.v0`).
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// A stage's image while it is being built.
#[derive(Clone, Debug)]
pub struct ImageState {
    /// The config (runtime config, history, rootfs kept in sync with `layers`).
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<LayerDesc>,
    /// Key of the filesystem: the base digest, then each layer step's cache key.
    pub fs_key: Digest,
    /// `created` value for new history entries (RFC 3339).
    pub created: String,
    /// The registry image at the bottom of the `FROM` chain, if any.
    pub base: Option<BaseImage>,
}

/// The image a stage chain starts from: where its blobs may already be (a
/// push mounts them from there) and how many of the bottom layers are its
/// (their compression is kept unless `force-compression=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference as resolved (`registry/repo:tag`).
    pub reference: String,
    /// Its layer count.
    pub layers: usize,
    /// Its platform manifest's digest (provenance names bases by digest).
    pub digest: Digest,
}

impl ImageState {
    /// Append a layer and its history entry.
    pub fn push_layer(&mut self, layer: LayerDesc, created_by: String) {
        self.config.rootfs.diff_ids.push(layer.diff_id.to_string());
        self.layers.push(layer);
        self.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: false,
        });
    }

    /// Record a config-only step in the history.
    pub fn push_empty(&mut self, created_by: String) {
        self.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: true,
        });
    }
}

/// RFC 3339 UTC time (`1970-01-01T00:00:00Z`) for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all u64 days we meet.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_792_022_400), "2026-10-15T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
