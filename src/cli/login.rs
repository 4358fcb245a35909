//! `cairn login` and `cairn logout`.

use super::GlobalArgs;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `cairn login`.
#[derive(Debug, Args)]
pub struct LoginArgs {}

/// Arguments of `cairn logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {}

/// Run `cairn login`.
pub fn run_login(_args: LoginArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("login", 4))
}

/// Run `cairn logout`.
pub fn run_logout(_args: LogoutArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("logout", 4))
}
