//! `cairn cache ls|prune` and concurrent builds on one cache, with the real binary.

use crate::build_copy::{build_in, layers, merged, write_tree};
use crate::support::{cli, ok};
use std::path::Path;

fn cache_cmd(home: &Path, args: &[&str]) -> String {
    let mut a: Vec<String> = vec!["cache".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.push("--cache-dir".into());
    a.push(home.join("cache").display().to_string());
    ok(&cli(home, &a))
}

fn ls_json(home: &Path) -> Vec<serde_json::Value> {
    ls_all(home)["records"].as_array().unwrap().clone()
}

/// The whole `cairn cache ls --format json`.
fn ls_all(home: &Path) -> serde_json::Value {
    serde_json::from_str(&cache_cmd(home, &["ls", "--format", "json"])).unwrap()
}

/// `du -sb DIR`: apparent bytes, hard links once.
fn du(dir: &Path) -> u64 {
    let o = std::process::Command::new("du")
        .arg("-sb")
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// bucket name → (items, bytes) of a `cache ls --format json`.
fn buckets(v: &serde_json::Value) -> std::collections::BTreeMap<String, (u64, u64)> {
    v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["bucket"].as_str().unwrap().to_owned(),
                (b["items"].as_u64().unwrap(), b["bytes"].as_u64().unwrap()),
            )
        })
        .collect()
}

/// The listing adds up to `du -sb` of the cache, bucket by bucket.
fn assert_adds_up(home: &Path) -> serde_json::Value {
    let v = ls_all(home);
    let total = v["total_bytes"].as_u64().unwrap();
    let sum: u64 = buckets(&v).values().map(|(_, b)| b).sum();
    assert_eq!(sum, total, "{v}");
    assert_eq!(total, du(&home.join("cache")), "ls total vs du -sb: {v}");
    v
}

fn blobs(home: &Path) -> usize {
    std::fs::read_dir(home.join("cache/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `home/ctx`: `FROM scratch`, `WORKDIR /app`, `COPY FILE ./` (FILE holds "one").
fn workdir_copy_context(home: &Path, file: &str) -> std::path::PathBuf {
    let ctx = home.join("ctx");
    let dockerfile = format!("FROM scratch\nWORKDIR /app\nCOPY {file} ./\n");
    write_tree(&ctx, &[(file, "one\n"), ("Dockerfile", &dockerfile)]);
    ctx
}

#[test]
fn ls_lists_steps_and_prune_removes_superseded_then_everything() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = workdir_copy_context(home, "app.js");
    let out = home.join("out");
    let d1 = ok(&build_in(home, &ctx, &out, &[]));
    let entries = ls_json(home);
    // WORKDIR and COPY steps, and the COPY layer's by-content record.
    assert_eq!(entries.len(), 3, "{entries:?}");
    let copy = entries
        .iter()
        .find(|e| e["step"] == "COPY app.js ./" && e["kind"] == "step")
        .expect("COPY listed with its text");
    let content = entries
        .iter()
        .find(|e| e["kind"] == "content")
        .expect("the layer's by-content record");
    assert_eq!(content["layer"], copy["layer"]);
    assert!(copy["size"].as_u64().unwrap() > 0);
    assert!(copy["key"].as_str().unwrap().starts_with("sha256:"));
    let table = cache_cmd(home, &["ls"]);
    assert!(
        table.contains("LAST USED") && table.contains("COPY app.js ./"),
        "{table}"
    );

    // An edit supersedes the COPY record; the default prune drops it and its blob.
    std::fs::write(ctx.join("app.js"), "two\n").unwrap();
    let d2 = ok(&build_in(home, &ctx, &out, &[]));
    assert_ne!(d1, d2);
    assert_eq!(ls_json(home).len(), 5);
    let before = blobs(home);
    let r: serde_json::Value =
        serde_json::from_str(&cache_cmd(home, &["prune", "--format", "json"])).unwrap();
    assert_eq!(
        (r["records"].as_u64(), r["blobs"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(blobs(home), before - 1);
    assert_eq!(ls_json(home).len(), 3);
    // What is left still serves a fully cached rebuild.
    let o = build_in(home, &ctx, &out, &[]);
    assert_eq!(ok(&o), d2);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("cache miss"));

    // until=1h keeps fresh entries; until=0s and --all remove them.
    let r = cache_cmd(home, &["prune", "--filter", "until=1h"]);
    assert!(r.starts_with("removed 0 entries"), "{r}");
    assert_adds_up(home);
    cache_cmd(home, &["prune", "--all"]);
    assert!(ls_json(home).is_empty());
    assert_eq!(blobs(home), 0);
    let o = build_in(home, &ctx, &out, &[]);
    assert_eq!(
        ok(&o),
        d2,
        "a rebuild after prune --all gives the same image"
    );

    let bad = cli(
        home,
        &[
            "cache".into(),
            "prune".into(),
            "--filter".into(),
            "dangling=true".into(),
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("until=DURATION"));
    let bad = cli(
        home,
        &[
            "cache".into(),
            "prune".into(),
            "--filter".into(),
            "type=nope".into(),
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("type=nope") && err.contains("mounts"), "{err}");
}

/// `home/ctx`: `FROM` the node:22-alpine stand-in, then `body`.
fn on_the_base(home: &Path, body: &str) -> std::path::PathBuf {
    let fixture = crate::support::fixture_layout()
        .expect("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    let ctx = home.join("ctx");
    let dockerfile = format!("FROM oci:{}:22-alpine\n{body}\n", fixture.display());
    write_tree(&ctx, &[("Dockerfile", &dockerfile)]);
    ctx
}

/// Every bucket of a cache with a base image, a RUN with a cache mount and
/// an image in the local store is listed, the sizes add up to `du -sb`, and
/// each prune brings it where it says: older layouts go in a plain prune,
/// `type=` only touches its bucket, `--keep-storage` bounds the whole
/// directory, `--all` empties it, image store included.
#[test]
fn every_bucket_adds_up_to_du_and_prune_brings_the_whole_cache_down() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = on_the_base(
        home,
        "RUN --mount=type=cache,target=/root/.npm echo cached > /root/.npm/x && echo built > /built",
    );
    let build = |extra: &[&str]| {
        let mut c = crate::support::cairn(home);
        c.arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--cache-dir"])
            .arg(home.join("cache"))
            .args(extra);
        crate::support::run(c, "")
    };
    let digest = ok(&build(&["-t", "cachetest:1"]));
    // Directories of an older layout: root's unverified `layers/<hex>` and
    // a user-namespace form without the scheme tag.
    let layers_dir = home.join("cache/layers");
    let hex = "ab".repeat(32);
    let old = [
        layers_dir.join(&hex),
        layers_dir.join("userns-0123456789abcdef").join(&hex),
    ];
    for o in &old {
        std::fs::create_dir_all(o.join("etc")).unwrap();
        std::fs::write(o.join("etc/file"), "old layout\n").unwrap();
    }
    let v = assert_adds_up(home);
    let b = buckets(&v);
    for name in [
        "records",
        "slots",
        "blobs",
        "layers",
        "layer-use",
        "mounts",
        "images",
    ] {
        assert!(b[name].0 > 0 && b[name].1 > 0, "{name} is empty: {v}");
    }
    assert!(b["layers"].1 > 1 << 20, "unpacked base layers: {v}");

    // A plain prune removes the old layouts, keeps what the build uses.
    cache_cmd(home, &["prune"]);
    for o in &old {
        assert!(!o.exists(), "{} survived a prune", o.display());
    }
    let v = assert_adds_up(home);
    assert!(buckets(&v)["layers"].1 > 1 << 20, "{v}");
    let o = build(&["-t", "cachetest:1"]);
    assert_eq!(ok(&o), digest);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("cache miss"));

    // type=mounts: only the mount caches.
    let records = buckets(&v)["records"];
    cache_cmd(home, &["prune", "--filter", "type=mounts"]);
    let v = assert_adds_up(home);
    assert_eq!(buckets(&v)["mounts"].0, 0, "{v}");
    assert_eq!(buckets(&v)["records"], records, "{v}");

    // keep-storage: the whole directory, every bucket, least recently used first.
    let before = du(&home.join("cache"));
    let half = before / 2;
    cache_cmd(home, &["prune", "--keep-storage", &half.to_string()]);
    let after = du(&home.join("cache"));
    assert!(after <= half, "{after} > {half} (was {before})");
    assert_adds_up(home);
    // Below what an empty cache directory takes: everything goes, and it says so.
    let mut c = crate::support::cairn(home);
    c.args(["cache", "prune", "--keep-storage", "1KB", "--cache-dir"])
        .arg(home.join("cache"));
    let o = crate::support::run(c, "");
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the least the cache directory takes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let floor = du(&home.join("cache"));
    assert!(floor <= 8192, "{floor}");
    let v = assert_adds_up(home);
    assert_eq!(v["records"].as_array().unwrap().len(), 0);

    // A build after that works and gives the same image; --all empties the store too.
    assert_eq!(ok(&build(&["-t", "cachetest:1"])), digest);
    assert!(buckets(&assert_adds_up(home))["images"].1 > 0);
    cache_cmd(home, &["prune", "--all"]);
    let v = assert_adds_up(home);
    for (name, (items, _)) in buckets(&v) {
        assert_eq!(items, 0, "{name} not emptied: {v}");
    }
    assert_eq!(du(&home.join("cache")), floor);
    let inspect = cli(
        home,
        &[
            "inspect".into(),
            "cachetest:1".into(),
            "--cache-dir".into(),
            home.join("cache").display().to_string(),
        ],
    );
    assert!(!inspect.status.success(), "the local store survived --all");
}

/// A running build holds the cache: `cache prune --all` waits for it
/// instead of removing what it reads, and the build succeeds.
#[test]
fn a_prune_during_a_build_waits_for_it() {
    use std::io::BufRead;
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let cache = home.join("cache");
    // The RUN says it started and waits for the test in a cache mount.
    let ctx = on_the_base(
        home,
        "RUN --mount=type=cache,id=gate,target=/gate touch /gate/started && \
         while [ ! -e /gate/open ]; do sleep 0.1; done && echo done > /d",
    );
    let gate = cairn::cache::CacheLayout::new(&cache).mount("gate");
    let mut c = crate::support::cairn(home);
    c.arg("build")
        .arg(&ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(&cache)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let build = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !gate.join("started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut p = crate::support::cairn(home);
    p.args(["cache", "prune", "--all", "--cache-dir"])
        .arg(&cache)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut prune = p.spawn().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(prune.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("waiting for running builds"), "{first}");
    assert!(gate.exists(), "the prune removed what the build uses");
    std::fs::write(gate.join("open"), "").unwrap();
    let built = build.wait_with_output().unwrap();
    ok(&built);
    let pruned = prune.wait_with_output().unwrap();
    ok(&pruned);
    assert!(ls_all(home)["records"].as_array().unwrap().is_empty());
}

/// A reader that goes away (`cairn … | head -1`) ends cairn quietly: exit 0,
/// nothing on stderr, for each command that prints a list (`cache ls`:
/// `outputs::a_closed_pipe_is_not_an_error`).
#[test]
fn a_closed_stdout_is_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = workdir_copy_context(home, "a.txt");
    ok(&build_in(home, &ctx, &home.join("out"), &[]));
    let out = format!("oci:{}", home.join("out").display());
    let ctx_s = ctx.display().to_string();
    let df = ctx.join("Dockerfile").display().to_string();
    let cmds: Vec<Vec<&str>> = vec![
        vec!["context", "ls", &ctx_s],
        vec!["parse", "-f", &df],
        vec!["check", &ctx_s],
        vec!["inspect", &out],
        // The digest a build ends with.
        vec!["build", "-q", &ctx_s],
    ];
    for args in cmds {
        let mut c = crate::support::cairn(home);
        c.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // Our end of the pipe is closed before cairn writes a byte.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && !err.contains("pipe") && !err.contains("panicked"),
            "cairn {args:?}: {} {err}",
            o.status
        );
    }
}

/// `len` letters in a fixed pattern (compressible, the same every run).
fn letters(len: usize) -> String {
    (0..len)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect()
}

#[test]
fn keep_storage_keeps_the_most_recent_layers() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = home.join("ctx");
    let big = letters(200_000);
    write_tree(
        &ctx,
        &[
            ("big.txt", &big),
            ("Dockerfile", "FROM scratch\nCOPY big.txt /\n"),
        ],
    );
    ok(&build_in(home, &ctx, &home.join("out"), &[]));
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY big.txt /b2.txt\n",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(&build_in(home, &ctx, &home.join("out"), &[]));
    // Two COPY steps and their layers' by-content records.
    assert_eq!(ls_json(home).len(), 4);
    cache_cmd(home, &["prune", "--keep-storage", "1b"]);
    assert!(ls_json(home).is_empty());
    // Nothing fits in 1 byte; a generous limit keeps everything.
    ok(&build_in(home, &ctx, &home.join("out"), &[]));
    cache_cmd(home, &["prune", "--keep-storage", "10MB"]);
    assert_eq!(ls_json(home).len(), 2);
}

#[test]
fn concurrent_builds_on_one_cache_all_succeed_with_correct_results() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let (a, b) = (home.join("a"), home.join("b"));
    write_tree(
        &a,
        &[
            ("src/1.js", "1\n"),
            ("src/2.js", "2\n"),
            (
                "Dockerfile",
                "FROM scratch\nWORKDIR /app\nCOPY src ./src/\nCOPY <<EOF /marker\na\nEOF\n",
            ),
        ],
    );
    write_tree(
        &b,
        &[
            ("lib/x.js", "x\n"),
            ("Dockerfile", "FROM scratch AS s\nCOPY lib /lib/\nFROM scratch\nCOPY --from=s /lib /l/\nCOPY <<EOF /marker\nb\nEOF\n"),
        ],
    );
    let jobs = [(&a, "a1"), (&a, "a2"), (&b, "b1"), (&b, "b2")];
    let results: Vec<(String, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .iter()
            .map(|(ctx, name)| {
                let out = home.join(name);
                s.spawn(move || (name.to_string(), ok(&build_in(home, ctx, &out, &[]))))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0].1, results[1].1, "same Dockerfile, same digest");
    assert_eq!(results[2].1, results[3].1);
    assert_ne!(results[0].1, results[2].1);
    for (name, digest) in &results {
        let m = merged(&layers(&home.join(name), digest));
        let marker = String::from_utf8_lossy(&m["marker"].data).into_owned();
        if name.starts_with('a') {
            assert_eq!(marker, "a\n");
            assert!(m.contains_key("app/src/1.js") && m.contains_key("app/src/2.js"));
        } else {
            assert_eq!(marker, "b\n");
            assert!(m.contains_key("l/x.js"));
        }
    }
    // A build in a fresh cache agrees.
    let fresh = home.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    assert_eq!(
        ok(&build_in(&fresh, &a, &fresh.join("o"), &[])),
        results[0].1
    );
}

/// A COPY whose step key missed (its source stage or an earlier step changed)
/// but whose files are the same reuses the earlier layer blob, names it, and
/// gives exactly the image a cold build in an empty cache gives. Files that
/// differ only in mode or owner are not "the same".
#[test]
fn layers_are_reused_by_content_when_only_their_inputs_moved() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = home.join("ctx");
    let dockerfile = |keep_flags: &str| {
        format!(
            "FROM scratch AS src\nCOPY keep.txt edit.txt /src/\n\
             FROM scratch\nCOPY --from=src {keep_flags}/src/keep.txt /keep.txt\n\
             COPY --from=src /src/edit.txt /edit.txt\nCOPY static.txt /static.txt\n"
        )
    };
    write_tree(
        &ctx,
        &[
            ("keep.txt", "kept\n"),
            ("edit.txt", "one\n"),
            ("static.txt", "static\n"),
            ("Dockerfile", &dockerfile("")),
        ],
    );
    let out = home.join("out");
    ok(&build_in(home, &ctx, &out, &[]));

    std::fs::write(ctx.join("edit.txt"), "two\n").unwrap();
    let o = build_in(home, &ctx, &out, &[]);
    let warm = ok(&o);
    let log = String::from_utf8_lossy(&o.stderr);
    let reused = log.matches("same files as an earlier build").count();
    // keep.txt (after a stage change) and static.txt (after a parent change).
    assert_eq!(reused, 2, "{log}");
    assert!(log.contains("cache miss: stage"), "{log}");

    // The same inputs in an empty cache give the same image.
    let fresh = tempfile::tempdir().unwrap();
    let cold = ok(&build_in(
        fresh.path(),
        &ctx,
        &fresh.path().join("out"),
        &[],
    ));
    assert_eq!(warm, cold, "a reused layer changed the image");

    // A mode change is a content change: a new layer with the new mode.
    std::fs::write(ctx.join("Dockerfile"), dockerfile("--chmod=600 ")).unwrap();
    let o = build_in(home, &ctx, &out, &[]);
    let d = ok(&o);
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        log.matches("same files as an earlier build").count(),
        2,
        "edit.txt and static.txt are as in the last build, keep.txt is not: {log}"
    );
    let keep = &layers(&out, &d)[0]["keep.txt"];
    assert_eq!(keep.mode, 0o600);
    assert_eq!(keep.data, b"kept\n");
    let all = merged(&layers(&out, &d));
    assert_eq!(all["edit.txt"].data, b"two\n");

    // --no-cache writes every layer again.
    let o = build_in(home, &ctx, &out, &["--no-cache"]);
    assert_eq!(ok(&o), d);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("same files as an earlier build"));
}

/// Turborepo's docker shape: a stage re-runs on every source edit, but the
/// files the next stage copies from it (the pruned package.json files) stay
/// the same — then the install after that COPY stays cached, as in BuildKit.
/// A changed RUN still re-runs the RUN after it, even with the same files.
#[test]
fn a_copy_with_the_same_files_keeps_the_steps_after_it_cached() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let base = format!(
        "oci:{}:22-alpine",
        crate::support::fixture_layout()
            .expect("the node:22-alpine stand-in is missing: run `just fixtures`")
            .display()
    );
    let dockerfile = format!(
        "FROM {base} AS pruner\nCOPY . /src\nRUN mkdir -p /out && cp /src/deps.txt /out/\n\
         FROM {base} AS installer\nCOPY --from=pruner /out/ /app/\n\
         RUN cp /app/deps.txt /app/installed\nRUN cat /app/deps.txt /app/installed > /app/all\n"
    );
    let ctx = home.join("ctx");
    write_tree(
        &ctx,
        &[
            ("Dockerfile", &dockerfile),
            (".dockerignore", "Dockerfile\n"),
            ("deps.txt", "left-pad@1\n"),
            ("app.js", "one\n"),
        ],
    );
    let out = home.join("out");
    let runs = |o: &std::process::Output| {
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        (log.matches("RUN command").count(), log)
    };
    let o = build_in(home, &ctx, &out, &[]);
    ok(&o);
    assert_eq!(runs(&o).0, 3);

    // A source edit: the pruner's RUN runs again, its /out does not change.
    std::fs::write(ctx.join("app.js"), "two\n").unwrap();
    let o = build_in(home, &ctx, &out, &[]);
    let edited = ok(&o);
    let (n, log) = runs(&o);
    assert_eq!(n, 1, "only the pruner's RUN runs again: {log}");
    assert!(log.contains("same files as an earlier build"), "{log}");
    let fresh = tempfile::tempdir().unwrap();
    let cold = build_in(fresh.path(), &ctx, &fresh.path().join("out"), &[]);
    assert_eq!(ok(&cold), edited, "the cached steps give the cold image");

    // What the copy brings changed: everything after it runs.
    std::fs::write(ctx.join("deps.txt"), "left-pad@2\n").unwrap();
    let (n, log) = runs(&build_in(home, &ctx, &out, &[]));
    assert_eq!(n, 3, "{log}");

    // A RUN with another command but the same files: the RUN after it runs.
    std::fs::write(
        ctx.join("Dockerfile"),
        std::fs::read_to_string(ctx.join("Dockerfile"))
            .unwrap()
            .replace(
                "cp /app/deps.txt /app/installed",
                "cat /app/deps.txt > /app/installed",
            ),
    )
    .unwrap();
    let (n, log) = runs(&build_in(home, &ctx, &out, &[]));
    assert_eq!(n, 2, "{log}");
}

/// Layers of stages the target does not contain are stored as plain tar and
/// compressed only when an exported image does contain them: the image is
/// byte for byte the one an empty cache gives, and the gzip is made once.
#[test]
fn stage_layers_are_compressed_only_when_an_image_exports_them() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = home.join("ctx");
    let big = letters(300_000);
    write_tree(
        &ctx,
        &[
            ("a.txt", &big),
            ("b.txt", "b\n"),
            (
                "Dockerfile",
                "FROM scratch AS one\nCOPY a.txt /\n\
                 FROM one AS two\nCOPY b.txt /\n\
                 FROM scratch AS final\nCOPY --from=two /b.txt /copied\n",
            ),
        ],
    );
    let out = home.join("out");
    let manifest_layers = |digest: &str| -> Vec<String> {
        let hex = digest.trim_start_matches("sha256:");
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("blobs/sha256").join(hex)).unwrap())
                .unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_owned())
            .collect()
    };
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let o = build_in(home, &ctx, &out, &[]);
    let d = ok(&o);
    assert_eq!(manifest_layers(&d), vec![gzip]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("compressing"));

    // `two` was built plain; exporting it compresses its two layers once.
    let o = build_in(home, &ctx, &out, &["--target", "two"]);
    let two = ok(&o);
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(log.matches("compressing").count(), 2, "{log}");
    assert_eq!(manifest_layers(&two), vec![gzip, gzip]);
    let o = build_in(home, &ctx, &out, &["--target", "two"]);
    assert_eq!(ok(&o), two);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("compressing"));

    let fresh = tempfile::tempdir().unwrap();
    let cold = ok(&build_in(
        fresh.path(),
        &ctx,
        &fresh.path().join("out"),
        &["--target", "two"],
    ));
    assert_eq!(
        two, cold,
        "a compressed stage layer differs from a direct write"
    );
}

/// A warm rebuild writes the very layout a cold build writes: the image,
/// and the build record stored beside it (which holds the step keys and
/// inputs, never whether a step was served from the cache).
#[test]
fn a_warm_build_writes_the_same_layout_as_a_cold_one() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = home.join("ctx");
    write_tree(
        &ctx,
        &[
            ("a.txt", "a\n"),
            ("Dockerfile", "FROM scratch\nWORKDIR /app\nCOPY a.txt ./\n"),
        ],
    );
    let (cold, warm) = (home.join("cold"), home.join("warm"));
    let d1 = ok(&build_in(home, &ctx, &cold, &[]));
    let o = build_in(home, &ctx, &warm, &[]);
    assert_eq!(ok(&o), d1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("CACHED"));
    let read = |p: &Path| std::fs::read(p.join("index.json")).unwrap();
    assert_eq!(read(&cold), read(&warm), "index.json differs");
    let names = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&cold), names(&warm));
}
