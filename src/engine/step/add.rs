//! ADD: COPY plus URL sources (fetched, `--checksum` checked) and local
//! archives unpacked into the destination. Its sources are read by
//! [`crate::engine::add`]; the step is COPY's ([`super::copy::transfer`]).

use super::copy::{transfer, Kind};
use crate::engine::stage_run::{StageRun, StepAt};
use crate::frontend::instructions::Copy;
use crate::frontend::Scope;

/// Run an ADD step.
pub fn add(run: &mut StageRun, scope: &Scope, at: StepAt, c: &Copy) -> super::error::Result<()> {
    transfer(run, scope, at, c, Kind::Add)
}
