//! Integration tests: one binary.

mod sandbox;
