//! `cairn build`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn build`.
#[derive(Debug, Args)]
pub struct BuildArgs {}

/// Run `cairn build`.
pub fn run(_args: BuildArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("build", 5))
}
