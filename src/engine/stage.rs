//! One stage: its base, then each instruction in order — config-only ones
//! change the config and history, filesystem ones go through the cache.

use super::cache::Inputs;
use super::ctx::BuildCtx;
use super::layer_write::Index;
use super::schedule::Done;
use super::stage_run::{
    from_line_started, has_from_line, is_shown, shown_stage, shown_total, StageResult, StageRun,
    StepOutcome,
};
use super::state::ImageState;
use super::step::dispatch;
use super::Error;
use crate::frontend::graph::{Base, PlannedStage};
use crate::frontend::Scope;
use crate::image::config::ImageConfig;
use crate::image::Image;
use crate::report::Event;
use cairn_layers::{Digest, MtimePolicy};
use std::time::Instant;

/// Build one stage.
pub fn run_stage(
    ctx: &BuildCtx,
    stage: &PlannedStage,
    done: Done<'_, StageResult>,
) -> Result<StageResult, Error> {
    let name = stage
        .name
        .clone()
        .unwrap_or_else(|| stage.index.to_string());
    let (image, mut scope) = base(ctx, stage, done, &name)?;
    let mut run = StageRun {
        ctx,
        stage,
        name: name.clone(),
        image,
        done,
        cmd_set: false,
    };
    if let Base::Local(n) = &stage.base {
        start_from(&mut run, n)?;
    }
    // A base image's ONBUILD triggers run right after FROM, then are cleared
    // (they are not inherited by the image being built).
    let triggers = run
        .image
        .image
        .config
        .config
        .as_mut()
        .and_then(|c| c.on_build.take())
        .unwrap_or_default();
    if !triggers.is_empty() {
        super::step::onbuild::run_triggers(&mut run, &mut scope, &triggers, &mut dispatch)?;
    }
    // Shown as buildx numbers them (see `shown_total`); the record and cache
    // slots keep `index` (1-based among all the stage's instructions).
    let total = shown_total(stage);
    let label = shown_stage(stage);
    let mut shown = usize::from(has_from_line(stage));
    done.publish(&run.image);
    for (k, step) in stage.steps.iter().enumerate() {
        // Another stage failed: stop here (its error is the one shown).
        if done.stop() {
            return Err(Error::StageNotBuilt {
                stage: stage.index,
                name,
            });
        }
        let index = k + 1;
        let inst = step
            .instruction
            .expand(&scope)
            .map_err(|e| Error::from(step.error(ctx.df, e.to_string())))?;
        scope.apply(&inst);
        let text = step.original.clone();
        if !is_shown(&step.instruction) {
            // Config only: buildx shows no line for it, and it has no step id.
            dispatch(&mut run, &scope, k, index, 0, &inst, &text)
                .map_err(|e| Error::in_step(step.error(ctx.df, format!("[{label}] {text}")), e))?;
            continue;
        }
        shown += 1;
        let id = ctx.step_id();
        ctx.reporter.event(Event::StepStart {
            id,
            stage: label.clone(),
            index: shown,
            total,
            text: text.clone(),
        });
        let t = Instant::now();
        let r = dispatch(&mut run, &scope, k, index, id, &inst, &text);
        let r = r.map_err(|e| {
            let here = step.error(ctx.df, format!("[{label} {shown}/{total}] {text}"));
            Error::in_step(here, e)
        });
        r?;
        ctx.reporter.event(Event::StepDone {
            id,
            elapsed: t.elapsed(),
        });
        run.done.publish(&run.image);
    }
    Ok(StageResult {
        image: run.image,
        scope,
    })
}

/// The stage's image and scope at its FROM: scratch (also for a directory
/// context, whose files are added after), a finished stage, or a base image.
fn base(
    ctx: &BuildCtx,
    stage: &PlannedStage,
    done: Done<'_, StageResult>,
    name: &str,
) -> Result<(ImageState, Scope), Error> {
    Ok(match &stage.base {
        // A directory context starts from scratch plus its files (below).
        Base::Scratch | Base::Local(_) => {
            let mut config = ImageConfig {
                architecture: stage.platform.architecture.clone(),
                os: stage.platform.os.clone(),
                variant: stage.platform.variant.clone(),
                ..Default::default()
            };
            config.run_config_mut().set_env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
            let scope = ctx.plan.scope(&[]);
            let image = ImageState {
                image: Image::new(config, Vec::new(), ctx.created.clone()),
                fs_key: Digest::of(b"scratch"),
                base: None,
            };
            (image, scope)
        }
        Base::Stage(i) => {
            let parent = done.get(i).ok_or_else(|| Error::StageNotBuilt {
                stage: *i,
                name: name.to_owned(),
            })?;
            (parent.image.clone(), parent.scope.clone())
        }
        Base::Image(r) => {
            // For messages: a reference never shows a password.
            let shown = crate::registry::reference::redact_credentials(r);
            let id = from_line_started(ctx, stage, format!("FROM {shown}"));
            let t = Instant::now();
            // With `--cache-from` (a fresh runner) the layers are pulled
            // only when a step or an output needs their bytes.
            let fetched = match ctx.req.cache_from.is_empty() {
                true => ctx
                    .images
                    .fetch(r, &stage.platform, &ctx.store, ctx.reporter)
                    .map(|b| (b, None)),
                false => ctx
                    .images
                    .fetch_config(r, &stage.platform, &ctx.store, ctx.reporter),
            };
            let (base, lazy) = fetched.map_err(|e| {
                let d = ctx.df.stages.get(stage.index).map(|s| {
                    crate::frontend::Diagnostic::error(
                        &ctx.df.file,
                        &ctx.df.source,
                        s.image_pos,
                        format!("cannot use base image `{shown}`"),
                    )
                });
                match d {
                    Some(at) => Error::BaseImage {
                        at,
                        source: Box::new(e),
                    },
                    None => e,
                }
            })?;
            if let Some(fetch) = lazy {
                ctx.req
                    .cache_from
                    .defer_base(&base.layers, &ctx.store, fetch);
            }
            ctx.reporter.event(Event::StepDone {
                id,
                elapsed: t.elapsed(),
            });
            let env = base
                .config
                .config
                .as_ref()
                .and_then(|c| c.env.clone())
                .unwrap_or_default();
            let scope = ctx.plan.scope(&env);
            let image = ImageState {
                image: Image::new(
                    base.config.clone(),
                    base.layers.clone(),
                    ctx.created.clone(),
                ),
                fs_key: base.digest.clone(),
                base: Some(super::state::BaseImage {
                    reference: r.to_string(),
                    layers: base.layers.len(),
                    digest: base.digest.clone(),
                }),
            };
            (image, scope)
        }
    })
}

/// `FROM NAME` of a directory context: the stage starts (from scratch) with
/// one layer holding the directory's kept files, as `COPY . /` would write them.
fn start_from(run: &mut StageRun, name: &str) -> Result<(), Error> {
    let ctx = run.ctx;
    let local = super::ctx::named_dir(ctx, name)?;
    let text = format!("FROM {name}");
    let id = from_line_started(ctx, run.stage, text.clone());
    let t = std::time::Instant::now();
    let mut inputs = Inputs::default();
    inputs.push("parent", run.image.fs_key.to_string());
    inputs.push("instruction", text.clone());
    for (path, what) in local.content_inputs(ctx.context_hashes())? {
        inputs.push(format!("build context {name} file {path}"), what);
    }
    let (epoch, stage) = (ctx.req.epoch, run.stage.index);
    let created_by = format!("FROM {name} (build context directory)");
    // Index 0: the FROM line's slot; k past every step (it reads no `--from`).
    let at = crate::engine::stage_run::StepAt {
        k: usize::MAX,
        index: 0,
        id,
        text: &text,
    };
    run.cached_step(
        at,
        inputs,
        crate::engine::stage_run::Chain::ByContent,
        created_by,
        |run| -> Result<StepOutcome, Error> {
            let slot = run.slot(0);
            let step = super::layer_reuse::Step {
                id,
                slot: &slot,
                instruction: &text,
                stage,
            };
            let entries = local.as_root_fs()?;
            let layer = super::layer_reuse::write_or_reuse(
                ctx,
                &step,
                entries,
                MtimePolicy::Set(epoch),
                Index::Keep,
            )?;
            Ok(StepOutcome::Layer(layer))
        },
    )?;
    ctx.reporter.event(Event::StepDone {
        id,
        elapsed: t.elapsed(),
    });
    Ok(())
}
