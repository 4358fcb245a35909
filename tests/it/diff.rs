//! `cairn diff` end to end: the real binary on pairs of images that differ in
//! exactly one known way (made by hand with the tar crate, or by `cairn
//! build`), read from OCI layouts, docker archives, the local store and a
//! real registry. Each report must name the cause; only differing layers may
//! be read.

use crate::support::image::noise;
use crate::support::registry::{Auth, TestRegistry};
use crate::support::{cairn, cli, ok, run, testdata};
use cairn::image::manifest::{Descriptor, OCI_CONFIG, OCI_MANIFEST};
use cairn::image::oci_layout::OciLayout;
use cairn_layers::Digest;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// One tar entry: (path, content, mode, uid, mtime); a path ending in `/` is a directory.
type E<'a> = (&'a str, &'a [u8], u32, u64, u64);

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content, mode, uid, mtime) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(*mtime);
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, path, &[][..]).unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, *content).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A layer: the uncompressed tar and the blob as stored.
struct Layer {
    tar: Vec<u8>,
    blob: Vec<u8>,
    created_by: String,
}

fn layer(entries: &[E], created_by: &str) -> Layer {
    let tar = tar_of(entries);
    Layer {
        blob: gzip(&tar, 6),
        tar,
        created_by: created_by.into(),
    }
}

/// Write an image into the OCI layout `dir` under `tag`.
fn write_image(dir: &Path, tag: &str, layers: &[Layer], env: &[&str]) {
    let l = OciLayout::create(dir).unwrap();
    let store = l.store();
    let descs: Vec<Descriptor> = layers
        .iter()
        .map(|x| {
            let d = store.put_bytes(&x.blob).unwrap();
            Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                d,
                x.blob.len() as u64,
            )
        })
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": env, "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|x| Digest::of(&x.tar).to_string()).collect::<Vec<_>>()},
        "history": layers.iter().map(|x| serde_json::json!({"created_by": x.created_by})).collect::<Vec<_>>(),
    });
    let cfg = serde_json::to_vec(&config).unwrap();
    let cfg_d = store.put_bytes(&cfg).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::new(OCI_CONFIG, cfg_d, cfg.len() as u64),
        "layers": descs,
    });
    let m = serde_json::to_vec(&manifest).unwrap();
    let md = store.put_bytes(&m).unwrap();
    l.tag(
        &Descriptor::new(OCI_MANIFEST, md, m.len() as u64),
        Some(tag),
    )
    .unwrap();
}

fn base() -> Layer {
    layer(
        &[
            ("etc/", b"", 0o755, 0, 100),
            ("etc/os-release", b"ID=test\n", 0o644, 0, 100),
            ("bin/", b"", 0o755, 0, 100),
            ("bin/sh", b"#!shell\n", 0o755, 0, 100),
        ],
        "ADD rootfs.tar /",
    )
}

const APP: &[E<'static>] = &[
    ("app/", b"", 0o755, 0, 200),
    ("app/server.js", b"console.log('hi')\n", 0o644, 0, 200),
    ("app/package.json", b"{\"name\":\"app\"}\n", 0o644, 0, 200),
];

/// `cairn diff ARGS --json` in `home`; returns (exit code, parsed report).
fn diff_json(home: &Path, args: &[&str]) -> (i32, Value) {
    let out = diff_raw(home, args, true);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "cairn diff failed ({code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (code, v)
}

fn diff_raw(home: &Path, args: &[&str], json: bool) -> Output {
    let mut c = cairn(home);
    c.arg("diff").args(args);
    if json {
        c.arg("--json");
    }
    c.env("CAIRN_CACHE_DIR", home.join("cache"));
    run(c, "")
}

/// Two hand-made images `a` and `b` in one layout; returns the JSON report.
fn pair(a: &[Layer], b: &[Layer], env_a: &[&str], env_b: &[&str]) -> (i32, Value) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("img");
    write_image(&dir, "a", a, env_a);
    write_image(&dir, "b", b, env_b);
    let (sa, sb) = (
        format!("oci:{}:a", dir.display()),
        format!("oci:{}:b", dir.display()),
    );
    diff_json(t.path(), &[&sa, &sb])
}

fn causes(v: &Value) -> Vec<String> {
    v["causes"].as_object().unwrap().keys().cloned().collect()
}

/// The changed files of the aligned layer `k`.
fn files(v: &Value, k: usize) -> &Vec<Value> {
    v["layers"][k]["files"]["changes"].as_array().unwrap()
}

fn app_with(f: impl Fn(&mut Vec<E<'static>>)) -> Layer {
    let mut e = APP.to_vec();
    f(&mut e);
    layer(&e, "COPY . /app")
}

#[test]
fn identical_images_exit_zero() {
    let (code, v) = pair(
        &[base(), layer(APP, "COPY . /app")],
        &[base(), layer(APP, "COPY . /app")],
        &["A=1"],
        &["A=1"],
    );
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["identical"], true);
    assert_eq!(v["bytes_read"], 0, "nothing read when the digests match");
    assert_eq!(v["schema_version"], 1);
}

#[test]
fn content_change_names_the_file_and_attribute() {
    let changed = app_with(|e| e[1].1 = b"console.log('bye')\n");
    let (code, v) = pair(
        &[base(), layer(APP, "COPY . /app")],
        &[base(), changed],
        &[],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(causes(&v), ["content"]);
    assert_eq!(v["first_divergent"], 1);
    assert_eq!(v["layers"][0]["status"], "identical");
    let f = files(&v, 1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["path"], "app/server.js");
    let attrs: Vec<&str> = f[0]["attrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attr"].as_str().unwrap())
        .collect();
    assert_eq!(attrs, ["content", "size"]);
    assert!(
        v["verdict"].as_str().unwrap().contains("COPY . /app"),
        "{v:#}"
    );
}

#[test]
fn mode_owner_and_mtime_are_each_named() {
    let cases: [(&str, Layer); 3] = [
        ("mode", app_with(|e| e[1].2 = 0o600)),
        ("ownership", app_with(|e| e[1].3 = 1000)),
        ("timestamps", app_with(|e| e[1].4 = 999)),
    ];
    for (cause, b) in cases {
        let (code, v) = pair(&[base(), layer(APP, "COPY . /app")], &[base(), b], &[], &[]);
        assert_eq!(code, 1);
        assert_eq!(causes(&v), [cause], "{v:#}");
        assert_eq!(files(&v, 1)[0]["cause"], cause);
        if cause == "timestamps" {
            assert!(
                v["verdict"].as_str().unwrap().starts_with(
                    "layer 2 differs only in file mtimes, first written by `COPY . /app`: set SOURCE_DATE_EPOCH"
                ),
                "{}",
                v["verdict"]
            );
        }
    }
}

#[test]
fn env_differences_are_config_fields() {
    let (code, v) = pair(
        &[base()],
        &[base()],
        &["NODE_ENV=production"],
        &["NODE_ENV=development"],
    );
    assert_eq!(code, 1);
    let c = &v["config"][0];
    assert_eq!(
        (c["field"].as_str(), c["a"].as_str(), c["b"].as_str()),
        (
            Some("Env NODE_ENV"),
            Some("production"),
            Some("development")
        )
    );
    assert!(v["verdict"]
        .as_str()
        .unwrap()
        .contains("only the config differs"));
}

#[test]
fn a_different_base_is_the_first_divergent_layer_and_the_rest_still_align() {
    let other_base = layer(
        &[
            ("etc/", b"", 0o755, 0, 100),
            ("etc/os-release", b"ID=other\n", 0o644, 0, 100),
        ],
        "ADD other-rootfs.tar /",
    );
    let (code, v) = pair(
        &[base(), layer(APP, "COPY . /app")],
        &[other_base, layer(APP, "COPY . /app")],
        &[],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(v["first_divergent"], 0);
    assert_eq!(v["layers"][0]["status"], "different");
    assert_eq!(v["layers"][1]["status"], "identical");
    let paths: Vec<&str> = files(&v, 0)
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["bin", "bin/sh", "etc/os-release"]);
}

#[test]
fn entry_order_only() {
    let mut rev = APP.to_vec();
    rev.swap(1, 2);
    let (code, v) = pair(
        &[base(), layer(APP, "COPY . /app")],
        &[base(), layer(&rev, "COPY . /app")],
        &[],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(causes(&v), ["order"]);
    assert_eq!(v["layers"][1]["files"]["order_differs"], true);
    assert!(files(&v, 1).is_empty());
    assert!(v["verdict"].as_str().unwrap().contains("different order"));
    // --ignore order: the only difference left is the digests themselves.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("img");
    write_image(&dir, "a", &[layer(APP, "x")], &[]);
    write_image(&dir, "b", &[layer(&rev, "x")], &[]);
    let (sa, sb) = (
        format!("oci:{}:a", dir.display()),
        format!("oci:{}:b", dir.display()),
    );
    let (code, v) = diff_json(t.path(), &[&sa, &sb, "--ignore", "order"]);
    assert!(causes(&v).is_empty(), "{v:#}");
    assert_eq!(code, 0, "only an ignored difference is left");
}

#[test]
fn same_tar_gzipped_at_two_levels_is_compression_only_and_not_read() {
    let tar = tar_of(APP);
    let fast = Layer {
        blob: gzip(&tar, 1),
        tar: tar.clone(),
        created_by: "COPY . /app".into(),
    };
    let best = Layer {
        blob: gzip(&tar, 9),
        tar,
        created_by: "COPY . /app".into(),
    };
    assert_ne!(fast.blob, best.blob);
    let (code, v) = pair(&[base(), fast], &[base(), best], &[], &[]);
    assert_eq!(code, 1);
    assert_eq!(causes(&v), ["compression"]);
    assert_eq!(v["layers"][1]["status"], "compression-only");
    assert_eq!(v["bytes_read"], 0);
}

#[test]
fn opaque_versus_per_file_whiteouts() {
    let opaque = layer(
        &[("etc/.wh..wh..opq", b"", 0o644, 0, 0)],
        "RUN rm -rf /etc/*",
    );
    let per_file = layer(
        &[("etc/.wh.os-release", b"", 0o644, 0, 0)],
        "RUN rm -rf /etc/*",
    );
    let (code, v) = pair(&[base(), opaque], &[base(), per_file], &[], &[]);
    assert_eq!(code, 1);
    assert_eq!(causes(&v), ["whiteout-style"], "{v:#}");
}

#[test]
fn platform_is_selected_from_indexes() {
    let t = tempfile::tempdir().unwrap();
    let (d1, d2) = (t.path().join("one"), t.path().join("two"));
    crate::support::image::two_platform_layout(&d1, 1, &[1000]);
    crate::support::image::two_platform_layout(&d2, 1, &[1000]);
    let (sa, sb) = (
        format!("oci:{}:multi", d1.display()),
        format!("oci:{}:multi", d2.display()),
    );
    let (code, v) = diff_json(t.path(), &[&sa, &sb, "--platform", "linux/arm64/v8"]);
    assert_eq!(code, 0, "same seed, same images: {v:#}");
    assert!(v["index_digests"][0]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let out = diff_raw(t.path(), &[&sa, &sb, "--platform", "linux/s390x"], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--platform"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn known_offenders_nested_archives_text_diffs_and_every_file() {
    let scripts = |mtime| tar_of(&[("busybox-1.36.post-install", b"#!/bin/sh\n", 0o755, 0, mtime)]);
    let (sa, sb) = (scripts(100), scripts(200));
    let many: Vec<String> = (0..15).map(|i| format!("app/f{i:02}.js")).collect();
    let side = |day: &'static [u8], scripts: &[u8], mtime: u64| {
        let mut e: Vec<E> = vec![
            ("etc/shadow", day, 0o640, 0, 0),
            ("lib/apk/db/scripts.tar", scripts, 0o644, 0, 0),
        ];
        e.extend(
            many.iter()
                .map(|p| (p.as_str(), &b"x"[..], 0o644, 0, mtime)),
        );
        layer(&e, "RUN adduser -D app && apk add busybox")
    };
    let a = side(b"root:*:20400:0:::::\napp:!:20400:0:99999:7:::\n", &sa, 1);
    let b = side(b"root:*:20400:0:::::\napp:!:20401:0:99999:7:::\n", &sb, 2);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("img");
    write_image(&dir, "a", &[a], &[]);
    write_image(&dir, "b", &[b], &[]);
    let (ra, rb) = (
        format!("oci:{}:a", dir.display()),
        format!("oci:{}:b", dir.display()),
    );
    let (code, v) = diff_json(t.path(), &[&ra, &rb, "--text"]);
    assert_eq!(code, 1);
    let f = files(&v, 0);
    let by_path = |p: &str| f.iter().find(|x| x["path"] == p).unwrap();
    let shadow = by_path("etc/shadow");
    assert!(
        shadow["known"]
            .as_str()
            .unwrap()
            .contains("BusyBox adduser"),
        "{shadow:#}"
    );
    assert!(shadow["text_diff"]
        .as_str()
        .unwrap()
        .contains("+app:!:20401"));
    let apk = by_path("lib/apk/db/scripts.tar");
    assert!(apk["known"].as_str().unwrap().contains("scripts.tar"));
    assert_eq!(apk["nested"][0]["path"], "busybox-1.36.post-install");
    assert_eq!(apk["nested"][0]["cause"], "timestamps");
    assert_eq!(v["causes"]["timestamps"], 15);
    // The human report shows 10 files per layer unless --files.
    let short =
        String::from_utf8_lossy(&diff_raw(t.path(), &[&ra, &rb], false).stdout).into_owned();
    assert!(
        short.contains("… and 7 more files (--files lists all)"),
        "{short}"
    );
    assert!(!short.contains("app/f14.js"));
    let all = String::from_utf8_lossy(&diff_raw(t.path(), &[&ra, &rb, "--files"], false).stdout)
        .into_owned();
    assert!(
        all.contains("app/f14.js") && !all.contains("more files"),
        "{all}"
    );
    assert!(all.contains("known: BusyBox adduser"), "{all}");
}

#[test]
fn bad_input_exits_two() {
    let t = tempfile::tempdir().unwrap();
    let out = diff_raw(
        t.path(),
        &[
            &format!("oci:{}", t.path().join("nope").display()),
            "docker-archive:/nonexistent.tar",
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `cairn build CTX ARGS` with the cache (and local store) under `home/cache`.
fn build(home: &Path, ctx: &Path, args: &[&str]) -> String {
    let mut c = cairn(home);
    c.arg("build")
        .arg(ctx)
        .args(["--progress", "plain"])
        .args(args)
        .env("CAIRN_CACHE_DIR", home.join("cache"))
        .env_remove("SOURCE_DATE_EPOCH");
    ok(&run(c, ""))
}

fn digest_of_tag(layout: &Path, tag: &str) -> String {
    OciLayout::open(layout)
        .unwrap()
        .resolve(Some(tag))
        .unwrap()
        .digest
        .to_string()
}

#[test]
fn build_records_name_the_step_and_the_context_file() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    copy_tree(&testdata("diff/app"), &ctx);
    let o1 = t.path().join("o1");
    build(
        t.path(),
        &ctx,
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", o1.display()),
            "-t",
            "app:1",
        ],
    );
    std::fs::write(ctx.join("src/app.ts"), "export const answer = 43;\n").unwrap();
    let o2 = t.path().join("o2");
    build(
        t.path(),
        &ctx,
        &["-o", &format!("type=oci,dest={},tar=false", o2.display())],
    );
    // Also into the local store, found by its bare name.
    build(t.path(), &ctx, &["-t", "app:2"]);
    let (code, v) = diff_json(
        t.path(),
        &[
            &format!("oci:{}:1", o1.display()),
            &format!("oci:{}", o2.display()),
        ],
    );
    assert_eq!(code, 1);
    let changes = v["build"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v:#}");
    assert_eq!(changes[0]["stage"], "runner");
    assert!(changes[0]["instruction"]
        .as_str()
        .unwrap()
        .starts_with("COPY src/"));
    assert_eq!(changes[0]["inputs"][0], "context file src/app.ts changed");
    assert!(
        v["verdict"]
            .as_str()
            .unwrap()
            .contains("COPY src/ ./src/: context file src/app.ts changed"),
        "{}",
        v["verdict"]
    );
    let f = files(&v, v["first_divergent"].as_u64().unwrap() as usize);
    assert_eq!(f[0]["path"], "srv/app/src/app.ts");

    // Local store by bare name (A from the layout, B from the store): same answer.
    let (code, v2) = diff_json(t.path(), &[&format!("oci:{}:1", o1.display()), "app:2"]);
    assert_eq!(code, 1);
    assert_eq!(v2["build"], v["build"]);
    assert_eq!(v2["manifest_digests"][1], v["manifest_digests"][1]);
    // Through a registry: `cairn push oci:DIR REF` takes the attached record
    // along as a referrer; distribution 2.8 has no referrers API, so it is
    // listed in the index tagged `sha256-HEX` (the referrers tag schema).
    let reg = TestRegistry::start(Auth::None);
    for (o, tag) in [(&o1, "1"), (&o2, "latest")] {
        ok(&cli(
            t.path(),
            &[
                "push".into(),
                format!("oci:{}:{tag}", o.display()),
                format!("{}/app:{tag}", reg.addr()),
            ],
        ));
        let hex = digest_of_tag(o, tag)
            .trim_start_matches("sha256:")
            .to_owned();
        assert!(
            reg.storage()
                .join(format!(
                    "data/docker/registry/v2/repositories/app/_manifests/tags/sha256-{hex}"
                ))
                .is_dir(),
            "no referrers tag for {tag}"
        );
    }
    let (code, v3) = diff_json(
        t.path(),
        &[
            &format!("{}/app:1", reg.addr()),
            &format!("{}/app:latest", reg.addr()),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(v3["build"], v["build"], "{v3:#}");
    // The human report says it too.
    let out = diff_raw(
        t.path(),
        &[&format!("oci:{}:1", o1.display()), "app:2"],
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("runner 4 COPY src/ ./src/: context file src/app.ts changed"),
        "{text}"
    );
}

#[test]
fn two_source_date_epochs_differ_only_in_image_timestamps() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    copy_tree(&testdata("diff/app"), &ctx);
    let (o1, o2) = (t.path().join("o1"), t.path().join("o2"));
    build(
        t.path(),
        &ctx,
        &[
            "--source-date-epoch",
            "1000",
            "-o",
            &format!("type=oci,dest={},tar=false", o1.display()),
        ],
    );
    build(
        t.path(),
        &ctx,
        &[
            "--source-date-epoch",
            "2000",
            "-o",
            &format!("type=oci,dest={},tar=false", o2.display()),
        ],
    );
    let (code, v) = diff_json(
        t.path(),
        &[
            &format!("oci:{}", o1.display()),
            &format!("oci:{}", o2.display()),
        ],
    );
    assert_eq!(code, 1);
    // cairn's layers do not depend on the epoch: only `created` fields differ.
    assert!(causes(&v).is_empty(), "{v:#}");
    let fields: Vec<&str> = v["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields[0], "created", "{fields:?}");
    assert!(fields[1..]
        .iter()
        .all(|f| f.starts_with("history[") && f.ends_with("].created")));
    assert!(
        v["verdict"].as_str().unwrap().contains("SOURCE_DATE_EPOCH"),
        "{v:#}"
    );
    assert_eq!(
        v["build"]["changes"],
        serde_json::json!([]),
        "the cache keys do not include the epoch"
    );
    // Ignoring timestamps leaves nothing: exit 0, not identical but equivalent.
    let (code, v) = diff_json(
        t.path(),
        &[
            &format!("oci:{}", o1.display()),
            &format!("oci:{}", o2.display()),
            "--ignore=timestamps",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        (v["identical"].as_bool(), v["equivalent"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(v["config"].as_array().unwrap().is_empty(), "{v:#}");
}

#[test]
fn a_changed_base_image_is_named_by_the_build_record() {
    let t = tempfile::tempdir().unwrap();
    let (base, app) = (t.path().join("base"), t.path().join("app"));
    copy_tree(&testdata("diff/base"), &base);
    copy_tree(&testdata("diff/on-base"), &app);
    let (b1, b2) = (t.path().join("b1"), t.path().join("b2"));
    let d1 = build(
        t.path(),
        &base,
        &["-o", &format!("type=oci,dest={},tar=false", b1.display())],
    );
    std::fs::write(base.join("os-release"), "ID=cairn-test-base\nVERSION=2\n").unwrap();
    let d2 = build(
        t.path(),
        &base,
        &["-o", &format!("type=oci,dest={},tar=false", b2.display())],
    );
    let (o1, o2) = (t.path().join("o1"), t.path().join("o2"));
    for (b, o) in [(&b1, &o1), (&b2, &o2)] {
        build(
            t.path(),
            &app,
            &[
                "--build-arg",
                &format!("BASE=oci:{}:latest", b.display()),
                "-o",
                &format!("type=oci,dest={},tar=false", o.display()),
            ],
        );
    }
    let (code, v) = diff_json(
        t.path(),
        &[
            &format!("oci:{}", o1.display()),
            &format!("oci:{}", o2.display()),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        v["first_divergent"], 0,
        "the base layer is the first to differ: {v:#}"
    );
    assert_eq!(files(&v, 0)[0]["path"], "etc/os-release");
    let changes = v["build"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v:#}");
    assert_eq!(changes[0]["kind"], "base");
    let line = changes[0]["inputs"][0].as_str().unwrap();
    let short = |d: &str| format!("{}…", &d[..19]);
    assert_eq!(line, format!("base {}→{}", short(&d1), short(&d2)));
    assert!(v["build"]["downstream"].as_u64().unwrap() >= 1);
}

#[test]
fn docker_archive_sides() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    copy_tree(&testdata("diff/app"), &ctx);
    let (tar1, oci1) = (t.path().join("one.tar"), t.path().join("one"));
    build(
        t.path(),
        &ctx,
        &[
            "-o",
            &format!("type=docker-archive,dest={}", tar1.display()),
            "-o",
            &format!("type=oci,dest={},tar=false", oci1.display()),
            "-t",
            "app:1",
        ],
    );
    std::fs::write(ctx.join("src/app.ts"), "export const answer = 44;\n").unwrap();
    let tar2 = t.path().join("two.tar");
    build(
        t.path(),
        &ctx,
        &[
            "-o",
            &format!("type=docker-archive,dest={}", tar2.display()),
        ],
    );
    let a1 = format!("docker-archive:{}", tar1.display());
    // The same image as a docker archive (uncompressed layers) and an OCI layout (gzip).
    let (code, v) = diff_json(t.path(), &[&a1, &format!("oci:{}", oci1.display())]);
    assert_eq!(code, 1);
    assert_eq!(causes(&v), ["compression"], "{v:#}");
    assert!(v["config"].as_array().unwrap().is_empty());
    // Archive against itself: identical.
    let (code, _) = diff_json(t.path(), &[&a1, &a1]);
    assert_eq!(code, 0);
    // Two archives: the changed file is found inside the uncompressed layer.
    let (code, v) = diff_json(
        t.path(),
        &[&a1, &format!("docker-archive:{}", tar2.display())],
    );
    assert_eq!(code, 1);
    assert_eq!(causes(&v), ["content"]);
    let f = files(&v, v["first_divergent"].as_u64().unwrap() as usize);
    assert_eq!(f[0]["path"], "srv/app/src/app.ts");
}

/// Two images sharing a big incompressible base layer and differing in one
/// small layer, pushed to a real registry: only the small layers are fetched
/// and read.
#[test]
fn registry_sides_fetch_and_read_only_the_differing_layers() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("img");
    let big = noise(7, 50 << 20);
    let shared = {
        let tar = tar_of(&[("data/blob.bin", &big, 0o644, 0, 0)]);
        // Stored uncompressed: random data does not compress anyway.
        Layer {
            blob: tar.clone(),
            tar,
            created_by: "COPY blob.bin /data/".into(),
        }
    };
    let shared2 = Layer {
        blob: shared.blob.clone(),
        tar: shared.tar.clone(),
        created_by: shared.created_by.clone(),
    };
    let changed = app_with(|e| e[2].1 = b"{\"name\":\"app\",\"version\":\"2\"}\n");
    write_image(&dir, "a", &[shared, layer(APP, "COPY . /app")], &[]);
    write_image(&dir, "b", &[shared2, changed], &[]);
    for tag in ["a", "b"] {
        ok(&cli(
            t.path(),
            &[
                "push".into(),
                format!("oci:{}:{tag}", dir.display()),
                format!("{}/team/app:{tag}", reg.addr()),
            ],
        ));
    }
    let (ra, rb) = (
        format!("{}/team/app:a", reg.addr()),
        format!("{}/team/app:b", reg.addr()),
    );
    let (code, v) = diff_json(t.path(), &[&ra, &rb]);
    assert_eq!(code, 1);
    assert_eq!(v["layers"][0]["status"], "identical");
    assert_eq!(causes(&v), ["content"]);
    assert_eq!(files(&v, 1)[0]["path"], "app/package.json");
    let (read, fetched) = (
        v["bytes_read"].as_u64().unwrap(),
        v["bytes_fetched"].as_u64().unwrap(),
    );
    assert!(read > 0 && read < 1 << 20, "bytes_read {read}");
    assert!(fetched > 0 && fetched < 1 << 20, "bytes_fetched {fetched}");
    // The registry served the big layer to nobody: its log has no GET of it.
    let big_digest = Digest::of(&tar_of(&[("data/blob.bin", &big, 0o644, 0, 0)])).to_string();
    let log = reg.log();
    assert!(
        log.contains("GET /v2/team/app/blobs/"),
        "the access log records blob GETs:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("GET") && l.contains(&big_digest)),
        "the shared layer was downloaded"
    );
    // A registry side against an OCI layout side.
    let (code, v) = diff_json(t.path(), &[&format!("oci:{}:a", dir.display()), &rb]);
    assert_eq!(code, 1);
    assert!(v["bytes_read"].as_u64().unwrap() < 1 << 20);
}
