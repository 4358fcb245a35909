//! Renders [`crate::report::Event`]s for people: indicatif bars on a TTY,
//! plain lines when stderr is not a TTY or `CI=true`, JSON lines on request.
//! The only module that imports indicatif.
