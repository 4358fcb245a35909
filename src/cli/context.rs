//! `cairn context …`: what a build would see of its context.

use super::GlobalArgs;
use anyhow::Context as _;
use cairn_layers::context::{BuildContext, ContextError};
use cairn_layers::dockerignore::Matcher;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `cairn context` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List the context paths a build would see (after .dockerignore), sorted.
    Ls(LsArgs),
}

/// Arguments of `cairn context ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The build context directory.
    #[arg(default_value = ".", value_name = "CONTEXT")]
    pub context: PathBuf,
    /// The Dockerfile; `<DOCKERFILE>.dockerignore` beside it replaces the context's .dockerignore.
    #[arg(short = 'f', long = "file", value_name = "DOCKERFILE")]
    pub dockerfile: Option<PathBuf>,
    /// Instead of listing, say which .dockerignore line decides whether PATH is sent.
    #[arg(long, value_name = "PATH")]
    pub explain: Option<String>,
}

/// Run `cairn context …`.
pub fn run(cmd: ContextCommand, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        ContextCommand::Ls(args) => ls(&args),
    }
}

fn ls(args: &LsArgs) -> anyhow::Result<ExitCode> {
    if let Some(df) = &args.dockerfile {
        if !df.is_file() {
            return Err(crate::cli::hint::hint(
                anyhow::anyhow!("Dockerfile `{}` does not exist", df.display()),
                "pass the Dockerfile's path with -f, relative to the current directory",
            ));
        }
    }
    let ctx = BuildContext::open(&args.context, args.dockerfile.as_deref()).map_err(with_hint)?;
    let entries = ctx.walk().map_err(with_hint)?;
    let mut out = std::io::stdout().lock();
    match &args.explain {
        None => {
            for e in &entries {
                let slash = if e.is_dir() { "/" } else { "" };
                writeln!(out, "{}{slash}", e.path)?;
            }
        }
        Some(path) => {
            let sent = |p: &str| entries.iter().any(|e| e.path == p);
            let exists = ctx
                .root()
                .join(cairn_layers::dockerignore::clean(path))
                .symlink_metadata()
                .is_ok();
            write!(out, "{}", explain(ctx.matcher(), path, &sent, exists))?;
        }
    }
    out.flush().context("writing the listing")?;
    Ok(ExitCode::SUCCESS)
}

/// The `--explain` report for `path`.
fn explain(matcher: &Matcher, path: &str, sent: &dyn Fn(&str) -> bool, exists: bool) -> String {
    let e = matcher.explain(path);
    let mut text = match e.decided_by.map(|i| &matcher.patterns()[i]) {
        None if matcher.source().is_none() && matcher.is_empty() => {
            format!("{}: included: no .dockerignore applies\n", e.path)
        }
        None => format!("{}: included: no pattern matches it\n", e.path),
        Some(p) => {
            let verdict = if e.excluded { "excluded" } else { "included" };
            let via = match e.matched.as_deref() {
                Some(m) if m != e.path => format!(" (it matches the parent directory `{m}`)"),
                _ => String::new(),
            };
            format!(
                "{}: {verdict} by {}: `{}`{via}\n",
                e.path,
                p.location(),
                p.raw()
            )
        }
    };
    if e.excluded && sent(&e.path) {
        text.push_str("note: still sent, as the parent directory of included paths\n");
    }
    if !exists {
        text.push_str(&format!(
            "note: `{}` does not exist in the context\n",
            e.path
        ));
    }
    text
}

fn with_hint(err: ContextError) -> anyhow::Error {
    let hint = match &err {
        ContextError::NotFound { .. } | ContextError::NotADirectory { .. } => {
            "run `cairn context ls DIR` with the directory that holds your sources"
        }
        ContextError::Ignore(_) => {
            "patterns use Docker's syntax: https://docs.docker.com/build/concepts/context/#dockerignore-files"
        }
        _ => return err.into(),
    };
    crate::cli::hint::hint(err, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text.as_bytes(), Some(Path::new("ctx/.dockerignore"))).unwrap()
    }

    #[test]
    fn explain_reports() {
        let matcher = m("# c\nbuild\n!build/keep\n");
        let never = |_: &str| false;
        assert_eq!(
            explain(&matcher, "build/x", &never, true),
            "build/x: excluded by ctx/.dockerignore:2: `build` (it matches the parent directory `build`)\n"
        );
        assert_eq!(
            explain(&matcher, "./build/keep", &never, true),
            "build/keep: included by ctx/.dockerignore:3: `!build/keep`\n"
        );
        assert_eq!(
            explain(&matcher, "src", &never, false),
            "src: included: no pattern matches it\nnote: `src` does not exist in the context\n"
        );
        assert_eq!(
            explain(&matcher, "build", &|_| true, true),
            "build: excluded by ctx/.dockerignore:2: `build`\nnote: still sent, as the parent directory of included paths\n"
        );
        assert_eq!(
            explain(&Matcher::empty(), "a", &never, true),
            "a: included: no .dockerignore applies\n"
        );
    }
}
