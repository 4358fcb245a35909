//! Images: config and history, canonical JSON, manifests, OCI layout and docker-archive outputs.

pub mod config;
pub mod docker_archive;
