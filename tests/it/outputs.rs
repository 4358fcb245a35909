//! What `cairn build` writes and pushes, read back by other tools: OCI
//! layouts with one entry per tag (the build record attached as a referrer),
//! records without build-arg values, buildx's `--output` forms.

use crate::support::registry::{Auth, TestRegistry};
use crate::support::{cairn, cli, fixture_layout, ok, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cairn build CTX --progress plain --cache-dir HOME/cache EXTRA…`.
fn build(home: &Path, ctx: &Path, extra: &[&str]) -> Output {
    let mut c = cairn(home);
    c.arg("build")
        .arg(ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(home.join("cache"))
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH");
    run(c, "")
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// A context whose Dockerfile copies one file into scratch.
fn scratch_ctx(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a.txt /a.txt\n").unwrap();
    ctx
}

fn skopeo(args: &[&str]) -> Output {
    Command::new("skopeo").args(args).output().unwrap()
}

/// `skopeo ARGS…`, which must succeed: its stdout.
fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let o = skopeo(args);
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// The digest of the manifest `skopeo inspect --raw [--tls-verify=false] IMAGE` reads.
fn raw_digest(image: &str) -> String {
    let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", image]);
    format!("sha256:{}", cairn_layers::Digest::of(&raw).hex())
}

#[test]
fn an_oci_layout_holds_one_entry_per_tag_and_the_record_rides_along() {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    let out = t.path().join("out");
    let digest = ok(&build(
        t.path(),
        &ctx,
        &[
            "-t",
            "app:1",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
        ],
    ));
    let index = json(&out.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index:#}");
    assert_eq!(entries[0]["digest"], digest.as_str());
    // The record is a referrer: in the layout's blobs, subject = the image.
    let record_digest = entries[0]["annotations"]["vnd.cairn.build-record.digest"]
        .as_str()
        .unwrap();
    let record: Value = serde_json::from_slice(&blob(&out, record_digest)).unwrap();
    assert_eq!(
        record["artifactType"],
        "application/vnd.cairn.build-record.v1+json"
    );
    assert_eq!(record["subject"]["digest"], digest.as_str());

    // skopeo and umoci read the layout without being told which image.
    assert_eq!(raw_digest(&format!("oci:{}", out.display())), digest);
    let um = Command::new("umoci")
        .args(["stat", "--image"])
        .arg(format!("{}:1", out.display()))
        .output()
        .unwrap();
    assert!(
        um.status.success(),
        "{}",
        String::from_utf8_lossy(&um.stderr)
    );

    // `cairn push oci:DIR REF` (no tag) pushes the image and its record.
    let reg = TestRegistry::start(Auth::None);
    let pushed = ok(&cli(
        t.path(),
        &[
            "push".into(),
            format!("oci:{}", out.display()),
            format!("{}/app:1", reg.addr()),
        ],
    ));
    assert_eq!(pushed, digest);
    let hex = digest.trim_start_matches("sha256:");
    let list: Value = serde_json::from_slice(&skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:sha256-{hex}", reg.addr()),
    ]))
    .unwrap();
    assert_eq!(list["manifests"][0]["digest"], record_digest, "{list:#}");
    assert_eq!(
        list["manifests"][0]["artifactType"],
        "application/vnd.cairn.build-record.v1+json"
    );
    // A second push of the same image does not list the record twice.
    ok(&cli(
        t.path(),
        &[
            "push".into(),
            format!("oci:{}:1", out.display()),
            format!("{}/app:1", reg.addr()),
        ],
    ));
    let list: Value = serde_json::from_slice(&skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:sha256-{hex}", reg.addr()),
    ]))
    .unwrap();
    // The record and the default provenance (#17), each listed once.
    let types: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.cairn.build-record.v1+json",
            "application/vnd.in-toto+json"
        ],
        "{list:#}"
    );
}

/// Push the node:22-alpine stand-in to `reg`; its reference there.
fn push_fixture(reg: &TestRegistry, home: &Path) -> String {
    let Some(fixture) = fixture_layout() else {
        panic!("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    };
    let image = format!("{}/library/node:22-alpine", reg.addr());
    ok(&cli(
        home,
        &[
            "push".into(),
            format!("oci:{}:22-alpine", fixture.display()),
            image.clone(),
        ],
    ));
    image
}

#[test]
fn build_arg_values_stay_out_of_records_and_diff_still_names_the_arg() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let base = push_fixture(&reg, t.path());
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS deps\nARG NPM_TOKEN\nARG NODE_ENV=production\nRUN echo configured > /done\n\
             FROM scratch\nENV NODE_ENV=production\nCOPY --from=deps /done /done\n"
        ),
    )
    .unwrap();
    let secrets = ["tok-first-0c5d1e", "tok-second-9a7b2f"];
    let mut layouts = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        let out = t.path().join(format!("o{i}"));
        let o = build(
            t.path(),
            &ctx,
            &[
                "--build-arg",
                &format!("NPM_TOKEN={secret}"),
                "-o",
                &format!("type=oci,dest={},tar=false", out.display()),
            ],
        );
        ok(&o);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("SecretsUsedInArgOrEnv") && stderr.contains("NPM_TOKEN"),
            "{stderr}"
        );
        assert!(!stderr.contains(secret), "{stderr}");
        // No file of the layout but the layers holds the value.
        for f in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "a blob holds the build-arg value");
        }
        layouts.push(out);
    }
    let mut c = cairn(t.path());
    c.args(["diff", "--json"])
        .arg(format!("oci:{}", layouts[0].display()))
        .arg(format!("oci:{}", layouts[1].display()));
    let o = run(c, "");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!("{}", String::from_utf8_lossy(&o.stderr));
    });
    let changes = v["build"]["changes"].as_array().unwrap();
    let run_step = changes
        .iter()
        .find(|c| c["stage"] == "deps")
        .unwrap_or_else(|| panic!("{v:#}"));
    let line = run_step["inputs"][0].as_str().unwrap();
    assert!(line.starts_with("env NPM_TOKEN changed"), "{line}");
    assert!(!line.contains(secrets[0]) && !line.contains(secrets[1]));
    // The value the final image's config holds anyway is kept as it is.
    let entry = &json(&layouts[0].join("index.json"))["manifests"][0];
    let record: Value = serde_json::from_slice(&blob(
        &layouts[0],
        entry["annotations"]["vnd.cairn.build-record.digest"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    let record: Value = serde_json::from_slice(&blob(
        &layouts[0],
        record["layers"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let inputs = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["inputs"].as_array().unwrap().clone())
        .collect::<Vec<_>>();
    let value = |n: &str| {
        inputs
            .iter()
            .find(|i| i["name"] == n)
            .unwrap_or_else(|| panic!("no input {n}: {inputs:?}"))["value"]
            .clone()
    };
    assert_eq!(value("env NODE_ENV"), "production");
    assert!(value("env NPM_TOKEN")
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}

/// `cairn build` of the scratch context with `extra`, cache in `home`: stdout bytes.
fn build_ok(home: &Path, ctx: &Path, extra: &[&str]) -> Vec<u8> {
    let o = build(home, ctx, extra);
    assert!(
        o.status.success(),
        "build {extra:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn outputs_mean_what_they_mean_in_buildx() {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    let home = t.path();
    // `-o DIR`: the filesystem in a directory.
    let dir = t.path().join("rootfs");
    build_ok(home, &ctx, &["-o", dir.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "a\n");
    // `-o -`: the filesystem as a tar on stdout, and nothing else there.
    let out = build_ok(home, &ctx, &["-o", "-"]);
    assert_eq!(tar_names(&out), ["a.txt"]);
    let out = build_ok(home, &ctx, &["-o", "type=tar,dest=-"]);
    assert_eq!(tar_names(&out), ["a.txt"]);
    // type=oci: a tarball (tar=false: a directory), skopeo reads it as oci-archive.
    let oci_tar = t.path().join("img.tar");
    let digest = String::from_utf8(build_ok(
        home,
        &ctx,
        &[
            "-t",
            "app:1",
            "-o",
            &format!("type=oci,dest={}", oci_tar.display()),
        ],
    ))
    .unwrap();
    let digest = digest.trim();
    assert!(oci_tar.is_file());
    assert_eq!(
        raw_digest(&format!("oci-archive:{}", oci_tar.display())),
        digest
    );
    // The same image gives the same tarball bytes.
    let again = build_ok(home, &ctx, &["-t", "app:1", "-o", "type=oci,dest=-"]);
    assert_eq!(again, std::fs::read(&oci_tar).unwrap());
    // type=docker,dest=-: a docker-archive on stdout.
    let docker = build_ok(home, &ctx, &["-t", "app:1", "-o", "type=docker,dest=-"]);
    let f = t.path().join("docker.tar");
    std::fs::write(&f, &docker).unwrap();
    skopeo_ok(&["inspect", &format!("docker-archive:{}", f.display())]);

    // type=image,push=false: the local store only; no push happens.
    let reg = TestRegistry::start(Auth::None);
    let name = format!("{}/app:1", reg.addr());
    build_ok(
        home,
        &ctx,
        &["-o", &format!("type=image,name={name},push=false")],
    );
    let store = crate::support::manifest_digest(&home.join("cache/images"), &name);
    assert_eq!(store, digest);
    let miss = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]);
    assert!(!miss.status.success(), "push=false pushed");
    // type=registry,name=a,b (quoted CSV, as buildx): both names pushed.
    let two = format!("{}/app:2", reg.addr());
    build_ok(
        home,
        &ctx,
        &["-o", &format!("type=registry,\"name={name},{two}\"")],
    );
    for n in [&name, &two] {
        assert_eq!(raw_digest(&format!("docker://{n}")), digest);
    }
    // Docker media types are pushed as what they are.
    let docker = format!("{}/app:docker", reg.addr());
    let d = String::from_utf8(build_ok(
        home,
        &ctx,
        &[
            "-o",
            &format!("type=registry,name={docker},oci-mediatypes=false"),
        ],
    ))
    .unwrap();
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{docker}"),
    ]);
    let m: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(raw_digest(&format!("docker://{docker}")), d.trim());
}

#[test]
fn zstd_layers_are_deterministic_and_read_back() {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    let spec = |dest: &Path| {
        format!(
            "type=oci,dest={},tar=false,compression=zstd",
            dest.display()
        )
    };
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    // Two cold caches: the same zstd bytes.
    let da = String::from_utf8(build_ok(&t.path().join("h1"), &ctx, &["-o", &spec(&a)])).unwrap();
    let db = String::from_utf8(build_ok(&t.path().join("h2"), &ctx, &["-o", &spec(&b)])).unwrap();
    assert_eq!(da, db);
    let gz = String::from_utf8(build_ok(t.path(), &ctx, &[])).unwrap();
    assert_ne!(da, gz, "zstd is another manifest");
    let manifest: Value = serde_json::from_slice(&blob(&a, da.trim())).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let layer = blob(&a, manifest["layers"][0]["digest"].as_str().unwrap());
    assert_eq!(&layer[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    // skopeo copies it; podman loads it (umoci 0.4.7 has no zstd).
    skopeo_ok(&[
        "copy",
        &format!("oci:{}:latest", a.display()),
        &format!("oci-archive:{}/z.tar", t.path().display()),
    ]);
    let pod = t.path().join("podman");
    std::fs::create_dir_all(&pod).unwrap();
    crate::docker_archive::podman(
        &pod,
        &["load", "-i", &format!("{}/z.tar", t.path().display())],
    );
    let config = manifest["config"]["digest"].as_str().unwrap();
    let id = crate::docker_archive::podman(
        &pod,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            config.trim_start_matches("sha256:"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        config.trim_start_matches("sha256:")
    );
    // uncompressed: layer digest = diff_id; Docker media types on request.
    let u = t.path().join("u");
    let du = String::from_utf8(build_ok(
        t.path(),
        &ctx,
        &[
            "-o",
            &format!(
                "type=oci,dest={},tar=false,compression=uncompressed,oci-mediatypes=false",
                u.display()
            ),
        ],
    ))
    .unwrap();
    let m: Value = serde_json::from_slice(&blob(&u, du.trim())).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar"
    );
    let config: Value =
        serde_json::from_slice(&blob(&u, m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(m["layers"][0]["digest"], config["rootfs"]["diff_ids"][0]);
}

#[test]
fn bad_outputs_and_flags_are_refused_before_the_build_naming_the_fix() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // A build that would fail at its first step if it started.
    std::fs::write(ctx.join("Dockerfile"), "FROM registry.invalid/nothing:1\n").unwrap();
    for (spec, says) in [
        (
            "type=oci,dest=x.tar,bogus=1",
            "type=oci accepts: dest, tar, name, compression",
        ),
        (
            "type=image,compression=lz4",
            "compression= is one of gzip, zstd, uncompressed",
        ),
        (
            "type=carrier",
            "type= is one of local, tar, oci, docker, image, registry",
        ),
        ("type=registry", "nothing to push to"),
        (
            "type=registry,name=Upper/Case",
            "image names are lower-case",
        ),
    ] {
        let o = build(t.path(), &ctx, &["-o", spec]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(says), "{spec}: {err}");
        assert!(
            !err.contains("registry.invalid"),
            "{spec}: the build started: {err}"
        );
    }
    for (flags, says) in [
        (&["-t", "Acme/App:1"][..], "-t `Acme/App:1`"),
        (&["--isolation", "bogus"][..], "--isolation bogus"),
        (&["--platform", "linux/bogus"][..], "--platform linux/bogus"),
        (
            &["--platform", "linux/arm64/v8/x"][..],
            "--platform: invalid platform",
        ),
        (
            &["--secret", "id=npmrc,src=/nonexistent/.npmrc"][..],
            "--secret id=npmrc: cannot read /nonexistent/.npmrc",
        ),
        (&["--secret", "src=/x"][..], "missing id="),
    ] {
        let o = build(t.path(), &ctx, flags);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(
            err.contains("hint:") || says == "missing id=",
            "{flags:?}: {err}"
        );
        assert!(
            !err.contains("registry.invalid"),
            "{flags:?}: the build started: {err}"
        );
    }
    let o = build(t.path(), &ctx, &["--load"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no daemon") && err.contains("type=docker,dest=- | docker load"),
        "{err}"
    );
}

/// A registry holding the stand-in, a home, and a context whose Dockerfile
/// copies a.txt onto it, then `tail`.
fn on_the_stand_in(tail: &str) -> (TestRegistry, tempfile::TempDir, PathBuf) {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let base = push_fixture(&reg, t.path());
    let ctx = scratch_ctx(t.path());
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY a.txt /a.txt\n{tail}"),
    )
    .unwrap();
    (reg, t, ctx)
}

#[test]
fn base_layers_keep_their_compression_unless_forced() {
    let (_reg, t, ctx) = on_the_stand_in("");
    let types = |extra: &str| -> Vec<String> {
        let out = t.path().join(format!("o{}", extra.len()));
        let d = String::from_utf8(build_ok(
            t.path(),
            &ctx,
            &[
                "-o",
                &format!(
                    "type=oci,dest={},tar=false,compression=zstd{extra}",
                    out.display()
                ),
            ],
        ))
        .unwrap();
        let m: Value = serde_json::from_slice(&blob(&out, d.trim())).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l["mediaType"]
                    .as_str()
                    .unwrap()
                    .rsplit('+')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let plain = types("");
    let (last, below) = plain.split_last().unwrap();
    assert_eq!(last, "zstd", "{plain:?}");
    assert!(below.iter().all(|t| t == "gzip"), "{plain:?}");
    let forced = types(",force-compression=true");
    assert!(forced.iter().all(|t| t == "zstd"), "{forced:?}");
}

#[test]
fn the_local_store_is_a_place_for_run_inspect_push_and_diff() {
    let (reg, t, ctx) = on_the_stand_in("CMD [\"cat\", \"/a.txt\"]\n");
    // A name that looks like a registry's: the local store still comes first.
    let name = format!("{}/myapp:dev", reg.addr());
    let digest =
        String::from_utf8(build_ok(t.path(), &ctx, &["-t", &name, "-t", "myapp:dev"])).unwrap();
    let cache = t.path().join("cache");
    let with_cache = |args: &[&str]| -> Output {
        let mut c = cairn(t.path());
        // Before the subcommand's positionals: after `cairn run IMAGE` a flag is the container's.
        c.arg(args[0])
            .arg("--cache-dir")
            .arg(&cache)
            .args(&args[1..]);
        run(c, "")
    };
    let said = |o: &Output, n: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("using {n} from the local store")),
            "{err}"
        );
    };
    let o = with_cache(&["run", "myapp:dev"]);
    assert_eq!(ok(&o), "a");
    said(&o, "myapp:dev");
    let o = with_cache(&["inspect", "--format", "json", &name]);
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["digest"], digest.trim());
    said(&o, &name);
    // Not pushed yet: the registry does not have it, the local store does.
    let pushed_to = format!("{}/other:1", reg.addr());
    let o = with_cache(&["push", "myapp:dev", &pushed_to]);
    assert_eq!(ok(&o), digest.trim());
    said(&o, "myapp:dev");
    assert_eq!(raw_digest(&format!("docker://{pushed_to}")), digest.trim());
    let mut c = cairn(t.path());
    c.args(["diff", "--cache-dir"])
        .arg(&cache)
        .args(["myapp:dev", &name]);
    let o = run(c, "");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    said(&o, &name);
    // An unknown name falls through to the registry (and says nothing of the store).
    let o = with_cache(&["inspect", &format!("{}/nope:1", reg.addr())]);
    assert!(!o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("local store"));
}

/// The `--progress json` lines of a build of `dockerfile` (and whether it succeeded).
fn json_events(dockerfile: &str) -> (bool, Vec<Value>) {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let mut c = cairn(t.path());
    c.arg("--progress")
        .arg("json")
        .arg("build")
        .arg(&ctx)
        .arg("--cache-dir")
        .arg(t.path().join("cache"));
    let o = run(c, "");
    let lines = String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (o.status.success(), lines)
}

#[test]
fn json_progress_has_a_version_buildx_numbers_and_a_failure_event() {
    let (ok_, lines) = json_events("FROM scratch AS app\nCOPY a.txt /a.txt\nENV A=1\nWORKDIR /w\n");
    assert!(ok_);
    assert_eq!(
        lines[0],
        serde_json::json!({"type": "progress", "version": 2})
    );
    let starts: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["type"] == "step_start")
        .map(|l| (l["index"].as_u64().unwrap(), l["total"].as_u64().unwrap()))
        .collect();
    // As buildx: FROM scratch has no line of its own, ENV (config only) has
    // none either; COPY and WORKDIR are 1/2 and 2/2.
    assert_eq!(starts, [(1, 2), (2, 2)]);
    assert!(lines
        .iter()
        .all(|l| l["type"] != "step_start" || l["stage"] == "app"));
    assert!(lines.iter().all(|l| l["type"] != "error"));
    assert!(
        !lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("overhead"))),
        "no overhead line without RUN time"
    );
    let (ok_, lines) = json_events("FROM scratch\nCOPY missing.txt /m\n");
    assert!(!ok_);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "error", "{lines:?}");
    assert!(
        last["message"].as_str().unwrap().contains("missing.txt"),
        "{last}"
    );
    // An unnamed stage is `stage-N`, as buildx calls it.
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("[stage-0 1/1] COPY missing.txt"),
        "{last}"
    );
    assert_eq!(lines.iter().filter(|l| l["type"] == "error").count(), 1);
}

#[test]
fn push_mounts_the_base_layers_from_the_base_repository() {
    let (reg, t, ctx) = on_the_stand_in("");
    let base_bytes: u64 = {
        let fixture = fixture_layout().unwrap();
        let d = crate::support::manifest_digest(&fixture, "22-alpine");
        let m: Value = serde_json::from_slice(&blob(&fixture, &d)).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum()
    };
    let mut c = cairn(t.path());
    c.args(["--progress", "json", "build"])
        .arg(&ctx)
        .arg("--cache-dir")
        .arg(t.path().join("cache"))
        .args(["--push", "-t", &format!("{}/team/app:1", reg.addr())]);
    let o = run(c, "");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: Vec<Value> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bytes = |action: &str| -> (usize, u64) {
        let hits: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "blob_start" && e["action"] == action)
            .collect();
        (
            hits.len(),
            hits.iter().filter_map(|e| e["size"].as_u64()).sum(),
        )
    };
    let (mounted, mounted_bytes) = bytes("mount");
    let (_, uploaded) = bytes("push");
    assert_eq!(mounted_bytes, base_bytes, "every base layer mounted");
    assert!(mounted >= crate::support::fixture_layer_count(&fixture_layout().unwrap()));
    assert!(
        uploaded < 64 * 1024,
        "only the new layer, config and record went up: {uploaded} bytes (base {base_bytes})"
    );
    assert_eq!(
        raw_digest(&format!("docker://{}/team/app:1", reg.addr())).len(),
        71
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    // Enough cache entries that `cache ls` writes more than one line.
    for i in 0..3 {
        std::fs::write(ctx.join("a.txt"), format!("{i}\n")).unwrap();
        build_ok(t.path(), &ctx, &[]);
    }
    for args in [
        &["cache", "ls", "--cache-dir"][..],
        &["cache", "ls", "--format", "json", "--cache-dir"][..],
    ] {
        // The reader is gone before cairn writes: every write gets EPIPE.
        let mut child = cairn(t.path())
            .args(args)
            .arg(t.path().join("cache"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn quiet_pull_no_cache_filter_and_network_flags() {
    let (reg, t, _) = on_the_stand_in("");
    let ctx = scratch_ctx(t.path());
    let home = t.path();
    // -q: only the digest, on stdout.
    let o = build(home, &ctx, &["-q"]);
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout)
        .trim()
        .starts_with("sha256:"));

    // --no-cache-filter: that stage's steps miss, the others still hit.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS deps\nCOPY a.txt /a\nFROM scratch AS app\nCOPY a.txt /b\nCOPY --from=deps /a /c\n",
    )
    .unwrap();
    build_ok(home, &ctx, &[]);
    let o = build(home, &ctx, &["--no-cache-filter", "deps"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("cache miss: --no-cache-filter deps"), "{err}");
    assert_eq!(
        err.matches("CACHED").count(),
        2,
        "app's two steps hit: {err}"
    );
    let o = build(home, &ctx, &["--no-cache-filter", "dpes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("--no-cache-filter dpes") && err.contains("deps, app"),
        "{err}"
    );

    // --pull is accepted, and a moved base tag is used either way: cairn resolves tags every build.
    let base = format!("{}/base:1", reg.addr());
    let app = t.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), format!("FROM {base}\n")).unwrap();
    let mut digests = Vec::new();
    for content in ["one\n", "two\n"] {
        std::fs::write(ctx.join("a.txt"), content).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a.txt /a.txt\n").unwrap();
        build_ok(home, &ctx, &["-o", &format!("type=registry,name={base}")]);
        let plain = String::from_utf8(build_ok(home, &app, &[])).unwrap();
        let pulled = String::from_utf8(build_ok(home, &app, &["--pull"])).unwrap();
        assert_eq!(plain, pulled);
        digests.push(plain);
    }
    assert_ne!(digests[0], digests[1], "the moved tag was resolved again");

    // --network none: RUN steps without their own --network see only loopback.
    let net = t.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(
        net.join("Dockerfile"),
        format!(
            "FROM {}/library/node:22-alpine\nRUN ls /sys/class/net > /nets\n",
            reg.addr()
        ),
    )
    .unwrap();
    let rootfs = t.path().join("rootfs");
    build_ok(
        home,
        &net,
        &["--network", "none", "-o", rootfs.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("nets")).unwrap(),
        "lo\n"
    );
    let o = build(home, &net, &["--network", "bridge"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--network"), "{err}");
}

#[test]
fn annotations_go_on_the_image_manifest() {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    let out = t.path().join("out");
    let digest = String::from_utf8(build_ok(
        t.path(),
        &ctx,
        &[
            "--annotation",
            "org.opencontainers.image.source=https://example.com/acme/app",
            "--annotation",
            "manifest:com.example.team=web",
            "-o",
            &format!(
                "type=oci,dest={},tar=false,compression=uncompressed",
                out.display()
            ),
        ],
    ))
    .unwrap();
    let m: Value = serde_json::from_slice(&blob(&out, digest.trim())).unwrap();
    assert_eq!(
        m["annotations"],
        serde_json::json!({
            "com.example.team": "web",
            "org.opencontainers.image.source": "https://example.com/acme/app"
        }),
        "kept through recompression too"
    );
    assert_eq!(raw_digest(&format!("oci:{}", out.display())), digest.trim());
    let plain = String::from_utf8(build_ok(
        t.path(),
        &ctx,
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", t.path().join("p").display()),
        ],
    ))
    .unwrap();
    let m: Value = serde_json::from_slice(&blob(&t.path().join("p"), plain.trim())).unwrap();
    assert!(
        m.get("annotations").is_none(),
        "no field without --annotation"
    );
    let o = build(t.path(), &ctx, &["--annotation", "index:a=b"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("image manifest only"),
        "{err}"
    );
}

/// `FROM NAME` of a directory named context has its own FROM line, numbered
/// like an image's: 1/N, then the steps 2/N… (one count for every FROM kind).
#[test]
fn json_progress_numbers_a_named_context_from_like_an_image() {
    let t = tempfile::tempdir().unwrap();
    let ctx = scratch_ctx(t.path());
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM lib\nCOPY a.txt /a.txt\nENV A=1\n",
    )
    .unwrap();
    let lib = t.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("l.txt"), "l").unwrap();
    let mut c = cairn(t.path());
    c.arg("--progress")
        .arg("json")
        .arg("build")
        .arg(&ctx)
        .arg("--build-context")
        .arg(format!("lib={}", lib.display()))
        .arg("--cache-dir")
        .arg(t.path().join("cache"));
    let o = run(c, "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let starts: Vec<(String, u64, u64)> = err
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "step_start")
        .map(|l| {
            (
                l["stage"].as_str().unwrap().to_owned(),
                l["index"].as_u64().unwrap(),
                l["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        starts,
        [("stage-0".to_owned(), 1, 2), ("stage-0".to_owned(), 2, 2)]
    );
}
