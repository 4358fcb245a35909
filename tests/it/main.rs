//! cairn's integration tests: one binary, one module per command or feature.
//! Each module runs cairn or its library against real parts (registries, skopeo, podman).

mod attest;
mod bind_mount;
mod build;
mod build_copy;
mod build_flags;
mod build_run;
mod cache;
mod check;
mod context;
mod diff;
mod docker_archive;
mod hardening;
mod multi_platform;
mod outputs;
mod parse;
mod registry;
mod registry_auth;
mod registry_faults;
mod remote_cache;
mod remote_cache_content;
mod remote_cache_faults;
mod remote_cache_lazy_base;
mod remote_cache_mounts;
mod remote_cache_prefetch;
mod rootless;
mod sandbox;
mod snapshots;
mod speculate;
mod support;
