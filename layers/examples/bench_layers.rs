//! `just bench-layers`: cairn's layer writer against
//! `tar --sort=name -cf - DIR | gzip -6 | sha256sum` on the same tree.
//!
//! The tree (generated once under `<root>/tree`, deterministic): 20,000 files
//! in 200 directories, sizes 2–18 KiB (mean 10 KiB, ~205 MB in total); 70% of
//! the files are text-like (JavaScript-ish words, ~4× compressible), 30% are
//! random bytes (incompressible, like images and native binaries).
//!
//! Usage: `bench_layers [--root DIR] [--runs N] [--threads N] [--cairn-only]`
//! (defaults `target/bench`, 5 runs, all cores; `--cairn-only` is for profiling).
//! Prints each run, the medians in MB/s (tree bytes / wall time) and the
//! ratio, and appends a markdown line to `<root>/layers.md`.

use cairn_layers::blob_store::BlobStore;
use cairn_layers::{
    sort_entries, write_layer, Entry, EntryKind, LayerOptions, MtimePolicy, Source,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const FILES: usize = 20_000;
const DIRS: usize = 200;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn generate(tree: &Path) -> std::io::Result<u64> {
    const WORDS: &[&str] = &[
        "const",
        "let",
        "function",
        "return",
        "require",
        "module",
        "exports",
        "this",
        "value",
        "undefined",
        "null",
        "await",
        "async",
        "=>",
        "{",
        "}",
        "(",
        ")",
        ";",
        "if",
        "else",
        "props",
        "state",
        "render",
        "import",
        "from",
        "default",
        "class",
        "extends",
        "new",
    ];
    let mut total = 0;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..FILES {
        let dir = tree.join(format!("node_modules/pkg{:03}/lib", i % DIRS));
        std::fs::create_dir_all(&dir)?;
        let size = 2048 + (xorshift(&mut seed) % (16 * 1024)) as usize;
        let mut data = Vec::with_capacity(size + 16);
        if i % 10 < 7 {
            while data.len() < size {
                let w = WORDS[(xorshift(&mut seed) % WORDS.len() as u64) as usize];
                data.extend_from_slice(w.as_bytes());
                data.push(if xorshift(&mut seed) % 8 == 0 {
                    b'\n'
                } else {
                    b' '
                });
            }
        } else {
            while data.len() < size {
                data.extend_from_slice(&xorshift(&mut seed).to_le_bytes());
            }
        }
        data.truncate(size);
        std::fs::write(dir.join(format!("file{i:05}.js")), &data)?;
        total += size as u64;
    }
    Ok(total)
}

/// Walk `tree` into sorted entries (what the build context walker will do).
fn entries(tree: &Path) -> Vec<Entry> {
    let mut v = Vec::new();
    for e in walkdir::WalkDir::new(tree).min_depth(1) {
        let e = e.expect("walk the bench tree");
        let m = e.metadata().expect("stat");
        let rel = e.path().strip_prefix(tree).expect("inside tree");
        let kind = if m.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File {
                size: m.len(),
                source: Source::Path(e.path().to_owned()),
            }
        };
        v.push(Entry {
            path: rel.to_str().expect("utf-8 name").to_owned(),
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: u64::try_from(m.mtime()).unwrap_or(0),
            xattrs: BTreeMap::new(),
        });
    }
    sort_entries(&mut v);
    v
}

/// User + system CPU seconds of this process (`RUSAGE_SELF`) or of its waited-for children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The 1-minute load average: the machine may be shared, which skews wall times.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut root = PathBuf::from("target/bench");
    let mut runs = 5;
    let mut threads_opt = 0;
    let mut cairn_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--cairn-only" {
            cairn_only = true;
            continue;
        }
        match (a.as_str(), args.next()) {
            ("--threads", Some(v)) => threads_opt = v.parse().expect("--threads N"),
            ("--root", Some(v)) => root = v.into(),
            ("--runs", Some(v)) => runs = v.parse().expect("--runs N"),
            _ => {
                eprintln!(
                    "usage: bench_layers [--root DIR] [--runs N] [--threads N] [--cairn-only]"
                );
                std::process::exit(2);
            }
        }
    }
    let tree = root.join("tree");
    let marker = root.join("tree.done");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&tree);
        eprintln!("generating {} ...", tree.display());
        let total = generate(&tree).expect("generate the bench tree");
        std::fs::write(&marker, total.to_string()).expect("write marker");
    }
    let bytes: u64 = std::fs::read_to_string(&marker)
        .expect("read marker")
        .trim()
        .parse()
        .expect("marker holds the byte count");
    let mb = bytes as f64 / 1e6;
    let store_dir = root.join("store");
    let pipeline = format!(
        "tar --sort=name -cf - -C {} . | gzip -6 | sha256sum",
        tree.display()
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("tree: {FILES} files, {mb:.1} MB; {threads} cores; {runs} runs (+1 warm-up)");

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
    let mut last = None;
    for run in 0..=runs {
        let _ = std::fs::remove_dir_all(&store_dir);
        let t = Instant::now();
        let c = cpu_seconds(libc::RUSAGE_SELF);
        let store = BlobStore::open(&store_dir).expect("open store");
        let layer = write_layer(
            entries(&tree),
            &LayerOptions {
                threads: threads_opt,
                ..LayerOptions::new(MtimePolicy::Clamp(1_700_000_000))
            },
            &store,
        )
        .expect("write layer");
        let a = t.elapsed().as_secs_f64();
        let a_cpu = cpu_seconds(libc::RUSAGE_SELF) - c;
        if cairn_only {
            eprintln!(
                "cairn {a:.2}s ({:.0} MB/s, {a_cpu:.1} cpu-s) {} {} bytes",
                mb / a,
                layer.digest,
                layer.size
            );
            continue;
        }

        let t = Instant::now();
        let c = cpu_seconds(libc::RUSAGE_CHILDREN);
        let out = Command::new("sh")
            .args(["-c", &pipeline])
            .output()
            .expect("run tar | gzip | sha256sum");
        assert!(out.status.success(), "pipeline failed");
        let b = t.elapsed().as_secs_f64();
        let b_cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - c;
        if let Some(prev) = &last {
            assert_eq!(prev, &layer, "layer changed between runs");
        }
        if run > 0 {
            eprintln!(
                "run {run}: cairn {a:.2}s ({:.0} MB/s, {a_cpu:.1} cpu-s), tar|gzip|sha256sum {b:.2}s ({:.0} MB/s, {b_cpu:.1} cpu-s)",
                mb / a,
                mb / b
            );
            ours.push(mb / a);
            theirs.push(mb / b);
            ours_cpu.push(a_cpu);
            theirs_cpu.push(b_cpu);
        }
        last = Some(layer);
    }
    if cairn_only {
        return;
    }
    let layer = last.expect("at least one run");
    let (a, b) = (median(&ours), median(&theirs));
    // Paired ratios are steadier than the ratio of medians when the load drifts.
    let paired = median(
        &ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| a / b)
            .collect::<Vec<_>>(),
    );
    let (a_cpu, b_cpu) = (median(&ours_cpu), median(&theirs_cpu));
    let line = format!(
        "| layers | {FILES} files, {mb:.0} MB (70% text, 30% random) | {threads} cores, load {} | cairn {a:.0} MB/s ({a_cpu:.1} cpu-s) | tar\\|gzip -6\\|sha256sum {b:.0} MB/s ({b_cpu:.1} cpu-s) | {:.2}× (paired median {paired:.2}×) | blob {:.1} MB, tar {:.1} MB |",
        load_average(),
        a / b,
        layer.size as f64 / 1e6,
        layer.uncompressed_size as f64 / 1e6,
    );
    println!("{line}");
    println!("diff_id {} digest {}", layer.diff_id, layer.digest);
    let mut md = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("layers.md"))
        .expect("open layers.md");
    writeln!(md, "{line}").expect("write layers.md");
    let _ = std::fs::remove_dir_all(&store_dir);
}
