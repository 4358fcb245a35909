//! `cairn pull`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn pull`.
#[derive(Debug, Args)]
pub struct PullArgs {}

/// Run `cairn pull`.
pub fn run(_args: PullArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("pull", 4))
}
