//! `cairn cache …`.

use super::GlobalArgs;
use clap::Subcommand;
use std::process::ExitCode;

/// `cairn cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cache entries.
    Ls {},
    /// Remove cache entries.
    Prune {},
}

/// Run `cairn cache …`.
pub fn run(_cmd: CacheCommand, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("cache", 5))
}
