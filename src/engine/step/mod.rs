//! The step kinds, one file each with one entry point: [`copy`] (COPY),
//! [`add`] (ADD), [`run`] (RUN), [`workdir`] (WORKDIR), [`metadata`] (the
//! config-only instructions) and [`onbuild`] (ONBUILD, and a base's
//! triggers). [`dispatch`] is the one place an instruction meets its kind.
//! A step acts on the stage's [`crate::engine::stage_run::StageRun`]; no
//! step file imports another's.

pub mod add;
pub mod copy;
pub mod error;
pub mod metadata;
pub mod onbuild;
pub mod run;
pub mod workdir;

pub use error::{Error, Result};

use crate::engine::stage_run::{StageRun, StepAt};
use crate::frontend::instructions::Instruction;
use crate::frontend::Scope;

/// Run one (expanded) instruction of a stage: `k` is its 0-based position
/// (where the planner recorded its `--from` source), `index` the 1-based
/// one the cache slot and record use, `id` its progress step id.
pub fn dispatch(
    run: &mut StageRun,
    scope: &Scope,
    k: usize,
    index: usize,
    id: usize,
    inst: &Instruction,
    text: &str,
) -> error::Result<()> {
    let at = StepAt { k, index, id, text };
    match inst {
        Instruction::Workdir { path } => workdir::workdir(run, at, path),
        Instruction::Copy(c) => copy::copy(run, scope, at, c),
        Instruction::Add(c) => add::add(run, scope, at, c),
        Instruction::Run(r) => run::run(run, scope, at, r),
        Instruction::Onbuild(ob) => {
            onbuild::onbuild(run, ob);
            Ok(())
        }
        Instruction::Env { .. }
        | Instruction::Label { .. }
        | Instruction::Arg { .. }
        | Instruction::Expose { .. }
        | Instruction::Volume { .. }
        | Instruction::User { .. }
        | Instruction::StopSignal { .. }
        | Instruction::Healthcheck(_)
        | Instruction::Cmd { .. }
        | Instruction::Entrypoint { .. }
        | Instruction::Shell { .. }
        | Instruction::Maintainer { .. } => metadata::apply(run, inst),
    }
}
