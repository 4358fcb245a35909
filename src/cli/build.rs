//! `cairn build`: the `docker buildx build` flags, daemonless.

use super::GlobalArgs;
use crate::engine::output;
use crate::engine::request::{default_cache_dir, resolve_epoch, BuildRequest, SecretSource};
use crate::engine::sources::Sources;
use crate::frontend::Platform;
use crate::registry::{Registry, RegistryOptions};
use crate::report::{Event, Reporter};
use anyhow::Context as _;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `cairn build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// The Dockerfile (`-` reads it from stdin); default CONTEXT/Dockerfile.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name and tag the image (REGISTRY/REPO:TAG); repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The stage to build (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// Set a build-time variable (KEY=VALUE, or KEY to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The target platform (os/arch[/variant]); default the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Set a label on the final image (KEY=VALUE).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Output: type=oci,dest=DIR | type=docker-archive,dest=FILE | type=registry (repeatable).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to every `-t` reference (same as --output type=registry).
    #[arg(long)]
    pub push: bool,
    /// Write build metadata (digests, names) as JSON to this file.
    #[arg(long)]
    pub metadata_file: Option<PathBuf>,
    /// Write the image ID (config digest) to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// The cache directory (default $CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The build epoch: created times and new files' mtimes (default SOURCE_DATE_EPOCH, else 0).
    #[arg(long)]
    pub source_date_epoch: Option<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR (repeatable).
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// RUN isolation: auto, overlay, fuse-overlayfs, copy or none (none: root only, throwaway machines).
    #[arg(long, default_value = "auto")]
    pub isolation: String,
    /// Run the build checks (`cairn check`) instead of building; exit 1 on an error.
    #[arg(long)]
    pub check: bool,
}

fn key_values(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in items {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None if !kv.is_empty() && what == "--build-arg" => {
                // docker: `--build-arg NAME` takes the value from the environment.
                if let Ok(v) = std::env::var(kv) {
                    out.insert(kv.clone(), v);
                }
            }
            _ => anyhow::bail!("invalid {what} `{kv}`: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

fn parse_secret(s: &str) -> anyhow::Result<(String, SecretSource)> {
    let mut id = None;
    let mut src = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("src" | "source", v)) => src = Some(SecretSource::File(PathBuf::from(v))),
            Some(("env", v)) => src = Some(SecretSource::Env(v.to_owned())),
            Some(("type", "file" | "env")) => {}
            _ => anyhow::bail!("invalid --secret `{s}`: expected id=ID,src=PATH or id=ID,env=VAR"),
        }
    }
    let id = id.ok_or_else(|| anyhow::anyhow!("invalid --secret `{s}`: missing id="))?;
    let src = src.unwrap_or_else(|| SecretSource::Env(id.clone()));
    Ok((id, src))
}

/// One `--output`.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    Oci(PathBuf),
    DockerArchive(PathBuf),
    Registry,
}

fn parse_output(s: &str) -> anyhow::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_owned()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("push", "true")) => kind = Some("registry".into()),
            Some(_) => {}
            None => anyhow::bail!("invalid --output `{s}`"),
        }
    }
    let need_dest = |k: &str| {
        dest.clone().ok_or_else(|| {
            crate::error::hint(
                anyhow::anyhow!("--output type={k} needs dest="),
                format!("for example --output type={k},dest=out"),
            )
        })
    };
    match kind.as_deref() {
        Some("oci") => Ok(Output::Oci(need_dest("oci")?)),
        Some("docker-archive" | "docker" | "tar") => {
            Ok(Output::DockerArchive(need_dest("docker-archive")?))
        }
        Some("registry" | "image") => Ok(Output::Registry),
        other => Err(crate::error::hint(
            anyhow::anyhow!("unsupported output type {:?}", other.unwrap_or("")),
            "use type=oci,dest=DIR, type=docker-archive,dest=FILE or type=registry",
        )),
    }
}

/// The Dockerfile's name for messages and its text: `-` reads stdin (named `Dockerfile`),
/// no `-f` reads `CONTEXT/Dockerfile`.
pub(crate) fn read_dockerfile(
    context: &std::path::Path,
    file: Option<&std::path::Path>,
) -> anyhow::Result<(PathBuf, String)> {
    Ok(match file {
        Some(p) if p.as_os_str() == "-" => {
            let label = PathBuf::from("Dockerfile");
            let s = super::dockerfile::read_stdin(&label)?;
            (label, s)
        }
        other => {
            let p = other.map_or_else(|| context.join("Dockerfile"), std::path::Path::to_path_buf);
            let s = super::dockerfile::read_file(&p, other.is_some())?;
            (p, s)
        }
    })
}

/// Run `cairn build`.
pub fn run(args: BuildArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.check {
        let (context, file, target) = (&args.context, args.file.as_deref(), args.target.as_deref());
        return super::check::check_and_print(context, file, target, &args.build_args, "text");
    }
    let progress = Arc::new(crate::progress::reporter_for(&global.progress)?);
    let r = build(args, global, progress.clone());
    progress.finish();
    r
}

fn build(
    args: BuildArgs,
    global: &GlobalArgs,
    progress: Arc<crate::progress::Progress>,
) -> anyhow::Result<ExitCode> {
    let reporter: &dyn Reporter = &*progress;
    let context = args.context.clone();
    anyhow::ensure!(
        context.is_dir(),
        crate::error::hint(
            anyhow::anyhow!("build context {} is not a directory", context.display()),
            "pass the directory holding your sources, e.g. `cairn build .`"
        )
    );
    let (dockerfile, source) = read_dockerfile(&context, args.file.as_deref())?;
    let build_args = key_values(&args.build_args, "--build-arg")?;
    super::check::gate(&context, &args, &dockerfile, &source, &build_args)?;
    let epoch = resolve_epoch(args.source_date_epoch.as_deref(), &build_args)?;
    let mut outputs: Vec<Output> = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<anyhow::Result<_>>()?;
    if args.push && !outputs.contains(&Output::Registry) {
        outputs.push(Output::Registry);
    }
    let req = BuildRequest {
        context: context.clone(),
        dockerfile,
        dockerfile_source: source,
        target: args.target.clone(),
        build_args,
        platform: args
            .platform
            .as_deref()
            .map(Platform::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--platform: {e}"))?,
        labels: key_values(&args.labels, "--label")?,
        no_cache: args.no_cache,
        // Absolute, because the RUN sandbox gets layer directories under it and refuses relative ones.
        cache_dir: {
            let dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
            std::path::absolute(&dir)
                .with_context(|| format!("cache directory {}", dir.display()))?
        },
        epoch,
        secrets: args
            .secrets
            .iter()
            .map(|s| parse_secret(s))
            .collect::<anyhow::Result<_>>()?,
        isolation: args.isolation.clone(),
        insecure_registries: global.insecure_registries.clone(),
    };
    let registry = Registry::new(RegistryOptions::new(
        global.insecure_registries.clone(),
        progress.clone(),
    ))?;
    let sources = Sources::new(registry)?;
    let started = std::time::Instant::now();
    let result = crate::engine::build(&req, &sources, reporter)?;
    let wall = started.elapsed();
    if !result.run_command_time.is_zero() {
        // The builder's own cost: everything that is not the user's RUN commands.
        let overhead = wall.saturating_sub(result.run_command_time);
        reporter.event(Event::Info(format!(
            "build {:.2}s: RUN commands {:.2}s, builder overhead {:.2}s ({:.0}% of RUN time)",
            wall.as_secs_f64(),
            result.run_command_time.as_secs_f64(),
            overhead.as_secs_f64(),
            100.0 * overhead.as_secs_f64() / result.run_command_time.as_secs_f64()
        )));
    }
    let store = cairn_layers::blob_store::BlobStore::open(&req.cache_dir)?;
    let tags: Vec<String> = args.tags.iter().map(|t| output::layout_tag(t)).collect();
    if outputs.is_empty() {
        // Default: the local image store, an OCI layout in the cache (`oci:CACHE/images`).
        let dir = req.cache_dir.join("images");
        let names: Vec<String> = if args.tags.is_empty() {
            vec![format!("sha256-{}", result.manifest_digest.hex())]
        } else {
            args.tags.clone()
        };
        output::to_oci_layout(&result, &store, &dir, &names)?;
        reporter.event(Event::Info(format!(
            "image stored in oci:{} as {}",
            dir.display(),
            names.join(", ")
        )));
    }
    let mut pushed = Vec::new();
    for o in &outputs {
        match o {
            Output::Oci(dir) => {
                output::to_oci_layout(&result, &store, dir, &tags)?;
                reporter.event(Event::Info(format!("wrote OCI layout {}", dir.display())));
            }
            Output::DockerArchive(file) => {
                output::to_docker_archive(&result, &store, file, &args.tags, reporter)?;
                reporter.event(Event::Info(format!(
                    "wrote docker-archive {}",
                    file.display()
                )));
            }
            Output::Registry => {
                let mut opts =
                    RegistryOptions::new(global.insecure_registries.clone(), progress.clone());
                opts.blob_memo = Some(super::pull::blob_memo_file(&req.cache_dir));
                let registry = Registry::new(opts)?;
                let rt = super::pull::runtime()?;
                let warn = |w: String| reporter.event(Event::Warning(w));
                for (name, d) in
                    output::push(&result, &store, &registry, &rt, &args.tags, &[], &warn)?
                {
                    reporter.event(Event::Info(format!("pushed {name}@{d}")));
                    pushed.push(name);
                }
            }
        }
    }
    if let Some(f) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": result.manifest_digest.to_string(),
            "containerimage.config.digest": result.config_digest.to_string(),
            "containerimage.descriptor": output::descriptor(&result),
            "image.name": args.tags.join(","),
        });
        std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, result.config_digest.to_string())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    println!("{}", result.manifest_digest);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_and_secrets_parse() {
        assert_eq!(
            parse_output("type=oci,dest=out").unwrap(),
            Output::Oci("out".into())
        );
        assert_eq!(
            parse_output("type=docker-archive,dest=a.tar").unwrap(),
            Output::DockerArchive("a.tar".into())
        );
        assert_eq!(parse_output("type=registry").unwrap(), Output::Registry);
        assert!(parse_output("type=oci").is_err());
        assert!(parse_output("type=local,dest=x").is_err());
        assert_eq!(
            parse_secret("id=ca,src=/x").unwrap(),
            ("ca".into(), SecretSource::File("/x".into()))
        );
        assert_eq!(
            parse_secret("id=tok,env=TOKEN").unwrap(),
            ("tok".into(), SecretSource::Env("TOKEN".into()))
        );
        assert!(parse_secret("src=/x").is_err());
    }
}
