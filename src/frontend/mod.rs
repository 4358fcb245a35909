//! Dockerfile frontend: lexing, parsing, word expansion, ARG/ENV scoping and the stage graph.
