//! cairn's local image store: the OCI layout `CACHE/images` where `cairn
//! build` puts images when no output is given (and `type=image` outputs).
//! `cairn run`, `inspect`, `push` and `diff` look a name up here before they
//! try a registry, and say so on stderr.

use super::GlobalArgs;
use crate::cache::Bucket;
use std::path::{Path, PathBuf};

pub use crate::image::local_store::find;

/// The store's directory in the cache (`--cache-dir`). When the cache
/// exists, it is held shared from now on, so a `cache prune` waits for the
/// command that reads the store (see `cache::lock`).
pub fn dir(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    let cache = global.cache();
    if cache.root().is_dir() {
        global.cache_in_use()?;
    }
    Ok(cache.dir(Bucket::Images))
}

/// Tell the user that `name` came from the local store.
pub fn say_used(name: &str, store: &Path) {
    eprintln!("using {name} from the local store oci:{}", store.display());
}
