//! `cairn parse`: parse a Dockerfile, plan it for a target, and print it.
//!
//! The default output is a readable listing; `--json` prints one JSON document (keys in
//! sorted order, see `docs/parse-json.md`):
//!
//! ```json
//! {
//!   "directives": {"syntax": "docker/dockerfile:1" | null, "escape": "\\", "check": null},
//!   "stages": [{"index": 0, "name": "deps" | null, "base": "node:22-alpine",
//!               "base_raw": "node:${NODE}-alpine", "platform": "$BUILDPLATFORM" | null,
//!               "needed": true}],
//!   "instructions": [{"stage": 0 | null, "line": 12, "end_line": 14, "instruction": "run",
//!                     "flags": ["--mount=type=cache,target=/root/.npm"], "json": false,
//!                     "args": ["npm ci"],
//!                     "heredocs": [{"name": "EOF", "content": "…\n", "expand": true, "chomp": false}]}],
//!   "target": 2, "order": [0, 1, 2], "parallel": [[0], [1], [2]],
//!   "warnings": ["Dockerfile:3:1: …"]
//! }
//! ```
//!
//! `base` is the `FROM` image after expansion with the global ARGs (and `--build-arg`);
//! `base_raw` is as written. `args` holds the JSON items for the exec form, the command text
//! (continuations joined) for the shell form, and `KEY=value` for `ENV`/`LABEL`.
//! `stage` is `null` for global `ARG`s before the first `FROM`.

use super::GlobalArgs;
use crate::frontend::{self, BuildOptions, BuildPlan, Diagnostic, Dockerfile, Node, Platform};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `cairn parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The Dockerfile (`-` reads standard input).
    #[arg(
        short = 'f',
        long = "file",
        default_value = "Dockerfile",
        value_name = "FILE"
    )]
    pub file: PathBuf,
    /// Print JSON instead of the readable listing.
    #[arg(long)]
    pub json: bool,
    /// The stage to build (default: the last one); only what it needs is planned.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// A build argument (`KEY=VALUE`, or `KEY` to take it from the environment); repeatable.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The target platform (`os/arch[/variant]`; default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

/// `--build-arg` values: `K=V`, or `K` alone taking `$K` from the environment (skipped when
/// unset, as docker does).
pub fn build_args(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some(("", _)) => anyhow::bail!("invalid --build-arg {a:?}: the name is empty"),
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Parse and plan `source`.
pub fn load(
    source: &str,
    file: &Path,
    opts: &BuildOptions,
) -> Result<(Dockerfile, BuildPlan), Diagnostic> {
    let df = frontend::parse(source, file)?;
    let plan = frontend::plan(&df, opts)?;
    Ok((df, plan))
}

fn node_args(n: &Node) -> Vec<String> {
    if n.keyword == "env" || n.keyword == "label" {
        n.args
            .chunks(2)
            .map(|p| {
                p.iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join("=")
            })
            .collect()
    } else {
        n.args.iter().map(|w| w.text.clone()).collect()
    }
}

fn node_json(n: &Node) -> Value {
    let mut v = json!({
        "line": n.span.start.line,
        "end_line": n.span.end_line,
        "instruction": n.keyword,
        "flags": n.flags.iter().map(|w| w.text.clone()).collect::<Vec<_>>(),
        "json": n.json,
        "args": node_args(n),
        "heredocs": n.heredocs,
    });
    if let Some(sub) = &n.sub {
        v["trigger"] = node_json(sub);
    }
    v
}

fn stage_of(df: &Dockerfile, line: usize) -> Option<usize> {
    df.stages
        .iter()
        .rev()
        .find(|s| s.pos.line <= line)
        .map(|s| s.index)
}

/// The JSON document of `cairn parse --json`.
pub fn to_json(df: &Dockerfile, plan: &BuildPlan) -> Value {
    let stages: Vec<Value> = df
        .stages
        .iter()
        .map(|s| {
            let planned = plan.stage(s.index);
            let base = match planned {
                Some(p) => p.base_name.clone(),
                None => frontend::graph::resolve_base(df, s, &plan.globals)
                    .map_or_else(|_| s.from.image.clone(), |b| b.1),
            };
            json!({
                "index": s.index,
                "name": s.name,
                "base": base,
                "base_raw": s.from.image,
                "platform": s.from.platform,
                "needed": planned.is_some(),
            })
        })
        .collect();
    let instructions: Vec<Value> = df
        .nodes
        .iter()
        .map(|n| {
            let mut v = node_json(n);
            v["stage"] = json!(stage_of(df, n.span.start.line));
            v
        })
        .collect();
    let warnings: Vec<String> = df
        .warnings
        .iter()
        .chain(&plan.warnings)
        .map(Diagnostic::headline)
        .collect();
    json!({
        "directives": df.directives,
        "stages": stages,
        "instructions": instructions,
        "target": plan.target,
        "order": plan.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        "parallel": plan.parallel,
        "warnings": warnings,
    })
}

fn text_node(out: &mut String, n: &Node, indent: &str) {
    let lines = if n.span.end_line > n.span.start.line {
        format!("{}-{}", n.span.start.line, n.span.end_line)
    } else {
        n.span.start.line.to_string()
    };
    let mut line = format!("{indent}{lines:<8}{}", n.keyword.to_uppercase());
    for f in &n.flags {
        line.push(' ');
        line.push_str(&f.text);
    }
    if n.json {
        line.push_str(&format!(" {}", json!(node_args(n))));
    } else if let Some(sub) = &n.sub {
        out.push_str(&line);
        out.push('\n');
        text_node(out, sub, &format!("{indent}  "));
        return;
    } else {
        for a in node_args(n) {
            line.push(' ');
            line.push_str(&a);
        }
    }
    out.push_str(&line);
    out.push('\n');
    for h in &n.heredocs {
        let mode = match (h.expand, h.chomp) {
            (true, false) => "expanded",
            (false, false) => "literal",
            (true, true) => "expanded, tabs stripped",
            (false, true) => "literal, tabs stripped",
        };
        out.push_str(&format!("{indent}        <<{} ({mode})\n", h.name));
        for l in h.content.lines() {
            out.push_str(&format!("{indent}        | {l}\n"));
        }
    }
}

/// The readable listing of `cairn parse`.
pub fn to_text(df: &Dockerfile, plan: &BuildPlan) -> String {
    let mut out = String::new();
    let d = &df.directives;
    if let Some(s) = &d.syntax {
        out.push_str(&format!("# syntax={s}\n"));
    }
    if d.escape != '\\' {
        out.push_str(&format!("# escape={}\n", d.escape));
    }
    if let Some(c) = &d.check {
        out.push_str(&format!("# check={c}\n"));
    }
    let mut current = None;
    for n in &df.nodes {
        let st = stage_of(df, n.span.start.line);
        if st != current || current.is_none() && out.is_empty() {
            current = st;
            match st.and_then(|i| df.stages.get(i)) {
                None => out.push_str("global args:\n"),
                Some(s) => {
                    let name = s
                        .name
                        .as_deref()
                        .map(|n| format!(" {n}"))
                        .unwrap_or_default();
                    let base = plan
                        .stage(s.index)
                        .map_or("(not needed)".to_owned(), |p| match &p.base {
                            frontend::Base::Scratch => "scratch".to_owned(),
                            frontend::Base::Stage(i) => format!("stage {i}"),
                            frontend::Base::Image(r) => format!("image {r}"),
                            frontend::Base::Local(n) => format!("build context {n}"),
                        });
                    out.push_str(&format!("stage {}{name}: {base}\n", s.index));
                }
            }
        }
        text_node(&mut out, n, "  ");
    }
    let groups: Vec<String> = plan
        .parallel
        .iter()
        .map(|g| {
            g.iter()
                .map(|i| df.stages[*i].display_name())
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect();
    out.push_str(&format!(
        "target: {} (build order: {})\n",
        df.stages[plan.target].display_name(),
        groups.join(" -> ")
    ));
    out
}

/// Run `cairn parse`.
pub fn run(args: ParseArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (source, label) = if args.file.as_os_str() == "-" {
        let label = PathBuf::from("<stdin>");
        (super::dockerfile::read_stdin(&label)?, label)
    } else {
        // `-f` defaults to ./Dockerfile: a missing one was not named.
        let given = args.file != Path::new("Dockerfile");
        (
            super::dockerfile::read_file(&args.file, given)?,
            args.file.clone(),
        )
    };
    let mut opts = BuildOptions {
        target: args.target,
        build_args: build_args(&args.build_args)?,
        ..BuildOptions::default()
    };
    if let Some(p) = &args.platform {
        opts.target_platform = Some(Platform::parse(p).map_err(anyhow::Error::msg)?);
    }
    let (df, plan) = load(&source, &label, &opts)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&to_json(&df, &plan))?
        )?;
    } else {
        for w in df.warnings.iter().chain(&plan.warnings) {
            eprintln!("warning: {w}");
        }
        write!(stdout, "{}", to_text(&df, &plan))?;
    }
    Ok(ExitCode::SUCCESS)
}
