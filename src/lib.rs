//! cairn: a daemonless, reproducible OCI image builder.
//!
//! Data flow, one folder per step:
//! Dockerfile → [`frontend`] (parse, expand, stage graph) → [`engine`] (stages,
//! instructions, cache; RUN through [`sandbox`]) → layers (crate `cairn-layers`)
//! → [`image`] (config, manifest, OCI layout, docker-archive) → [`publish`]
//! (the outputs: local store, OCI layout, docker-archive, filesystem, a push
//! through [`registry`] (pull, push, auth)). [`diff`] explains why two images differ. [`cache`] owns
//! the cache directory: its layout, lock, records, listing and pruning.

pub mod attest;
pub mod cache;
pub mod check;
pub mod cli;
pub mod diff;
pub mod engine;
pub mod env;
pub mod error;
pub mod frontend;
#[cfg(test)]
mod house_rules;
pub mod image;
pub mod memo_file;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod report;
pub mod sandbox;
