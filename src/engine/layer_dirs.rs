//! Each layer unpacked once, content-addressed by diff_id, in overlayfs
//! lower-directory form (whiteout = char device 0/0, opaque = xattr), shared
//! read-only by every stage and build that uses it: the lower layers of RUN
//! and the merged view that COPY destinations and `--chown` names resolve in.

use super::state::LayerDesc;
use anyhow::Context as _;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::unpack::{unpack_auto, UnpackOptions, WhiteoutMode};
use std::fs;
use std::path::{Path, PathBuf};

/// The directory of unpacked layers.
#[derive(Clone, Debug)]
pub struct LayerDirs {
    root: PathBuf,
}

impl LayerDirs {
    /// Unpacked layers live in `root/<diff_id hex>`.
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        Ok(LayerDirs { root })
    }

    /// Where layer `l` is (or will be) unpacked.
    pub fn path(&self, l: &LayerDesc) -> PathBuf {
        self.root.join(l.diff_id.digest().hex())
    }

    /// The unpacked directory of `l`, unpacking it from `store` on first use.
    /// A half-unpacked layer is never visible: it is unpacked beside and renamed.
    pub fn ensure(&self, l: &LayerDesc, store: &BlobStore) -> anyhow::Result<PathBuf> {
        let dest = self.path(l);
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(&self.root)
            .with_context(|| format!("creating a directory in {}", self.root.display()))?;
        let blob = store
            .open_blob(&l.digest)
            .with_context(|| format!("opening layer {}", l.digest))?;
        let opts = UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            preserve_ownership: rustix::process::geteuid().is_root(),
        };
        unpack_auto(
            std::io::BufReader::with_capacity(1 << 20, blob),
            tmp.path(),
            &opts,
        )
        .with_context(|| format!("unpacking layer {}", l.digest))?;
        let staged = tmp.keep();
        match fs::rename(&staged, &dest) {
            Ok(()) => Ok(dest),
            // Another build unpacked the same layer first: use theirs.
            Err(_) if dest.is_dir() => {
                remove_tree(&staged);
                Ok(dest)
            }
            Err(e) => {
                remove_tree(&staged);
                Err(e).with_context(|| format!("moving unpacked layer to {}", dest.display()))
            }
        }
    }

    /// Remove leftovers of unpacks that were interrupted (SIGKILL).
    pub fn sweep(&self) {
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".unpack-") {
                    remove_tree(&e.path());
                }
            }
        }
    }
}

/// Remove a tree even where unpacked modes (0000 dirs) would block it.
pub fn remove_tree(p: &Path) {
    if fs::remove_dir_all(p).is_ok() {
        return;
    }
    for e in walkdir::WalkDir::new(p).into_iter().flatten() {
        if e.file_type().is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o700));
        }
    }
    let _ = fs::remove_dir_all(p);
}
