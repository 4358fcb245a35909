//! Images: config and history, canonical JSON, manifests, OCI layout and docker-archive outputs.

pub mod canonical;
pub mod config;
pub mod docker_archive;
pub mod layer;
pub mod manifest;
pub mod media_type;
pub mod mutate;
pub mod oci_layout;
pub mod platform;
pub(crate) mod serde_digest;
pub mod users;

pub use layer::Layer;
pub use media_type::MediaType;
pub use mutate::Image;
pub use platform::Platform;
