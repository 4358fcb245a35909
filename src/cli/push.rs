//! `cairn push`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn push`.
#[derive(Debug, Args)]
pub struct PushArgs {}

/// Run `cairn push`.
pub fn run(_args: PushArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("push", 4))
}
