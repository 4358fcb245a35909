//! `cairn doctor`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

/// Run `cairn doctor`.
pub fn run(_args: DoctorArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("doctor", 6))
}
