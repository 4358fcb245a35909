//! `cairn diff`: explains why two images differ, down to the file and the Dockerfile step.
//!
//! [`source`] loads each side (registry, OCI layout, docker-archive: manifests
//! and config only); [`image`] aligns their layers and compares configs,
//! reading only layers whose diff_ids differ ([`tar_index`], [`compare`]);
//! [`record`] compares the build records stored with the images, [`attest`]
//! their attestations; [`render`] writes the text and JSON reports.
pub mod attest;
pub mod compare;
mod error;
pub mod image;
pub mod record;
pub mod render;
pub mod source;
pub mod tar_index;

pub use error::Error;
