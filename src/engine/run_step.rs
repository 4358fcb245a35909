//! RUN steps: the seam to the sandbox.

use super::stage::StageRun;
use crate::frontend::instructions::Run;
use crate::frontend::Scope;

/// Run a RUN step.
pub fn run(
    _run: &mut StageRun,
    _scope: &Scope,
    _k: usize,
    _index: usize,
    _id: usize,
    _r: &Run,
    _text: &str,
) -> anyhow::Result<()> {
    anyhow::bail!("RUN is not available in this build of cairn yet (issue #6)")
}
