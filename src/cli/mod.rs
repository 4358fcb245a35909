//! Command-line interface: clap definitions and dispatch only; the work lives
//! in the library modules. Each subcommand has its own file with its `…Args`
//! and a `run` that returns the process exit code.

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

pub mod attest;
pub mod build;
pub mod cache;
pub mod check;
pub mod context;
pub mod diff;
pub mod dockerfile;
pub mod doctor;
pub mod hint;
pub mod inspect;
pub mod local_store;
pub mod login;
pub mod output_spec;
pub mod parse;
pub mod pull;
pub mod push;
pub mod run;

/// cairn: build reproducible OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Progress output: auto (bars on a TTY, plain otherwise), tty, plain or json.
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "tty", "plain", "json"])]
    pub progress: String,
    /// Registries reached over plain HTTP or unverified TLS (HOST[:PORT]); repeatable.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// The cache directory (default $CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<std::path::PathBuf>,
}

impl GlobalArgs {
    /// The cache every subcommand uses: `--cache-dir`, else the default.
    pub fn cache(&self) -> crate::cache::CacheLayout {
        crate::cache::CacheLayout::from_flag(self.cache_dir.as_deref())
    }

    /// The cache, held shared until the process exits (see `cache::lock`):
    /// for commands that read or write what is in it.
    pub fn cache_in_use(&self) -> anyhow::Result<crate::cache::CacheLayout> {
        use anyhow::Context as _;
        let layout = self.cache();
        if let Some(mode) = crate::cache::lock::hold_shared(&layout)
            .with_context(|| format!("opening the cache at {}", layout.root().display()))?
        {
            eprintln!(
                "WARNING: {}",
                crate::cache::lock::repaired_warning(layout.root(), mode)
            );
        }
        Ok(layout)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<build::BuildArgs>),
    /// Lint a Dockerfile, its .dockerignore and context: BuildKit's checks and cairn's
    /// cache/reproducibility rules (exit 1 on an error).
    Check(check::CheckArgs),
    /// Parse a Dockerfile and print it (text or JSON).
    Parse(parse::ParseArgs),
    /// Inspect the build context.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Pull an image into an OCI layout.
    Pull(pull::PullArgs),
    /// Push an image from an OCI layout to a registry.
    Push(push::PushArgs),
    /// Show an image's manifest, config, layers and history.
    Inspect(inspect::InspectArgs),
    /// Print the SBOM attached to an image (`cairn build --sbom`).
    Sbom(attest::SbomArgs),
    /// Store credentials for a registry in the docker config.
    Login(login::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(login::LogoutArgs),
    /// Explain why two images differ (exit 0 same, 1 different, 2 error).
    Diff(diff::DiffArgs),
    /// Inspect or prune the build cache.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Report which RUN isolation this machine allows, and why.
    Doctor(doctor::DoctorArgs),
    /// Run an image's entrypoint in cairn's sandbox.
    Run(run::RunArgs),
    /// Internal: the sandbox helper process (see `cairn::sandbox::helper`).
    #[command(name = crate::sandbox::helper::SUBCOMMAND, hide = true)]
    SandboxHelper(crate::sandbox::helper::HelperArgs),
    /// Internal: unpack or remove layer directories inside the sandbox's
    /// user namespace (see `cairn::sandbox::layer_dirs`).
    #[command(name = crate::sandbox::layer_dirs::HELPER_SUBCOMMAND, hide = true)]
    LayerDir(crate::sandbox::layer_dirs::HelperArgs),
}

/// Dispatch to the subcommand.
/// Print the digest a command ends with on standard output. A closed pipe
/// (`cairn build … | head -c0`) is an error the caller's exit handles
/// quietly, never a panic as `println!` would make it.
pub(crate) fn print_digest(digest: &impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{digest}")?;
    out.flush()?;
    Ok(())
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Build(a) => build::run(*a, g),
        Command::Check(a) => check::run(a, g),
        Command::Parse(a) => parse::run(a, g),
        Command::Context(c) => context::run(c, g),
        Command::Pull(a) => pull::run(a, g),
        Command::Push(a) => push::run(a, g),
        Command::Inspect(a) => inspect::run(a, g),
        Command::Sbom(a) => attest::run_sbom(a, g),
        Command::Login(a) => login::run_login(a, g),
        Command::Logout(a) => login::run_logout(a, g),
        Command::Diff(a) => diff::run(a, g),
        Command::Cache(c) => cache::run(c, g),
        Command::Doctor(a) => doctor::run(a, g),
        Command::Run(a) => run::run(a, g),
        Command::SandboxHelper(a) => Ok(crate::sandbox::helper::main(a)),
        Command::LayerDir(a) => Ok(crate::sandbox::layer_dirs::helper_main(a)?),
    }
}
