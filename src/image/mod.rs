//! Images: config and history, canonical JSON, manifests, OCI layout and docker-archive outputs.

pub mod canonical;
pub mod config;
pub mod docker_archive;
pub mod manifest;
pub mod oci_layout;
pub mod platform;
pub mod users;
