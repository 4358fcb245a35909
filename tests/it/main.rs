//! One integration test binary (cargo and uv style): a module per area.

mod docker_archive;
