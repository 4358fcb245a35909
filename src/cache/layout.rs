//! Where everything lives under the cache directory: each bucket is named
//! here once, and every other file asks [`CacheLayout`] for its paths.

use cairn_layers::Digest;
use std::path::{Path, PathBuf};

/// Version tag in the name of every unpacked-layer form directory:
/// directories of this scheme were published only after their content
/// hashed to their name (older cairn trusted the config's claim; their
/// directories are never reused, and prune removes them).
pub const LAYER_SCHEME: &str = "v2";

/// One part of the cache directory. `cairn cache ls` shows one line per
/// bucket; their sizes add up to the whole directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// The cache directory itself and its `lock` file (never removed).
    Root,
    /// `steps/<key hex>.json`: step records (steps' and layers' by content).
    Records,
    /// `slots/<hex of the slot name>`: the key a step position last ran with.
    Slots,
    /// `blobs/sha256/<hex>`: layer, config and manifest blobs (pulled bases and built layers).
    Blobs,
    /// `gzip/<plain hex>`: which gzip blob a plain stage layer compressed to.
    Gzip,
    /// `layers/<form>/<diff_id hex>`: unpacked layers, one form directory per
    /// ownership kind (`host-v2`, `userns-v2-<mapping>`, `unowned-v2-<uid>`),
    /// plus directories of older layouts until a prune removes them.
    Layers,
    /// `used/<diff_id hex>`: empty files whose mtime is an unpacked layer's last use.
    LayerUse,
    /// `mounts/<hex of the id>`: `RUN --mount=type=cache` directories.
    Mounts,
    /// `sandbox/`: the sandbox's state (run directories of RUN steps, the probe).
    Sandbox,
    /// `images/`: the local image store (an OCI layout), where `cairn build` without `-o` puts images.
    Images,
    /// `context-hashes.json`, `file-digests.json`, `registry-blobs.json`: memos that only save time.
    Memos,
    /// `tmp/`: temporaries of running builds (records being written, RUN scratch dirs).
    Tmp,
    /// `attest/<key hex>`: which SBOM blob an image's scan gave (`crate::attest`).
    Attest,
    /// Anything else at the top (not written by this cairn).
    Other,
}

/// The memo files ([`Bucket::Memos`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memo {
    /// Digests of build-context files by (size, mtime, inode…).
    ContextHashes,
    /// Digests of immutable files (unpacked layers) by path.
    FileDigests,
    /// Which registry repositories already hold which blobs (push mounts).
    RegistryBlobs,
}

impl Memo {
    const ALL: [Memo; 3] = [Memo::ContextHashes, Memo::FileDigests, Memo::RegistryBlobs];

    fn file_name(self) -> &'static str {
        match self {
            Memo::ContextHashes => "context-hashes.json",
            Memo::FileDigests => "file-digests.json",
            Memo::RegistryBlobs => "registry-blobs.json",
        }
    }
}

const LOCK: &str = "lock";

impl Bucket {
    /// Every bucket, in listing order.
    pub const ALL: [Bucket; 14] = [
        Bucket::Records,
        Bucket::Slots,
        Bucket::Blobs,
        Bucket::Gzip,
        Bucket::Layers,
        Bucket::LayerUse,
        Bucket::Mounts,
        Bucket::Sandbox,
        Bucket::Images,
        Bucket::Memos,
        Bucket::Tmp,
        Bucket::Attest,
        Bucket::Other,
        Bucket::Root,
    ];

    /// The bucket's name in `cairn cache ls` and `prune --filter type=`.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Root => "root",
            Bucket::Records => "records",
            Bucket::Slots => "slots",
            Bucket::Blobs => "blobs",
            Bucket::Gzip => "gzip",
            Bucket::Layers => "layers",
            Bucket::LayerUse => "layer-use",
            Bucket::Mounts => "mounts",
            Bucket::Sandbox => "sandbox",
            Bucket::Images => "images",
            Bucket::Memos => "memos",
            Bucket::Tmp => "tmp",
            Bucket::Attest => "attest",
            Bucket::Other => "other",
        }
    }

    /// The bucket named `name` (buildx's `exec.cachemount` means the mount caches).
    pub fn from_name(name: &str) -> Option<Bucket> {
        if name == "exec.cachemount" {
            return Some(Bucket::Mounts);
        }
        Bucket::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The bucket's directory under the root (None: files at the top).
    fn dir_name(self) -> Option<&'static str> {
        Some(match self {
            Bucket::Records => "steps",
            Bucket::Slots => "slots",
            Bucket::Blobs => "blobs",
            Bucket::Gzip => "gzip",
            Bucket::Layers => "layers",
            Bucket::LayerUse => "used",
            Bucket::Mounts => "mounts",
            Bucket::Sandbox => "sandbox",
            Bucket::Images => "images",
            Bucket::Tmp => "tmp",
            Bucket::Attest => "attest",
            Bucket::Root | Bucket::Memos | Bucket::Other => return None,
        })
    }

    /// The bucket a top-level name of the cache directory belongs to.
    pub fn of_top(name: &str) -> Bucket {
        if name == LOCK {
            return Bucket::Root;
        }
        if Memo::ALL.iter().any(|m| m.file_name() == name) {
            return Bucket::Memos;
        }
        Bucket::ALL
            .into_iter()
            .find(|b| b.dir_name() == Some(name))
            .unwrap_or(Bucket::Other)
    }
}

/// What a name directly under `layers/` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerForm {
    /// A form directory of the current scheme.
    Current,
    /// A directory of an older layout (root's `<hex>`, `userns-<hash>`,
    /// `unowned-<uid>` from before [`LAYER_SCHEME`]) or anything else.
    Old,
}

impl LayerForm {
    /// Classify a name directly under `layers/`.
    pub fn of(name: &str) -> LayerForm {
        let current = name == format!("host-{LAYER_SCHEME}")
            || name.starts_with(&format!("userns-{LAYER_SCHEME}-"))
            || name.starts_with(&format!("unowned-{LAYER_SCHEME}-"));
        if current {
            LayerForm::Current
        } else {
            LayerForm::Old
        }
    }
}

/// The cache directory's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheLayout {
    root: PathBuf,
}

impl CacheLayout {
    /// The layout of the cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheLayout { root: root.into() }
    }

    /// `--cache-dir DIR` when given, else [`default_root`]; made absolute
    /// here, once (the sandbox takes only absolute layer directories, and a
    /// relative path would change meaning with the working directory).
    pub fn from_flag(flag: Option<&Path>) -> Self {
        let root = flag.map_or_else(default_root, Path::to_path_buf);
        Self::new(std::path::absolute(&root).unwrap_or(root))
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A bucket's directory (for the buckets that have one; [`Bucket::Root`],
    /// [`Bucket::Memos`] and [`Bucket::Other`] are the root).
    pub fn dir(&self, b: Bucket) -> PathBuf {
        match b.dir_name() {
            Some(d) => self.root.join(d),
            None => self.root.clone(),
        }
    }

    /// The lock file every process using the cache holds (see the module doc).
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK)
    }

    /// A memo file.
    pub fn memo(&self, m: Memo) -> PathBuf {
        self.root.join(m.file_name())
    }

    /// The record of step key `key`.
    pub fn record(&self, key: &Digest) -> PathBuf {
        self.dir(Bucket::Records)
            .join(format!("{}.json", key.hex()))
    }

    /// The slot file of step position `slot`.
    pub fn slot(&self, slot: &str) -> PathBuf {
        self.dir(Bucket::Slots)
            .join(Digest::of(slot.as_bytes()).hex())
    }

    /// Where blob `d` lies (the blob store opened at [`CacheLayout::root`]).
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.dir(Bucket::Blobs).join("sha256").join(d.hex())
    }

    /// The directory of the blobs (`blobs/sha256`).
    pub fn blob_dir(&self) -> PathBuf {
        self.dir(Bucket::Blobs).join("sha256")
    }

    /// The gzip memo of plain layer blob `plain`.
    pub fn gzip_memo(&self, plain: &Digest) -> PathBuf {
        self.dir(Bucket::Gzip).join(plain.hex())
    }

    /// The form directory of root's unpacked layers (owners as in the tar).
    pub fn host_layers(&self) -> PathBuf {
        self.dir(Bucket::Layers)
            .join(format!("host-{LAYER_SCHEME}"))
    }

    /// The form directory of layers unpacked in a user namespace whose id
    /// mapping hashes to `mapping` (hex).
    pub fn userns_layers(&self, mapping: &str) -> PathBuf {
        self.dir(Bucket::Layers)
            .join(format!("userns-{LAYER_SCHEME}-{mapping}"))
    }

    /// The form directory of layers unpacked without owners by `uid`.
    pub fn unowned_layers(&self, uid: u32) -> PathBuf {
        self.dir(Bucket::Layers)
            .join(format!("unowned-{LAYER_SCHEME}-{uid}"))
    }

    /// The use stamp of the unpacked layer `diff_id` (any form).
    pub fn layer_use(&self, diff_id: &Digest) -> PathBuf {
        self.dir(Bucket::LayerUse).join(diff_id.hex())
    }

    /// The directory of the cache mount with id `id`.
    pub fn mount(&self, id: &str) -> PathBuf {
        self.dir(Bucket::Mounts)
            .join(Digest::of(id.as_bytes()).hex())
    }
}

/// The default cache directory: `$CAIRN_CACHE_DIR`, `$XDG_CACHE_HOME/cairn`,
/// `~/.cache/cairn`, else `$TMPDIR/cairn-cache`.
pub fn default_root() -> PathBuf {
    use crate::env;
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var(env::CAIRN_CACHE_DIR) {
        return PathBuf::from(d);
    }
    if let Some(d) = var(env::XDG_CACHE_HOME) {
        return PathBuf::from(d).join("cairn");
    }
    match var(env::HOME) {
        Some(h) => PathBuf::from(h).join(".cache").join("cairn"),
        None => std::env::temp_dir().join("cairn-cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_cache_dir_flag_is_made_absolute() {
        let l = CacheLayout::from_flag(Some(Path::new("rel/cache")));
        assert!(l.root().is_absolute(), "{}", l.root().display());
        assert!(l.root().ends_with("rel/cache"));
    }

    #[test]
    fn every_top_level_name_maps_back_to_its_bucket() {
        let l = CacheLayout::new("/c");
        for b in Bucket::ALL {
            if let Some(d) = b.dir_name() {
                assert_eq!(l.dir(b), Path::new("/c").join(d));
                assert_eq!(Bucket::of_top(d), b);
            }
            assert_eq!(Bucket::from_name(b.name()), Some(b));
        }
        for m in Memo::ALL {
            let p = l.memo(m);
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(Bucket::of_top(name), Bucket::Memos);
        }
        assert_eq!(Bucket::of_top("lock"), Bucket::Root);
        assert_eq!(Bucket::of_top("stray"), Bucket::Other);
        assert_eq!(Bucket::from_name("exec.cachemount"), Some(Bucket::Mounts));
    }

    #[test]
    fn layer_forms_of_older_layouts_are_old() {
        let l = CacheLayout::new("/c");
        for current in [
            l.host_layers(),
            l.userns_layers("ab12"),
            l.unowned_layers(7),
        ] {
            let name = current.file_name().unwrap().to_str().unwrap();
            assert_eq!(LayerForm::of(name), LayerForm::Current, "{name}");
        }
        let hex = Digest::of(b"x").hex().to_owned();
        for old in [
            hex.as_str(),
            "userns-0123456789abcdef",
            "unowned-1000",
            "host",
        ] {
            assert_eq!(LayerForm::of(old), LayerForm::Old, "{old}");
        }
    }
}
