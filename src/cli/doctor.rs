//! `cairn doctor`: which RUN isolation this machine allows, and why.

use super::GlobalArgs;
use crate::sandbox::binfmt::{self, Support};
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
pub fn run(args: DoctorArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .state_dir
        .unwrap_or_else(|| global.cache().dir(crate::cache::Bucket::Sandbox));
    let sb = sandbox::Sandbox::new(&dir)?;
    let probe = sb.probe();
    let mut out = std::io::stdout().lock();
    let platforms = platform_rows();
    if args.json {
        let mut v = serde_json::to_value(probe)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("platforms".into(), platforms_json(&platforms));
        }
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(probe))?;
        write!(out, "{}", render_platforms(&platforms))?;
    }
    Ok(if probe.auto().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `{"linux/arm64": {"run": "emulated", "handler": …}, …}` for `--json`.
fn platforms_json(rows: &[(String, Support)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (p, s) in rows {
        let v = match s {
            Support::Native => serde_json::json!({"run": "native"}),
            Support::Emulated(h) => serde_json::json!({"run": "emulated", "handler": h}),
            Support::No(why) => serde_json::json!({"run": "no", "why": why}),
        };
        m.insert(p.clone(), v);
    }
    serde_json::Value::Object(m)
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

/// Which platforms RUN can execute here, and how to enable the others.
pub fn render_platforms(rows: &[(String, Support)]) -> String {
    let mut s = String::from("\nplatforms RUN can execute:\n");
    for (p, support) in rows {
        let line = match support {
            Support::Native => format!("  ok  {p:<14}native\n"),
            Support::Emulated(h) => format!(
                "  ok  {p:<14}emulated: binfmt_misc {} -> {} (F flag)\n",
                h.name, h.interpreter
            ),
            Support::No(why) => format!("  no  {p:<14}{why}\n"),
        };
        s.push_str(&line);
    }
    if rows.iter().any(|(_, r)| matches!(r, Support::No(_))) {
        s.push_str(&format!(
            "to enable a platform, e.g. linux/arm64: {}\n",
            binfmt::how_to_enable("arm64")
        ));
    }
    s
}

/// The platforms `cairn doctor` reports on, with how RUN can execute each.
fn platform_rows() -> Vec<(String, Support)> {
    binfmt::COMMON_PLATFORMS
        .iter()
        .filter_map(|p| crate::frontend::Platform::parse(p).ok())
        .map(|p| {
            let s = binfmt::support(&p);
            (p.to_string(), s)
        })
        .collect()
}
