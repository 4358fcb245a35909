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
    let sk = skopeo(&["inspect", "--raw", &format!("oci:{}", out.display())]);
    assert!(
        sk.status.success(),
        "{}",
        String::from_utf8_lossy(&sk.stderr)
    );
    assert_eq!(
        format!("sha256:{}", cairn_layers::Digest::of(&sk.stdout).hex()),
        digest
    );
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
    let referrers = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:sha256-{hex}", reg.addr()),
    ]);
    assert!(
        referrers.status.success(),
        "{}",
        String::from_utf8_lossy(&referrers.stderr)
    );
    let list: Value = serde_json::from_slice(&referrers.stdout).unwrap();
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
    let again = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:sha256-{hex}", reg.addr()),
    ]);
    let list: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(list["manifests"].as_array().unwrap().len(), 1, "{list:#}");
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
