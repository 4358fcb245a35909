//! The RUN sandbox's isolation: `--isolation` parsed, and the sandbox
//! created once per invocation (for `cairn build` and `cairn run`).

use crate::report::Event;
use crate::sandbox::{Isolation, Sandbox};

/// `--isolation` names.
pub fn parse_isolation(s: &str) -> Result<Isolation, super::Error> {
    Ok(match s {
        "auto" => Isolation::Auto,
        "overlay" => Isolation::Overlay,
        "fuse-overlayfs" | "fuse-overlay" => Isolation::FuseOverlay,
        "copy" => Isolation::Copy,
        "none" => Isolation::None,
        other => return Err(super::Error::UnknownIsolation(other.to_owned())),
    })
}

/// Create the build's sandbox (probing the machine once) and say which isolation it uses.
/// The sandbox is the layer directories' own, so both use one id mapping.
pub fn new_sandbox(
    layer_dirs: &crate::sandbox::layer_dirs::LayerDirs,
    reporter: &dyn crate::report::Reporter,
    isolation: &str,
) -> Result<Sandbox, super::Error> {
    let sandbox = layer_dirs.sandbox()?.clone();
    let asked = parse_isolation(isolation)?;
    match sandbox.probe().choose(asked) {
        Ok(chosen) => reporter.event(Event::Info(format!(
            "RUN isolation: {} — {}",
            chosen.isolation.name(),
            chosen.why
        ))),
        Err(e) => reporter.event(Event::Warning(format!("RUN isolation: {e}"))),
    }
    Ok(sandbox)
}
