//! `cairn check` and `cairn build --check`: run the build checks (see [`crate::check`])
//! and print them as text or JSON (`docs/check-json.md`). Exit status: 0 when nothing
//! fails, 1 when the Dockerfile cannot be built or a violation is an error
//! (`# check=error=true`, or `--build-arg BUILDKIT_DOCKERFILE_CHECK=error=true`).
//!
//! A plain `cairn build` runs the checks too when `error=true` is configured, and stops
//! before any work on a violation, as BuildKit fails such a build.

use super::GlobalArgs;
use crate::check::{self, Options};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `cairn check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The build context directory (its .dockerignore and files are checked too).
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// The Dockerfile (`-` reads it from stdin); default CONTEXT/Dockerfile.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The stage that would be built (default: the last); decides which stage ships.
    #[arg(long)]
    pub target: Option<String>,
    /// Output: text (like parse errors) or json (docs/check-json.md).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// A build argument (KEY=VALUE, or KEY from the environment); BUILDKIT_DOCKERFILE_CHECK replaces the `# check=` directive.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// A named context as `cairn build --build-context` takes it (NAME=DIR, NAME=docker-image://REF,
    /// NAME=oci-layout://DIR…): `FROM NAME` and `--from=NAME` read it, not a stage or an image. Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
}

/// Run `cairn check`.
pub fn run(args: CheckArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    check_and_print(
        &args.context,
        args.file.as_deref(),
        args.target.as_deref(),
        &args.build_args,
        &args.build_contexts,
        &args.format,
    )
}

/// Check, print the report on stdout, and return the exit code (also `build --check`).
pub fn check_and_print(
    context: &Path,
    file: Option<&Path>,
    target: Option<&str>,
    build_args: &[String],
    build_contexts: &[String],
    format: &str,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        context.is_dir(),
        crate::cli::hint::hint(
            anyhow::anyhow!("build context {} is not a directory", context.display()),
            "pass the directory holding your sources, e.g. `cairn check .`"
        )
    );
    let (label, source) = super::build::read_dockerfile(context, file)?;
    // `<Dockerfile>.dockerignore` sits beside a Dockerfile on disk (not one from stdin).
    let on_disk = file
        .is_none_or(|f| f.as_os_str() != "-")
        .then(|| label.clone());
    let opts = Options {
        context: Some(context.to_path_buf()),
        dockerfile_path: on_disk,
        build_args: super::parse::build_args(build_args)?,
        target: target.map(str::to_owned),
        named_contexts: named_contexts(build_contexts)?,
    };
    let report = check::run(&source, &label, &opts).map_err(|e| {
        crate::cli::hint::hint(
            anyhow::Error::new(e),
            "options are skip=<Rule,…|all>, experimental=<Rule,…|all> and error=<true|false>, joined by `;`",
        )
    })?;
    // Written, not printed: a closed stdout (`| head`) ends cairn quietly (see main).
    let mut out = std::io::stdout().lock();
    match format {
        "json" => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&check::render::json(&report))?
        )?,
        _ => write!(out, "{}", check::render::text(&report))?,
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// For `cairn build`: with `error=true` configured (directive or build arg), fail before
/// building when a check is violated, printing the violations on stderr. Otherwise silent.
pub(crate) fn gate(
    context: &Path,
    args: &super::build::BuildArgs,
    dockerfile: &Path,
    source: &str,
    build_args: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let opts = Options {
        context: Some(context.to_path_buf()),
        dockerfile_path: args
            .file
            .as_deref()
            .is_none_or(|f| f.as_os_str() != "-")
            .then(|| dockerfile.to_path_buf()),
        build_args: build_args.clone(),
        target: args.target.clone(),
        named_contexts: named_contexts(&args.build_contexts)?,
    };
    let report = check::run(source, dockerfile, &opts)?;
    let mut names: Vec<&str> = report
        .violations
        .iter()
        .filter(|v| v.severity == crate::frontend::Severity::Error)
        .map(|v| v.rule.name)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort_unstable();
    names.dedup();
    let failed_only = check::Report {
        error: None,
        notes: Vec::new(),
        ..report
    };
    eprint!("{}", check::render::text(&failed_only));
    Err(crate::cli::hint::hint(
        anyhow::anyhow!("lint violation found for rules: {}", names.join(", ")),
        "the Dockerfile's checks are set to error=true: fix them, or skip a rule with # check=skip=<Rule>",
    ))
}

/// `--build-context` values as the planner sees them (checked as `cairn build` checks them).
fn named_contexts(
    items: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, crate::frontend::graph::Named>> {
    let named = super::build::run_flags::build_contexts(items)?;
    Ok(crate::engine::named_context::for_planning(&named))
}
