//! `cairn build` end to end: the real binary, real OCI layouts read back by
//! cairn, umoci and skopeo, base images from a real registry.

use crate::support::registry::{Auth, TestRegistry};
use crate::support::{build_err, cairn, fixture_layout, manifest_digest, ok, run, testdata};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Copy a directory with `cp -r` under `umask`, so modes follow the umask.
fn copy_tree(from: &Path, to: &Path, umask: &str) {
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && cp -r \"$0\" \"$1\"",))
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `cairn build` with a umask, a TZ and extra args; returns (digest, stderr).
fn build(home: &Path, context: &Path, umask: &str, tz: &str, extra: &[&str]) -> (String, String) {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg("build")
        .arg(context)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(home.join("cache"))
        .args(extra)
        .env("HOME", home)
        .env("TZ", tz)
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    let out = run(c, "");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (ok(&out), stderr)
}

fn read_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

#[test]
fn same_inputs_same_digest_across_dirs_umask_mtimes_and_clock() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    copy_tree(&testdata("build/basic"), &a, "022");
    copy_tree(&testdata("build/basic"), &b, "077");
    // Different mtimes on one side.
    let st = Command::new("sh")
        .arg("-c")
        .arg("find \"$0\" -exec touch -h -d '2001-02-03 04:05:06' {} +")
        .arg(&b)
        .status()
        .unwrap();
    assert!(st.success());
    let (home_a, home_b) = (t.path().join("ha"), t.path().join("hb"));
    let (da, _) = build(&home_a, &a, "022", "UTC", &[]);
    let (db, _) = build(&home_b, &b, "077", "Asia/Tokyo", &[]);
    assert_eq!(
        da, db,
        "same context, different dir/umask/mtime/TZ must give one digest"
    );

    // The golden digest changes only on purpose (CAIRN_BLESS=1, reason in the commit).
    let golden = testdata("golden/build/basic.digest");
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, format!("{da}\n")).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).expect("golden digest missing: run with CAIRN_BLESS=1");
    assert_eq!(
        da,
        want.trim(),
        "image digest changed: if intended, re-bless with CAIRN_BLESS=1"
    );
}

#[test]
fn config_history_and_files_are_as_buildkit_writes_them() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let (digest, stderr) = build(
        t.path(),
        &testdata("build/basic"),
        "022",
        "UTC",
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            "-t",
            "basic:1",
            "--label",
            "extra=1",
            "--source-date-epoch",
            "1700000000",
        ],
    );
    assert!(
        !stderr.contains("never-built"),
        "a stage the target does not need was built:\n{stderr}"
    );
    let manifest = read_json(&out, &digest);
    let config = read_json(&out, manifest["config"]["digest"].as_str().unwrap());
    let c = &config["config"];
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "1001:1001");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/run"]));
    assert_eq!(c["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"3000/tcp": {}}));
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "basic");
    assert_eq!(c["Labels"]["extra"], "1");
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000i64);
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"NODE_ENV=production") && env.contains(&"PORT=3000"),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with("APP_DIR")),
        "ARGs never reach the config: {env:?}"
    );
    let history: Vec<(String, bool)> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap().to_owned(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert!(history.contains(&("WORKDIR /srv/app".into(), false)));
    assert!(history.contains(&(
        "COPY --chmod=755 run.sh /usr/local/bin/run # buildkit".into(),
        false
    )));
    assert!(history.contains(&(r#"CMD ["serve"]"#.into(), true)));
    assert!(history.contains(&("EXPOSE [3000/tcp]".into(), true)));
    let layers = manifest["layers"].as_array().unwrap().len();
    assert_eq!(layers, history.iter().filter(|(_, e)| !e).count());
    assert_eq!(
        layers,
        config["rootfs"]["diff_ids"].as_array().unwrap().len()
    );

    // umoci reads the layout and unpacks the same files.
    let bundle = t.path().join("bundle");
    let st = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1", out.display()))
        .arg(&bundle)
        .output()
        .expect("umoci is installed (.ci/run installs it)");
    assert!(
        st.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let root = bundle.join("rootfs");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/local/bin/run"), 0o755);
    assert_eq!(mode("srv/app/package.json"), 0o644);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "built for production\n"
    );
    assert!(
        root.join("srv/docs/KEEP.md").is_file(),
        "!docs/KEEP.md exception kept it"
    );
    assert!(!root.join("srv/docs/NOTES.md").exists(), "*.md excluded it");
    assert!(!root.join("srv/app/.env").exists());
    // skopeo reads it too.
    let sk = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:1", out.display()))
        .output()
        .unwrap();
    assert!(
        sk.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&sk.stderr)
    );
}

#[test]
fn cache_hits_and_explained_misses() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    copy_tree(&testdata("build/basic"), &ctx, "022");
    let (d1, _) = build(t.path(), &ctx, "022", "UTC", &[]);
    let (d2, warm) = build(t.path(), &ctx, "022", "UTC", &[]);
    assert_eq!(d1, d2);
    assert!(!warm.contains("cache miss"), "warm rebuild missed:\n{warm}");
    assert!(warm.matches("CACHED").count() >= 5, "{warm}");
    std::fs::write(ctx.join("src/app.ts"), "export const a = 2;\n").unwrap();
    let (d3, edited) = build(t.path(), &ctx, "022", "UTC", &[]);
    assert_ne!(d1, d3);
    assert!(
        edited.contains("cache miss: context file src/app.ts changed"),
        "{edited}"
    );
    let (_, arg) = build(
        t.path(),
        &ctx,
        "022",
        "UTC",
        &["--build-arg", "APP_DIR=/opt/app"],
    );
    assert!(
        arg.contains("instruction changed") || arg.contains("changed"),
        "{arg}"
    );
    let (_, nocache) = build(t.path(), &ctx, "022", "UTC", &["--no-cache"]);
    assert!(nocache.contains("cache miss: --no-cache"), "{nocache}");
}

#[test]
fn errors_name_the_dockerfile_line() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY missing.txt /x\n",
    )
    .unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("missing.txt"), "{err}");
}

#[test]
fn node_base_from_a_registry_with_chown_by_name_and_pass_through_layers() {
    let Some(fixture) = fixture_layout() else {
        panic!("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    };
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let image = push_fixture(&reg, &fixture, t.path());
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("package.json"), "{}\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE_IMAGE=node:22-alpine\nFROM ${BASE_IMAGE} AS base\nWORKDIR /home/node/app\nCOPY --chown=node:node package.json ./\nUSER node\n",
    )
    .unwrap();
    let out = t.path().join("out");
    let (digest, _) = build(
        t.path(),
        &ctx,
        "022",
        "UTC",
        &[
            "--build-arg",
            &format!("BASE_IMAGE={image}"),
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            "-t",
            "app:1",
        ],
    );
    let manifest = read_json(&out, &digest);
    let base_manifest = read_json(&fixture, &manifest_digest(&fixture, "22-alpine"));
    let base_layers = base_manifest["layers"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    for (i, l) in base_layers.iter().enumerate() {
        assert_eq!(
            layers[i]["digest"], l["digest"],
            "base layer {i} must pass through byte-identical"
        );
    }
    // The COPY layer (the last) holds package.json owned by node (1000:1000).
    let last = layers.last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let f = std::fs::File::open(out.join("blobs/sha256").join(last)).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut found = false;
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == "home/node/app/package.json" {
            assert_eq!(
                (e.header().uid().unwrap(), e.header().gid().unwrap()),
                (1000, 1000)
            );
            found = true;
        }
    }
    assert!(found, "package.json not in the COPY layer");
}

#[test]
fn onbuild_triggers_run_after_from_and_are_not_inherited() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "from the trigger\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS base\nONBUILD COPY a.txt /app/a.txt\nFROM base\nLABEL child=1\n",
    )
    .unwrap();
    let out = t.path().join("out");
    let (digest, log) = build(
        t.path(),
        &ctx,
        "022",
        "UTC",
        &["-o", &format!("type=oci,dest={},tar=false", out.display())],
    );
    assert!(
        log.contains("COPY a.txt /app/a.txt"),
        "the trigger ran as a step:\n{log}"
    );
    let manifest = read_json(&out, &digest);
    let config = read_json(&out, manifest["config"]["digest"].as_str().unwrap());
    assert!(
        config["config"]["OnBuild"].is_null(),
        "triggers are consumed: {}",
        config["config"]
    );
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "the trigger's COPY made a layer"
    );
}

#[test]
fn push_then_diff_two_builds_by_registry_reference_names_the_changed_input() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    copy_tree(&testdata("build/basic"), &ctx, "022");
    let a = format!("{}/demo/basic:a", reg.addr());
    let b = format!("{}/demo/basic:b", reg.addr());
    let (da, _) = build(t.path(), &ctx, "022", "UTC", &["-t", &a, "--push"]);
    std::fs::write(ctx.join("src/app.ts"), "export const a = 3;\n").unwrap();
    let (db, _) = build(t.path(), &ctx, "022", "UTC", &["-t", &b, "--push"]);
    assert_ne!(da, db);
    // skopeo reads what was pushed, with the digest cairn printed.
    let sk = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{a}"))
        .output()
        .unwrap();
    assert!(
        sk.status.success(),
        "{}",
        String::from_utf8_lossy(&sk.stderr)
    );
    assert_eq!(
        format!("sha256:{}", cairn_layers::Digest::of(&sk.stdout).hex()),
        da
    );
    // cairn diff finds both build records in the registry and names the input.
    let mut c = cairn(t.path());
    c.args(["diff", "--json", &a, &b]);
    let out = run(c, "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("context file src/app.ts changed"), "{text}");
}

/// Push the node:22-alpine stand-in to `reg`; returns its reference there.
pub(crate) fn push_fixture(reg: &TestRegistry, fixture: &Path, home: &Path) -> String {
    let image = format!("{}/library/node:22-alpine", reg.addr());
    ok(&run(
        {
            let mut c = cairn(home);
            c.arg("push")
                .arg(format!("oci:{}:22-alpine", fixture.display()))
                .arg(&image);
            c
        },
        "",
    ));
    image
}

#[test]
fn relative_cache_dir_works_for_run_steps() {
    let Some(fixture) = fixture_layout() else {
        panic!("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    };
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let image = push_fixture(&reg, &fixture, t.path());
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nRUN echo hi > /hi\n"),
    )
    .unwrap();
    // The sandbox refused layer directories under a relative cache directory.
    let mut c = cairn(t.path());
    c.current_dir(t.path())
        .args([
            "build",
            "ctx",
            "--progress",
            "plain",
            "--cache-dir",
            "rel/cache",
        ])
        .args(["-o", "type=oci,dest=out,tar=false"]);
    ok(&run(c, ""));
    assert!(t.path().join("rel/cache/blobs").is_dir());
}
