//! Build engine: runs the stage graph, one instruction at a time, with a
//! content-addressed cache whose misses are explained (the cache itself, its
//! directory and its records, are in [`crate::cache`]).
//!
//! [`build::build`] parses and plans the Dockerfile, runs independent stages
//! in parallel ([`stage`]), each instruction through [`step::dispatch`] to
//! its kind's file under [`step`] (COPY/ADD planned by [`copy`], ADD's
//! archives and URLs by [`add`]); a stage's running state, which every step
//! acts on, is [`stage_run`], and what one build's steps share is
//! [`ctx::BuildCtx`]. Filesystem steps become layers through the [`cache`];
//! the build ends with the target image's config and manifest. What the
//! builds of one invocation share (the context read once, the cache, the
//! sandbox) is a [`session`]; a multi-platform build ([`multi`]) runs its
//! platforms in one.
//!
//! What a build hands on is a [`build::BuildResult`] ([`result`]) with the
//! views of its layers the SBOM scan reads ([`layer_view`]); an output that
//! asks for another layer compression (zstd, uncompressed) gets it from
//! [`recompress`]; the build record and attestations become OCI artifacts
//! through [`record_artifact`]. The engine never names `attest`, `publish`
//! or `cli` (`house_rules.rs`).

pub mod add;
pub mod bases;
pub mod build;
pub mod cache_import;
pub mod chmod;
pub mod context_mount;
pub mod copy;
pub mod ctx;
pub mod error;
pub mod file_digests;
pub mod fs;
pub mod hash_cache;
pub mod history;
pub mod in_flight;
pub mod isolation;
pub mod layer_reuse;
pub mod layer_view;
pub mod layer_write;
pub mod multi;
pub mod named_context;
pub mod prefetch;
pub mod recompress;
pub mod record;
pub mod record_artifact;
pub mod request;
pub mod result;
pub mod schedule;
pub mod secret_names;
pub mod session;
pub mod snapshot;
pub mod sources;
pub mod speculate;
pub mod stage;
pub mod stage_run;
pub mod state;
pub mod step;
pub mod users;

/// The step cache lives in the cache room; `engine::cache` names it here
/// because every step file speaks of it.
pub use crate::cache;

pub use build::{build, BuildResult};
pub use error::Error;
pub use request::BuildRequest;
