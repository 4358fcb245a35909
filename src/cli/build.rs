//! `cairn build`: the `docker buildx build` flags, daemonless.

use super::output_spec::{self, OutputSpec, Sink};

mod annotation;
mod cache_flags;
mod finish;
mod multi;
mod publishers;
pub(super) mod run_flags;
use super::GlobalArgs;
use crate::engine::request::{resolve_epoch, BuildRequest, SecretSource};
use crate::engine::sources::Sources;
use crate::frontend::instructions::NetworkMode;
use crate::frontend::Platform;
use crate::publish::Subject;
use crate::registry::{Registry, RegistryOptions};
use crate::report::{Event, Reporter};
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
    /// The target platform (os/arch[/variant]), or several separated by commas (one image
    /// each, joined in one OCI index); default the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Set a label on the final image (KEY=VALUE).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Annotate the image manifest ([manifest:]KEY=VALUE); repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages (names or indexes; repeatable or comma-separated).
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// The network of RUN steps that set none themselves: default, none or host.
    #[arg(long, value_parser = ["default", "none", "host"])]
    pub network: Option<String>,
    /// Accepted for buildx compatibility: cairn resolves base image tags on every build anyway.
    #[arg(long)]
    pub pull: bool,
    /// Print only the image digest (no progress).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output, as buildx: DIR | - | type=local,dest=DIR | type=tar,dest=F|- |
    /// type=oci,dest=F|-[,tar=false] | type=docker,dest=F|- | type=image|registry[,name=R][,push=BOOL]
    /// (+ compression=gzip|zstd|uncompressed, compression-level=, force-compression=, oci-mediatypes=). Repeatable.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to every `-t` reference (same as --output type=registry).
    #[arg(long)]
    pub push: bool,
    /// Not available: there is no daemon to load into (the error says what to run instead).
    #[arg(long)]
    pub load: bool,
    /// Write build metadata (digests, names) as JSON to this file.
    #[arg(long)]
    pub metadata_file: Option<PathBuf>,
    /// Write the image ID (config digest) to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// The build epoch: created times and new files' mtimes (default SOURCE_DATE_EPOCH, else 0).
    #[arg(long)]
    pub source_date_epoch: Option<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR (repeatable).
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// A named context that `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME` read instead of the
    /// stage or image of that name: `NAME=DIR` (its own .dockerignore), `NAME=docker-image://REF` or
    /// `NAME=oci-layout://DIR[:TAG|@sha256:…]`. Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Forward an ssh agent to `RUN --mount=type=ssh[,id=ID]`: `default` (the agent of $SSH_AUTH_SOCK) or
    /// ID=SOCKET. Never in a layer, record or the history. Repeatable.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    pub ssh: Vec<String>,
    /// An /etc/hosts line for RUN steps (not in the image): HOST:IP; `host-gateway` is 127.0.0.1, the host
    /// itself, since RUN shares the host's network. Repeatable.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// A resource limit of RUN commands, as docker: NAME=SOFT[:HARD] (nofile, nproc, core, stack, …; -1 is
    /// unlimited). Repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Size of /dev/shm in RUN steps, as docker (64m, 1g; default 64m).
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// RUN isolation: auto, overlay, fuse-overlayfs, copy or none (none: root only, throwaway machines).
    #[arg(long, default_value = "auto")]
    pub isolation: String,
    /// Run the build checks (`cairn check`) instead of building; exit 1 on an error.
    #[arg(long)]
    pub check: bool,
    /// Export the step cache: type=registry,ref=REF | type=local,dest=DIR
    /// (+ mode=min|max, ignore-error=true|false, compression=gzip). Repeatable.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Import a step cache: type=registry,ref=REF | REF | type=local,src=DIR
    /// (+ ignore-error=). Repeatable; the first that has a step serves it.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Attach an SBOM: --sbom, --sbom=false, --sbom=format=spdx|cyclonedx[,scan-stage=true].
    #[arg(long, value_name = "OPTS", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// SLSA provenance (on in min mode by default): --provenance=false|mode=min|mode=max
    /// [,builder-id=URI].
    #[arg(long, value_name = "OPTS", num_args = 0..=1, require_equals = true, default_missing_value = "mode=min")]
    pub provenance: Option<String>,
}

/// What `--sbom`/`--provenance` ask to attach to `req`'s image (`None`: nothing).
fn attest_plan(
    args: &BuildArgs,
    req: &BuildRequest,
) -> anyhow::Result<Option<Arc<crate::attest::Plan>>> {
    let options = attest_options(args)?;
    Ok((!options.is_empty()).then(|| Arc::new(crate::attest::Plan::new(req, options, &args.tags))))
}

fn attest_options(args: &BuildArgs) -> anyhow::Result<crate::attest::Options> {
    let no_default =
        std::env::var_os(crate::env::BUILDX_NO_DEFAULT_ATTESTATIONS).is_some_and(|v| !v.is_empty());
    Ok(crate::attest::Options {
        sbom: crate::attest::options::parse_sbom(args.sbom.as_deref())?,
        provenance: crate::attest::options::parse_provenance(
            args.provenance.as_deref(),
            no_default,
        )?,
        builder_id: crate::attest::options::parse_builder_id(args.provenance.as_deref())?,
    })
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

/// `--load`: buildx loads into the Docker daemon; cairn has none.
fn refuse_load() -> anyhow::Error {
    crate::cli::hint::hint(
        anyhow::anyhow!("--load: cairn has no daemon to load the image into"),
        "write an archive and load it yourself: `-o type=docker,dest=- | docker load` (or `| podman load`); \
         `-o type=oci,dest=image.tar` for `skopeo copy oci-archive:image.tar …`; \
         without -o the image goes to cairn's local store (`cairn run NAME:TAG`)",
    )
}

/// Parse every `--output` (and `--push`, `--load`) before any work.
fn parse_outputs(args: &BuildArgs) -> anyhow::Result<Vec<OutputSpec>> {
    if args.load {
        return Err(refuse_load());
    }
    let mut outputs: Vec<OutputSpec> = args
        .outputs
        .iter()
        .map(|o| output_spec::parse(o))
        .collect::<anyhow::Result<_>>()?;
    let pushes = |o: &OutputSpec| matches!(o.sink, Sink::Image { push: true, .. });
    if args.push && !outputs.iter().any(pushes) {
        outputs.push(OutputSpec {
            sink: Sink::Image {
                names: Vec::new(),
                push: true,
            },
            names: Vec::new(),
            export: Default::default(),
        });
    }
    output_spec::check_all(&outputs)?;
    for o in outputs.iter().filter(|o| pushes(o)) {
        let names = if o.names.is_empty() {
            &args.tags
        } else {
            &o.names
        };
        anyhow::ensure!(
            !names.is_empty(),
            crate::cli::hint::hint(
                anyhow::anyhow!("--push / type=registry: nothing to push to"),
                "name the image with `-t REGISTRY/REPO:TAG` or `--output type=registry,name=REGISTRY/REPO:TAG`"
            )
        );
        for n in names {
            n.parse::<crate::registry::Reference>().map_err(|e| {
                crate::cli::hint::hint(
                    anyhow::anyhow!(
                        "--output name `{}`: {e}",
                        crate::registry::reference::redact_credentials(n)
                    ),
                    "image names are lower-case: REGISTRY/REPO:TAG",
                )
            })?;
        }
    }
    Ok(outputs)
}

/// The architectures an image index names (image-spec `image-index.md`, Go's GOARCH values).
const ARCHITECTURES: [&str; 10] = [
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "loong64",
];

/// Everything the flags alone show to be wrong, refused before any work
/// (reading the context, pulling a base), naming the flag and the fix.
fn check_flags(args: &BuildArgs) -> anyhow::Result<()> {
    use crate::cli::hint::hint;
    for t in &args.tags {
        t.parse::<crate::registry::Reference>().map_err(|e| {
            hint(
                anyhow::anyhow!(
                    "-t `{}`: {e}",
                    crate::registry::reference::redact_credentials(t)
                ),
                "name images REGISTRY/REPO:TAG in lower case (the tag may have upper case), e.g. -t ghcr.io/acme/app:1.2",
            )
        })?;
    }
    attest_options(args)?;
    crate::engine::isolation::parse_isolation(&args.isolation)
        .map_err(|e| anyhow::Error::new(e).context(format!("--isolation {}", args.isolation)))?;
    // Each platform of a list (`a,b`) is checked the same way; parse_platforms refuses repeats.
    for p in args
        .platform
        .as_deref()
        .into_iter()
        .flat_map(|l| l.split(','))
    {
        let p = p.trim();
        let parsed = Platform::parse(p).map_err(|e| {
            hint(
                anyhow::anyhow!("--platform: {e}"),
                "e.g. --platform linux/amd64 or linux/arm64",
            )
        })?;
        anyhow::ensure!(
            parsed.os == "linux" && ARCHITECTURES.contains(&parsed.architecture.as_str()),
            hint(
                anyhow::anyhow!(
                    "--platform {p}: cairn builds linux images; `{}/{}` is not a known platform",
                    parsed.os,
                    parsed.architecture
                ),
                format!(
                    "use linux/ARCH with ARCH one of {}",
                    ARCHITECTURES.join(", ")
                ),
            )
        );
    }
    for s in &args.secrets {
        let (id, src) = parse_secret(s)?;
        if let SecretSource::File(p) = &src {
            std::fs::File::open(p).map_err(|e| {
                hint(
                    anyhow::anyhow!("--secret id={id}: cannot read {}: {e}", p.display()),
                    "give the path of a readable file (src=PATH), or take the value from the environment (env=VAR)",
                )
            })?;
        }
    }
    Ok(())
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
        return super::check::check_and_print(
            context,
            file,
            target,
            &args.build_args,
            &args.build_contexts,
            "text",
        );
    }
    let progress = Arc::new(if args.quiet {
        crate::progress::quiet()
    } else {
        crate::progress::reporter_for(&global.progress)?
    });
    let r = build(args, global, progress.clone());
    if let (Err(e), crate::progress::Progress::Json(_)) = (&r, &*progress) {
        // The JSON stream ends with the outcome, and stderr stays all JSON:
        // the error is this event, not a second human-readable copy.
        let mut text = Vec::new();
        crate::error::render(e.as_ref(), &mut text);
        progress.event(Event::Failed(
            String::from_utf8_lossy(&text)
                .trim_start_matches("error: ")
                .trim_end()
                .to_owned(),
        ));
        progress.finish();
        return Ok(ExitCode::FAILURE);
    }
    progress.finish();
    r
}

fn build(
    args: BuildArgs,
    global: &GlobalArgs,
    progress: Arc<crate::progress::Progress>,
) -> anyhow::Result<ExitCode> {
    let reporter: &dyn Reporter = &*progress;
    check_flags(&args)?;
    let outputs = parse_outputs(&args)?;
    warn_unattestable(&args, &outputs, reporter);
    let context = args.context.clone();
    anyhow::ensure!(
        context.is_dir(),
        crate::cli::hint::hint(
            anyhow::anyhow!("build context {} is not a directory", context.display()),
            "pass the directory holding your sources, e.g. `cairn build .`"
        )
    );
    let platforms = parse_platforms(args.platform.as_deref())?;
    if platforms.len() > 1 {
        multi::check_outputs(&outputs)?;
    }
    let cache_dir = global.cache().root().to_path_buf();
    let registry_options = registry_options(global, progress.clone(), &cache_dir);
    let traffic = registry_options.traffic.clone();
    let cache_flags = cache_flags::CacheFlags::parse(&args, registry_options.clone())?;
    let (req, index_annotations) = request(&args, global, &platforms, &cache_dir, &cache_flags)?;
    let sources = Sources::new(Registry::new(registry_options.clone())?)?;
    let cache = crate::cache::CacheLayout::new(&req.cache_dir);
    let publishers = publishers::outputs(
        &outputs,
        &args.tags,
        &cache.dir(crate::cache::Bucket::Images),
        &registry_options,
    )?;
    let store = cairn_layers::blob_store::BlobStore::open(cache.root())?;
    let scratch = cache.dir(crate::cache::Bucket::Tmp);
    let attest = attest_plan(&args, &req)?;
    let sinks = crate::publish::Sinks {
        store: &store,
        lazy: &*req.cache_from,
        scratch: &scratch,
        reporter,
        attest: attest.as_deref(),
    };
    let digest = if platforms.len() > 1 {
        // As for one image: a refused cache blob reruns the build and the outputs.
        let ix = cache_flags::retrying_refused(reporter, || {
            let ix = multi::build(&req, (&platforms, &index_annotations), &sources, reporter)?;
            crate::publish::publish_all(&publishers, &sinks.built(Subject::Index(&ix)))?;
            Ok(ix)
        })?;
        // Every platform's steps: their keys differ where their inputs do.
        let images: Vec<_> = ix.images.iter().collect();
        cache_flags.export(
            &req.dockerfile,
            &req.cache_dir,
            &images,
            &req.cache_from,
            reporter,
        )?;
        finish::metadata(&args, Subject::Index(&ix))?;
        ix.index_digest.clone()
    } else {
        let (result, rewritten) = build_one(&req, &sources, reporter, |r| {
            Ok(crate::publish::publish_all(
                &publishers,
                &sinks.built(Subject::Image(r)),
            )?)
        })?;
        // The layers as built (not as an output recompressed them) are the cache's.
        cache_flags.export(
            &req.dockerfile,
            &req.cache_dir,
            &[&result],
            &req.cache_from,
            reporter,
        )?;
        let image = rewritten.unwrap_or(result);
        finish::metadata(&args, Subject::Image(&image))?;
        image.manifest_digest.clone()
    };
    if let Some(s) = req.cache_from.summary() {
        reporter.event(Event::Info(s));
    }
    for t in traffic.snapshot() {
        reporter.event(Event::Transfer(t));
    }
    // Standard output may carry an archive; the digest then goes to the log only.
    if outputs.iter().any(|o| o.to_stdout()) {
        reporter.event(Event::Info(format!("image {digest}")));
    } else {
        super::print_digest(&digest)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The options of every registry client of the build (bases, cache, push):
/// one traffic count for the summary, the push memo.
fn registry_options(
    global: &GlobalArgs,
    progress: Arc<crate::progress::Progress>,
    cache_dir: &std::path::Path,
) -> RegistryOptions {
    let mut o = RegistryOptions::new(global.insecure_registries.clone(), progress);
    o.blob_memo = Some(super::pull::blob_memo_file(cache_dir));
    o
}

/// `--sbom` where no output can carry an attestation: said, not refused.
fn warn_unattestable(args: &BuildArgs, outputs: &[OutputSpec], reporter: &dyn Reporter) {
    let carries = |o: &OutputSpec| {
        matches!(
            o.sink,
            Sink::OciDir(_) | Sink::OciTar(_) | Sink::Image { .. }
        )
    };
    if args.sbom.is_some() && !outputs.is_empty() && !outputs.iter().any(carries) {
        reporter.event(Event::Warning(
            "--sbom: no output here can carry attestations (docker-archives and filesystems cannot); \
             add -o type=oci,dest=… or --push, or drop -o to keep the image in the local store"
                .into(),
        ));
    }
}

/// The engine's request from the flags (the Dockerfile read, checked by
/// `cairn check`'s gate), and the index-only annotations.
fn request(
    args: &BuildArgs,
    global: &GlobalArgs,
    platforms: &[Platform],
    cache_dir: &std::path::Path,
    cache_flags: &cache_flags::CacheFlags,
) -> anyhow::Result<(BuildRequest, crate::engine::multi::IndexAnnotations)> {
    let (run_options, named_contexts) = run_flags::parse(args)?;
    let context = args.context.clone();
    let (dockerfile, source) = read_dockerfile(&context, args.file.as_deref())?;
    let build_args = key_values(&args.build_args, "--build-arg")?;
    super::check::gate(&context, args, &dockerfile, &source, &build_args)?;
    let epoch = resolve_epoch(args.source_date_epoch.as_deref(), &build_args)?;
    let (mut annotations, index_annotations) = annotation::parse(&args.annotations, platforms)?;
    if platforms.len() < 2 {
        // A single build: its platform's `manifest[P]:` ones are the manifest's.
        annotations.extend(
            index_annotations
                .manifest
                .iter()
                .map(|(_, k, v)| (k.clone(), v.clone())),
        );
    }
    let req = BuildRequest {
        context,
        dockerfile,
        dockerfile_source: source,
        target: args.target.clone(),
        build_args,
        platform: match platforms {
            [one] => Some(one.clone()),
            _ => None,
        },
        labels: key_values(&args.labels, "--label")?,
        annotations,
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        network: args.network.as_deref().map(|n| match n {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => NetworkMode::Default,
        }),
        // Absolute, because the RUN sandbox gets layer directories under it and refuses relative ones.
        cache_dir: cache_dir.to_path_buf(),
        epoch,
        secrets: args
            .secrets
            .iter()
            .map(|s| parse_secret(s))
            .collect::<anyhow::Result<_>>()?,
        isolation: args.isolation.clone(),
        run_options,
        named_contexts,
        insecure_registries: global.insecure_registries.clone(),
        built_here: Default::default(),
        cache_from: Arc::new(cache_flags.imports()?),
        stage_bytes: cache_flags.exports_every_stage()
            || attest_options(args)?.sbom.is_some_and(|(_, stages)| stages),
    };
    Ok((req, index_annotations))
}

/// Build one image and `publish` it. A refused cache blob (met by the
/// build, or by an output fetching a lazy layer) runs both again, the
/// refused entry's step rebuilt (each run refuses at least one more key, so
/// this ends; outputs written before are written again with the same bytes).
fn build_one<T>(
    req: &BuildRequest,
    sources: &Sources,
    reporter: &dyn Reporter,
    publish: impl Fn(&mut crate::engine::BuildResult) -> anyhow::Result<T>,
) -> anyhow::Result<(crate::engine::BuildResult, T)> {
    cache_flags::retrying_refused(reporter, || {
        let started = std::time::Instant::now();
        let mut r = crate::engine::build(req, sources, reporter)?;
        overhead(&r, started.elapsed(), reporter);
        publish(&mut r).map(|t| (r, t))
    })
}

/// The builder's own cost beside the user's RUN commands, where RUN time is
/// long enough for the ratio to mean something.
fn overhead(r: &crate::engine::BuildResult, wall: std::time::Duration, reporter: &dyn Reporter) {
    if r.run_command_time >= std::time::Duration::from_secs(1) {
        let overhead = wall.saturating_sub(r.run_command_time);
        // cairn's own peak memory (the RUN commands are other processes): issue #22 bounds it.
        let rss = peak_rss_kib()
            .map(|k| format!(", cairn peak RSS {} MB", k / 1024))
            .unwrap_or_default();
        reporter.event(Event::Info(format!(
            "build {:.2}s: RUN commands {:.2}s, builder overhead {:.2}s ({:.0}% of RUN time){rss}",
            wall.as_secs_f64(),
            r.run_command_time.as_secs_f64(),
            overhead.as_secs_f64(),
            100.0 * overhead.as_secs_f64() / r.run_command_time.as_secs_f64()
        )));
    }
}

/// `--platform`: one platform or a comma-separated list of distinct ones
/// (empty: the host's, chosen later).
fn parse_platforms(flag: Option<&str>) -> anyhow::Result<Vec<Platform>> {
    let mut out: Vec<Platform> = Vec::new();
    for item in flag.into_iter().flat_map(|f| f.split(',')) {
        let p = Platform::parse(item.trim()).map_err(|e| {
            crate::cli::hint::hint(
                anyhow::anyhow!("--platform: {e}"),
                "pass os/arch[/variant], several separated by commas: --platform linux/amd64,linux/arm64",
            )
        })?;
        anyhow::ensure!(
            !out.contains(&p),
            crate::cli::hint::hint(
                anyhow::anyhow!("--platform names {p} twice"),
                "list each platform once"
            )
        );
        out.push(p);
    }
    Ok(out)
}

/// The peak resident set of this process so far (`VmHWM`, all threads; child processes such as RUN commands
/// are not in it), in KiB; `None` where /proc does not say.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status =
            "Name:\tcairn\nVmPeak:\t  900000 kB\nVmHWM:\t   68712 kB\nVmRSS:\t   51000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(68_712));
        assert_eq!(parse_vm_hwm("VmRSS:\t 5 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t lots\n"), None);
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }

    #[test]
    fn secrets_parse() {
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

    #[test]
    fn platform_lists_parse() {
        let names = |f: &str| {
            parse_platforms(Some(f))
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("linux/amd64"), ["linux/amd64"]);
        assert_eq!(
            names("linux/amd64, linux/aarch64,linux/arm/v7"),
            ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        );
        assert!(parse_platforms(None).unwrap().is_empty());
        let e = parse_platforms(Some("linux/amd64,linux/x86_64")).unwrap_err();
        assert!(
            format!("{e:#}").contains("names linux/amd64 twice"),
            "{e:#}"
        );
        assert!(parse_platforms(Some("linux/amd64,")).is_err());
        assert!(parse_platforms(Some("linux/amd64,a/b/c/d")).is_err());
    }
}
