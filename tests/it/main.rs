//! Integration tests: one binary (cargo/uv style). Each module runs cairn or
//! its library against real parts (registries, skopeo).

mod registry;
mod registry_auth;
mod registry_faults;
mod support;
