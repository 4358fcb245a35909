//! `cairn doctor`: which RUN isolation this machine allows, and why.

use super::GlobalArgs;
use crate::sandbox::{self, Probe, Strength};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `cairn doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the probe as JSON.
    #[arg(long)]
    pub json: bool,
    /// Sandbox state directory (default: the cache dir's `sandbox`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Run `cairn doctor`: exit 0 when `--isolation=auto` has a mode, 1 otherwise.
pub fn run(args: DoctorArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let dir = args.state_dir.unwrap_or_else(sandbox::default_state_dir);
    let sb = sandbox::Sandbox::new(&dir)?;
    let probe = sb.probe();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, probe)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(probe))?;
    }
    Ok(if probe.auto().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The human-readable report.
pub fn render(p: &Probe) -> String {
    let opt = |v: &Option<PathBuf>| {
        v.as_ref()
            .map_or("not found".into(), |p| p.display().to_string())
    };
    let range = |r: Option<(u32, u32)>| r.map_or("none".into(), |(s, c)| format!("{s}+{c}"));
    let mut s = String::new();
    s.push_str(&format!("uid:               {}\n", p.uid));
    s.push_str(&format!("id mapping:        {:?}\n", p.identity.kind));
    s.push_str(&format!(
        "subuid / subgid:   {} / {}\n",
        range(p.subuid),
        range(p.subgid)
    ));
    s.push_str(&format!("newuidmap:         {}\n", opt(&p.newuidmap)));
    s.push_str(&format!("newgidmap:         {}\n", opt(&p.newgidmap)));
    s.push_str(&format!("fuse-overlayfs:    {}\n", opt(&p.fuse_overlayfs)));
    for c in &p.sysctls {
        s.push_str(&format!(
            "{:<45} {}\n",
            c.name,
            c.value.as_deref().unwrap_or("(absent)")
        ));
    }
    s.push_str(&format!(
        "user namespace:    {}\n",
        p.userns_error.as_deref().unwrap_or("ok")
    ));
    s.push_str(&format!(
        "overlay in userns: {}\n",
        p.overlay_error.as_deref().unwrap_or("ok")
    ));
    s.push_str("\nisolation modes (strongest first):\n");
    for r in &p.ladder {
        let mark = match r.strength {
            Strength::Preferred => "ok  ",
            Strength::OnRequest => "opt ",
            Strength::Unavailable => "no  ",
        };
        s.push_str(&format!("  {mark}{:<13}{}\n", r.isolation.name(), r.why));
    }
    match p.auto() {
        Some(r) => s.push_str(&format!("\nchosen (auto): {}\n", r.isolation.name())),
        None => s.push_str("\nchosen (auto): none available; RUN steps will fail\n"),
    }
    s
}
