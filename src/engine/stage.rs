//! One stage: its base, then each instruction in order — config-only ones
//! change the config and history, filesystem ones go through the cache.

use super::cache::Inputs;
use super::ctx::BuildCtx;
use super::history;
use super::layer_write::Index;
use super::stage_run::{
    from_line_started, has_from_line, is_shown, shown_stage, shown_total, StageResult, StageRun,
    StepOutcome,
};
use super::state::ImageState;
use crate::frontend::graph::{Base, PlannedStage};
use crate::frontend::instructions::{Healthcheck, Instruction};
use crate::frontend::Scope;
use crate::image::config::{Empty, Healthcheck as ConfigHealthcheck, ImageConfig};
use crate::report::Event;
use anyhow::Context as _;
use cairn_layers::{Digest, MtimePolicy};
use std::collections::BTreeMap;
use std::time::Instant;

/// Build one stage.
pub fn run_stage(
    ctx: &BuildCtx,
    stage: &PlannedStage,
    done: &BTreeMap<usize, StageResult>,
) -> anyhow::Result<StageResult> {
    let name = stage
        .name
        .clone()
        .unwrap_or_else(|| stage.index.to_string());
    let (image, mut scope) = match &stage.base {
        // A directory context starts from scratch plus its files (below).
        Base::Scratch | Base::Local(_) => {
            let mut config = ImageConfig {
                architecture: stage.platform.architecture.clone(),
                os: stage.platform.os.clone(),
                variant: Some(stage.platform.variant.clone()).filter(|v| !v.is_empty()),
                ..Default::default()
            };
            config.run_config_mut().set_env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
            let scope = ctx.plan.scope(&[]);
            let image = ImageState {
                config,
                layers: Vec::new(),
                fs_key: Digest::of(b"scratch"),
                created: ctx.created.clone(),
                base: None,
            };
            (image, scope)
        }
        Base::Stage(i) => {
            let parent = done.get(i).ok_or_else(|| {
                anyhow::anyhow!("internal error: stage {i} not built before {name}")
            })?;
            (parent.image.clone(), parent.scope.clone())
        }
        Base::Image(r) => {
            // For messages: a reference never shows a password.
            let shown = crate::registry::reference::redact_credentials(r);
            let id = from_line_started(ctx, stage, format!("FROM {shown}"));
            let t = Instant::now();
            let base = ctx
                .images
                .fetch(r, &stage.platform, &ctx.store, ctx.reporter)
                .map_err(|e| {
                    let d = ctx.df.stages.get(stage.index).map(|s| {
                        crate::frontend::Diagnostic::error(
                            &ctx.df.file,
                            &ctx.df.source,
                            s.image_pos,
                            format!("cannot use base image `{shown}`"),
                        )
                    });
                    match d {
                        Some(d) => e.context(d.to_string()),
                        None => e,
                    }
                })?;
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
            let mut config = base.config.clone();
            config.rootfs.diff_ids = base.layers.iter().map(|l| l.diff_id.to_string()).collect();
            let image = ImageState {
                config,
                layers: base.layers.clone(),
                fs_key: base.digest.clone(),
                created: ctx.created.clone(),
                base: Some(super::state::BaseImage {
                    reference: r.to_string(),
                    layers: base.layers.len(),
                    digest: base.digest.clone(),
                }),
            };
            (image, scope)
        }
    };
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
        .config
        .config
        .as_mut()
        .and_then(|c| c.on_build.take())
        .unwrap_or_default();
    if !triggers.is_empty() {
        super::onbuild::run_triggers(&mut run, &mut scope, &triggers, &mut run_step)?;
    }
    // Shown as buildx numbers them (see `shown_total`); the record and cache
    // slots keep `index` (1-based among all the stage's instructions).
    let total = shown_total(stage);
    let label = shown_stage(stage);
    let mut shown = usize::from(has_from_line(stage));
    for (k, step) in stage.steps.iter().enumerate() {
        let index = k + 1;
        let inst = step
            .instruction
            .expand(&scope)
            .map_err(|e| step.error(ctx.df, e.to_string()))?;
        scope.apply(&inst);
        let text = step.original.clone();
        if !is_shown(&step.instruction) {
            // Config only: buildx shows no line for it, and it has no step id.
            run_step(&mut run, &scope, k, index, 0, &inst, &text).map_err(|e| {
                e.context(step.error(ctx.df, format!("[{label}] {text}")).to_string())
            })?;
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
        let r = run_step(&mut run, &scope, k, index, id, &inst, &text);
        let r = r.map_err(|e| {
            let here = step.error(ctx.df, format!("[{label} {shown}/{total}] {text}"));
            e.context(here.to_string())
        });
        r?;
        ctx.reporter.event(Event::StepDone {
            id,
            elapsed: t.elapsed(),
        });
    }
    Ok(StageResult {
        image: run.image,
        scope,
    })
}

/// `FROM NAME` of a directory context: the stage starts (from scratch) with
/// one layer holding the directory's kept files, as `COPY . /` would write them.
fn start_from(run: &mut StageRun, name: &str) -> anyhow::Result<()> {
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
    run.cached_step(id, 0, &text, inputs, created_by, |run| {
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
    })?;
    ctx.reporter.event(Event::StepDone {
        id,
        elapsed: t.elapsed(),
    });
    Ok(())
}

fn ports(words: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for w in words {
        let (port, proto) = w.split_once('/').unwrap_or((w, "tcp"));
        let port = port.rsplit(':').next().unwrap_or(port);
        let proto = proto.to_ascii_lowercase();
        let (lo, hi) = match port.split_once('-') {
            Some((a, b)) => (a, b),
            None => (port, port),
        };
        let (lo, hi): (u32, u32) = (
            lo.parse().with_context(|| format!("invalid port `{w}`"))?,
            hi.parse().with_context(|| format!("invalid port `{w}`"))?,
        );
        anyhow::ensure!(lo <= hi && hi <= 65535, "invalid port range `{w}`");
        for p in lo..=hi {
            out.push(format!("{p}/{proto}"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) fn run_step(
    run: &mut StageRun,
    scope: &Scope,
    k: usize,
    index: usize,
    id: usize,
    inst: &Instruction,
    text: &str,
) -> anyhow::Result<()> {
    let shell = run.shell();
    match inst {
        Instruction::Env { pairs } => {
            let rc = run.image.config.run_config_mut();
            let mut h = String::from("ENV");
            for p in pairs {
                rc.set_env(&p.key, &p.value);
                h.push_str(&format!(" {}={}", p.key, p.value));
            }
            run.image.push_empty(h);
        }
        Instruction::Label { pairs } => {
            let rc = run.image.config.run_config_mut();
            let labels = rc.labels.get_or_insert_with(BTreeMap::new);
            let mut h = String::from("LABEL");
            for p in pairs {
                labels.insert(p.key.clone(), p.value.clone());
                h.push_str(&format!(" {}={}", p.key, p.value));
            }
            run.image.push_empty(h);
        }
        Instruction::Arg { args } => {
            let items: Vec<String> = args
                .iter()
                .map(|a| match &a.default {
                    Some(d) => format!("{}={}", a.name, d),
                    None => a.name.clone(),
                })
                .collect();
            run.image.push_empty(format!("ARG {}", items.join(" ")));
        }
        Instruction::Expose { ports: words } => {
            let ps = ports(words)?;
            let rc = run.image.config.run_config_mut();
            let map = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &ps {
                map.insert(p.clone(), Empty {});
            }
            run.image
                .push_empty(format!("EXPOSE {}", history::go_list(&ps)));
        }
        Instruction::Volume { paths } => {
            let rc = run.image.config.run_config_mut();
            let map = rc.volumes.get_or_insert_with(BTreeMap::new);
            for p in paths {
                anyhow::ensure!(
                    !p.trim().is_empty(),
                    "VOLUME specified can not be an empty string"
                );
                map.insert(p.trim().to_owned(), Empty {});
            }
            run.image
                .push_empty(format!("VOLUME {}", history::go_list(paths)));
        }
        Instruction::User { user } => {
            run.image.config.run_config_mut().user = Some(user.clone());
            run.image.push_empty(format!("USER {user}"));
        }
        Instruction::StopSignal { signal } => {
            run.image.config.run_config_mut().stop_signal = Some(signal.clone());
            run.image.push_empty(format!("STOPSIGNAL {signal}"));
        }
        Instruction::Healthcheck(hc) => {
            let nanos = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as i64);
            let cfg = match hc {
                Healthcheck::None => ConfigHealthcheck {
                    test: vec!["NONE".into()],
                    ..Default::default()
                },
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => ConfigHealthcheck {
                    test: test.clone(),
                    interval: nanos(*interval),
                    timeout: nanos(*timeout),
                    start_period: nanos(*start_period),
                    start_interval: nanos(*start_interval),
                    retries: retries.map_or(0, i64::from),
                },
            };
            run.image.config.run_config_mut().healthcheck = Some(cfg);
            run.image.push_empty(hc.history());
        }
        Instruction::Cmd { command } => {
            let argv = command.argv(&shell);
            run.image.config.run_config_mut().cmd = Some(argv.clone());
            run.cmd_set = true;
            run.image.push_empty(history::command("CMD", &argv));
        }
        Instruction::Entrypoint { command } => {
            let argv = command.argv(&shell);
            let cmd_set = run.cmd_set;
            let rc = run.image.config.run_config_mut();
            rc.entrypoint = Some(argv.clone());
            if !cmd_set {
                // BuildKit: an ENTRYPOINT resets a CMD inherited from the base.
                rc.cmd = None;
            }
            run.image.push_empty(history::command("ENTRYPOINT", &argv));
        }
        Instruction::Shell { shell } => {
            run.image.config.run_config_mut().shell = Some(shell.clone());
            run.image
                .push_empty(format!("SHELL {}", history::go_list(shell)));
        }
        Instruction::Onbuild(ob) => {
            run.image
                .config
                .run_config_mut()
                .on_build
                .get_or_insert_with(Vec::new)
                .push(ob.trigger.clone());
        }
        Instruction::Maintainer { name } => {
            run.image.config.author = Some(name.clone());
            run.image.push_empty(format!("MAINTAINER {name}"));
        }
        Instruction::Workdir { path } => super::workdir::workdir(run, index, id, path, text)?,
        Instruction::Copy(c) => super::copy_step::copy(run, scope, k, index, id, c, "COPY", text)?,
        Instruction::Add(c) => super::copy_step::copy(run, scope, k, index, id, c, "ADD", text)?,
        Instruction::Run(r) => super::run_step::run(run, scope, k, index, id, r, text)?,
    }
    Ok(())
}
