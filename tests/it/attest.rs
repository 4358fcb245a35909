//! SBOM and provenance attestations (`--sbom`, `--provenance`): attached as
//! OCI 1.1 artifacts beside the image (layout, registry, local store) without
//! changing its digest; valid by independent tools (pyspdxtools, the
//! CycloneDX 1.6 schema); the package list matches what `apk` and `npm`
//! report inside the image; reproducible; cached with the image.

use crate::support::registry::{Auth, TestRegistry};
use crate::support::{build_command, cairn, fixture_layout, ok, run, testdata};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> String {
    let f = fixture_layout()
        .expect("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    format!("oci:{}:22-alpine", f.display())
}

/// `cairn build CTX --cache-dir HOME/cache EXTRA…` → (digest, stderr).
fn build(home: &Path, ctx: &Path, extra: &[&str]) -> (String, String) {
    let mut c = build_command(home, ctx, "cache", "plain");
    c.args(extra)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("BUILDX_NO_DEFAULT_ATTESTATIONS");
    let out = run(c, "");
    (ok(&out), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// An attestation as the layout holds it, read without cairn's code.
#[derive(Debug)]
struct Attached {
    artifact_type: String,
    subject: String,
    annotations: Value,
    body: Vec<u8>,
}

/// The attestations the (one) `index.json` entry of `layout` names.
fn attached(layout: &Path) -> Vec<Attached> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let list = entries[0]["annotations"]["vnd.cairn.attestations"]
        .as_str()
        .unwrap_or("");
    list.split(',')
        .filter(|d| !d.is_empty())
        .map(|d| {
            let m: Value = serde_json::from_slice(&blob(layout, d)).unwrap();
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            assert_eq!(
                m["config"]["mediaType"],
                "application/vnd.oci.empty.v1+json"
            );
            Attached {
                artifact_type: m["artifactType"].as_str().unwrap().to_owned(),
                subject: m["subject"]["digest"].as_str().unwrap().to_owned(),
                annotations: m["annotations"].clone(),
                body: blob(layout, m["layers"][0]["digest"].as_str().unwrap()),
            }
        })
        .collect()
}

/// The validators' venv (made once by tests/support/attest-tools.sh).
fn tools() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/attest-tools.sh");
    let out = Command::new(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed (needs python3-venv and PyPI the first time): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Run an independent validator on `doc`; panic with its report when it rejects it.
fn validate(dir: &Path, name: &str, doc: &[u8]) {
    let file = dir.join(name);
    std::fs::write(&file, doc).unwrap();
    let bin = tools();
    let out = if name.ends_with(".spdx.json") {
        Command::new(bin.join("pyspdxtools"))
            .arg("-i")
            .arg(&file)
            .output()
            .unwrap()
    } else {
        Command::new(bin.join("python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/validate-cyclonedx.py"))
            .arg(&file)
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{name} is not valid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reference app (testdata/attest/app) on the stand-in: `npm ci` in a
/// deps stage, the app stage copies /app.
fn app_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(testdata("attest/app").join(f), ctx.join(f)).unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {f} AS deps\nWORKDIR /app\nCOPY package.json package-lock.json ./\n\
             RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca,target=/run/secrets/ca \
             NODE_EXTRA_CA_CERTS=/run/secrets/ca npm_config_cafile=/run/secrets/ca npm ci --omit=dev --no-audit --no-fund\n\
             FROM {f}\nARG TOKEN\nWORKDIR /app\nCOPY --from=deps /app ./\nCMD [\"node\", \"-e\", \"require('debug')\"]\n",
            f = fixture()
        ),
    )
    .unwrap();
    ctx
}

const CA: &str = "id=ca,src=/etc/ssl/certs/ca-certificates.crt";

/// name@version of every dependency in `npm ls --all --json` output (and the root).
fn npm_ls_packages(v: &Value, out: &mut BTreeSet<String>) {
    if let Some(deps) = v["dependencies"].as_object() {
        for (name, d) in deps {
            if let Some(version) = d["version"].as_str() {
                out.insert(format!("{name}@{version}"));
            }
            npm_ls_packages(d, out);
        }
    }
}

#[test]
fn sbom_and_provenance_are_attached_valid_and_match_the_image() {
    let t = tempfile::tempdir().unwrap();
    let ctx = app_context(t.path());
    let out = t.path().join("out");
    // The app, with `attest` flags, into the layout `out`.
    let build_app = |attest: &[&str], out: &Path| {
        let dest = format!("type=oci,dest={},tar=false", out.display());
        let mut args = vec!["--secret", CA, "--build-arg", "TOKEN=tok-3e9a51-secret"];
        args.extend_from_slice(attest);
        args.extend_from_slice(&["-t", "localhost/sbom-app:1", "-o", &dest]);
        build(t.path(), &ctx, &args)
    };
    let (digest, log) = build_app(
        &[
            "--sbom",
            "--provenance=mode=max,builder-id=https://ci.example/runs/42",
        ],
        &out,
    );
    // Never part of the image: the same build without attestations has the same digest.
    let plain = t.path().join("plain");
    let (plain_digest, _) = build_app(&["--sbom=false", "--provenance=false"], &plain);
    assert_eq!(
        digest, plain_digest,
        "attestations changed the image digest"
    );
    assert!(
        attached(&plain).is_empty(),
        "--sbom=false --provenance=false attach nothing"
    );
    let index = std::fs::read_to_string(out.join("index.json")).unwrap();
    let entries: Value = serde_json::from_str(&index).unwrap();
    assert_eq!(
        entries["manifests"].as_array().unwrap().len(),
        1,
        "the artifacts are not index.json entries: {index}"
    );

    let found = attached(&out);
    assert_eq!(found.len(), 2, "{found:?}");
    for a in &found {
        assert_eq!(
            a.subject, digest,
            "every attestation's subject is the image"
        );
        assert!(
            !String::from_utf8_lossy(&a.body).contains("tok-3e9a51-secret"),
            "a build-arg value leaked into {}",
            a.artifact_type
        );
    }
    let spdx = found
        .iter()
        .find(|a| a.artifact_type == "application/spdx+json")
        .expect("an SPDX SBOM");
    let prov = found
        .iter()
        .find(|a| a.artifact_type == "application/vnd.in-toto+json")
        .expect("provenance");
    assert_eq!(
        prov.annotations["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v1"
    );
    validate(t.path(), "image.spdx.json", &spdx.body);

    // `cairn sbom` and `cairn inspect --attestations` read the same from the layout.
    let layout_ref = format!("oci:{}", out.display());
    let printed = ok(&crate::support::cli(
        t.path(),
        &["sbom".into(), layout_ref.clone()],
    ));
    assert_eq!(
        printed.as_bytes(),
        String::from_utf8_lossy(&spdx.body).trim().as_bytes()
    );
    let listed: Value = serde_json::from_str(&ok(&crate::support::cli(
        t.path(),
        &[
            "inspect".into(),
            "--attestations".into(),
            "--format".into(),
            "json".into(),
            layout_ref.clone(),
        ],
    )))
    .unwrap();
    let kinds: Vec<&str> = listed["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sbom", "provenance"], "{listed}");
    assert_eq!(listed["subject"], digest.as_str());

    // Provenance: inputs by digest, the steps with their cache keys in max mode.
    let p: Value = serde_json::from_slice(&prov.body).unwrap();
    assert_eq!(p["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        p["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let def = &p["predicate"]["buildDefinition"];
    let dockerfile = std::fs::read(ctx.join("Dockerfile")).unwrap();
    assert_eq!(
        def["externalParameters"]["configSource"]["digest"]["sha256"],
        sha256_hex(&dockerfile)
    );
    assert_eq!(
        def["externalParameters"]["configSource"]["path"],
        "Dockerfile"
    );
    assert_eq!(
        def["externalParameters"]["request"]["platform"],
        "linux/amd64"
    );
    assert_eq!(
        def["externalParameters"]["request"]["args"]["TOKEN"],
        format!("sha256:{}", sha256_hex(b"tok-3e9a51-secret")),
        "a build arg not in the config is named, its value only as a digest"
    );
    // package.json, package-lock.json and the context directory itself.
    assert_eq!(def["externalParameters"]["context"]["files"], 3);
    let base_digest = crate::support::fixture_pin("22-alpine");
    assert_eq!(
        def["resolvedDependencies"],
        serde_json::json!([{
            "uri": "pkg:docker/oci-layout://oci:22-alpine?platform=linux%2Famd64",
            "digest": {"sha256": base_digest.trim_start_matches("sha256:")},
        }]),
        "the base, by digest, once (both stages use it)"
    );
    let steps = def["internalParameters"]["buildConfig"]["steps"]
        .as_array()
        .unwrap();
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert!(steps.iter().all(|s| s["cacheKey"]
        .as_str()
        .is_some_and(|k| k.starts_with("sha256:"))));
    assert!(p["predicate"]["runDetails"]["metadata"]
        .get("startedOn")
        .is_none());
    assert_eq!(
        p["predicate"]["runDetails"]["builder"]["id"],
        "https://ci.example/runs/42"
    );

    // The package list against what apk and npm report inside the image.
    let sbom: Value = serde_json::from_slice(&spdx.body).unwrap();
    let packages = sbom["packages"].as_array().unwrap();
    let purl = |p: &Value| {
        p["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let comment = |p: &Value| p["comment"].as_str().unwrap_or("").to_owned();
    let run_in_image = |args: &[&str]| {
        let mut c = cairn(t.path());
        c.arg("run")
            .arg("--cache-dir")
            .arg(t.path().join("cache"))
            .args(args);
        ok(&run(c, ""))
    };
    let image = format!("{layout_ref}:1");
    let apk_info: BTreeSet<String> = run_in_image(&["--entrypoint", "apk", &image, "info", "-v"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("WARNING"))
        .map(str::to_owned)
        .collect();
    let sbom_apk: BTreeSet<String> = packages
        .iter()
        .filter(|p| purl(p).starts_with("pkg:apk/"))
        .map(|p| {
            format!(
                "{}-{}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect();
    assert!(!sbom_apk.is_empty());
    assert_eq!(sbom_apk, apk_info, "apk packages: SBOM vs `apk info -v`");

    let ls: Value = serde_json::from_str(&run_in_image(&[
        "--entrypoint",
        "npm",
        "-w",
        "/app",
        &image,
        "ls",
        "--all",
        "--json",
    ]))
    .unwrap();
    let mut npm_ls = BTreeSet::new();
    npm_ls.insert(format!(
        "{}@{}",
        ls["name"].as_str().unwrap(),
        ls["version"].as_str().unwrap()
    ));
    npm_ls_packages(&ls, &mut npm_ls);
    let npm: Vec<&Value> = packages
        .iter()
        .filter(|p| purl(p).starts_with("pkg:npm/"))
        .collect();
    let (app, elsewhere): (Vec<&Value>, Vec<&Value>) = npm
        .iter()
        .partition(|p| comment(p).starts_with("found in /app/"));
    let sbom_app: BTreeSet<String> = app
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        sbom_app, npm_ls,
        "the app's Node packages: SBOM vs `npm ls --all --json` in /app"
    );
    assert!(npm_ls.contains("ms@2.1.3") && npm_ls.contains("@sindresorhus/is@4.6.0"));
    // The only other Node packages: npm itself and what it bundles, a global
    // install of the base image (`npm ls` in /app lists the app's tree only),
    // and yarn, which the base image unpacks into /opt/yarn-v* from its
    // release tarball.
    assert!(!elsewhere.is_empty());
    for p in &elsewhere {
        assert!(
            comment(p).starts_with("found in /usr/local/lib/node_modules/")
                || comment(p).starts_with("found in /opt/yarn-v1.22.22/package.json"),
            "a Node package outside the app and npm's global install: {p}"
        );
    }
    // Node.js and yarn themselves, as the programs in the image say.
    let version_of = |program: &str, purl_prefix: &str| {
        let said = run_in_image(&["--entrypoint", program, &image, "--", "--version"]);
        let listed: Vec<&Value> = packages
            .iter()
            .filter(|p| purl(p).starts_with(purl_prefix))
            .collect();
        assert_eq!(listed.len(), 1, "{program}: {listed:?}");
        assert_eq!(
            said.trim().trim_start_matches('v'),
            listed[0]["versionInfo"].as_str().unwrap(),
            "{program} --version vs the SBOM"
        );
        listed[0]["sourceInfo"].as_str().unwrap().to_owned()
    };
    let node_source = version_of("node", "pkg:generic/node@");
    assert!(
        node_source.contains("layer 1 (")
            && node_source.contains("FROM oci-layout://oci:22-alpine"),
        "{node_source}"
    );
    assert!(version_of("yarn", "pkg:npm/yarn@").contains("layer 2 ("));
    // Which layer and step brought each: the app's from the COPY, apk's from the base.
    for p in &app {
        let source = p["sourceInfo"].as_str().unwrap();
        // The step as the image history writes it (BuildKit's form).
        assert!(
            source.contains("made by `COPY /app ./ # buildkit`"),
            "{source}"
        );
        if !comment(p).starts_with("found in /app/package.json") {
            assert!(comment(p).contains("matches package-lock.json"), "{p}");
        }
    }
    for p in packages.iter().filter(|p| purl(p).starts_with("pkg:apk/")) {
        let source = p["sourceInfo"].as_str().unwrap();
        assert!(
            source.contains("FROM oci-layout://oci:22-alpine"),
            "{source}"
        );
    }
    let base = packages
        .iter()
        .find(|p| purl(p).starts_with("pkg:oci/"))
        .expect("the base image as a package");
    assert_eq!(
        base["checksums"][0]["checksumValue"],
        base_digest.trim_start_matches("sha256:")
    );

    // CycloneDX: valid by the 1.6 schema, the same packages.
    let cdx_out = t.path().join("cdx");
    let (cdx_digest, cdx_log) = build_app(&["--sbom=format=cyclonedx"], &cdx_out);
    assert_eq!(cdx_digest, digest);
    let cdx = attached(&cdx_out);
    let bom = cdx
        .iter()
        .find(|a| a.artifact_type == "application/vnd.cyclonedx+json")
        .unwrap_or_else(|| panic!("a CycloneDX SBOM: {cdx:?}\n{cdx_log}"));
    validate(t.path(), "image.cdx.json", &bom.body);
    let bom: Value = serde_json::from_slice(&bom.body).unwrap();
    let cdx_purls: BTreeSet<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    let spdx_purls: BTreeSet<String> = packages
        .iter()
        .map(purl)
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(
        cdx_purls,
        spdx_purls.iter().map(String::as_str).collect(),
        "SPDX and CycloneDX list the same packages"
    );
    assert!(log.contains("wrote OCI layout"), "{log}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A context that needs no network: a fake installed package, a RUN.
fn offline_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("node_modules/left-pad")).unwrap();
    std::fs::write(
        ctx.join("package.json"),
        r#"{"name":"offline","version":"0.1.0","dependencies":{"left-pad":"1.3.0"}}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("node_modules/left-pad/package.json"),
        r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
    )
    .unwrap();
    // Licenses as packages really declare them: beyond a short list of SPDX
    // ids, partly not SPDX at all, not an expression at all.
    for (name, license) in [
        (
            "rare",
            "BSD-3-Clause-Clear OR Apache-2.0 WITH LLVM-exception",
        ),
        ("mixed", "MIT AND custom"),
        ("see-file", "SEE LICENSE IN LICENSE.md"),
    ] {
        std::fs::create_dir_all(ctx.join("node_modules").join(name)).unwrap();
        std::fs::write(
            ctx.join("node_modules").join(name).join("package.json"),
            format!(r#"{{"name":"{name}","version":"1.0.0","license":"{license}"}}"#),
        )
        .unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {f} AS tools\nRUN mkdir -p /opt/tool/node_modules/x && echo '{{\"name\":\"x\",\"version\":\"9.9.9\"}}' > /opt/tool/node_modules/x/package.json\n\
             FROM {f}\nWORKDIR /srv\nCOPY . .\nCOPY --from=tools /opt/tool /opt/tool\nRUN rm -rf /opt/tool/node_modules\n",
            f = fixture()
        ),
    )
    .unwrap();
    ctx
}

/// Every attestation body of a layout, by artifact type (and stage).
fn bodies(layout: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut v: Vec<(String, String, Vec<u8>)> = attached(layout)
        .into_iter()
        .map(|a| {
            let stage = a.annotations["vnd.cairn.sbom.stage"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            (a.artifact_type, stage, a.body)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn attestations_are_reproducible_across_directories_clocks_and_umasks() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let ctx_a = offline_context(&a);
    // Another directory, named otherwise (the build record names paths by it).
    let ctx_b = b.join("checkout");
    std::fs::rename(offline_context(&b), &ctx_b).unwrap();
    let touched = Command::new("sh")
        .arg("-c")
        .arg("find \"$0\" -exec touch -h -d '2001-02-03 04:05:06' {} +")
        .arg(&ctx_b)
        .status()
        .unwrap();
    assert!(touched.success());
    let build_in = |home: &Path, ctx: &Path, umask: &str, tz: &str| {
        let out = home.join("out");
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_cairn"))
            .arg("build")
            .arg(ctx)
            .args(["--progress", "plain", "--cache-dir"])
            .arg(home.join("cache"))
            .args([
                "--sbom=scan-stage=true",
                "--provenance=mode=max",
                "--source-date-epoch",
                "1700000000",
                "-t",
                "registry.example/offline:1",
                "-o",
            ])
            .arg(format!("type=oci,dest={},tar=false", out.display()))
            .env("HOME", home)
            .env("TZ", tz)
            .env_remove("SOURCE_DATE_EPOCH");
        (ok(&run(c, "")), out)
    };
    let (da, out_a) = build_in(&a, &ctx_a, "022", "UTC");
    let (db, out_b) = build_in(&b, &ctx_b, "077", "Asia/Tokyo");
    assert_eq!(da, db);
    let (ba, bb) = (bodies(&out_a), bodies(&out_b));
    assert_eq!(
        ba.len(),
        3,
        "image SBOM, the tools stage's SBOM, provenance"
    );
    for (x, y) in ba.iter().zip(&bb) {
        assert_eq!(x, y, "{} {} differs between the two builds", x.0, x.1);
    }
    // The times are the epoch's, not the clock's.
    let spdx = ba
        .iter()
        .find(|x| x.0 == "application/spdx+json" && x.1.is_empty())
        .unwrap();
    let doc: Value = serde_json::from_slice(&spdx.2).unwrap();
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    validate(t.path(), "offline.spdx.json", &spdx.2);
    let names: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"left-pad") && names.contains(&"offline"),
        "{names:?}"
    );
    // Every declared license kept: SPDX list ids as they are, anything else
    // as a LicenseRef the document defines (pyspdxtools checked both above).
    let declared = |name: &str| {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["licenseDeclared"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(
        declared("rare"),
        "BSD-3-Clause-Clear OR Apache-2.0 WITH LLVM-exception"
    );
    assert_eq!(declared("mixed"), "MIT AND LicenseRef-custom");
    assert_eq!(declared("see-file"), "LicenseRef-SEE-LICENSE-IN-LICENSE.md");
    let refs: BTreeSet<&str> = doc["hasExtractedLicensingInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["licenseId"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        BTreeSet::from(["LicenseRef-SEE-LICENSE-IN-LICENSE.md", "LicenseRef-custom"])
    );
    let prov = ba
        .iter()
        .find(|x| x.0 == "application/vnd.in-toto+json")
        .unwrap();
    let prov: Value = serde_json::from_slice(&prov.2).unwrap();
    assert_eq!(
        prov["predicate"]["runDetails"]["builder"]["id"],
        format!("pkg:generic/cairn@{}", env!("CARGO_PKG_VERSION")),
        "without builder-id=, cairn at its version"
    );
    assert!(
        !names.contains(&"x"),
        "a package a later layer deleted is not in the image's SBOM: {names:?}"
    );
    // The stage SBOM sees what the stage had.
    let stage = ba
        .iter()
        .find(|x| x.1 == "tools")
        .expect("the tools stage's SBOM");
    let stage_doc: Value = serde_json::from_slice(&stage.2).unwrap();
    assert!(stage_doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "x" && p["versionInfo"] == "9.9.9"));
    validate(t.path(), "stage.spdx.json", &stage.2);
}

#[test]
fn a_no_op_rebuild_takes_the_sbom_from_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let ctx = offline_context(t.path());
    let out = t.path().join("out");
    let args = [
        "--sbom",
        "-o",
        &format!("type=oci,dest={},tar=false", out.display()),
    ];
    let (d1, _) = build(t.path(), &ctx, &args);
    let first = bodies(&out);
    // Plant another document in the SBOM memo: a rebuild that scanned the
    // layers again would not attach it.
    let memos: Vec<PathBuf> = std::fs::read_dir(t.path().join("cache/attest"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(memos.len(), 1, "{memos:?}");
    let planted = br#"{"planted": true}"#;
    let digest = format!("sha256:{}", sha256_hex(planted));
    let blobs = t.path().join("cache/blobs/sha256");
    assert!(
        blobs.is_dir(),
        "the cache's blob store moved: {}",
        blobs.display()
    );
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), planted).unwrap();
    std::fs::write(&memos[0], serde_json::to_vec(&digest).unwrap()).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let (d2, log) = build(t.path(), &ctx, &args);
    assert_eq!(d1, d2);
    assert!(log.contains("CACHED"), "{log}");
    let second = bodies(&out);
    let sbom = second
        .iter()
        .find(|x| x.0 == "application/spdx+json")
        .unwrap();
    assert_eq!(sbom.2, planted, "the rebuild scanned the image again");
    // An output that cannot carry them: said, not silently dropped.
    let archive = t.path().join("app.tar");
    let (_, log) = build(
        t.path(),
        &ctx,
        &[
            "--sbom",
            "-o",
            &format!("type=docker,dest={}", archive.display()),
        ],
    );
    assert!(
        log.contains("--sbom: no output here can carry attestations"),
        "{log}"
    );
    // Provenance is written again from the build record: the same bytes.
    assert_eq!(
        first.iter().find(|x| x.0.contains("in-toto")),
        second.iter().find(|x| x.0.contains("in-toto"))
    );
}

#[test]
fn attestations_are_pushed_as_referrers_and_read_from_registry_and_local_store() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let ctx = offline_context(t.path());
    let image = format!("{}/offline/app:1", reg.addr());
    let (digest, log) = build(
        t.path(),
        &ctx,
        &["--sbom=format=cyclonedx", "-t", &image, "--push"],
    );
    assert!(!log.contains("was not"), "{log}");
    // The registry (distribution 2.8: no referrers API) lists them under the
    // referrers tag schema.
    let tag = format!(
        "http://{}/v2/offline/app/manifests/sha256-{}",
        reg.addr(),
        digest.trim_start_matches("sha256:")
    );
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
            &tag,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "no referrers index at {tag}");
    let index: Value = serde_json::from_slice(&out.stdout).unwrap();
    let types: BTreeSet<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["artifactType"].as_str())
        .collect();
    assert!(
        types.contains("application/vnd.cyclonedx+json")
            && types.contains("application/vnd.in-toto+json")
            && types.contains("application/vnd.cairn.build-record.v1+json"),
        "{index}"
    );
    // `cairn sbom` from the registry (a fresh home: not from the local store).
    let fresh = t.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let from_registry = ok(&crate::support::cli(
        &fresh,
        &[
            "sbom".into(),
            "--cache-dir".into(),
            fresh.join("cache").display().to_string(),
            image.clone(),
        ],
    ));
    let bom: Value = serde_json::from_str(&from_registry).unwrap();
    assert_eq!(bom["specVersion"], "1.6");
    let listed = ok(&crate::support::cli(
        &fresh,
        &[
            "inspect".into(),
            "--attestations".into(),
            "--cache-dir".into(),
            fresh.join("cache").display().to_string(),
            image.clone(),
        ],
    ));
    assert!(
        listed.contains("sbom") && listed.contains("provenance"),
        "{listed}"
    );
    // …and from the local store the build left it in.
    let mut c = cairn(t.path());
    c.args(["sbom", "--cache-dir"])
        .arg(t.path().join("cache"))
        .arg(&image);
    let o = run(c, "");
    assert_eq!(
        ok(&o),
        from_registry,
        "the same document in the store and the registry"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("from the local store"));
    // `cairn push oci:DIR REF` takes the attestations along.
    let out = t.path().join("out");
    build(
        t.path(),
        &ctx,
        &[
            "--sbom=format=cyclonedx",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
        ],
    );
    let copy = format!("{}/offline/copy:1", reg.addr());
    ok(&crate::support::cli(
        t.path(),
        &[
            "push".into(),
            format!("oci:{}", out.display()),
            copy.clone(),
        ],
    ));
    let pushed = ok(&crate::support::cli(
        &fresh,
        &[
            "sbom".into(),
            "--cache-dir".into(),
            fresh.join("cache").display().to_string(),
            copy,
        ],
    ));
    let in_layout = ok(&crate::support::cli(
        t.path(),
        &["sbom".into(), format!("oci:{}", out.display())],
    ));
    assert_eq!(pushed, in_layout, "cairn push carried the SBOM along");
    // No SBOM attached: the error says so and what to do.
    let (_, _) = build(t.path(), &ctx, &["-t", "plain:1"]);
    let mut c = cairn(t.path());
    c.args(["sbom", "--cache-dir"])
        .arg(t.path().join("cache"))
        .arg("plain:1");
    let o = run(c, "");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("has no SBOM attached") && err.contains("--sbom"),
        "{err}"
    );
}

#[test]
fn bad_attestation_flags_are_refused_before_the_build() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("missing-context");
    for (flag, want) in [
        (
            "--sbom=format=syft",
            "--sbom: unknown setting `format=syft`",
        ),
        (
            "--provenance=mode=full",
            "--provenance: unknown setting `mode=full`",
        ),
        ("--sbom=scan-stage=maybe", "`maybe` is not true or false"),
        (
            "--provenance=builder-id=my laptop",
            "--provenance builder-id: `my laptop` is not an absolute URI",
        ),
    ] {
        let mut c = cairn(t.path());
        c.arg("build").arg(&ctx).arg(flag);
        let o = run(c, "");
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{flag}: {err}");
        assert!(
            !err.contains("is not a directory"),
            "checked before the context: {err}"
        );
    }
}

#[test]
fn diff_shows_attestation_differences_in_their_own_section() {
    let t = tempfile::tempdir().unwrap();
    let ctx = offline_context(t.path());
    let layout = |name: &str| t.path().join(name);
    let to = |name: &str| format!("type=oci,dest={},tar=false", layout(name).display());
    let (da, _) = build(t.path(), &ctx, &["--sbom", "-o", &to("a")]);
    // The same image with max provenance: identical images, different attestations.
    let (dmax, _) = build(
        t.path(),
        &ctx,
        &["--sbom", "--provenance=mode=max", "-o", &to("max")],
    );
    assert_eq!(da, dmax);
    let diff = |x: &str, y: &str, extra: &[&str]| {
        let mut c = cairn(t.path());
        c.arg("diff")
            .arg(format!("oci:{}", layout(x).display()))
            .arg(format!("oci:{}", layout(y).display()))
            .args(extra);
        let o = run(c, "");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, text) = diff("a", "max", &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("identical images") && text.contains("\nattestations\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "predicate.buildDefinition.externalParameters.request.mode: \"min\" → \"max\""
        ),
        "{text}"
    );
    assert!(text.contains("--ignore attestations"), "{text}");
    let (code, text) = diff("a", "max", &["--ignore", "attestations"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("attestations"), "{text}");

    // A package changes: the image and its SBOM differ, package by package.
    std::fs::write(
        ctx.join("node_modules/left-pad/package.json"),
        r#"{"name":"left-pad","version":"1.3.1","license":"WTFPL"}"#,
    )
    .unwrap();
    build(t.path(), &ctx, &["--sbom", "-o", &to("b")]);
    let (code, text) = diff("a", "b", &["--json"]);
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&text).unwrap();
    let sbom = report["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "sbom")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        sbom["changes"],
        serde_json::json!(["- pkg:npm/left-pad@1.3.0", "+ pkg:npm/left-pad@1.3.1"])
    );
    // A side without attestations (built with them off) is not an attestation difference.
    build(t.path(), &ctx, &["--provenance=false", "-o", &to("bare")]);
    let (code, text) = diff("b", "bare", &[]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn each_platform_of_a_multi_platform_build_gets_its_own_attestations() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY hello.txt /hello.txt\n",
            crate::multi_platform::busybox()
        ),
    )
    .unwrap();
    let out = t.path().join("out");
    let image = format!("{}/multi/app:1", reg.addr());
    let (index_digest, _) = build(
        t.path(),
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--sbom",
            "-t",
            &image,
            "--push",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
        ],
    );
    let index: Value = serde_json::from_slice(&blob(&out, &index_digest)).unwrap();
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(platforms.len(), 2);
    let found = attached(&out);
    assert_eq!(
        found.len(),
        4,
        "an SBOM and provenance per platform: {found:?}"
    );
    for (arch, digest) in &platforms {
        let mine: Vec<&Attached> = found.iter().filter(|a| &a.subject == digest).collect();
        assert_eq!(mine.len(), 2, "{arch}: {found:?}");
        let prov = mine
            .iter()
            .find(|a| a.artifact_type == "application/vnd.in-toto+json")
            .unwrap();
        let p: Value = serde_json::from_slice(&prov.body).unwrap();
        assert_eq!(
            p["predicate"]["buildDefinition"]["externalParameters"]["request"]["platform"],
            format!("linux/{arch}")
        );
        // The same from the layout and from the registry, for that platform.
        let sbom = |target: String| {
            ok(&crate::support::cli(
                t.path(),
                &[
                    "sbom".into(),
                    "--cache-dir".into(),
                    t.path().join("fresh-cache").display().to_string(),
                    "--platform".into(),
                    format!("linux/{arch}"),
                    target,
                ],
            ))
        };
        let from_layout = sbom(format!("oci:{}", out.display()));
        let spdx = mine
            .iter()
            .find(|a| a.artifact_type == "application/spdx+json")
            .unwrap();
        assert_eq!(from_layout, String::from_utf8_lossy(&spdx.body).trim());
        assert_eq!(sbom(image.clone()), from_layout, "{arch} from the registry");
    }
}
