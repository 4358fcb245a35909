//! The running state of one stage, which every step acts on: the image so
//! far, the cached-step protocol (look the inputs up, run on a miss, record),
//! the stage's merged filesystem, and its progress numbering.

use super::cache::{Inputs, Lookup, RecordKind, StepRecord};
use super::ctx::BuildCtx;
use super::fs::{MergedView, SourceFs, ViewLayer};
use super::record::StepEntry;
use super::state::ImageState;
use super::users::UserDb;
use super::Error;
use crate::frontend::graph::{Base, PlannedStage};
use crate::frontend::instructions::Instruction;
use crate::frontend::Scope;
use crate::image::Layer;
use crate::report::Event;
use cairn_layers::{Digest, Entry};
use std::path::PathBuf;

/// A finished stage.
#[derive(Clone, Debug)]
pub struct StageResult {
    /// Its image.
    pub image: ImageState,
    /// Its final expansion scope (inherited by `FROM <stage>`).
    pub scope: Scope,
}

/// What a filesystem step produced.
pub enum StepOutcome {
    /// A layer.
    Layer(Layer),
    /// Nothing changed.
    Empty,
}

/// Where a step stands, as the step files are told besides the instruction.
#[derive(Clone, Copy, Debug)]
pub struct StepAt<'t> {
    /// 0-based position among the stage's instructions (where the planner
    /// recorded its `--from` source; past the end for ONBUILD triggers).
    pub k: usize,
    /// 1-based position: the cache slot's and the build record's.
    pub index: usize,
    /// Its progress step id (0: none).
    pub id: usize,
    /// The instruction as written.
    pub text: &'t str,
}

/// The running state of one stage.
pub struct StageRun<'c, 'a> {
    /// The build.
    pub ctx: &'c BuildCtx<'a>,
    /// The stage.
    pub stage: &'c PlannedStage,
    /// Its name for messages (`builder`, `0`).
    pub name: String,
    /// The image so far.
    pub image: ImageState,
    /// Finished stages this one may read.
    pub done: super::schedule::Done<'c, StageResult>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl StageRun<'_, '_> {
    /// The stage's merged filesystem (unpacking its layers on first use).
    pub fn merged_view(&self) -> Result<MergedView, Error> {
        view_of(self.ctx, &self.image.image.layers)
    }

    /// The current WORKDIR (default `/`).
    pub fn workdir(&self) -> String {
        self.image
            .image
            .config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    /// The current USER (empty: root).
    pub fn user(&self) -> String {
        self.image
            .image
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    /// The current SHELL (default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        self.image
            .image
            .config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// The step's position across builds, which misses are explained against.
    pub fn slot(&self, index: usize) -> String {
        format!(
            "{}|{}|{}",
            self.ctx.req.dockerfile.display(),
            self.name,
            index
        )
    }

    /// Step `index` (1-based) of this stage with `inputs`: a hit in the
    /// local cache or the imported ones (records only: no blob is
    /// fetched), or a miss and why.
    pub fn lookup(&self, index: usize, inputs: &Inputs) -> Result<Lookup, Error> {
        let ctx = self.ctx;
        let key = inputs.key();
        let built_here = |k: &Digest| {
            ctx.req
                .built_here
                .lock()
                .is_ok_and(|s| s.contains(&k.to_string()))
        };
        Ok(if ctx.req.no_cache && !built_here(&key) {
            Lookup::Miss(Some("--no-cache".into()))
        } else if ctx
            .req
            .no_cache_filter
            .iter()
            .any(|f| *f == self.name || *f == self.stage.index.to_string())
        {
            Lookup::Miss(Some(format!("--no-cache-filter {}", self.name)))
        } else {
            let local = ctx.cache.lookup(inputs, &self.slot(index), |l| {
                super::snapshot::present(ctx, self.stage.index, l)
            });
            super::cache_import::lookup(ctx, (&self.name, index), inputs, &self.slot(index), local)?
        })
    }

    /// Whether no step after step `index` (1-based) changes the
    /// filesystem key.
    fn last_fs_step(&self, index: usize) -> bool {
        self.stage
            .steps
            .get(index..)
            .is_some_and(|rest| !rest.iter().any(|s| changes_fs(&s.instruction)))
    }

    /// Run a cached filesystem step: look `inputs` up; on a miss run `work`
    /// and store what it made. `chain` says what the later steps' keys
    /// follow: this step's inputs, or the files its layer holds. `work`
    /// fails with an engine or a step error. `at` names the step: its
    /// progress id, its 1-based index (the cache slot's and the record's)
    /// and its text.
    pub fn cached_step<W: Into<Error>>(
        &mut self,
        at: StepAt,
        inputs: Inputs,
        chain: Chain,
        created_by: String,
        work: impl FnOnce(&mut Self) -> Result<StepOutcome, W>,
    ) -> Result<(), Error> {
        let ctx = self.ctx;
        let StepAt {
            id,
            index,
            text: instruction,
            ..
        } = at;
        let key = inputs.key();
        let slot = self.slot(index);
        // Another build of the session (another platform) working on the
        // same key finishes first; this one then finds its record.
        let _claim = ctx.session.in_flight.claim(&key.to_string());
        let lookup = self.lookup(index, &inputs)?;
        let outcome = match lookup {
            Lookup::Hit(rec) => {
                ctx.reporter.event(Event::StepCached { id });
                let _ = ctx.cache.touch_slot(&slot, &key);
                match rec.layer {
                    Some(l) => StepOutcome::Layer(l),
                    None => StepOutcome::Empty,
                }
            }
            Lookup::Miss(reason) => {
                if let Some(r) = reason {
                    ctx.reporter.event(Event::StepMiss { id, reason: r });
                }
                ctx.session.check_canceled(instruction)?;
                // A stage waiting for this one may work ahead meanwhile.
                let final_key =
                    (chain == Chain::ByInputs && self.last_fs_step(index)).then(|| key.clone());
                self.done.table.busy(self.stage.index, final_key);
                // The layers below are read now: fetched ahead (and
                // unpacked, when a RUN follows) while the step works.
                let below = self.image.image.layers.clone();
                let run_follows =
                    (self.stage.steps.get(index.saturating_sub(1)..)).is_some_and(|s| {
                        s.iter()
                            .any(|s| matches!(s.instruction, Instruction::Run(_)))
                    });
                let out = super::prefetch::around_miss(ctx, &below, run_follows, || work(self))
                    .map_err(Into::into)?;
                let layer = match &out {
                    StepOutcome::Layer(l) => Some(l.clone()),
                    StepOutcome::Empty => None,
                };
                let rec = StepRecord {
                    kind: RecordKind::Step,
                    key: key.to_string(),
                    inputs: inputs.clone(),
                    layer,
                };
                ctx.store_record(&rec, &slot)?;
                if let Ok(mut s) = ctx.req.built_here.lock() {
                    s.insert(key.to_string());
                }
                out
            }
        };
        if let Ok(mut r) = ctx.record.lock() {
            r.steps.push(StepEntry {
                stage: self.name.clone(),
                index,
                instruction: instruction.to_owned(),
                key: Some(key.to_string()),
                inputs,
            });
        }
        self.image.fs_key = match (chain, &outcome) {
            (Chain::ByContent, StepOutcome::Layer(l)) => fs_key_after(&self.image.fs_key, l),
            (Chain::ByContent, StepOutcome::Empty) => self.image.fs_key.clone(),
            (Chain::ByInputs, _) => key,
        };
        match outcome {
            StepOutcome::Layer(l) => self.image.image.with_layer(l, created_by),
            StepOutcome::Empty => self.image.image.with_history(created_by),
        }
        Ok(())
    }
}

/// What the filesystem key after a step follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// The step's inputs (RUN, WORKDIR: as BuildKit, a changed command
    /// re-runs the steps after it even when it wrote the same files).
    ByInputs,
    /// The files the step's layer holds (COPY, ADD, `FROM` a directory).
    /// A copy whose inputs moved but whose files did not
    /// (`COPY --from=pruner /out/json/ .` after a source edit re-ran
    /// `turbo prune`) leaves the later keys as they were, so the `npm ci`
    /// after it stays cached — BuildKit keys a copy by its sources' content.
    ByContent,
}

/// The filesystem's key once `layer` is applied: from its diff_id, hashed
/// as a step's inputs are (no step has only these two, so no step key
/// equals it).
fn fs_key_after(parent: &Digest, layer: &Layer) -> Digest {
    let mut inputs = Inputs::default();
    inputs.push("parent", parent.to_string());
    inputs.push("layer diff_id", layer.diff_id.to_string());
    inputs.key()
}

/// A merged view over `layers`: the ones this build wrote from memory, plain
/// stage layers read in their blob, the others unpacked on first use.
pub fn view_of(ctx: &BuildCtx, layers: &[Layer]) -> Result<MergedView, Error> {
    super::cache_import::materialize(ctx, layers)?;
    let indexed: Vec<Option<_>> = layers
        .iter()
        .map(|l| match super::layer_write::indexed(ctx, l) {
            Some(fs) => Ok(Some(fs)),
            None => super::layer_write::index_stage_layer(ctx, l),
        })
        .collect::<Result<_, _>>()?;
    // The rest unpacked, side by side (a base's layers).
    let unpack: Vec<Layer> = layers
        .iter()
        .zip(&indexed)
        .filter(|(_, fs)| fs.is_none())
        .map(|(l, _)| l.clone())
        .collect();
    let mut dirs = ctx.layer_dirs.ensure_all(&unpack, &ctx.store)?.into_iter();
    let view = indexed
        .into_iter()
        .filter_map(|fs| match fs {
            Some(fs) => Some(ViewLayer::Entries(fs)),
            None => dirs.next().map(ViewLayer::Dir),
        })
        .collect();
    Ok(MergedView::with_owners(view, ctx.layer_dirs.owner_map()))
}

/// The unpacked directories of `layers`, bottom first (RUN's overlay lowers).
pub fn layer_dirs_of(ctx: &BuildCtx, layers: &[Layer]) -> Result<Vec<PathBuf>, Error> {
    Ok(ctx.layer_dirs.ensure_all(layers, &ctx.store)?)
}

/// The image's own user database, read from a stage's merged view (which
/// the caller already has: building a second one re-checks every layer).
pub fn user_db(view: &MergedView) -> Result<UserDb, Error> {
    let read = |path| read_text(view, path).map_err(Error::UserDb);
    Ok(UserDb::parse(&read("etc/passwd")?, &read("etc/group")?))
}

fn read_text(view: &MergedView, path: &str) -> std::io::Result<String> {
    let p = super::fs::resolve(view, path, true)?;
    // A file this build wrote from a heredoc is read from memory, a member
    // of a plain stage layer where it lies in the blob.
    let bytes = match view.lstat(&p)? {
        Some(Entry {
            kind: cairn_layers::EntryKind::File { source, size },
            ..
        }) => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut source.open(size)?, &mut bytes)?;
            bytes
        }
        _ => return Ok(String::new()),
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether progress shows a line for this instruction. As buildx: only
/// the steps that change the filesystem; the config-only ones (ENV, ARG,
/// LABEL, USER, CMD, …) have none.
pub fn is_shown(inst: &Instruction) -> bool {
    changes_fs(inst)
}

/// Whether the step changes the filesystem (and its key): RUN, COPY, ADD,
/// WORKDIR.
pub fn changes_fs(inst: &Instruction) -> bool {
    matches!(
        inst,
        Instruction::Run(_)
            | Instruction::Copy(_)
            | Instruction::Add(_)
            | Instruction::Workdir { .. }
    )
}

/// Whether the stage's FROM has a progress line: an image's, or a directory
/// named context's (its files are a layer); FROM scratch or another stage has none.
pub fn has_from_line(stage: &PlannedStage) -> bool {
    matches!(stage.base, Base::Image(_) | Base::Local(_))
}

/// N of the `[stage i/N]` progress labels, as buildx counts: the FROM line
/// (if any) is 1/N, then each shown step.
pub fn shown_total(stage: &PlannedStage) -> usize {
    usize::from(has_from_line(stage))
        + stage
            .steps
            .iter()
            .filter(|s| is_shown(&s.instruction))
            .count()
}

/// Report the start of the stage's FROM line, step 1 (ONBUILD triggers run
/// as part of it); returns its step id.
pub fn from_line_started(ctx: &BuildCtx, stage: &PlannedStage, text: String) -> usize {
    let id = ctx.step_id();
    ctx.reporter.event(Event::StepStart {
        id,
        stage: shown_stage(stage),
        index: 1,
        total: shown_total(stage),
        text,
    });
    id
}

/// The stage as progress names it: its name, else `stage-N` (as buildx).
pub fn shown_stage(stage: &PlannedStage) -> String {
    stage
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{}", stage.index))
}
