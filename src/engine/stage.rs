//! One stage: its base, then each instruction in order — config-only ones
//! change the config and history, filesystem ones go through the cache.

use super::cache::{CachedLayer, Inputs, Lookup, RecordKind, StepRecord};
use super::ctx::BuildCtx;
use super::fs::{MergedView, SourceFs, ViewLayer};
use super::history;
use super::record::StepEntry;
use super::state::{ImageState, LayerDesc};
use super::users::UserDb;
use crate::frontend::graph::{Base, PlannedStage};
use crate::frontend::instructions::{Healthcheck, Instruction};
use crate::frontend::Scope;
use crate::image::config::{Empty, Healthcheck as ConfigHealthcheck, ImageConfig};
use crate::report::Event;
use anyhow::Context as _;
use cairn_layers::{DiffId, Digest, Entry};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

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
    Layer(LayerDesc),
    /// Nothing changed.
    Empty,
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
    pub done: &'c BTreeMap<usize, StageResult>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl StageRun<'_, '_> {
    /// The stage's merged filesystem (unpacking its layers on first use).
    pub fn merged_view(&self) -> anyhow::Result<MergedView> {
        view_of(self.ctx, &self.image.layers)
    }

    /// The current WORKDIR (default `/`).
    pub fn workdir(&self) -> String {
        self.image
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
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    /// The current SHELL (default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        self.image
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

    /// Run a cached filesystem step: look `inputs` up; on a miss run `work`
    /// and store what it made.
    pub fn cached_step(
        &mut self,
        id: usize,
        index: usize,
        instruction: &str,
        inputs: Inputs,
        created_by: String,
        work: impl FnOnce(&mut Self) -> anyhow::Result<StepOutcome>,
    ) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let key = inputs.key();
        let slot = self.slot(index);
        let built_here = |k: &Digest| {
            ctx.req
                .built_here
                .lock()
                .is_ok_and(|s| s.contains(&k.to_string()))
        };
        // Another build of the session (another platform) working on the
        // same key finishes first; this one then finds its record.
        let _claim = ctx.session.in_flight.claim(&key.to_string());
        let lookup = if ctx.req.no_cache && !built_here(&key) {
            Lookup::Miss(Some("--no-cache".into()))
        } else if ctx
            .req
            .no_cache_filter
            .iter()
            .any(|f| *f == self.name || *f == self.stage.index.to_string())
        {
            Lookup::Miss(Some(format!("--no-cache-filter {}", self.name)))
        } else {
            let local = ctx.cache.lookup(&inputs, &slot, |l| {
                l.digest
                    .parse::<Digest>()
                    .is_ok_and(|d| ctx.store.contains(&d))
            });
            super::cache_import::lookup(ctx, (&self.name, index), &inputs, &slot, local)?
        };
        let outcome = match lookup {
            Lookup::Hit(rec) => {
                ctx.reporter.event(Event::StepCached { id });
                let _ = ctx.cache.touch_slot(&slot, &key);
                match rec.layer {
                    Some(l) => StepOutcome::Layer(LayerDesc {
                        digest: l.digest.parse()?,
                        diff_id: l.diff_id.parse::<Digest>().map(DiffId)?,
                        size: l.size,
                        media_type: l.media_type,
                    }),
                    None => StepOutcome::Empty,
                }
            }
            Lookup::Miss(reason) => {
                if let Some(r) = reason {
                    ctx.reporter.event(Event::StepMiss { id, reason: r });
                }
                let out = work(self)?;
                let layer = match &out {
                    StepOutcome::Layer(l) => Some(CachedLayer {
                        digest: l.digest.to_string(),
                        diff_id: l.diff_id.to_string(),
                        size: l.size,
                        media_type: l.media_type.clone(),
                    }),
                    StepOutcome::Empty => None,
                };
                let rec = StepRecord {
                    kind: RecordKind::Step,
                    key: key.to_string(),
                    inputs: inputs.clone(),
                    layer,
                };
                ctx.cache.store(&rec, &slot).with_context(|| {
                    format!("writing the cache at {}", ctx.cache.root().display())
                })?;
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
        self.image.fs_key = key;
        match outcome {
            StepOutcome::Layer(l) => self.image.push_layer(l, created_by),
            StepOutcome::Empty => self.image.push_empty(created_by),
        }
        Ok(())
    }
}

/// A merged view over `layers`: the ones this build wrote from memory, plain
/// stage layers read in their blob, the others unpacked on first use.
pub fn view_of(ctx: &BuildCtx, layers: &[LayerDesc]) -> anyhow::Result<MergedView> {
    super::cache_import::materialize(ctx, layers)?;
    let view: Vec<ViewLayer> = layers
        .iter()
        .map(|l| match super::layer_write::indexed(ctx, l) {
            Some(fs) => Ok(ViewLayer::Entries(fs)),
            None => match super::layer_write::index_stage_layer(ctx, l)? {
                Some(fs) => Ok(ViewLayer::Entries(fs)),
                None => ctx.layer_dirs.ensure(l, &ctx.store).map(ViewLayer::Dir),
            },
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(MergedView::with_owners(view, ctx.layer_dirs.owner_map()))
}

/// The unpacked directories of `layers`, bottom first (RUN's overlay lowers).
pub fn layer_dirs_of(ctx: &BuildCtx, layers: &[LayerDesc]) -> anyhow::Result<Vec<PathBuf>> {
    layers
        .iter()
        .map(|l| ctx.layer_dirs.ensure(l, &ctx.store))
        .collect()
}

/// The image's own user database, read from a stage's merged view (which
/// the caller already has: building a second one re-checks every layer).
pub fn user_db(view: &MergedView) -> anyhow::Result<UserDb> {
    Ok(UserDb::parse(
        &read_text(view, "etc/passwd")?,
        &read_text(view, "etc/group")?,
    ))
}

fn read_text(view: &MergedView, path: &str) -> anyhow::Result<String> {
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
/// the steps that change the filesystem (RUN, COPY, ADD, WORKDIR); the
/// config-only ones (ENV, ARG, LABEL, USER, CMD, …) have none.
fn is_shown(inst: &Instruction) -> bool {
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
fn has_from_line(stage: &PlannedStage) -> bool {
    matches!(stage.base, Base::Image(_) | Base::Local(_))
}

/// N of the `[stage i/N]` progress labels, as buildx counts: the FROM line
/// (if any) is 1/N, then each shown step.
fn shown_total(stage: &PlannedStage) -> usize {
    usize::from(has_from_line(stage))
        + stage
            .steps
            .iter()
            .filter(|s| is_shown(&s.instruction))
            .count()
}

/// Report the start of the stage's FROM line, step 1 (ONBUILD triggers run
/// as part of it); returns its step id.
pub(super) fn from_line_started(ctx: &BuildCtx, stage: &PlannedStage, text: String) -> usize {
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
fn shown_stage(stage: &PlannedStage) -> String {
    stage
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{}", stage.index))
}

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
        super::named_context::start_from(&mut run, n)?;
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
