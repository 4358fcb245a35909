//! The stage graph: resolve each stage's base (scratch, an earlier stage, an image), find
//! what every stage reads from (`COPY --from`, `RUN --mount=from=`), keep only the stages the
//! target needs, and order them so that independent stages can run in parallel.

use super::args::{GlobalArgs, Platform, BUILTIN_ARGS, PROXY_ARGS};
use super::diagnostic::{Diagnostic, Pos, Severity};
use super::expand::Lexer;
use super::instructions::Instruction;
use super::{Dockerfile, Stage, Step};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An earlier stage (by index).
    Stage(usize),
    /// An image reference as written after expansion (not normalised).
    Image(String),
    /// A directory named by `--build-context NAME=DIR`.
    Local(String),
}

/// Where a `COPY --from` or `--mount=from=` reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A stage of this Dockerfile.
    Stage(usize),
    /// An external image.
    Image(String),
    /// A directory named by `--build-context NAME=DIR`.
    Local(String),
}

/// What a `--build-context` name stands for, as far as planning goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A directory: `FROM NAME` starts from its files, `--from=NAME` reads them.
    Local,
    /// An image reference (`docker-image://`, or `oci:DIR…` for `oci-layout://`).
    Image(String),
}

/// Options of a build that affect planning.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--target` (stage name, any case); `None` = the last stage.
    pub target: Option<String>,
    /// `--build-arg KEY=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// The platform cairn runs on.
    pub build_platform: Platform,
    /// `--platform`; `None` = the build platform.
    pub target_platform: Option<Platform>,
    /// `--build-context NAME=…`: names that replace a stage or image of that name.
    pub named_contexts: BTreeMap<String, Named>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            target: None,
            build_args: BTreeMap::new(),
            build_platform: Platform::host(),
            target_platform: None,
            named_contexts: BTreeMap::new(),
        }
    }
}

/// One stage to build.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// Index in the Dockerfile.
    pub index: usize,
    /// Lower-cased name.
    pub name: Option<String>,
    /// The resolved base.
    pub base: Base,
    /// The base after global-ARG expansion, as written otherwise.
    pub base_name: String,
    /// The platform this stage builds for (`FROM --platform`, else the target platform).
    pub platform: Platform,
    /// Stages this one needs first (base stage, `--from` stages, mount sources), sorted.
    pub deps: Vec<usize>,
    /// External images read by `COPY --from` / `--mount=from=` (to pull), in order.
    pub images: Vec<String>,
    /// Where each step's `--from`/`from=` reads, by step index.
    pub sources: BTreeMap<usize, Vec<Source>>,
    /// Position of the `FROM`.
    pub pos: Pos,
    /// The instructions.
    pub steps: Vec<Step>,
}

/// What to build, in which order.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The needed stages in a topological order (ascending index).
    pub stages: Vec<PlannedStage>,
    /// Index (in the Dockerfile) of the target stage.
    pub target: usize,
    /// Groups of stage indices; every stage of a group depends only on earlier groups, so
    /// the stages of one group can run in parallel.
    pub parallel: Vec<Vec<usize>>,
    /// Global ARG values (for `FROM` and for re-declaration in stages).
    pub globals: Arc<GlobalArgs>,
    /// The build args.
    pub build_args: Arc<BTreeMap<String, String>>,
    /// The escape character (for [`super::Scope`]).
    pub escape: char,
    /// Warnings (unused build args, …).
    pub warnings: Vec<Diagnostic>,
}

impl BuildPlan {
    /// The planned stage with Dockerfile index `index`.
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// A fresh [`super::Scope`] for a stage whose base image config has `base_env`.
    /// (For `Base::Stage`, clone the parent stage's final scope instead.)
    pub fn scope(&self, base_env: &[String]) -> super::Scope {
        super::Scope::new(
            self.escape,
            base_env,
            self.globals.clone(),
            self.build_args.clone(),
        )
    }
}

/// Find a stage by name (case-insensitive, as `findStateByName`).
fn by_name(df: &Dockerfile, name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    df.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
}

/// The global args for these options (platform args, TARGETSTAGE, global ARG lines).
pub fn global_args(
    df: &Dockerfile,
    opts: &BuildOptions,
    target_stage: &str,
) -> Result<GlobalArgs, Diagnostic> {
    let target = opts
        .target_platform
        .clone()
        .unwrap_or_else(|| opts.build_platform.clone());
    let mut g = GlobalArgs::automatic(
        &opts.build_platform,
        &target,
        target_stage,
        &opts.build_args,
    );
    let lx = Lexer::new(df.directives.escape);
    for step in &df.global_args {
        if let Instruction::Arg { args } = &step.instruction {
            let mut values = Vec::new();
            for a in args {
                let d = match &a.default {
                    Some(d) => Some(
                        lx.process_word(d, &g)
                            .map_err(|e| step.error(df, e.to_string()))?,
                    ),
                    None => None,
                };
                values.push((a.name.clone(), d));
            }
            for (n, d) in values {
                g.declare(&n, d, &opts.build_args);
            }
        }
    }
    Ok(g)
}

/// Expand a stage's `FROM` image and `--platform` with the global args.
pub fn resolve_base(
    df: &Dockerfile,
    stage: &Stage,
    g: &GlobalArgs,
) -> Result<(Base, String, Option<Platform>), Diagnostic> {
    let lx = Lexer::new(df.directives.escape);
    let err = |m: String| {
        Diagnostic::error(&df.file, &df.source, stage.image_pos, m)
            .with_len(stage.from.image.chars().count())
    };
    let name = lx
        .process_word(&stage.from.image, g)
        .map_err(|e| err(e.to_string()))?;
    if name.is_empty() {
        return Err(err(format!(
            "base name ({}) should not be blank",
            stage.from.image
        ))
        .with_hint("declare the ARG before the first FROM with a default, or pass --build-arg"));
    }
    let platform = match &stage.from.platform {
        None => None,
        Some(p) => {
            let perr = |m: String| {
                Diagnostic::error(
                    &df.file,
                    &df.source,
                    stage.platform_pos.unwrap_or(stage.pos),
                    m,
                )
                .with_len(p.chars().count() + "--platform=".len())
            };
            let v = lx.process_word(p, g).map_err(|e| perr(e.to_string()))?;
            Some(Platform::parse(&v).map_err(|e| perr(e.to_string()))?)
        }
    };
    let base = if name == "scratch" {
        Base::Scratch
    } else {
        match df.stages[..stage.index]
            .iter()
            .position(|s| s.name.as_deref() == Some(name.as_str()))
        {
            Some(i) => Base::Stage(i),
            None => Base::Image(name.clone()),
        }
    };
    Ok((base, name, platform))
}

/// Resolve a `--from` / `from=` value seen in stage `current`.
/// `flag` is `from` (COPY) or `mount` (RUN), for the error position and wording.
fn resolve_source(
    df: &Dockerfile,
    current: usize,
    from: &str,
    step: &Step,
    flag: &str,
) -> Result<Source, Diagnostic> {
    let cur_name = df.stages[current].display_name();
    let verb = if flag == "mount" { "mount" } else { "copy" };
    let forward = |_: usize| {
        step.flag_error(
            df,
            flag,
            format!("cannot {verb} from stage {from:?}, it needs to be defined before current stage {cur_name:?}"),
        )
        .with_hint("move the stage it reads from above this one")
    };
    if let Some(i) = by_name(df, from) {
        return if i < current {
            Ok(Source::Stage(i))
        } else {
            Err(forward(i))
        };
    }
    if let Ok(i) = from.parse::<usize>() {
        if i >= df.stages.len() {
            return Err(step
                .flag_error(df, flag, format!("invalid stage index {i}"))
                .with_hint(format!(
                    "this Dockerfile has {} stages, numbered from 0",
                    df.stages.len()
                )));
        }
        return if i < current {
            Ok(Source::Stage(i))
        } else {
            Err(forward(i))
        };
    }
    Ok(Source::Image(from.to_owned()))
}

/// The index of the target stage: `--target`'s, else the last.
fn target_index(df: &Dockerfile, opts: &BuildOptions) -> Result<usize, Diagnostic> {
    Ok(match &opts.target {
        None => df.stages.len().checked_sub(1).ok_or_else(|| {
            Diagnostic::unlocated(
                Severity::Error,
                &df.file,
                "no build stage: the Dockerfile has no FROM",
            )
        })?,
        Some(t) => by_name(df, t).ok_or_else(|| {
            let names: Vec<&str> = df.stages.iter().filter_map(|s| s.name.as_deref()).collect();
            let d = Diagnostic::unlocated(
                Severity::Error,
                &df.file,
                format!("target stage {t:?} could not be found"),
            );
            if names.is_empty() {
                d.with_hint(
                    "this Dockerfile has no named stages; name one with FROM <image> AS <name>",
                )
            } else {
                d.with_hint(format!("available stages: {}", names.join(", ")))
            }
        })?,
    })
}

/// One stage resolved: its base (a named context in place of its name),
/// what its steps read from other stages, images and named contexts.
fn plan_stage(
    df: &Dockerfile,
    opts: &BuildOptions,
    stage: &Stage,
    globals: &GlobalArgs,
    target_platform: &Platform,
    warnings: &mut Vec<Diagnostic>,
) -> Result<PlannedStage, Diagnostic> {
    let (base, base_name, platform) = resolve_base(df, stage, globals)?;
    // A named context replaces the stage or image of its name (buildx).
    let base = match opts.named_contexts.get(&base_name) {
        Some(Named::Local) => Base::Local(base_name.clone()),
        Some(Named::Image(r)) => Base::Image(r.clone()),
        None => base,
    };
    if let (Base::Image(img), None) = (&base, opts.named_contexts.get(&base_name)) {
        if let Some(later) = df.stages[stage.index..]
            .iter()
            .find(|s| s.name.as_deref() == Some(img.as_str()))
        {
            warnings.push(
                Diagnostic::warning(
                    &df.file,
                    &df.source,
                    stage.pos,
                    format!(
                        "FROM {img:?} uses the image, not the stage defined at line {}",
                        later.pos.line
                    ),
                )
                .with_hint("FROM can only refer to stages defined above it"),
            );
        }
    }
    let mut deps = Vec::new();
    let mut images = Vec::new();
    let mut sources = BTreeMap::new();
    if let Base::Stage(i) = base {
        deps.push(i);
    }
    for (si, step) in stage.steps.iter().enumerate() {
        let (froms, flag): (Vec<&str>, &str) = match &step.instruction {
            Instruction::Copy(c) => (c.from.as_deref().into_iter().collect(), "from"),
            Instruction::Run(r) => (
                r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
                "mount",
            ),
            _ => (Vec::new(), ""),
        };
        for f in froms {
            let src = match opts.named_contexts.get(f) {
                Some(Named::Local) => Source::Local(f.to_owned()),
                Some(Named::Image(r)) => Source::Image(r.clone()),
                None => resolve_source(df, stage.index, f, step, flag)?,
            };
            match &src {
                Source::Stage(i) => deps.push(*i),
                Source::Image(img) => images.push(img.clone()),
                Source::Local(_) => {}
            }
            sources.entry(si).or_insert_with(Vec::new).push(src);
        }
    }
    deps.sort_unstable();
    deps.dedup();
    Ok(PlannedStage {
        index: stage.index,
        name: stage.name.clone(),
        base,
        base_name,
        platform: platform.unwrap_or_else(|| target_platform.clone()),
        deps,
        images,
        sources,
        pos: stage.pos,
        steps: stage.steps.clone(),
    })
}

/// Plan a build of `df` with `opts`.
pub fn plan(df: &Dockerfile, opts: &BuildOptions) -> Result<BuildPlan, Diagnostic> {
    let target = target_index(df, opts)?;
    let target_stage = df.stages[target]
        .name
        .clone()
        .unwrap_or_else(|| "default".into());
    let globals = global_args(df, opts, &target_stage)?;
    let target_platform = opts
        .target_platform
        .clone()
        .unwrap_or_else(|| opts.build_platform.clone());
    let mut warnings = Vec::new();

    // Resolve every stage (errors anywhere in the file are reported, as BuildKit does
    // when it converts all stages), then keep the reachable ones.
    let mut all = Vec::new();
    for stage in &df.stages {
        all.push(plan_stage(
            df,
            opts,
            stage,
            &globals,
            &target_platform,
            &mut warnings,
        )?);
    }

    let mut needed = vec![false; all.len()];
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut needed[i], true) {
            stack.extend(all[i].deps.iter().copied());
        }
    }
    // Every dependency has a smaller index, so index order is topological.
    let mut level = vec![0usize; all.len()];
    for i in 0..all.len() {
        level[i] = all[i].deps.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    let mut parallel: Vec<Vec<usize>> = Vec::new();
    for i in (0..all.len()).filter(|&i| needed[i]) {
        let l = level[i];
        if parallel.len() <= l {
            parallel.resize(l + 1, Vec::new());
        }
        parallel[l].push(i);
    }
    parallel.retain(|g| !g.is_empty());
    let stages: Vec<PlannedStage> = all.into_iter().filter(|s| needed[s.index]).collect();

    // A --build-arg nobody declares is probably a typo.
    for name in opts.build_args.keys() {
        let declared_global = globals.declared().iter().any(|d| d == name);
        let declared_stage =
            stages
                .iter()
                .flat_map(|s| &s.steps)
                .any(|step| match &step.instruction {
                    Instruction::Arg { args } => args.iter().any(|a| &a.name == name),
                    _ => false,
                });
        let predefined = PROXY_ARGS.contains(&name.as_str())
            || BUILTIN_ARGS.contains(&name.as_str())
            || (globals.get(name).is_some() && !declared_global);
        if !(declared_global || declared_stage || predefined) {
            warnings.push(
                Diagnostic::unlocated(
                    Severity::Warning,
                    &df.file,
                    format!("build argument {name:?} is not consumed by any ARG"),
                )
                .with_hint(format!(
                    "declare `ARG {name}` in the stage that uses it, or drop --build-arg {name}"
                )),
            );
        }
    }

    Ok(BuildPlan {
        stages,
        target,
        parallel,
        globals: Arc::new(globals),
        build_args: Arc::new(opts.build_args.clone()),
        escape: df.directives.escape,
        warnings,
    })
}
