//! `cairn parse`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {}

/// Run `cairn parse`.
pub fn run(_args: ParseArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("parse", 3))
}
