//! `cairn run`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn run`.
#[derive(Debug, Args)]
pub struct RunArgs {}

/// Run `cairn run`.
pub fn run(_args: RunArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("run", 8))
}
