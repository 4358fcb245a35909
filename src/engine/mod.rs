//! Build engine: runs the stage graph, one instruction at a time, with a content-addressed cache.
pub mod cache;
pub mod copy;
pub mod fs;
pub mod pattern;
pub mod users;
