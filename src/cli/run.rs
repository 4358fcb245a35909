//! `cairn run IMAGE [ARGS…]`: start an image's entrypoint in cairn's rootless
//! sandbox (no daemon, no runtime) — a CI smoke test for what was built.
//! The container's changes are thrown away when it exits.

use super::GlobalArgs;
use crate::engine::bases::ImageSource as _;
use crate::engine::isolation::{new_sandbox, parse_isolation};
use crate::engine::sources::Sources;
use crate::frontend::Platform;
use crate::registry::{Registry, RegistryOptions};
use crate::report::{Event, Reporter};
use crate::sandbox::layer_dirs::LayerDirs;
use crate::sandbox::{Network, RunSpec, SandboxError};
use anyhow::Context as _;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `cairn run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image — a name in the local store (what `cairn build -t` left there), a
    /// registry reference, or `oci:DIR[:tag]` — then the command replacing its CMD;
    /// everything after IMAGE is the container's, flags too.
    // One positional, so clap stops reading cairn's flags at IMAGE (as `docker
    // run` does): `cairn run IMAGE --version` passes `--version` on.
    #[arg(
        value_name = "IMAGE [ARGS]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_args: Vec<String>,
    /// Replace the image's ENTRYPOINT (one word; an empty string clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Run as this user instead of the image's USER.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory instead of the image's WORKDIR.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Network: host (default) or none.
    #[arg(long, default_value = "host", value_parser = ["host", "none"])]
    pub network: String,
    /// Platform of the image to run (default the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Isolation: auto, overlay, fuse-overlayfs, copy or none.
    #[arg(long, default_value = "auto")]
    pub isolation: String,
}

/// Prints the container's output as it comes; status lines go to stderr.
struct Passthrough;

impl Reporter for Passthrough {
    fn event(&self, event: Event) {
        match event {
            Event::StepOutput { line, .. } => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Event::Warning(w) => eprintln!("WARNING: {w}"),
            Event::Info(i) => eprintln!("{i}"),
            _ => {}
        }
    }
}

impl RunArgs {
    /// The image named first.
    fn image(&self) -> &str {
        self.image_and_args.first().map_or("", String::as_str)
    }

    /// What follows the image: the command replacing its CMD. A `--` right
    /// after IMAGE is the usual end-of-options mark, not the container's.
    fn args(&self) -> &[String] {
        let rest = self.image_and_args.get(1..).unwrap_or_default();
        match rest.split_first() {
            Some((first, after)) if first == "--" => after,
            _ => rest,
        }
    }
}

/// Run `cairn run`.
pub fn run(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let image_name = args.image();
    let reporter = Passthrough;
    // Base layers are unpacked there (setuid files, devices): made private
    // first, and held until cairn exits so a prune cannot take them away.
    let cache = global.cache_in_use()?;
    let store = cairn_layers::blob_store::BlobStore::open(cache.root())?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(|e| anyhow::anyhow!("--platform: {e}"))?,
        None => Platform::host(),
    };
    if let crate::sandbox::binfmt::Support::No(why) = crate::sandbox::binfmt::support(&platform) {
        anyhow::bail!(
            "--platform {platform}: {}",
            crate::sandbox::binfmt::explain(&platform, &why)
        );
    }
    let registry = Registry::new(RegistryOptions::new(
        global.insecure_registries.clone(),
        Arc::new(Passthrough),
    ))?;
    let local = cache.dir(crate::cache::Bucket::Images);
    let image = match super::local_store::find(image_name, &local) {
        Some(tag) => {
            super::local_store::say_used(image_name, &local);
            crate::engine::sources::from_layout_at(
                &local,
                Some(&tag),
                image_name,
                &platform,
                &store,
            )
        }
        None => Sources::new(registry)?.fetch(image_name, &platform, &store, &reporter),
    }
    .with_context(|| format!("getting image {image_name}"))?;
    let layer_dirs = LayerDirs::new(&cache)?;
    let lowers = image
        .layers
        .iter()
        .map(|l| layer_dirs.ensure(l, &store))
        .collect::<Result<Vec<PathBuf>, _>>()?;
    let cfg = image.config.config.clone().unwrap_or_default();
    let entrypoint = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => cfg.entrypoint.clone().unwrap_or_default(),
    };
    let cmd = if args.args().is_empty() && args.entrypoint.is_none() {
        cfg.cmd.clone().unwrap_or_default()
    } else {
        args.args().to_vec()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    anyhow::ensure!(
        !argv.is_empty(),
        crate::cli::hint::hint(
            anyhow::anyhow!("image {image_name} has no ENTRYPOINT or CMD"),
            "give a command: cairn run IMAGE COMMAND…"
        )
    );
    let mut env: Vec<(String, String)> = cfg
        .env
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map_or((kv.clone(), String::new()), |(k, v)| (k.into(), v.into()))
        })
        .collect();
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid -e `{kv}`: expected KEY=VALUE"))?;
        env.retain(|(e, _)| e != k);
        env.push((k.into(), v.into()));
    }
    let sandbox = new_sandbox(&layer_dirs, &reporter, &args.isolation)?;
    let mut spec = RunSpec::new(lowers, argv);
    spec.env = env;
    spec.cwd = args
        .workdir
        .clone()
        .or(cfg.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    spec.user = args.user.clone().or(cfg.user.clone()).unwrap_or_default();
    spec.hostname = "cairn".into();
    spec.network = if args.network == "none" {
        Network::None
    } else {
        Network::Host
    };
    spec.isolation = parse_isolation(&args.isolation)?;
    spec.label = format!("cairn run {image_name}");
    match sandbox.run(&spec, &reporter) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(SandboxError::Failed { code, .. }) => {
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Err(e) => Err(e.into()),
    }
}
