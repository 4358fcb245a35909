//! What a build is asked to do (the CLI fills it from `cairn build` flags).

use crate::frontend::Platform;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a `--secret` comes from. Its value never reaches a layer, the
/// history, a cache key or a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `src=PATH`.
    File(PathBuf),
    /// `env=VAR`.
    Env(String),
}

/// What `cairn build` sets on every RUN step besides `--network` (buildx's
/// `--add-host`, `--ulimit`, `--shm-size`, `--ssh`).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--add-host NAME:ADDRESS`: extra /etc/hosts lines (never in a layer).
    pub extra_hosts: Vec<(String, String)>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<crate::sandbox::limits::Ulimit>,
    /// `--shm-size`, bytes (`None`: 64 MiB).
    pub shm_size: Option<u64>,
    /// `--ssh ID=SOCKET`: the agent socket of each id, for `RUN --mount=type=ssh`.
    /// Never in a layer, a record or a cache key.
    pub ssh: BTreeMap<String, PathBuf>,
}

/// A build request.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's path (for messages and `<name>.dockerignore`).
    pub dockerfile: PathBuf,
    /// The Dockerfile's text (`-f -` reads it from stdin).
    pub dockerfile_source: String,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--platform`.
    pub platform: Option<Platform>,
    /// `--label K=V` on the final image.
    pub labels: BTreeMap<String, String>,
    /// `--annotation K=V` on the image manifest.
    pub annotations: BTreeMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (names or indexes) whose steps are never cache hits.
    pub no_cache_filter: Vec<String>,
    /// `--network`: the network of RUN steps that do not set `--network` themselves.
    pub network: Option<crate::frontend::instructions::NetworkMode>,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// The build epoch (seconds).
    pub epoch: u64,
    /// `--secret id=…`.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--isolation` for RUN (`auto`, `overlay`, `fuse-overlayfs`, `copy`, `none`).
    pub isolation: String,
    /// `--add-host`, `--ulimit`, `--shm-size`, `--ssh`.
    pub run_options: RunOptions,
    /// `--build-context NAME=…`.
    pub named_contexts: super::named_context::NamedContexts,
    /// Registries reached over plain HTTP or unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Cache keys of the steps run by this invocation: under `--no-cache`
    /// they are still reused, so a multi-platform build runs a step that is
    /// the same for every platform (a `FROM --platform=$BUILDPLATFORM` stage) once.
    pub built_here: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// `--cache-from`: caches steps are looked up in after the local one.
    pub cache_from: std::sync::Arc<crate::cache::remote::Imports>,
    /// Every stage's layers end as blobs (a `--cache-to mode=max` exports
    /// them, `--sbom scan-stage=true` reads them): no snapshots
    /// (see [`crate::engine::snapshot`]).
    pub stage_bytes: bool,
}

/// The build epoch: `--source-date-epoch`, else `SOURCE_DATE_EPOCH` (a build
/// arg, then the environment), else 0. Parsed strictly: a malformed value is
/// an error, never a silent fallback to the clock.
pub fn resolve_epoch(
    flag: Option<&str>,
    build_args: &BTreeMap<String, String>,
) -> Result<u64, super::Error> {
    let env = std::env::var(crate::env::SOURCE_DATE_EPOCH).ok();
    let (value, from) = match (flag, build_args.get("SOURCE_DATE_EPOCH"), env) {
        (Some(v), _, _) => (v.to_owned(), "--source-date-epoch"),
        (None, Some(v), _) => (v.clone(), "--build-arg SOURCE_DATE_EPOCH"),
        (None, None, Some(v)) if !v.trim().is_empty() => (v, "SOURCE_DATE_EPOCH"),
        _ => return Ok(0),
    };
    match value.trim().parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) => Err(super::Error::BadEpoch { from, value }),
    }
}
