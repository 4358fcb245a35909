//! `cairn diff`: explains why two images differ, down to the file and the Dockerfile step.
pub mod attest;
pub mod compare;
mod error;
pub mod image;
pub mod record;
pub mod render;
pub mod source;
pub mod tar_index;

pub use error::Error;
