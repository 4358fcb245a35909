//! `cairn-layers`: the filesystem-to-layer machinery of cairn.
//!
//! Pure and synchronous: no network, no async, no CLI. Data flows
//! context (walk + `.dockerignore`) → [`entry::Entry`] list → deterministic
//! tar ([`tar`], [`layer`]: the one tar writer) → gzip ([`compress`],
//! [`pgzip`]) → [`blob_store`], and back through safe [`unpack`]ing. Every
//! tar cairn reads goes through [`tar_read`]; whiteouts are spelled by
//! [`whiteout`], kept xattrs chosen by [`xattr`], Go's `filepath.Match` is
//! [`pattern`].
#![deny(missing_docs)]

pub mod blob_store;
pub mod compress;
pub mod context;
pub mod digest;
pub mod dockerignore;
pub mod entry;
pub mod layer;
pub mod pattern;
pub mod pgzip;
pub mod raw_name;
pub mod tar;
mod tar_header;
pub mod tar_index;
pub mod tar_read;
pub mod unpack;
pub mod whiteout;
pub mod xattr;

pub use compress::Compression;
pub use digest::{DiffId, Digest};
pub use entry::{Entry, EntryKind, Source};
pub use layer::{gzip_blob, write_layer, Layer, LayerError, LayerOptions};
pub use tar::{sort_entries, LayerWriter, MtimePolicy};
