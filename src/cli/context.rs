//! `cairn context …`.

use super::GlobalArgs;
use clap::Subcommand;
use std::process::ExitCode;

/// `cairn context` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List the context paths a build would see.
    Ls {},
}

/// Run `cairn context …`.
pub fn run(_cmd: ContextCommand, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("context ls", 2))
}
