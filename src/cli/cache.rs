//! `cairn cache ls|prune`: see and trim the build cache.

use super::GlobalArgs;
use crate::engine::cache::{Cache, Listed, PrunePolicy};
use crate::engine::request::default_cache_dir;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// `cairn cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cache entries: key, step, layer size and time since last use.
    Ls(LsArgs),
    /// Remove cache entries and the layers only they used.
    ///
    /// Without options: entries superseded by a later run of the same step,
    /// and entries whose layer is gone. Waits for running builds to finish.
    Prune(PruneArgs),
}

/// Which cache.
#[derive(Debug, Args)]
pub struct CacheDir {
    /// The cache directory (default $CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheDir {
    fn path(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

/// Arguments of `cairn cache ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    dir: CacheDir,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// Arguments of `cairn cache prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    dir: CacheDir,
    /// Remove everything (also pulled base layers and unpacked layers).
    #[arg(short, long)]
    all: bool,
    /// Keep at most this much layer data, removing least recently used entries (`512MB`, `2GB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    keep_storage: Option<u64>,
    /// `until=DURATION`: remove entries not used for DURATION (Go syntax: `24h`, `90m`).
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Output format of the summary.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// Run `cairn cache …`.
pub fn run(cmd: CacheCommand, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        CacheCommand::Ls(a) => ls(&a),
        CacheCommand::Prune(a) => prune(&a),
    }
}

fn open(dir: &CacheDir) -> anyhow::Result<Cache> {
    let p = dir.path();
    let cache = Cache::open_unlocked(&p)
        .with_context(|| format!("opening the cache at {}", p.display()))?;
    if let Some(w) = cache.repaired_warning() {
        eprintln!("warning: {w}");
    }
    Ok(cache)
}

fn step_text(l: &Listed) -> String {
    l.record
        .inputs
        .0
        .iter()
        .find(|i| i.name == "instruction")
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

/// `step`, or `content` for a record that finds a layer by what it holds.
fn kind(l: &Listed) -> &'static str {
    if l.record.is_content() {
        "content"
    } else {
        "step"
    }
}

fn ls(args: &LsArgs) -> anyhow::Result<ExitCode> {
    let cache = open(&args.dir)?;
    let mut listed = cache.listed().context("reading the cache")?;
    listed.sort_by(|a, b| b.used.cmp(&a.used).then(a.record.key.cmp(&b.record.key)));
    let now = SystemTime::now();
    let age = |l: &Listed| now.duration_since(l.used).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        let v: Vec<serde_json::Value> = listed
            .iter()
            .map(|l| {
                serde_json::json!({
                    "key": l.record.key,
                    "step": step_text(l),
                    "kind": kind(l),
                    "layer": l.record.layer.as_ref().map(|x| &x.digest),
                    "size": l.record.layer.as_ref().map_or(0, |x| x.size),
                    "last_used_seconds_ago": age(l).as_secs(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<19}  {:>9}  {:>9}  {:<7}  STEP",
        "KEY", "SIZE", "LAST USED", "KIND"
    )?;
    for l in &listed {
        let key = l.record.key.trim_start_matches("sha256:");
        let size = l.record.layer.as_ref().map_or(0, |x| x.size);
        writeln!(
            out,
            "{:<19}  {:>9}  {:>9}  {:<7}  {}",
            &key[..key.len().min(19)],
            human_size(size),
            format!("{} ago", human_age(age(l))),
            kind(l),
            step_text(l)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let mut policy = PrunePolicy {
        all: args.all,
        keep_storage: args.keep_storage,
        ..Default::default()
    };
    for f in &args.filter {
        let Some(d) = f.strip_prefix("until=") else {
            return Err(crate::error::hint(
                anyhow::anyhow!("unsupported prune filter `{f}`"),
                "the supported filter is --filter until=DURATION (for example until=24h)",
            ));
        };
        let (neg, d) = crate::frontend::duration::parse_go_duration(d)
            .map_err(|e| anyhow::anyhow!("--filter {f}: {e}"))?;
        anyhow::ensure!(!neg, "--filter {f}: the duration must not be negative");
        policy.until = Some(d);
    }
    let cache = open(&args.dir)?;
    let _lock = cache
        .lock_exclusive(|| eprintln!("waiting for running builds to release the cache…"))
        .context("locking the cache")?;
    let r = cache
        .prune(&policy, SystemTime::now())
        .with_context(|| format!("pruning the cache at {}", cache.root().display()))?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "removed {} entries, {} layer blobs ({}), {} unpacked layers",
            r.records,
            r.blobs,
            human_size(r.bytes),
            r.layer_dirs
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Parse `512MB`, `2g`, `1.5GiB`, `1024` (bytes); units are binary, as docker's.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size `{s}`: expected a number and a unit such as 512MB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "invalid size unit `{u}` in `{s}` (use B, KB, MB, GB or TB)"
            ))
        }
    };
    Ok((n * mult as f64) as u64)
}

fn human_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5XB").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(3 << 20), "3.0MiB");
        assert_eq!(human_age(Duration::from_secs(7200)), "2h");
    }
}
