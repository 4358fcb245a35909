//! Dockerfile frontend: lexing, parsing, word expansion, ARG/ENV scoping and the stage graph.

pub mod ast;
pub mod diagnostic;
pub mod directives;
pub mod expand;
pub(crate) mod lexer;
pub mod duration;
pub mod instructions;
pub mod mount;
