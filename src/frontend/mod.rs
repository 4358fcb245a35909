//! Dockerfile frontend: the grammar of BuildKit's bundled Dockerfile frontend
//! (`docker/dockerfile:1`), word expansion, ARG/ENV scoping and the stage graph.
//!
//! Steps, one module each:
//! `lexer` (physical lines → logical lines; directives via [`directives`]) →
//! [`ast`] (keyword, `--flags`, arguments, heredocs) → [`instructions`] (typed, every flag
//! checked) → [`parse`] groups them into [`Stage`]s → [`plan`] ([`graph`]) resolves bases
//! and `--from` sources, prunes to `--target` and orders the stages.
//!
//! # Using it from the engine
//!
//! ```no_run
//! use cairn::frontend::{self, BuildOptions, Base, Instruction};
//! use std::path::Path;
//! # fn main() -> Result<(), cairn::frontend::Diagnostic> {
//! let src = std::fs::read_to_string("Dockerfile").unwrap_or_default();
//! let df = frontend::parse(&src, Path::new("Dockerfile"))?;
//! let plan = frontend::plan(&df, &BuildOptions::default())?;
//! for stage in &plan.stages {
//!     // base: Base::Scratch | Base::Stage(i) (clone that stage's final Scope) | Base::Image(r)
//!     //       | Base::Local(name) (a `--build-context` directory)
//!     let mut scope = plan.scope(&[/* base image config Env */]);
//!     for step in &stage.steps {
//!         let inst = step.instruction.expand(&scope).map_err(|e| step.error(&df, e.to_string()))?;
//!         scope.apply(&inst); // ENV and ARG change the scope for later steps
//!         // … execute `inst`; history `created_by` from `step.original` …
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Public API
//!
//! * [`parse`]`(source, file) -> Result<`[`Dockerfile`]`, `[`Diagnostic`]`>`: directives,
//!   syntax [`Node`]s, global `ARG` steps and [`Stage`]s of typed [`Step`]s (each with its
//!   [`Span`], `original` text and `--flag` positions).
//! * [`plan`]`(&Dockerfile, &`[`BuildOptions`]`) -> Result<`[`BuildPlan`]`, Diagnostic>`:
//!   the stages the target needs in a topological order ([`PlannedStage`]: resolved
//!   [`Base`] `Scratch | Stage(i) | Image(ref) | Local(name)`, [`Platform`], `deps`, external
//!   `images`, per-step `--from` [`Source`]s), `parallel` levels, global args and warnings.
//!   `BuildOptions::named_contexts` (`--build-context`) replace the stages and images of their names.
//! * [`Scope`] (from [`BuildPlan::scope`]; clone a parent stage's final scope for
//!   `FROM <stage>`): `expand_word`, `expand_words`, `expand_heredoc`, `set_env`,
//!   `declare_arg`, `apply`, `image_env`, `run_env`, `history_args`.
//! * [`Instruction::expand`]`(&Scope)`: the instruction with every word BuildKit expands
//!   expanded; [`Run::script`] / [`Run::shebang_heredoc`] (heredoc RUN semantics),
//!   [`CommandLine::argv`], [`Healthcheck::test`] / [`Healthcheck::history`],
//!   [`Mount::parse`], [`instructions::expose_ports`], [`instructions::check_signal`].
//!
//! Every error is a [`Diagnostic`] (`FILE:LINE:COL: message`, excerpt, hint). Warnings are
//! in [`Dockerfile::warnings`] and [`BuildPlan::warnings`].
//!
//! The JSON printed by `cairn parse --json` is documented in `docs/parse-json.md` and in
//! `cairn parse` (src/cli/parse.rs).

pub mod args;
pub mod ast;
pub mod diagnostic;
pub mod directives;
pub mod duration;
pub mod expand;
pub mod graph;
pub mod instructions;
pub(crate) mod lexer;
pub mod mount;

pub use args::{GlobalArgs, Platform, Scope};
pub use ast::{Heredoc, Node};
pub use diagnostic::{Diagnostic, Pos, Severity, Span};
pub use directives::Directives;
pub use expand::ExpandError;
pub use graph::{plan, Base, BuildOptions, BuildPlan, PlannedStage, Source};
pub use instructions::{CommandLine, Copy, CopySource, From, Healthcheck, Instruction, Run};
pub use mount::Mount;

use instructions::Ctx;
use std::path::{Path, PathBuf};

/// One instruction of a stage, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The typed instruction (words not yet expanded).
    pub instruction: Instruction,
    /// Position of the keyword and last line.
    pub span: Span,
    /// The instruction as written, continuations joined (heredoc bodies not included).
    pub original: String,
    /// The first source line, for diagnostics raised while building.
    pub excerpt: String,
    /// Each `--flag` as written with its position (for precise diagnostics).
    pub flags: Vec<(String, Pos)>,
}

impl Step {
    /// An error about this step (e.g. an expansion failure while building).
    pub fn error(&self, df: &Dockerfile, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&df.file, &df.source, self.span.start, message)
    }

    /// An error pointing at the first `--name` flag (falls back to the keyword).
    pub fn flag_error(
        &self,
        df: &Dockerfile,
        name: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let prefix = format!("--{name}");
        match self
            .flags
            .iter()
            .find(|(t, _)| t == &prefix || t.starts_with(&format!("{prefix}=")))
        {
            Some((t, pos)) => {
                Diagnostic::error(&df.file, &df.source, *pos, message).with_len(t.chars().count())
            }
            None => self.error(df, message),
        }
    }
}

/// A build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based index (what `COPY --from=0` refers to).
    pub index: usize,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    /// The `FROM` as written.
    pub from: From,
    /// Position of `FROM`.
    pub pos: Pos,
    /// Position of the image word.
    pub image_pos: Pos,
    /// Position of `--platform`, if given.
    pub platform_pos: Option<Pos>,
    /// The instructions after `FROM`.
    pub steps: Vec<Step>,
}

impl Stage {
    /// The name, or the index when unnamed (for messages).
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The path as given (used in diagnostics).
    pub file: PathBuf,
    /// The full source text.
    pub source: String,
    /// Parser directives.
    pub directives: Directives,
    /// The syntax nodes in file order (what `cairn parse` prints).
    pub nodes: Vec<Node>,
    /// `ARG` lines before the first `FROM`.
    pub global_args: Vec<Step>,
    /// The stages in file order.
    pub stages: Vec<Stage>,
    /// Accepted but suspicious constructs.
    pub warnings: Vec<Diagnostic>,
}

/// Parse a Dockerfile. `file` is only used in messages.
pub fn parse(source: &str, file: &Path) -> Result<Dockerfile, Diagnostic> {
    let ast = ast::parse_ast(source, file)?;
    let ctx = Ctx { file, source };
    let mut warnings = ast.warnings;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    // Index the lines once: looking each one up from the start would be quadratic.
    let lines: Vec<&str> = source
        .strip_prefix('\u{feff}')
        .unwrap_or(source)
        .split('\n')
        .collect();
    for node in &ast.nodes {
        let excerpt = lines
            .get(node.span.start.line.saturating_sub(1))
            .map_or("", |l| l.strip_suffix('\r').unwrap_or(l))
            .to_owned();
        if node.keyword == "from" {
            let from = instructions::parse_from(&ctx, node)?;
            if let Some(name) = &from.name {
                if let Some(prev) = stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                    let as_word = node.args.get(2).map_or(node.span.start, |w| w.pos);
                    return Err(ctx
                        .err(as_word, format!("duplicate stage name {name:?}"))
                        .with_hint(format!(
                            "stage {name:?} is already defined at line {}",
                            prev.pos.line
                        )));
                }
                if let Some(w) = node.args.get(2).filter(|w| w.text != *name) {
                    warnings.push(
                        Diagnostic::warning(
                            file,
                            source,
                            w.pos,
                            format!("stage name {:?} should be lowercase", w.text),
                        )
                        .with_hint(format!("stage names are lower-cased; write `AS {name}`")),
                    );
                }
            }
            stages.push(Stage {
                index: stages.len(),
                name: from.name.clone(),
                from,
                pos: node.span.start,
                image_pos: node.args.first().map_or(node.span.start, |w| w.pos),
                platform_pos: node
                    .flags
                    .iter()
                    .find(|f| f.text.starts_with("--platform"))
                    .map(|f| f.pos),
                steps: Vec::new(),
            });
            continue;
        }
        let instruction = instructions::parse_instruction(&ctx, node)?;
        let step = Step {
            instruction,
            span: node.span,
            original: node.original.clone(),
            excerpt,
            flags: node.flags.iter().map(|f| (f.text.clone(), f.pos)).collect(),
        };
        match stages.last_mut() {
            Some(stage) => stage.steps.push(step),
            None if matches!(step.instruction, Instruction::Arg { .. }) => global_args.push(step),
            None => {
                return Err(ctx
                    .err(node.span.start, "no build stage in current context")
                    .with_len(node.keyword_raw.len())
                    .with_hint(
                        "start the Dockerfile with FROM; only ARG may come before the first FROM",
                    ))
            }
        }
    }
    if stages.is_empty() {
        return Err(Diagnostic::unlocated(
            Severity::Error,
            file,
            "no build stage: the Dockerfile has no FROM",
        )
        .with_hint("add FROM <image> (or FROM scratch)"));
    }
    Ok(Dockerfile {
        file: file.to_path_buf(),
        source: source.to_owned(),
        directives: ast.directives,
        nodes: ast.nodes,
        global_args,
        stages,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: &str = "ARG NODE=22\nFROM node:${NODE}-alpine AS deps\nRUN npm ci\nFROM node:${NODE}-alpine AS builder\nCOPY --from=deps /app/node_modules ./node_modules\nFROM node:${NODE}-alpine AS runner\nCOPY --from=builder /app/.next ./.next\nFROM deps AS test\nRUN --mount=type=bind,from=builder,target=/b npm test\n";

    fn plan_for(src: &str, target: Option<&str>) -> Result<BuildPlan, Diagnostic> {
        let df = parse(src, Path::new("Dockerfile"))?;
        plan(
            &df,
            &BuildOptions {
                target: target.map(Into::into),
                ..BuildOptions::default()
            },
        )
    }

    #[test]
    fn target_prunes_and_orders() {
        let p = plan_for(NEXT, Some("RUNNER")).unwrap();
        assert_eq!(
            p.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(p.parallel, [vec![0], vec![1], vec![2]]);
        assert_eq!(p.stages[0].base, Base::Image("node:22-alpine".into()));
        let p = plan_for(NEXT, None).unwrap();
        assert_eq!(p.target, 3);
        assert_eq!(
            p.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 3]
        );
        assert_eq!(p.stage(3).unwrap().base, Base::Stage(0));
        assert_eq!(p.stage(3).unwrap().deps, [0, 1]);
        let p = plan_for(
            "FROM a AS x\nFROM b AS y\nFROM c\nCOPY --from=x / /\nCOPY --from=1 / /\n",
            None,
        )
        .unwrap();
        assert_eq!(p.parallel, [vec![0, 1], vec![2]]);
    }

    #[test]
    fn graph_errors() {
        let e = plan_for(NEXT, Some("nope")).unwrap_err();
        assert_eq!(
            e.headline(),
            "Dockerfile: target stage \"nope\" could not be found"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("available stages: deps, builder, runner, test")
        );
        let e = plan_for("FROM a\nCOPY --from=1 / /\nFROM b\n", None).unwrap_err();
        assert_eq!(e.headline(), "Dockerfile:2:6: cannot copy from stage \"1\", it needs to be defined before current stage \"0\"");
        let e = plan_for("FROM a\nCOPY --from=later / /\nFROM b AS later\n", None).unwrap_err();
        assert!(e
            .headline()
            .starts_with("Dockerfile:2:6: cannot copy from stage \"later\""));
        let e = plan_for("FROM a\nCOPY --from=5 / /\n", None).unwrap_err();
        assert_eq!(e.headline(), "Dockerfile:2:6: invalid stage index 5");
        let e = parse("FROM a AS x\nFROM b AS X\n", Path::new("Dockerfile")).unwrap_err();
        assert_eq!(e.headline(), "Dockerfile:2:11: duplicate stage name \"x\"");
        let e = parse("RUN x\nFROM a\n", Path::new("Dockerfile")).unwrap_err();
        assert_eq!(
            e.headline(),
            "Dockerfile:1:1: no build stage in current context"
        );
        let e = plan_for("ARG X\nFROM ${X}\n", None).unwrap_err();
        assert_eq!(
            e.headline(),
            "Dockerfile:2:6: base name (${X}) should not be blank"
        );
    }

    #[test]
    fn external_images_and_unused_build_args() {
        let df = parse(
            "FROM a\nARG USED\nCOPY --from=nginx:latest /etc/nginx /n\n",
            Path::new("D"),
        )
        .unwrap();
        let mut ba = std::collections::BTreeMap::new();
        ba.insert("USED".to_string(), "1".to_string());
        ba.insert("UNUSED".to_string(), "1".to_string());
        ba.insert("HTTP_PROXY".to_string(), "1".to_string());
        ba.insert("TARGETARCH".to_string(), "1".to_string());
        let p = plan(
            &df,
            &BuildOptions {
                build_args: ba,
                ..BuildOptions::default()
            },
        )
        .unwrap();
        assert_eq!(p.stages[0].images, ["nginx:latest"]);
        let w: Vec<String> = p.warnings.iter().map(|w| w.headline()).collect();
        assert_eq!(
            w,
            ["D: build argument \"UNUSED\" is not consumed by any ARG"]
        );
    }

    #[test]
    fn child_stage_inherits_env_and_args_by_cloning_the_scope() {
        let src = "FROM alpine AS base\nARG V=1\nENV E=$V\nFROM base AS child\nRUN echo $E $V\nFROM alpine AS other\n";
        let df = parse(src, Path::new("D")).unwrap();
        let p = plan(
            &df,
            &BuildOptions {
                target: Some("child".into()),
                ..BuildOptions::default()
            },
        )
        .unwrap();
        let mut scope = p.scope(&["PATH=/bin".into()]);
        for step in &p.stages[0].steps {
            let i = step.instruction.expand(&scope).unwrap();
            scope.apply(&i);
        }
        assert_eq!(p.stages[1].base, Base::Stage(0));
        let child = scope.clone();
        assert_eq!(child.expand_word("$E-$V").unwrap(), "1-1");
        let fresh = p.scope(&[]);
        assert_eq!(fresh.expand_word("${E:-unset}").unwrap(), "unset");
    }

    #[test]
    fn engine_flow_expands_step_by_step() {
        let src = "ARG V=1\nFROM scratch\nARG V\nENV A=$V B=x\nENV A=2 C=$A\nCOPY <<EOF $A/\n$C ${B}\nEOF\nEXPOSE $P 80\n";
        let df = parse(src, Path::new("D")).unwrap();
        let p = plan(&df, &BuildOptions::default()).unwrap();
        let mut scope = p.scope(&[]);
        let mut out = Vec::new();
        for step in &p.stages[0].steps {
            let i = step.instruction.expand(&scope).unwrap();
            scope.apply(&i);
            out.push(i);
        }
        assert_eq!(scope.image_env(), ["A=2", "B=x", "C=1"]);
        let Instruction::Copy(c) = &out[3] else {
            panic!()
        };
        assert_eq!(c.dest, "2/");
        let CopySource::Heredoc(h) = &c.sources[0] else {
            panic!()
        };
        assert_eq!(h.content, "1 x\n");
        assert_eq!(
            out[4],
            Instruction::Expose {
                ports: vec!["80".into()]
            }
        );
    }
}
