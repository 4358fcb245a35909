//! `cairn diff`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {}

/// Run `cairn diff`.
pub fn run(_args: DiffArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("diff", 7))
}
