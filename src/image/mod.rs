//! Images: the model every other module passes around — [`Layer`] (one
//! layer's digest, diff_id, size and [`MediaType`]), [`Platform`], and
//! [`Image`] with its mutation (`mutate`: append a layer or a history entry,
//! finalize into canonical config and manifest bytes) — plus config and
//! history, canonical JSON, manifests and indexes, OCI layout and
//! docker-archive outputs.

pub mod canonical;
pub mod config;
pub mod docker_archive;
pub mod layer;
pub mod local_store;
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
