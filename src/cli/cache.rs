//! `cairn cache ls|prune`: see and trim the cache directory (every bucket:
//! see `cache`).

use super::GlobalArgs;
use crate::cache::usage::{scan, Usage};
use crate::cache::{Bucket, Cache, Listed, PrunePolicy};
use crate::sandbox::layer_dirs::LayerDirs;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// `cairn cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show every part of the cache with its size (they add up to `du -sb`
    /// of the directory), then the step records: key, size, last use, step.
    Ls(LsArgs),
    /// Remove cache entries (see `cairn cache prune --help`).
    ///
    /// Every prune removes temporaries, interrupted unpacks and directories
    /// of older cache layouts. Without options: also records superseded by a
    /// later run of the same step and what only they used. Waits for running
    /// builds (and `cairn run`, `push`…) to finish: a prune never breaks one.
    Prune(PruneArgs),
}

/// Arguments of `cairn cache ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// Arguments of `cairn cache prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove everything: records, blobs, unpacked layers, mount caches, the local image store.
    #[arg(short, long)]
    all: bool,
    /// Remove least recently used items until the cache directory takes at most SIZE (`512MB`, `2GB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    keep_storage: Option<u64>,
    /// `until=DURATION` (not used for DURATION, Go syntax: `24h`, `90m`), `type=BUCKET`
    /// (a bucket `cairn cache ls` shows, e.g. `layers`, `mounts`, `images`; repeatable).
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Output format of the summary.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// Run `cairn cache …` (a closed stdout, `| head`, ends it quietly: see main).
pub fn run(cmd: CacheCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        CacheCommand::Ls(a) => ls(&a, global),
        CacheCommand::Prune(a) => prune(&a, global),
    }
}

fn open(global: &GlobalArgs) -> anyhow::Result<Cache> {
    let p = global.cache();
    let cache = Cache::open_as_is(p.root())
        .with_context(|| format!("opening the cache at {}", p.root().display()))?;
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

fn buckets_json(u: &Usage) -> Vec<serde_json::Value> {
    Bucket::ALL
        .iter()
        .map(|b| {
            serde_json::json!({
                "bucket": b.name(),
                "items": u.bucket_items(*b),
                "bytes": u.bucket_bytes(*b),
            })
        })
        .collect()
}

fn ls(args: &LsArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cache = open(global)?;
    let usage = scan(cache.layout());
    let mut listed = cache.listed().context("reading the cache")?;
    listed.sort_by(|a, b| b.used.cmp(&a.used).then(a.record.key.cmp(&b.record.key)));
    let now = SystemTime::now();
    let age = |l: &Listed| now.duration_since(l.used).unwrap_or_default();
    if !usage.unreadable.is_empty() {
        eprintln!(
            "warning: {} directories could not be read as this user (their contents are not \
             counted), e.g. {}",
            usage.unreadable.len(),
            usage.unreadable[0].display()
        );
    }
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        let records: Vec<serde_json::Value> = listed
            .iter()
            .map(|l| {
                serde_json::json!({
                    "key": l.record.key,
                    "step": step_text(l),
                    "kind": kind(l),
                    "layer": l.record.layer.as_ref().map(|x| x.digest.to_string()),
                    "size": l.record.layer.as_ref().map_or(0, |x| x.size),
                    "last_used_seconds_ago": age(l).as_secs(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "root": cache.root(),
            "measure": "apparent bytes of every inode, hard links once (du -sb)",
            "total_bytes": usage.total(),
            "buckets": buckets_json(&usage),
            "records": records,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<10}  {:>7}  {:>10}", "BUCKET", "ITEMS", "SIZE")?;
    for b in Bucket::ALL {
        let (n, bytes) = (usage.bucket_items(b), usage.bucket_bytes(b));
        if bytes == 0 && n == 0 {
            continue;
        }
        writeln!(out, "{:<10}  {:>7}  {:>10}", b.name(), n, human_size(bytes))?;
    }
    writeln!(
        out,
        "{:<10}  {:>7}  {:>10}  ({}, apparent sizes as du -sb)\n",
        "total",
        usage.items.len(),
        human_size(usage.total()),
        cache.root().display()
    )?;
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

/// The policy of `--all`, `--keep-storage` and `--filter` values.
fn policy(args: &PruneArgs) -> anyhow::Result<PrunePolicy> {
    let mut policy = PrunePolicy {
        all: args.all,
        keep_storage: args.keep_storage,
        ..Default::default()
    };
    let names = || {
        Bucket::ALL
            .iter()
            .filter(|b| **b != Bucket::Root)
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for f in &args.filter {
        if let Some(d) = f.strip_prefix("until=") {
            let (neg, d) = crate::frontend::duration::parse_go_duration(d)
                .map_err(|e| anyhow::anyhow!("--filter {f}: {e}"))?;
            anyhow::ensure!(!neg, "--filter {f}: the duration must not be negative");
            policy.until = Some(d);
        } else if let Some(t) = f
            .strip_prefix("type=")
            .or_else(|| f.strip_prefix("bucket="))
        {
            match Bucket::from_name(t).filter(|b| *b != Bucket::Root) {
                Some(b) => policy.buckets.push(b),
                None => {
                    return Err(crate::cli::hint::hint(
                        anyhow::anyhow!("--filter {f}: no bucket `{t}`"),
                        format!("the buckets are {}", names()),
                    ))
                }
            }
        } else {
            return Err(crate::cli::hint::hint(
                anyhow::anyhow!("unsupported prune filter `{f}`"),
                "the supported filters are --filter until=DURATION (for example until=24h) \
                 and --filter type=BUCKET (for example type=layers)",
            ));
        }
    }
    Ok(policy)
}

fn prune(args: &PruneArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let policy = policy(args)?;
    let cache = open(global)?;
    let _lock = cache
        .lock_exclusive(|| eprintln!("waiting for running builds to release the cache…"))
        .context("locking the cache")?;
    // Unpacked layers, mount caches and run directories of a rootless user
    // hold files of its subordinate ids: those go through its user namespace.
    let dirs = LayerDirs::new(cache.layout())?;
    let remove = |p: &std::path::Path| {
        crate::sandbox::state::remove_tree(p).or_else(|_| {
            dirs.remove(p)
                .map_err(|e| std::io::Error::other(format!("{:#}", anyhow::Error::new(e))))
        })
    };
    let r = cache
        .prune(&policy, SystemTime::now(), &remove)
        .with_context(|| format!("pruning the cache at {}", cache.root().display()))?;
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        let other = r
            .removed
            .values()
            .sum::<usize>()
            .saturating_sub(r.records + r.blobs + r.layer_dirs);
        writeln!(
            out,
            "removed {} entries, {} blobs, {} unpacked layers, {other} other items: {} freed, \
             the cache now takes {}",
            r.records,
            r.blobs,
            r.layer_dirs,
            human_size(r.bytes),
            human_size(r.after)
        )?;
    }
    if let Some(limit) = policy.keep_storage.filter(|l| r.after > *l) {
        eprintln!(
            "note: {} is the least the cache directory takes (its own directory entries and \
             lock file); it cannot be brought to {}",
            human_size(r.after),
            human_size(limit)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub use crate::cache::usage::parse_size;

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
