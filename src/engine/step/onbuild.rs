//! ONBUILD: the instruction stores its trigger in the config ([`onbuild`]);
//! a base image's (or base stage's) stored triggers are each parsed as the
//! instruction they are and run right after the downstream `FROM`, in
//! order, as BuildKit does ([`run_triggers`]).

use super::error::{Error, Result};
use crate::engine::stage_run::StageRun;
use crate::frontend::instructions::{Instruction, OnBuild};
use crate::frontend::{Scope, Step};
use crate::report::Event;
use std::path::Path;
use std::time::Instant;

/// How one parsed trigger is executed: `(run, scope, k, index, id,
/// instruction, text)`, the same arguments the stage's own step dispatch takes.
pub type Dispatch<'d> =
    dyn FnMut(&mut StageRun, &Scope, usize, usize, usize, &Instruction, &str) -> Result<()> + 'd;

/// Run an ONBUILD instruction: store its trigger in the config, for the
/// images built `FROM` this one.
pub fn onbuild(run: &mut StageRun, ob: &OnBuild) {
    run.image
        .image
        .config
        .run_config_mut()
        .on_build
        .get_or_insert_with(Vec::new)
        .push(ob.trigger.clone());
}

/// The step a stored trigger text stands for, validated as BuildKit does.
pub fn parse_trigger(trigger: &str) -> Result<Step> {
    let source = format!("FROM scratch\n{trigger}\n");
    let df =
        crate::frontend::parse(&source, Path::new("ONBUILD")).map_err(|d| Error::TriggerParse {
            trigger: trigger.to_owned(),
            diagnostic: Box::new(d),
        })?;
    if df.stages.len() != 1 {
        return Err(Error::TriggerFrom {
            trigger: trigger.to_owned(),
        });
    }
    let step = df
        .stages
        .into_iter()
        .next()
        .and_then(|s| s.steps.into_iter().next())
        .ok_or(Error::TriggerEmpty)?;
    match &step.instruction {
        Instruction::Onbuild(_) => Err(Error::TriggerChained {
            trigger: trigger.to_owned(),
        }),
        Instruction::Maintainer { .. } => Err(Error::TriggerMaintainer {
            trigger: trigger.to_owned(),
        }),
        _ => Ok(step),
    }
}

/// Run `triggers` in order on `run` (call right after the base is set up,
/// with the triggers taken out of the config so they do not propagate),
/// each through `dispatch`: the stage's own step dispatch.
pub fn run_triggers(
    run: &mut StageRun,
    scope: &mut Scope,
    triggers: &[String],
    dispatch: &mut Dispatch,
) -> Result<()> {
    let ctx = run.ctx;
    for trigger in triggers {
        let step = parse_trigger(trigger)?;
        if let Instruction::Copy(c) | Instruction::Add(c) = &step.instruction {
            if c.from.is_some() {
                return Err(Error::TriggerCopyFrom {
                    trigger: trigger.clone(),
                });
            }
        }
        let inst = step
            .instruction
            .expand(scope)
            .map_err(|reason| Error::TriggerExpand {
                trigger: trigger.clone(),
                reason,
            })?;
        scope.apply(&inst);
        let text = format!("ONBUILD {}", step.original);
        let id = crate::engine::stage_run::from_line_started(ctx, run.stage, text.clone());
        let t = Instant::now();
        // k past every real step: no `--from` source is recorded for triggers.
        dispatch(run, scope, usize::MAX, 0, id, &inst, &step.original).map_err(|e| {
            Error::Trigger {
                stage: run.name.clone(),
                text: step.original.clone(),
                source: Box::new(e),
            }
        })?;
        ctx.reporter.event(Event::StepDone {
            id,
            elapsed: t.elapsed(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bases::NoImages;
    use crate::engine::cache::Cache;
    use crate::engine::ctx::BuildCtx;
    use crate::engine::fs::SourceFs as _;
    use crate::engine::request::BuildRequest;
    use crate::engine::state::ImageState;
    use crate::engine::step::dispatch as run_step;
    use crate::frontend::BuildOptions;
    use crate::sandbox::layer_dirs::LayerDirs;
    use std::collections::BTreeMap;

    /// Run `f` on the scratch stage of a build of `ctx_dir`.
    fn with_stage(ctx_dir: &Path, f: impl FnOnce(&mut StageRun, &mut Scope)) {
        let src = "FROM scratch\n";
        let dockerfile = ctx_dir.join("Dockerfile");
        let cache = tempfile::tempdir().unwrap();
        let df = crate::frontend::parse(src, &dockerfile).unwrap();
        let plan = crate::frontend::plan(&df, &BuildOptions::default()).unwrap();
        let req = BuildRequest {
            context: ctx_dir.to_owned(),
            dockerfile,
            dockerfile_source: src.into(),
            target: None,
            build_args: BTreeMap::new(),
            platform: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            network: None,
            cache_dir: cache.path().to_owned(),
            epoch: 0,
            secrets: BTreeMap::new(),
            isolation: "auto".into(),
            insecure_registries: Vec::new(),
            run_options: Default::default(),
            named_contexts: Default::default(),
            built_here: Default::default(),
            cache_from: Default::default(),
            stage_bytes: false,
        };
        let session = crate::engine::session::Session::with(
            cairn_layers::blob_store::BlobStore::open(cache.path()).unwrap(),
            Cache::open_unlocked(cache.path()).unwrap(),
            LayerDirs::new(&crate::cache::CacheLayout::new(cache.path())).unwrap(),
        );
        let ctx = BuildCtx {
            req: &req,
            df: &df,
            plan: &plan,
            store: session.store.clone(),
            cache: session.cache.clone(),
            layer_dirs: &session.layer_dirs,
            images: &NoImages,
            reporter: &(),
            session: &session,
            next_step: Default::default(),
            record: Default::default(),
            created: "1970-01-01T00:00:00Z".into(),
            run_nanos: Default::default(),
            written: &session.written,
            exported: Default::default(),
        };
        let table: crate::engine::schedule::Table<crate::engine::stage_run::StageResult> =
            crate::engine::schedule::Table::new(1);
        let done = table.view(0);
        let mut run = StageRun {
            ctx: &ctx,
            stage: plan.stage(plan.target).unwrap(),
            name: "0".into(),
            image: ImageState {
                image: crate::image::Image::new(
                    Default::default(),
                    Vec::new(),
                    ctx.created.clone(),
                ),
                fs_key: cairn_layers::Digest::of(b"scratch"),
                base: None,
            },
            done,
            cmd_set: false,
        };
        let mut scope = plan.scope(&[]);
        f(&mut run, &mut scope);
    }

    #[test]
    fn triggers_run_in_order_on_the_downstream_stage() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("package.json"), "{}\n").unwrap();
        with_stage(t.path(), |run, scope| {
            let triggers = [
                "WORKDIR /usr/src/app".to_owned(),
                "COPY package.json ./".to_owned(),
            ];
            run_triggers(run, scope, &triggers, &mut run_step).unwrap();
            assert_eq!(run.workdir(), "/usr/src/app");
            let view = run.merged_view().unwrap();
            let e = view.lstat("usr/src/app/package.json").unwrap().unwrap();
            assert!(matches!(
                e.kind,
                cairn_layers::EntryKind::File { size: 3, .. }
            ));
            let history: Vec<String> = run
                .image
                .image
                .config
                .history
                .iter()
                .filter_map(|h| h.created_by.clone())
                .collect();
            assert_eq!(history.len(), 2, "{history:?}");

            // Any instruction but FROM, MAINTAINER and ONBUILD may be a trigger (as in BuildKit).
            run_triggers(run, scope, &["ENV A=1".to_owned()], &mut run_step).unwrap();
            let env = run
                .image
                .image
                .config
                .config
                .as_ref()
                .and_then(|c| c.env.clone());
            assert_eq!(env, Some(vec!["A=1".to_owned()]));

            for (bad, want) in [
                ("COPY --from=build /x /y", "--from"),
                ("COPY missing.txt /", "missing.txt"),
            ] {
                let e = run_triggers(run, scope, &[bad.to_owned()], &mut run_step).unwrap_err();
                assert!(format!("{e:#}").contains(want), "{bad}: {e:#}");
            }
        });
    }

    #[test]
    fn triggers_parse_as_their_instruction() {
        let s = parse_trigger("COPY package.json /app/").unwrap();
        assert!(matches!(s.instruction, Instruction::Copy(_)));
        let s = parse_trigger("RUN npm ci").unwrap();
        assert!(matches!(s.instruction, Instruction::Run(_)));
    }

    #[test]
    fn forbidden_triggers_are_refused() {
        for (t, want) in [
            ("ONBUILD RUN x", "ONBUILD ONBUILD"),
            ("FROM alpine", "FROM isn't allowed"),
            ("MAINTAINER me", "MAINTAINER isn't allowed"),
            ("BOGUS x", "invalid ONBUILD trigger"),
        ] {
            let e = format!("{:#}", parse_trigger(t).unwrap_err());
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
