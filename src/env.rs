//! Every environment variable cairn reads, in one place.

/// Build epoch in seconds (reproducible-builds.org); sets `created` times and new file mtimes.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Where cairn keeps its cache (default `$XDG_CACHE_HOME/cairn`, then `~/.cache/cairn`).
pub const CAIRN_CACHE_DIR: &str = "CAIRN_CACHE_DIR";
/// XDG base directory for caches.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Docker CLI config directory holding `config.json` (credentials).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Set by CI systems; forces plain progress output.
pub const CI: &str = "CI";
/// Disables colour (no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Re-bless golden test files on purpose.
pub const CAIRN_BLESS: &str = "CAIRN_BLESS";
/// The ssh agent socket `cairn build --ssh default` forwards.
pub const SSH_AUTH_SOCK: &str = "SSH_AUTH_SOCK";
/// Home directory (for `~/.docker` and `~/.cache`).
pub const HOME: &str = "HOME";
/// The `cairn` executable the sandbox re-executes as its helper (default: the running executable).
pub const CAIRN_SANDBOX_HELPER: &str = "CAIRN_SANDBOX_HELPER";
/// `single`: the sandbox maps only the caller's id even where subordinate ids
/// exist (chown recorded in an xattr); for testing that mode end to end.
pub const CAIRN_SANDBOX_ID_MAP: &str = "CAIRN_SANDBOX_ID_MAP";
/// Where sandbox tests find the node:22-alpine stand-in OCI layout.
pub const CAIRN_NODE_ALPINE_OCI: &str = "CAIRN_NODE_ALPINE_OCI";
/// How many platforms of a multi-platform build are built at once (default: the CPUs; 1: one after another).
pub const CAIRN_PLATFORM_JOBS: &str = "CAIRN_PLATFORM_JOBS";
/// `1`: every RUN layer is written as a blob, also in stages no output
/// exports (no snapshots, see `engine::snapshot`); for comparing the two.
pub const CAIRN_NO_SNAPSHOTS: &str = "CAIRN_NO_SNAPSHOTS";
/// `1`: a `COPY --from` never writes its layer ahead while its source stage
/// still runs (see `engine::speculate`); for comparing and bisecting.
pub const CAIRN_NO_SPECULATION: &str = "CAIRN_NO_SPECULATION";
/// Seconds one registry request may wait for an answer, across its retries
/// (default 60; see `TransportOptions::request_budget`). For slow links, and
/// for tests of a registry that never answers.
pub const CAIRN_REGISTRY_TIMEOUT: &str = "CAIRN_REGISTRY_TIMEOUT";
/// The executable search path (finding newuidmap/newgidmap and credential helpers).
pub const PATH: &str = "PATH";
/// buildx's switch: set and non-empty, no provenance attestation is attached by default.
pub const BUILDX_NO_DEFAULT_ATTESTATIONS: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";
