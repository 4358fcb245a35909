//! cairn's integration tests: one binary, one module per command or feature.

mod context;
mod docker_archive;
mod parse;
