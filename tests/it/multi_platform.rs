//! `cairn build --platform linux/amd64,linux/arm64`: one OCI index, arm64 RUN
//! under QEMU user emulation (binfmt_misc), pushed to a real registry and read
//! back by skopeo; on the project's own two-platform busybox base
//! (testdata/base/busybox-multi), so nothing comes from Docker Hub.

use crate::support::registry::{Auth, TestRegistry};
use crate::support::{build_command, cairn, cli, ok, run};
use std::path::{Path, PathBuf};

/// The two-platform busybox base (`oci:DIR:multi`): `$CAIRN_BUSYBOX_OCI`, else
/// this checkout's target/fixtures/busybox-multi/oci
/// (`testdata/base/busybox-multi/build.sh target/fixtures/busybox-multi`).
pub(crate) fn busybox() -> String {
    let candidates = [
        std::env::var_os("CAIRN_BUSYBOX_OCI").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/busybox-multi/oci")),
    ];
    let dir = candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("index.json").is_file())
        .expect(
            "the busybox-multi base is missing: run \
             testdata/base/busybox-multi/build.sh target/fixtures/busybox-multi (just fixtures does)",
        );
    format!("oci:{}:multi", dir.display())
}

/// arm64 RUN needs an F-flag binfmt_misc handler; say how to get one.
fn require_emulation() {
    let h = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    assert!(
        h.contains("enabled")
            && h.lines()
                .any(|l| l.starts_with("flags:") && l.contains('F')),
        "no arm64 emulation: run tests/support/binfmt.sh as root (just test-user/deps does)"
    );
}

/// `cairn build` of `ctx` with extra args; its output.
fn build(home: &Path, ctx: &Path, cache: &str, args: &[&str]) -> std::process::Output {
    let mut c = build_command(home, ctx, cache, "plain");
    c.args(args);
    run(c, "")
}

/// `cairn run --platform P IMAGE`: its stdout.
fn run_image(home: &Path, platform: &str, image: &str) -> String {
    ok(&cli(
        home,
        &[
            "run".into(),
            "--platform".into(),
            platform.into(),
            "--cache-dir".into(),
            home.join("cache").display().to_string(),
            image.into(),
        ],
    ))
}

fn skopeo(args: &[&str]) -> String {
    let o = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A small app: a build-platform stage (cross-compilation) whose output is
/// stamped with random bytes, and a target stage whose RUN records
/// `uname -m` and the platform args.
fn app(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("app.txt"), "same bytes on every platform\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {bb} AS tools\n\
             RUN uname -m > /tool && od -An -N16 -tx1 /dev/urandom >> /tool\n\
             FROM {bb}\n\
             ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH\n\
             COPY app.txt /app/\n\
             COPY --from=tools /tool /app/tool\n\
             RUN uname -m > /app/arch && echo \"$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDOS|$BUILDARCH\" > /app/args\n\
             CMD [\"cat\", \"/app/arch\", \"/app/args\", \"/app/tool\"]\n",
            bb = busybox()
        ),
    )
    .unwrap();
    ctx
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `cairn build ctx --platform linux/amd64,linux/arm64 ARGS` on cache `cache`: the index digest.
fn build_two(home: &Path, ctx: &Path, cache: &str, args: &[&str]) -> String {
    let mut all = vec!["--platform", "linux/amd64,linux/arm64"];
    all.extend_from_slice(args);
    ok(&build(home, ctx, cache, &all))
}

#[test]
fn two_platforms_one_index_arm64_run_under_emulation_pushed_and_read_back() {
    require_emulation();
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let ctx = app(t.path());
    let out = t.path().join("oci");
    let meta = t.path().join("meta.json");
    let image = format!("{}/team/app:1", reg.addr());
    let digest = build_two(
        t.path(),
        &ctx,
        "cache",
        &[
            "-t",
            &image,
            "--push",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            "--metadata-file",
            &meta.display().to_string(),
        ],
    );
    assert_eq!(json(&meta)["containerimage.digest"], digest.as_str());

    // The layout holds the index under the tag; skopeo reads it and copies every platform.
    let layout_ref = format!("oci:{}:1", out.display());
    let raw = skopeo(&["inspect", "--raw", &layout_ref]);
    assert_eq!(
        cairn_layers::Digest::of(raw.as_bytes()).to_string(),
        digest,
        "the layout's tag names the index cairn printed"
    );
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let plats: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &layout_ref,
        &format!("dir:{}", t.path().join("from-layout").display()),
    ]);

    // Pushed: the registry serves the same index; skopeo --all copies it back with every platform.
    let remote = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    assert_eq!(
        cairn_layers::Digest::of(remote.as_bytes()).to_string(),
        digest,
        "the registry holds the index cairn printed"
    );
    let back = t.path().join("back");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:1", back.display()),
    ]);
    // Index, 2 manifests, 2 configs, each platform's busybox layer and its 3 new layers
    // (the app.txt COPY has the same bytes on both: one blob), 2 build records (+ their blob and `{}`).
    assert!(reg.verify_blobs() >= 10, "every blob stored, none corrupt");

    // Each image ran its RUN on its own architecture (arm64 under QEMU) with BuildKit's platform args.
    let img = format!("oci:{}:1", back.display());
    let lines = |p: &str| {
        run_image(t.path(), p, &img)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (amd, arm) = (lines("linux/amd64"), lines("linux/arm64"));
    assert_eq!(amd[0], "x86_64");
    assert_eq!(arm[0], "aarch64");
    assert_eq!(amd[1], "linux/amd64|linux|amd64||linux/amd64|linux|amd64");
    assert_eq!(arm[1], "linux/arm64|linux|arm64||linux/amd64|linux|amd64");
    // The $BUILDPLATFORM stage ran once, natively: both images carry the same randomly stamped output.
    assert_eq!(amd[2], "x86_64");
    assert_eq!(
        amd[2..],
        arm[2..],
        "the $BUILDPLATFORM stage was built once"
    );
    // Platform-independent work once: the COPY of app.txt and of the tools' output are one blob each.
    assert_eq!(
        shared_layers(&out, "1"),
        2,
        "app.txt and /app/tool layers shared"
    );
    // Also under --no-cache: the $BUILDPLATFORM stage runs once per invocation, not once per platform.
    let fresh = t.path().join("no-cache");
    let again = build_two(
        t.path(),
        &ctx,
        "cache",
        &[
            "--no-cache",
            "-o",
            &format!("type=oci,dest={},tar=false", fresh.display()),
        ],
    );
    assert_ne!(
        again, digest,
        "--no-cache ran the randomly stamped tools stage again"
    );
    assert_eq!(
        shared_layers(&fresh, "latest"),
        2,
        "--no-cache: tools stage run once"
    );
}

/// How many layers the two platform images of the index tagged `tag` in `layout` share.
fn shared_layers(layout: &Path, tag: &str) -> usize {
    let blob = |d: &str| {
        json(
            &layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
    };
    let index = blob(&crate::support::manifest_digest(layout, tag));
    let layers = |i: usize| -> Vec<String> {
        blob(index["manifests"][i]["digest"].as_str().unwrap())["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let (la, lb) = (layers(0), layers(1));
    la.iter().filter(|d| lb.contains(d)).count()
}

#[test]
fn two_builds_give_the_same_index_and_docker_archives_per_platform() {
    require_emulation();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nARG TARGETARCH\nRUN uname -m > /arch && echo $TARGETARCH > /target && ls -l /bin/sh > /sh\n",
            busybox()
        ),
    )
    .unwrap();
    let tar = t.path().join("app.tar");
    let first = build_two(
        t.path(),
        &ctx,
        "c1",
        &["-o", &format!("type=docker-archive,dest={}", tar.display())],
    );
    let oci = |n: &str| format!("type=oci,dest={},tar=false", t.path().join(n).display());
    let second = build_two(t.path(), &ctx, "c2", &["-o", &oci("two")]);
    assert_eq!(
        first, second,
        "two builds on fresh caches give the same index digest"
    );
    // cairn diff compares indexes platform by platform.
    let diff = |args: &[&str]| {
        let mut all = vec!["diff".to_owned()];
        all.extend(args.iter().map(|a| a.to_string()));
        let o = cli(t.path(), &all);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let at = |n: &str| format!("oci:{}:latest", t.path().join(n).display());
    let df = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), df + "RUN echo 1 > /changed\n").unwrap();
    build_two(t.path(), &ctx, "c2", &["-o", &oci("three")]);
    let (code, same) = diff(&["--all-platforms", &at("two"), &at("two")]);
    assert_eq!(code, Some(0), "{same}");
    assert_eq!(same.matches("identical").count(), 2, "{same}");
    let (code, changed) = diff(&["--all-platforms", &at("two"), &at("three")]);
    assert_eq!(code, Some(1), "{changed}");
    for p in ["=== linux/amd64 ===", "=== linux/arm64 ==="] {
        assert!(changed.contains(p), "{p}: {changed}");
    }
    assert_eq!(
        changed.matches("first divergent layer").count(),
        2,
        "{changed}"
    );
    for arch in ["amd64", "arm64"] {
        let step = format!("TARGETARCH={arch} /bin/sh -c echo 1 > /changed");
        assert!(changed.contains(&step), "{step}: {changed}");
    }
    let (code, arm) = diff(&["--platform", "linux/arm64", &at("two"), &at("three")]);
    assert_eq!(code, Some(1));
    assert!(
        arm.contains("TARGETARCH=arm64") && !arm.contains("TARGETARCH=amd64"),
        "{arm}"
    );
    // One docker-archive per platform, each with its platform's config.
    for (name, arch) in [
        ("app.linux-amd64.tar", "amd64"),
        ("app.linux-arm64.tar", "arm64"),
    ] {
        let f = t.path().join(name);
        let cfg: serde_json::Value = serde_json::from_str(&skopeo(&[
            "inspect",
            "--config",
            &format!("docker-archive:{}", f.display()),
        ]))
        .unwrap();
        assert_eq!(cfg["architecture"], arch, "{name}");
    }
    assert!(!tar.exists(), "no archive without a platform in its name");
}

#[test]
fn a_base_without_the_platform_is_an_error_naming_the_ones_it_has() {
    let t = tempfile::tempdir().unwrap();
    // An amd64-only image, made from the two-platform base.
    let only = t.path().join("amd64-only");
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nENV X=1\n", busybox()),
    )
    .unwrap();
    ok(&build(
        t.path(),
        &ctx,
        "cache",
        &[
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=oci,dest={},tar=false", only.display()),
        ],
    ));
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM oci:{}:latest\nENV Y=1\n", only.display()),
    )
    .unwrap();
    for platforms in ["linux/arm64", "linux/amd64,linux/arm64"] {
        let o = build(t.path(), &ctx, "cache", &["--platform", platforms]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success(),
            "{platforms}: must fail, not substitute amd64"
        );
        assert!(
            err.contains("has no image for platform linux/arm64; available: linux/amd64"),
            "{platforms}: {err}"
        );
    }
    // Bad lists are refused before any work.
    for (flag, says) in [
        ("linux/amd64,linux/x86_64", "names linux/amd64 twice"),
        ("linux/amd64,", "--platform"),
    ] {
        let o = build(t.path(), &ctx, "cache", &["--platform", flag]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(says), "{flag}");
    }
}

/// The JSON progress events of `cairn build` (stderr), and the printed digest.
fn build_json(
    home: &Path,
    ctx: &Path,
    cache: &str,
    jobs: &str,
    args: &[&str],
) -> (Vec<serde_json::Value>, String) {
    let mut c = build_command(home, ctx, cache, "json");
    c.env("CAIRN_PLATFORM_JOBS", jobs)
        .args(["--platform", "linux/amd64,linux/arm64"])
        .args(args);
    let o = run(c, "");
    let events = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (events, ok(&o))
}

#[test]
fn platform_independent_work_is_done_once_and_the_index_is_the_same_in_parallel_or_not() {
    require_emulation();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("app.txt"), "same bytes on every platform\n").unwrap();
    std::fs::write(ctx.join("other.txt"), "never copied\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {bb} AS tools\n\
             RUN uname -m > /tool\n\
             FROM {bb}\n\
             COPY app.txt /app/\n\
             COPY --from=tools /tool /app/tool\n\
             RUN uname -m > /app/arch\n",
            bb = busybox()
        ),
    )
    .unwrap();
    let oci = |n: &str| format!("type=oci,dest={},tar=false", t.path().join(n).display());
    let annotations = [
        "--annotation",
        "index,manifest:org.opencontainers.image.title=app",
        "--annotation",
        "manifest[linux/arm64]:com.example.arch=arm",
        "--annotation",
        "manifest-descriptor:com.example.entry=all",
        "--annotation",
        "manifest-descriptor[linux/amd64]:com.example.entry-amd=yes",
        "--annotation",
        "index-descriptor:com.example.top=1",
    ];
    let annotated = |cache: &str, jobs: &str, out: &str| {
        let mut args = vec!["-o".to_owned(), oci(out)];
        args.extend(annotations.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        build_json(t.path(), &ctx, cache, jobs, &args)
    };
    let (par, par_digest) = annotated("par", "2", "par");
    let (seq, seq_digest) = annotated("seq", "1", "seq");
    assert_eq!(
        par_digest, seq_digest,
        "the same index built in parallel and one platform after another"
    );
    let infos = |ev: &[serde_json::Value]| -> Vec<String> {
        ev.iter()
            .filter(|e| e["type"] == "info")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for (name, ev, jobs) in [("parallel", &par, 2), ("sequential", &seq, 1)] {
        let infos = infos(ev);
        assert!(
            infos
                .iter()
                .any(|m| m.contains(&format!("building 2 platforms, {jobs} at a time"))),
            "{name}: {infos:?}"
        );
        // The context is walked once and app.txt (the one copied file) read once for both platforms.
        let summary = infos
            .iter()
            .find(|m| m.starts_with("built 2 platforms"))
            .unwrap();
        assert!(
            summary.contains("context walked 1×, context files hashed: 1"),
            "{name}: {summary}"
        );
        // Each COPY's layer is written by one platform and reused by content by the other.
        let reused = ev
            .iter()
            .filter(|e| {
                e["type"] == "step_output"
                    && e["line"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("same files as an earlier build: layer")
            })
            .count();
        assert_eq!(
            reused, 2,
            "{name}: app.txt and /app/tool layers written once"
        );
        // The $BUILDPLATFORM stage's RUN: started by both platforms, run by one, a cache hit for the other.
        let ids: Vec<u64> = ev
            .iter()
            .filter(|e| e["type"] == "step_start" && e["text"] == "RUN uname -m > /tool")
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 2, "{name}");
        let cached = ev
            .iter()
            .filter(|e| e["type"] == "step_cached" && ids.contains(&e["id"].as_u64().unwrap()))
            .count();
        assert_eq!(cached, 1, "{name}: the tools stage ran once");
        // Steps are numbered build-wide and labelled with their platform.
        let starts: Vec<&serde_json::Value> =
            ev.iter().filter(|e| e["type"] == "step_start").collect();
        let mut all_ids: Vec<u64> = starts.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        all_ids.sort();
        all_ids.dedup();
        assert_eq!(all_ids.len(), starts.len(), "{name}: step ids unique");
        assert!(
            starts.iter().all(|e| {
                let s = e["stage"].as_str().unwrap();
                s.starts_with("linux/amd64 ") || s.starts_with("linux/arm64 ")
            }),
            "{name}: every step names its platform"
        );
    }

    // The annotations, each at its level, read back by skopeo from the layout.
    let layout = t.path().join("par");
    let top = json(&layout.join("index.json"));
    let desc = &top["manifests"][0];
    assert_eq!(desc["annotations"]["com.example.top"], "1", "{top}");
    let index: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:latest", layout.display()),
    ]))
    .unwrap();
    assert_eq!(
        index["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "app"})
    );
    assert_eq!(
        index["manifests"][0]["annotations"],
        serde_json::json!({"com.example.entry": "all", "com.example.entry-amd": "yes"})
    );
    assert_eq!(
        index["manifests"][1]["annotations"],
        serde_json::json!({"com.example.entry": "all"})
    );
    let manifest = |i: usize| {
        let d = index["manifests"][i]["digest"].as_str().unwrap();
        json(
            &layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
    };
    assert_eq!(
        manifest(0)["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "app"})
    );
    assert_eq!(
        manifest(1)["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "app", "com.example.arch": "arm"})
    );
    // Refused before any work: a platform the build does not make.
    let o = build(
        t.path(),
        &ctx,
        "par",
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--annotation",
            "manifest[linux/s390x]:a=b",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("this build makes no linux/s390x image"),
        "{err}"
    );
}

#[test]
fn a_platform_that_fails_fails_the_build_naming_it() {
    require_emulation();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN test \"$(uname -m)\" = x86_64\n", busybox()),
    )
    .unwrap();
    let o = build(
        t.path(),
        &ctx,
        "cache",
        &["--platform", "linux/amd64,linux/arm64"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("building for platform linux/arm64"), "{err}");
    assert!(!err.contains("building for platform linux/amd64"), "{err}");
    // Progress names the platform of each step.
    assert!(err.contains("[linux/amd64 stage-0 2/2] RUN"), "{err}");
}

/// Without `-o`, a multi-platform build goes to the local store under the
/// names `-t` gave, where `cairn inspect`/`run NAME:TAG` find it (as a
/// single-platform build's).
#[test]
fn a_multi_platform_build_is_found_in_the_local_store_by_its_name() {
    require_emulation();
    let t = tempfile::tempdir().unwrap();
    let ctx = app(t.path());
    let o = build(
        t.path(),
        &ctx,
        "cache",
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "multi-app:dev",
        ],
    );
    ok(&o);
    let raw = ok(&cli(
        t.path(),
        &[
            "inspect".into(),
            "--raw".into(),
            "--cache-dir".into(),
            t.path().join("cache").display().to_string(),
            "multi-app:dev".into(),
        ],
    ));
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json"),
        "{raw}"
    );
}

/// A platform that fails cancels the others: the amd64 RUN, already
/// sleeping when arm64's fails (they meet through a shared cache mount), is
/// killed — it never writes its marker, its step never finishes — and the
/// error is arm64's with its Dockerfile position, not a cancellation.
#[test]
fn a_failing_platform_cancels_the_running_ones() {
    require_emulation();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let step = "RUN --mount=type=cache,target=/m,id=meet,sharing=shared \
               if [ \"$(uname -m)\" = aarch64 ]; then \
               i=0; while [ ! -f /m/started ] && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; exit 3; \
               fi; touch /m/started; sleep 60; touch /m/done";
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\n{step}\nRUN echo after > /after\n", busybox()),
    )
    .unwrap();
    let mut c = cairn(t.path());
    c.env("CAIRN_PLATFORM_JOBS", "2")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "json", "--cache-dir"])
        .arg(t.path().join("cache"))
        .args(["--platform", "linux/amd64,linux/arm64"]);
    let o = run(c, "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    let ev: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let failed = ev
        .iter()
        .find(|e| e["type"] == "error")
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error event: {err}"));
    assert!(
        failed.contains("building for platform linux/arm64"),
        "{failed}"
    );
    assert!(failed.contains("exited with code 3"), "{failed}");
    assert!(failed.contains("Dockerfile:2:1"), "{failed}");
    assert!(!failed.contains("linux/amd64"), "{failed}");
    assert!(!failed.contains("canceled"), "{failed}");
    assert!(
        ev.iter().any(|e| e["type"] == "info"
            && e["message"] == "platform linux/arm64 failed: canceling linux/amd64"),
        "{err}"
    );
    // The sleeping step started, never finished; the step after it never started.
    let amd_run: Vec<u64> = ev
        .iter()
        .filter(|e| {
            e["type"] == "step_start"
                && e["stage"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("linux/amd64")
                && e["text"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("RUN --mount")
        })
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(amd_run.len(), 1, "{err}");
    assert!(
        !ev.iter()
            .any(|e| e["type"] == "step_done" && e["id"].as_u64() == Some(amd_run[0])),
        "{err}"
    );
    assert!(!err.contains("RUN echo after"), "{err}");
    // The meeting happened (amd64's RUN was running) and its marker never came.
    let started: Vec<PathBuf> = walkdir::WalkDir::new(t.path().join("cache"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "started")
        .map(|e| e.into_path())
        .collect();
    assert_eq!(started.len(), 1, "{err}");
    assert!(!started[0].with_file_name("done").exists(), "{err}");
}
