//! `cairn diff`: explains why two images differ, down to the file and the Dockerfile step.
pub mod compare;
pub mod image;
pub mod render;
pub mod tar_index;
