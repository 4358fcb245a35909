//! Rules that read the context and its `.dockerignore` as well as the Dockerfile:
//! BuildKit's CopyIgnoredFile, and cairn's UnignoredContextCopy, NpmInstallWithLockfile,
//! NextRandomBuildId, NextRandomServerActionsKey and NextCacheShipped.
//!
//! Also the shell-word helpers the cairn rules share: which commands a `RUN` runs
//! (split at `;`, `&&`, `||`, `|` and newlines, leading `VAR=value` words and shell
//! keywords dropped).

use super::walk::{join, Model};
use super::{Ctx, Finding};
use crate::frontend::instructions::{Copy, CopySource, Instruction};
use crate::frontend::{CommandLine, Dockerfile, Pos, Step};
use std::path::Path;

/// The script a RUN runs (heredoc bodies included; the exec form joined by spaces).
pub(crate) fn run_text(step: &Step) -> Option<String> {
    let Instruction::Run(r) = &step.instruction else {
        return None;
    };
    Some(match &r.command {
        CommandLine::Exec(argv) => argv.join(" "),
        CommandLine::Shell(_) => r.script().unwrap_or_default(),
    })
}

/// The simple commands of a shell text, each as its words.
pub(crate) fn commands(text: &str) -> Vec<Vec<String>> {
    let mut t = text.replace("\\\n", " ");
    for sep in ["&&", "||", ";", "|", "(", ")", "`", "$("] {
        t = t.replace(sep, "\n");
    }
    t.lines()
        .map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_owned())
                .skip_while(|w| {
                    matches!(
                        w.as_str(),
                        "if" | "then" | "else" | "elif" | "do" | "exec" | "export" | "!" | "{"
                    ) || (w.contains('=') && !w.starts_with('-'))
                })
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// The dependency install a command runs (`npm ci`, `yarn install`, …), if any.
pub(crate) fn install(cmd: &[String]) -> Option<String> {
    let w: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let ok = match w.as_slice() {
        ["npm", "ci" | "install" | "i", ..]
        | ["pnpm", "install" | "i", ..]
        | ["bun", "install", ..] => true,
        ["yarn"] | ["yarn", "install", ..] => true,
        ["yarn", flag, ..] => flag.starts_with("--"),
        _ => false,
    };
    ok.then(|| w[..w.len().min(2)].join(" "))
}

/// Whether the command is `npm install`/`npm i` without package names (a lockfile install).
fn plain_npm_install(cmd: &[String]) -> bool {
    matches!(cmd.first().map(String::as_str), Some("npm"))
        && matches!(cmd.get(1).map(String::as_str), Some("install" | "i"))
        && cmd[2..].iter().all(|w| w.starts_with('-'))
}

/// Whether the commands run `next build` (directly, or through the package.json `build`
/// script that does).
fn runs_next_build(cmds: &[Vec<String>], build_script_is_next: bool) -> bool {
    cmds.iter().any(|c| {
        let w: Vec<&str> = c.iter().map(String::as_str).collect();
        w.windows(2).any(|p| p == ["next", "build"])
            || (build_script_is_next
                && matches!(
                    w.as_slice(),
                    ["npm", "run", "build", ..]
                        | ["yarn", "build", ..]
                        | ["yarn", "run", "build", ..]
                        | ["pnpm", "build", ..]
                        | ["pnpm", "run", "build", ..]
                ))
    })
}

fn read(ctx: &Ctx, rel: &str) -> Option<String> {
    std::fs::read_to_string(ctx.context?.join(rel)).ok()
}

fn exists(ctx: &Ctx, rel: &str) -> bool {
    ctx.context.is_some_and(|c| c.join(rel).exists())
}

/// Where `word` first appears in the step (for the column), else the keyword.
pub(crate) fn at(ctx: &Ctx, step: &Step, word: &str) -> (Pos, usize) {
    match ctx.find(step.span.start.line, step.span.end_line, word) {
        Some(p) => (p, word.chars().count()),
        None => (step.span.start, 1),
    }
}

/// The stage a `--from` names (name or index), if it is a stage.
pub(crate) fn from_stage(df: &Dockerfile, from: &str) -> Option<usize> {
    let lower = from.to_ascii_lowercase();
    df.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| from.parse::<usize>().ok().filter(|i| *i < df.stages.len()))
}

fn copy_of(step: &Step) -> Option<&Copy> {
    match &step.instruction {
        Instruction::Copy(c) | Instruction::Add(c) => Some(c),
        _ => None,
    }
}

fn paths(c: &Copy) -> impl Iterator<Item = &str> {
    c.sources.iter().filter_map(|s| match s {
        CopySource::Path(p) => Some(p.as_str()),
        CopySource::Heredoc(_) => None,
    })
}

pub(crate) fn check(ctx: &Ctx, df: &Dockerfile, model: &Model, out: &mut Vec<Finding>) {
    let has_package = exists(ctx, "package.json");
    let lockfile = ["package-lock.json", "npm-shrinkwrap.json"]
        .into_iter()
        .find(|f| exists(ctx, f));
    let build_script_is_next = read(ctx, "package.json")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| {
            v["scripts"]["build"]
                .as_str()
                .map(|b| b.contains("next build"))
        })
        .unwrap_or(false);
    let config_fixes_build_id = [
        "next.config.js",
        "next.config.mjs",
        "next.config.cjs",
        "next.config.ts",
        "next.config.mts",
    ]
    .iter()
    .any(|f| read(ctx, f).is_some_and(|s| s.contains("generateBuildId")));
    // (stage, step index, .next directory) of every `next build`.
    let mut next_builds: Vec<(usize, usize, String)> = Vec::new();
    for (si, stage) in df.stages.iter().enumerate() {
        for (i, step) in stage.steps.iter().enumerate() {
            if let Some(c) = copy_of(step).filter(|c| c.from.is_none()) {
                copy_ignored(ctx, step, c, out);
                unignored_copy(ctx, step, c, has_package, out);
            }
            let Some(text) = run_text(step) else { continue };
            let cmds = commands(&text);
            if let (Some(lock), Some(_)) = (lockfile, cmds.iter().find(|c| plain_npm_install(c))) {
                let (p, l) = at(ctx, step, "npm i");
                out.push(
                    Finding::new(
                        "NpmInstallWithLockfile",
                        p,
                        format!("`npm install` with {lock} in the context: it may resolve newer versions and rewrite the lockfile, so the same commit can install a different tree (a new layer digest)"),
                    )
                    .len(l.max(3))
                    .hint("use `npm ci`: it installs exactly the lockfile and fails if package.json disagrees"),
                );
            }
            if runs_next_build(&cmds, build_script_is_next) {
                let wd = model.stages[si]
                    .workdirs
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "/".into());
                next_builds.push((si, i, join(&wd, ".next")));
                next_build(ctx, df, model, si, i, config_fixes_build_id, out);
            }
        }
    }
    next_cache_shipped(ctx, df, model, &next_builds, out);
}

/// CopyIgnoredFile, as BuildKit decides it: only with an ignore file without `!`
/// exceptions; `.` and `/` only when a pattern excludes everything (`*`, `**`, `**/*`).
fn copy_ignored(ctx: &Ctx, step: &Step, c: &Copy, out: &mut Vec<Finding>) {
    let Some(m) = ctx.ignore else { return };
    if m.patterns().iter().any(|p| p.is_exception()) {
        return;
    }
    let add = matches!(step.instruction, Instruction::Add(_));
    for src in paths(c) {
        if src.contains('$') || src.contains("://") || src.starts_with("git@") {
            continue;
        }
        let clean = cairn_layers::dockerignore::clean(src);
        let excluded = if clean == "." || clean == "/" {
            m.patterns()
                .iter()
                .any(|p| matches!(p.text(), "*" | "**" | "**/*"))
        } else {
            m.is_excluded(&clean)
        };
        if excluded {
            let (p, l) = at(ctx, step, src);
            let verb = if add { "Add" } else { "Copy" };
            out.push(
                Finding::new(
                    "CopyIgnoredFile",
                    p,
                    format!("Attempting to {verb} file {clean:?} that is excluded by .dockerignore"),
                )
                .len(l)
                .hint(format!("the file is not in the context; remove it from .dockerignore (`!{clean}`) or from this {}", verb.to_uppercase())),
            );
        }
    }
}

/// UnignoredContextCopy: `COPY . …` while the ignore file lets in what changes on every
/// local install, commit or build.
fn unignored_copy(ctx: &Ctx, step: &Step, c: &Copy, has_package: bool, out: &mut Vec<Finding>) {
    let Some(whole) = paths(c).find(|s| {
        let cl = cairn_layers::dockerignore::clean(s);
        cl == "." || cl == "/"
    }) else {
        return;
    };
    let mut leaks: Vec<&str> = Vec::new();
    for name in ["node_modules", ".git", ".env", ".next"] {
        let node_only = matches!(name, "node_modules" | ".next");
        if node_only && !has_package {
            continue;
        }
        let ignored = ctx.ignore.is_some_and(|m| m.is_excluded(name))
            || c.exclude.iter().any(|e| e.trim_end_matches('/') == name);
        if !ignored {
            leaks.push(name);
        }
    }
    if leaks.is_empty() {
        return;
    }
    let (p, l) = at(ctx, step, whole);
    let list = leaks.join(", ");
    out.push(
        Finding::new(
            "UnignoredContextCopy",
            p,
            format!("this copies the whole context and .dockerignore lets in {list}: any local install, commit or build changes the layer and misses the cache (and .env can put secrets in the image)"),
        )
        .len(l)
        .hint(format!("add to .dockerignore: {}", leaks.iter().map(|n| if *n == ".env" { ".env*" } else { n }).collect::<Vec<_>>().join(" "))),
    );
}

/// NextRandomBuildId and NextRandomServerActionsKey at a `next build` step.
fn next_build(
    ctx: &Ctx,
    df: &Dockerfile,
    model: &Model,
    si: usize,
    i: usize,
    config_fixed: bool,
    out: &mut Vec<Finding>,
) {
    let step = &df.stages[si].steps[i];
    // Every step of the stage chain up to and including the build.
    let chain = model.chain(si);
    let mut before: Vec<&Step> = Vec::new();
    for &s in chain.iter().rev() {
        let steps = &df.stages[s].steps;
        let upto = if s == si { i + 1 } else { steps.len() };
        before.extend(&steps[..upto]);
    }
    let text_mentions = |needle: &str| {
        before.iter().any(|s| {
            s.original.contains(needle)
                || match &s.instruction {
                    Instruction::Run(r) => r.heredocs.iter().any(|h| h.content.contains(needle)),
                    Instruction::Copy(c) | Instruction::Add(c) => c
                        .sources
                        .iter()
                        .any(|x| matches!(x, CopySource::Heredoc(h) if h.content.contains(needle))),
                    _ => false,
                }
        })
    };
    let (p, l) = at(ctx, step, "build");
    if !config_fixed && !text_mentions("generateBuildId") {
        out.push(
            Finding::new(
                "NextRandomBuildId",
                p,
                "`next build` without a fixed generateBuildId: Next.js picks a random BUILD_ID, written into .next and the page manifests, so every build gives a new digest",
            )
            .len(l)
            .hint("set `generateBuildId: async () => process.env.GIT_SHA ?? \"release\"` in next.config.js"),
        );
    }
    const KEY: &str = "NEXT_SERVER_ACTIONS_ENCRYPTION_KEY";
    if !model.stages[si].vars.contains_key(KEY) && !text_mentions(KEY) {
        out.push(
            Finding::new(
                "NextRandomServerActionsKey",
                p,
                format!("`next build` without {KEY}: Next.js generates a new Server Actions key per build (in .next/server/server-reference-manifest.json), so every build gives a new digest"),
            )
            .len(l)
            .hint(format!("pass a fixed key as a secret: RUN --mount=type=secret,id=next_actions_key,env={KEY} npm run build")),
        );
    }
}

/// NextCacheShipped: a COPY --from into a stage that ships brings `.next/cache` and
/// `.next/trace` along (the whole `.next`, or a directory above it).
fn next_cache_shipped(
    ctx: &Ctx,
    df: &Dockerfile,
    model: &Model,
    builds: &[(usize, usize, String)],
    out: &mut Vec<Finding>,
) {
    for si in model.ships() {
        for step in &df.stages[si].steps {
            let Some(c) = copy_of(step) else { continue };
            // A `--build-context` of that name replaces the stage.
            let Some(from) = c
                .from
                .as_deref()
                .filter(|f| !ctx.named.contains_key(*f))
                .and_then(|f| from_stage(df, f))
            else {
                continue;
            };
            let chain = model.chain(from);
            let Some((bs, bi, next_dir)) = builds.iter().find(|(s, _, _)| chain.contains(s)) else {
                continue;
            };
            // A later `rm -rf .next/cache` in the build stage cleans it up.
            let cleaned = df.stages[*bs].steps[bi + 1..]
                .iter()
                .filter_map(run_text)
                .any(|t| t.contains("rm ") && t.contains(".next/cache"));
            let excluded = c.exclude.iter().any(|e| e.contains("cache"));
            if cleaned || excluded {
                continue;
            }
            for src in paths(c) {
                let abs = join("/", src);
                let under =
                    abs == "/" || *next_dir == abs || next_dir.starts_with(&format!("{abs}/"));
                if under && !Path::new(&abs).starts_with(format!("{next_dir}/standalone")) {
                    let (p, l) = at(ctx, step, src);
                    out.push(
                        Finding::new(
                            "NextCacheShipped",
                            p,
                            format!("copies {abs} with {next_dir}/cache and {next_dir}/trace into the image: the build cache differs after every build, so this layer never repeats (and ships the cache)"),
                        )
                        .len(l)
                        .hint("copy .next/standalone and .next/static only, or add --exclude=.next/cache --exclude=.next/trace"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(s: &str) -> Vec<Vec<String>> {
        commands(s)
    }

    #[test]
    fn finds_installs_in_shell_text() {
        let c = cmds("if [ -f yarn.lock ]; then yarn --frozen-lockfile; elif [ -f package-lock.json ]; then npm ci --no-audit; fi");
        let found: Vec<String> = c.iter().filter_map(|c| install(c)).collect();
        assert_eq!(found, ["yarn --frozen-lockfile", "npm ci"]);
        let c = cmds("NODE_EXTRA_CA_CERTS=/x npm_config_cafile=/x npm install --no-audit");
        assert!(plain_npm_install(&c[0]));
        assert!(!plain_npm_install(&cmds("npm install -g pnpm")[0]));
        assert!(install(&cmds("npm run build")[0]).is_none());
        assert!(runs_next_build(&cmds("npx next build"), false));
        assert!(runs_next_build(&cmds("npm run build"), true));
        assert!(!runs_next_build(&cmds("npm run build"), false));
    }
}
