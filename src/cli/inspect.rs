//! `cairn inspect`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {}

/// Run `cairn inspect`.
pub fn run(_args: InspectArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("inspect", 4))
}
