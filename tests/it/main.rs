//! One integration test binary for cairn (modules per feature).

mod parse;
