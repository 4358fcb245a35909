//! Pull/push round trips against a real registry, platform selection,
//! chunked uploads, cross-repository mounts and interop with skopeo.

use crate::support::image::{image, two_platform_layout};
use crate::support::registry::{Auth, TestRegistry};
use crate::support::{cli, fixture_layout, fixture_pin, ok};
use cairn::image::oci_layout::OciLayout;
use cairn::registry::{Platform, Reference, Registry, RegistryOptions, Repository};
use cairn::report::{Event, Recorder};
use std::sync::Arc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Every blob of a layout hashes to its name.
fn verify_layout(l: &OciLayout) {
    for e in std::fs::read_dir(l.store().root().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let d: cairn_layers::Digest = format!("sha256:{}", e.file_name().to_string_lossy())
            .parse()
            .unwrap();
        l.store().verify(&d).unwrap();
    }
}

#[test]
fn push_then_pull_index_and_platforms_with_the_cli() {
    let reg = TestRegistry::start(Auth::None);
    let home = tempfile::tempdir().unwrap();
    let (_l, idx, amd, arm) = two_platform_layout(&home.path().join("src"), 1, &[300_000, 70_000]);
    let src = home.path().join("src");
    let dest = format!("{}/team/app:multi", reg.addr());
    let pushed = ok(&cli(
        home.path(),
        &[
            "push".into(),
            format!("oci:{}:multi", src.display()),
            dest.to_string(),
        ],
    ));
    assert_eq!(
        pushed,
        idx.digest.to_string(),
        "push prints the pushed digest"
    );
    // amd64: 2 layers + config + manifest; arm64: layer + config + manifest; the index.
    assert_eq!(reg.verify_blobs(), 8, "every blob stored, none corrupt");

    let out = home.path().join("out");
    let pulled = ok(&cli(
        home.path(),
        &[
            "pull".into(),
            dest.to_string(),
            "--output".into(),
            format!("oci:{}", out.display()),
        ],
    ));
    assert_eq!(
        pulled,
        amd.digest.to_string(),
        "host platform (linux/amd64) selected"
    );
    let l = OciLayout::open(&out).unwrap();
    assert_eq!(
        l.tags().unwrap(),
        ["multi"],
        "layout tagged with the reference's tag"
    );
    assert_eq!(l.resolve(Some("multi")).unwrap().digest, amd.digest);
    verify_layout(&l);

    let pulled = ok(&cli(
        home.path(),
        &[
            "pull".into(),
            dest.to_string(),
            "--platform".into(),
            "linux/arm64/v8".into(),
            "--output".into(),
            format!("oci:{}:arm", out.display()),
        ],
    ));
    assert_eq!(pulled, arm.digest.to_string());
    assert_eq!(
        OciLayout::open(&out).unwrap().tags().unwrap(),
        ["multi", "arm"]
    );

    let bad = cli(
        home.path(),
        &[
            "pull".into(),
            dest.to_string(),
            "--platform".into(),
            "linux/s390x".into(),
            "--output".into(),
            format!("oci:{}", out.display()),
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no image for platform linux/s390x; available: linux/amd64, linux/arm64"),
        "{err}"
    );

    // Push back what was pulled, by digest, and to a new tag: same digest.
    let again = ok(&cli(
        home.path(),
        &[
            "push".into(),
            format!("oci:{}:multi", out.display()),
            format!("{}/other/app:copy", reg.addr()),
        ],
    ));
    assert_eq!(again, amd.digest.to_string());
}

#[test]
fn inspect_registry_and_layout() {
    let reg = TestRegistry::start(Auth::None);
    let home = tempfile::tempdir().unwrap();
    let (_l, idx, amd, _arm) = two_platform_layout(&home.path().join("src"), 2, &[1000]);
    let src = format!("oci:{}:multi", home.path().join("src").display());
    let dest = format!("{}/x/y:t", reg.addr());
    ok(&cli(
        home.path(),
        &["push".into(), src.to_string(), dest.to_string()],
    ));
    for target in [dest.as_str(), src.as_str()] {
        let json = ok(&cli(
            home.path(),
            &[
                "inspect".into(),
                target.to_string(),
                "--format".into(),
                "json".into(),
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["digest"], amd.digest.to_string(), "{target}");
        assert_eq!(v["indexDigest"], idx.digest.to_string(), "{target}");
        assert_eq!(v["platform"], "linux/amd64");
        assert_eq!(v["layers"][0]["size"], 1000);
        assert_eq!(v["history"][0]["created_by"], "synthetic");
        let raw = cli(
            home.path(),
            &["inspect".into(), target.to_string(), "--raw".into()],
        );
        assert_eq!(
            cairn_layers::Digest::of(&raw.stdout),
            idx.digest,
            "--raw prints the exact index bytes"
        );
        let cfg = cli(
            home.path(),
            &["inspect".into(), target.to_string(), "--config".into()],
        );
        let cfg: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
        assert_eq!(cfg["architecture"], "amd64");
    }
    let text = ok(&cli(home.path(), &["inspect".into(), dest.to_string()]));
    assert!(
        text.contains(&format!("Digest:    {}", amd.digest)),
        "{text}"
    );
    assert!(text.contains("Layers (1, 1.0 kB):"), "{text}");
}

#[test]
fn chunked_upload_mount_and_skip_existing_with_the_library() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let l = OciLayout::create(dir.path().join("l")).unwrap();
    // 3.5 chunks of 1 MiB: chunked; 200 kB: monolithic.
    let d = image(&l, 3, &[(7 << 20) / 2, 200_000], "amd64");
    let bytes = l.store().read_bytes(&d.digest).unwrap();
    let rec = Arc::new(Recorder::default());
    let mut opts = RegistryOptions::new(Vec::new(), rec.clone());
    opts.chunk_size = 1 << 20;
    let client = Registry::new(opts).unwrap();
    let base: Reference = format!("{}/base/img:1", reg.addr()).parse().unwrap();
    let got = rt()
        .block_on(client.push_image(&base, &bytes, &d.media_type, l.store(), &[]))
        .unwrap();
    assert_eq!(got, d.digest);
    // Same blobs to another repository, mounting from the first: nothing uploaded.
    let app: Reference = format!("{}/team/app:1", reg.addr()).parse().unwrap();
    rec.0.lock().unwrap().clear();
    let from = Repository::parse(&format!("{}/base/img", reg.addr())).unwrap();
    rt().block_on(client.push_image(&app, &bytes, &d.media_type, l.store(), &[from]))
        .unwrap();
    let actions: Vec<&'static str> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BlobStart { action, .. } => Some(*action),
            _ => None,
        })
        .collect();
    assert_eq!(
        actions,
        ["mount", "mount", "mount"],
        "layers and config mounted"
    );
    // Pushing again: every blob exists.
    rec.0.lock().unwrap().clear();
    rt().block_on(client.push_image(&app, &bytes, &d.media_type, l.store(), &[]))
        .unwrap();
    assert!(rec
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|e| !matches!(e, Event::BlobStart { action, .. } if *action != "exists")));

    // Pull into a fresh store; then again: nothing downloaded the second time.
    let out = OciLayout::create(dir.path().join("out")).unwrap();
    let img = rt()
        .block_on(client.pull_image(&app, &Platform::host(), out.store()))
        .unwrap();
    assert_eq!(img.digest, d.digest);
    assert_eq!(img.manifest.bytes, bytes, "raw manifest bytes kept");
    assert_eq!(img.index_digest, None);
    verify_layout(&out);
    rec.0.lock().unwrap().clear();
    rt().block_on(client.pull_image(&app, &Platform::host(), out.store()))
        .unwrap();
    assert!(rec
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|e| !matches!(e, Event::BlobStart { action: "pull", .. })));
    // resolve: cheap digest for cache keys.
    assert_eq!(
        rt().block_on(client.resolve(&app, &Platform::host()))
            .unwrap(),
        d.digest
    );
    assert_eq!(reg.verify_blobs(), 4);
}

/// `skopeo copy --all --preserve-digests TLS_FLAG FROM TO`, which must succeed.
fn skopeo_copy(tls_flag: &str, from: &str, to: &str) {
    let st = std::process::Command::new("skopeo")
        .args(["copy", "--all", "--preserve-digests", tls_flag, from, to])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn interop_with_skopeo_both_ways() {
    let reg = TestRegistry::start(Auth::None);
    let home = tempfile::tempdir().unwrap();
    let (_l, idx, amd, _arm) = two_platform_layout(&home.path().join("src"), 4, &[50_000, 20_000]);
    let src = home.path().join("src");
    // cairn pushes, skopeo reads.
    ok(&cli(
        home.path(),
        &[
            "push".into(),
            format!("oci:{}:multi", src.display()),
            format!("{}/c/app:multi", reg.addr()),
        ],
    ));
    let sk = home.path().join("sk");
    skopeo_copy(
        "--src-tls-verify=false",
        &format!("docker://{}/c/app:multi", reg.addr()),
        &format!("oci:{}:t", sk.display()),
    );
    assert_eq!(
        OciLayout::open(&sk)
            .unwrap()
            .resolve(Some("t"))
            .unwrap()
            .digest,
        idx.digest
    );
    // skopeo pushes, cairn pulls.
    skopeo_copy(
        "--dest-tls-verify=false",
        &format!("oci:{}:amd64", src.display()),
        &format!("docker://{}/s/app:1", reg.addr()),
    );
    let out = home.path().join("out");
    let pulled = ok(&cli(
        home.path(),
        &[
            "pull".into(),
            format!("{}/s/app:1", reg.addr()),
            "--output".into(),
            format!("oci:{}", out.display()),
        ],
    ));
    assert_eq!(pulled, amd.digest.to_string());
    verify_layout(&OciLayout::open(&out).unwrap());
}

#[test]
fn node_alpine_fixture_round_trip() {
    let Some(fixture) = fixture_layout() else {
        eprintln!("skipped: no node:22-alpine fixture (run `just fixtures`)");
        return;
    };
    let reg = TestRegistry::start(Auth::None);
    let home = tempfile::tempdir().unwrap();
    for tag in ["22-alpine", "22-alpine-multi"] {
        let want = OciLayout::open(&fixture)
            .unwrap()
            .resolve(Some(tag))
            .unwrap()
            .digest;
        let got = ok(&cli(
            home.path(),
            &[
                "push".into(),
                format!("oci:{}:{tag}", fixture.display()),
                format!("{}/library/node:{tag}", reg.addr()),
            ],
        ));
        assert_eq!(got, want.to_string());
    }
    let out = home.path().join("out");
    let got = ok(&cli(
        home.path(),
        &[
            "pull".into(),
            format!("{}/library/node:22-alpine-multi", reg.addr()),
            "--output".into(),
            format!("oci:{}", out.display()),
        ],
    ));
    assert_eq!(got, fixture_pin("22-alpine"));
    verify_layout(&OciLayout::open(&out).unwrap());
}

/// The stand-in the tests run on is the one its recipe pins: a stale or
/// irreproducible build of testdata/base/node-alpine fails here.
#[test]
fn node_alpine_fixture_has_the_pinned_digests() {
    let fixture = fixture_layout()
        .expect("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    let layout = OciLayout::open(&fixture).unwrap();
    for tag in ["22-alpine", "22-alpine-multi"] {
        let got = layout.resolve(Some(tag)).unwrap().digest.to_string();
        assert_eq!(got, fixture_pin(tag), "{tag} in {}", fixture.display());
    }
    verify_layout(&layout);
}

/// A test CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key).
fn test_certs(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |n: &str| dir.join(n).display().to_string();
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for args in [
        format!(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cairn-test-ca -keyout {} -out {}",
            p("ca.key"),
            p("ca.crt")
        ),
        format!(
            "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {} -out {}",
            p("tls.key"),
            p("tls.csr")
        ),
        format!(
            "x509 -req -days 2 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            p("tls.csr"),
            p("ca.crt"),
            p("ca.key"),
            p("ext.cnf"),
            p("tls.crt")
        ),
    ] {
        let st = std::process::Command::new("openssl")
            .args(args.split(' '))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args}");
    }
    (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"))
}

#[test]
fn tls_is_verified_unless_trusted_or_insecure() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certs(certs.path());
    let reg = TestRegistry::start_with(Auth::None, Some((cert, key)));
    let home = tempfile::tempdir().unwrap();
    let (_l, _idx, amd, _arm) = two_platform_layout(&home.path().join("src"), 5, &[4_000]);
    let src = format!("oci:{}:amd64", home.path().join("src").display());
    let dest = format!("{}/tls/app:1", reg.addr());
    let refused = cli(home.path(), &["push".into(), src.clone(), dest.clone()]);
    assert!(
        !refused.status.success(),
        "an untrusted certificate was accepted"
    );
    // Trusted through SSL_CERT_FILE.
    let mut c = crate::support::cairn(home.path());
    c.env("SSL_CERT_FILE", &ca).args(["push", &src, &dest]);
    assert_eq!(ok(&crate::support::run(c, "")), amd.digest.to_string());
    // Or not verified, on request.
    let out = format!("oci:{}", home.path().join("out").display());
    let pulled = ok(&cli(
        home.path(),
        &[
            "--insecure-registry".into(),
            reg.addr(),
            "pull".into(),
            dest,
            "--output".into(),
            out,
        ],
    ));
    assert_eq!(pulled, amd.digest.to_string());
}

#[test]
fn re_pushing_an_index_skips_manifests_the_registry_has() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let (l, idx, amd, arm) = two_platform_layout(&dir.path().join("l"), 6, &[2_000]);
    let bytes = l.store().read_bytes(&idx.digest).unwrap();
    let rec = Arc::new(Recorder::default());
    let client = Registry::new(RegistryOptions::new(Vec::new(), rec.clone())).unwrap();
    let target: Reference = format!("{}/idx/app:multi", reg.addr()).parse().unwrap();
    let push = || {
        rt().block_on(client.push_image(&target, &bytes, &idx.media_type, l.store(), &[]))
            .unwrap()
    };
    assert_eq!(push(), idx.digest);
    let first = rec.0.lock().unwrap().len();
    assert!(first >= 4, "blobs of both platforms pushed");
    rec.0.lock().unwrap().clear();
    assert_eq!(push(), idx.digest);
    assert!(
        rec.0.lock().unwrap().is_empty(),
        "no blob touched the second time"
    );
    // resolve picks the platform's entry of the index.
    let resolve = |p: &str| {
        rt().block_on(client.resolve(&target, &p.parse().unwrap()))
            .unwrap()
    };
    assert_eq!(resolve("linux/amd64"), amd.digest);
    assert_eq!(resolve("linux/arm64/v8"), arm.digest);
}

#[test]
fn proxy_environment_variables_are_honoured() {
    use crate::support::http::{Fault, FaultProxy};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reg = TestRegistry::start(Auth::None);
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let proxy = FaultProxy::start(reg.addr(), move |_, req| {
        // A forward proxy gets absolute-form targets.
        assert!(req.target.starts_with("http://"), "{}", req.target);
        counter.fetch_add(1, Ordering::SeqCst);
        Fault::Pass
    });
    let home = tempfile::tempdir().unwrap();
    let (_l, _idx, amd, _arm) = two_platform_layout(&home.path().join("src"), 14, &[1_000]);
    let mut c = crate::support::cairn(home.path());
    c.env("HTTP_PROXY", format!("http://{}", proxy.server.addr()))
        .args([
            "push",
            &format!("oci:{}:amd64", home.path().join("src").display()),
            &format!("{}/p/app:1", reg.addr()),
        ]);
    assert_eq!(ok(&crate::support::run(c, "")), amd.digest.to_string());
    assert!(
        seen.load(Ordering::SeqCst) >= 4,
        "requests did not go through the proxy"
    );
}

/// A second push of an image to another repository of the same registry
/// mounts every blob from where the first push put it (the pushed-blob memo
/// in the cache directory) instead of uploading it again; a memo that names
/// a repository without the blob costs only a refused mount.
#[test]
fn pushing_to_another_repository_mounts_blobs_pushed_before() {
    let reg = TestRegistry::start(Auth::None);
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src");
    two_platform_layout(&src, 7, &[200_000, 50_000]);
    let push = |dest: &str| {
        let mut c = crate::support::cairn(home.path());
        // The global flag, as every subcommand takes it (the memo goes there).
        c.args(["push", &format!("oci:{}:amd64", src.display()), dest])
            .arg("--cache-dir")
            .arg(home.path().join("cache"));
        let o = crate::support::run(c, "");
        (ok(&o), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (d1, log1) = push(&format!("{}/team/one:1", reg.addr()));
    assert_eq!(log1.matches("pushing").count(), 3, "{log1}");
    let (d2, log2) = push(&format!("{}/team/two:1", reg.addr()));
    assert_eq!(d1, d2);
    // Two layers and the config.
    assert_eq!(log2.matches("mounted").count(), 3, "{log2}");
    assert!(!log2.contains("pushing"), "{log2}");

    // The memo points at a repository the registry has lost: uploads still work.
    let memo = home.path().join("cache/registry-blobs.json");
    let text = std::fs::read_to_string(&memo).unwrap();
    std::fs::write(&memo, text.replace("team/two", "team/gone")).unwrap();
    let (_, log3) = push(&format!("{}/team/three:1", reg.addr()));
    assert_eq!(log3.matches("pushing").count(), 3, "{log3}");
    // Two layers, the config and the manifest.
    assert_eq!(
        reg.verify_blobs(),
        4,
        "every blob stored once, none corrupt"
    );
    assert!(
        !home.path().join(".cache/cairn").exists(),
        "the default cache was used despite --cache-dir"
    );
    // `cairn pull` takes it too.
    let pulled = home.path().join("pulled");
    let o = crate::support::cli(
        home.path(),
        &[
            "pull".into(),
            format!("{}/team/one:1", reg.addr()),
            "--output".into(),
            format!("oci:{}", pulled.display()),
            "--cache-dir".into(),
            home.path().join("cache").display().to_string(),
        ],
    );
    assert_eq!(ok(&o), d1);
}
