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
    serde_json::from_str::<serde_json::Value>(&cache_cmd(home, &["ls", "--format", "json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn blobs(home: &Path) -> usize {
    std::fs::read_dir(home.join("cache/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn ls_lists_steps_and_prune_removes_superseded_then_everything() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = home.join("ctx");
    write_tree(
        &ctx,
        &[
            ("app.js", "one\n"),
            ("Dockerfile", "FROM scratch\nWORKDIR /app\nCOPY app.js ./\n"),
        ],
    );
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
