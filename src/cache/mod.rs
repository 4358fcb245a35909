//! The cache room: one directory (`--cache-dir`, else `$CAIRN_CACHE_DIR`,
//! `$XDG_CACHE_HOME/cairn`, `~/.cache/cairn`) holding everything cairn
//! keeps between runs, and the one type that knows where each part lies.
//!
//! | bucket | where | what |
//! |---|---|---|
//! | records | `steps/<key>.json` | step records, typed ([`RecordKind`]): a step's, or a layer's by content |
//! | slots | `slots/<hash>` | the key a step position last ran with (explains misses) |
//! | blobs | `blobs/sha256/<hex>` | pulled base blobs and built layers, configs, manifests |
//! | gzip | `gzip/<hex>` | which gzip blob a plain stage layer compressed to |
//! | layers | `layers/{host-v2,userns-v2-<map>,unowned-v2-<uid>}/<diff_id>` | unpacked layers, one form per ownership kind (`sandbox::layer_dirs`) |
//! | layer-use | `used/<diff_id>` | an unpacked layer's last use (mtime) |
//! | mounts | `mounts/<hash of id>` | `RUN --mount=type=cache` directories |
//! | sandbox | `sandbox/` | RUN steps' run directories, the probe |
//! | images | `images/` | the local image store (an OCI layout) |
//! | memos | `context-hashes.json`, `file-digests.json`, `registry-blobs.json` | digests and push targets remembered to save time |
//! | tmp | `tmp/` | temporaries of running builds |
//! | root | the directory itself, `lock` | never removed |
//!
//! [`layout::CacheLayout`] names each path once; every other file asks it.
//! [`records::Cache`] reads and writes step records; [`lock`] holds the one
//! locking rule (processes using the cache share a lock, `cache prune`
//! takes it exclusively, so a running build is never broken by a prune);
//! [`usage`] measures every bucket (apparent sizes, as `du -sb`), and
//! [`prune`] removes what a policy selects, including directories of older
//! layouts on every prune.
//!
//! **Adding a cache backend** (`--cache-to/--cache-from`): implement
//! [`remote::Remote`]. Its entries are named by slot and key, so a miss can
//! be explained against the same step's records without reading them all,
//! and they are only ever added and listed, never removed (a directory and
//! a registry are the two today). Cache mount entries
//! ([`remote::mounts`]) are the exception: one per mount id, replaced.

pub mod error;
pub mod layout;
pub mod lock;
pub mod prune;
pub mod records;
pub mod remote;
pub mod usage;

pub use error::Error;
pub use layout::{Bucket, CacheLayout, Memo};
pub use prune::{PrunePolicy, PruneReport};
pub use records::{
    make_private, Cache, Input, Inputs, Listed, Lookup, RecordKind, StepRecord,
    CONTENT_RECORD_MARK, KEY_SCHEME,
};
