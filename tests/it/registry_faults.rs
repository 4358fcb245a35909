//! A fault-injecting proxy between cairn and a real registry: dropped
//! connections mid-blob, 500s, 429 with Retry-After, a PATCH whose response is
//! lost. Pull and push still succeed, the registry holds only complete
//! blobs, and a failed push leaves no tag behind.

use crate::support::http::{Fault, FaultProxy};
use crate::support::image::image;
use crate::support::registry::{Auth, TestRegistry};
use cairn::image::oci_layout::OciLayout;
use cairn::registry::{Platform, Reference, Registry, RegistryOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn client(chunk: u64) -> Registry {
    let mut o = RegistryOptions::new(Vec::new(), Arc::new(()));
    o.chunk_size = chunk;
    o.transport.backoff = Duration::from_millis(20);
    Registry::new(o).unwrap()
}

#[test]
fn push_and_pull_survive_injected_faults() {
    let reg = TestRegistry::start(Auth::None);
    let (patches, gets, puts) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let proxy = FaultProxy::start(reg.addr(), move |n, req| {
        let big_blob_get = req.method == "GET" && req.target.contains("/blobs/sha256:");
        if n == 1 {
            return Fault::Status(429, Some(1));
        }
        if req.method == "PATCH" && patches.fetch_add(1, Ordering::SeqCst) == 1 {
            return Fault::DropResponse;
        }
        // The blob lands, its answer is lost: HEAD finds it instead of a new upload.
        if req.method == "PUT"
            && req.target.contains("/blobs/uploads/")
            && puts.fetch_add(1, Ordering::SeqCst) == 0
        {
            return Fault::DropResponse;
        }
        if big_blob_get && gets.fetch_add(1, Ordering::SeqCst) == 0 {
            return Fault::Truncate;
        }
        if n % 5 == 3 {
            return Fault::Status(500, None);
        }
        Fault::Pass
    });
    let dir = tempfile::tempdir().unwrap();
    let l = OciLayout::create(dir.path().join("l")).unwrap();
    let d = image(&l, 7, &[(7 << 20) / 2, 300_000], "amd64");
    let bytes = l.store().read_bytes(&d.digest).unwrap();
    let c = client(1 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let via_proxy: Reference = format!("{}/f/app:1", proxy.server.addr()).parse().unwrap();
    let got = rt
        .block_on(c.push_image(&via_proxy, &bytes, &d.media_type, l.store(), &[]))
        .unwrap();
    assert_eq!(got, d.digest);
    let out = OciLayout::create(dir.path().join("out")).unwrap();
    let img = rt
        .block_on(c.pull_image(&via_proxy, &Platform::host(), out.store()))
        .unwrap();
    assert_eq!(img.digest, d.digest);
    for layer in &img.layers {
        out.store().verify(&layer.digest).unwrap();
    }
    let faults = proxy.faults.lock().unwrap().clone();
    for kind in [
        Fault::Status(429, Some(1)),
        Fault::Status(500, None),
        Fault::Truncate,
        Fault::DropResponse,
    ] {
        assert!(
            faults.iter().any(|(_, _, f)| *f == kind),
            "{kind:?} never injected: {faults:?}"
        );
    }
    let dropped: Vec<&str> = faults
        .iter()
        .filter(|(_, _, f)| *f == Fault::DropResponse)
        .map(|(m, _, _)| m.as_str())
        .collect();
    assert!(
        dropped.contains(&"PATCH") && dropped.contains(&"PUT"),
        "{faults:?}"
    );
    // Straight from the registry: every blob complete, the tag resolvable and pullable.
    assert_eq!(reg.verify_blobs(), 4);
    let direct: Reference = format!("{}/f/app:1", reg.addr()).parse().unwrap();
    let fresh = OciLayout::create(dir.path().join("fresh")).unwrap();
    rt.block_on(client(1 << 20).pull_image(&direct, &Platform::host(), fresh.store()))
        .unwrap();
}

#[test]
fn a_failed_push_leaves_no_tag() {
    let reg = TestRegistry::start(Auth::None);
    // Every blob upload fails for good.
    let proxy = FaultProxy::start(reg.addr(), |_, req| {
        if req.method == "PUT" && req.target.contains("/blobs/uploads/") {
            Fault::Status(500, None)
        } else {
            Fault::Pass
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let l = OciLayout::create(dir.path().join("l")).unwrap();
    let d = image(&l, 8, &[10_000], "amd64");
    let bytes = l.store().read_bytes(&d.digest).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target: Reference = format!("{}/f/app:broken", proxy.server.addr())
        .parse()
        .unwrap();
    let err = rt
        .block_on(client(1 << 20).push_image(&target, &bytes, &d.media_type, l.store(), &[]))
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(
        proxy
            .faults
            .lock()
            .unwrap()
            .iter()
            .all(|(m, t, _)| m == "PUT" && t.contains("/blobs/uploads/")),
        "the manifest was never PUT"
    );
    let direct: Reference = format!("{}/f/app:broken", reg.addr()).parse().unwrap();
    let e = rt
        .block_on(client(1 << 20).fetch_manifest(&direct))
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

/// A registry that serves a manifest whose layer bytes do not match their digest.
#[test]
fn a_lying_registry_gets_nothing_into_the_store() {
    use crate::support::http::{respond, Server};
    use cairn::image::manifest::{Descriptor, OCI_CONFIG, OCI_MANIFEST};
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = b"the real layer".to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::new(OCI_CONFIG, cairn_layers::Digest::of(&config), config.len() as u64),
        "layers": [Descriptor::new("application/vnd.oci.image.layer.v1.tar", cairn_layers::Digest::of(&layer), layer.len() as u64)],
    }))
    .unwrap();
    let cfg_path = format!("/v2/lie/app/blobs/{}", cairn_layers::Digest::of(&config));
    let m = manifest.clone();
    let server = Server::start(move |req, conn| {
        if req.target.contains("/manifests/") {
            respond(conn, 200, &[("Content-Type", OCI_MANIFEST.into())], &m);
        } else if req.target == cfg_path {
            respond(conn, 200, &[], &config);
        } else if req.target.contains("/blobs/") {
            respond(conn, 200, &[], b"the fake layer");
        } else {
            respond(conn, 200, &[], b"{}");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_layers::blob_store::BlobStore::open(dir.path()).unwrap();
    let r: Reference = format!("{}/lie/app:1", server.addr()).parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(client(1 << 20).pull_image(&r, &Platform::host(), &store))
        .unwrap_err();
    assert!(
        matches!(
            err,
            cairn::registry::RegistryError::DigestMismatch { what: "blob", .. }
        ),
        "{err}"
    );
    assert!(!store.contains(&cairn_layers::Digest::of(&layer)));
    assert!(!store.contains(&cairn_layers::Digest::of(b"the fake layer")));
    let temps: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");

    // A manifest fetched by digest must hash to that digest.
    let wrong = r.with_digest(cairn_layers::Digest::of(b"another manifest"));
    let err = rt
        .block_on(client(1 << 20).fetch_manifest(&wrong))
        .unwrap_err();
    assert!(
        matches!(
            err,
            cairn::registry::RegistryError::DigestMismatch {
                what: "manifest",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn schema1_and_mislabelled_manifests_are_refused() {
    use crate::support::http::{respond, Server};
    let server = Server::start(|req, conn| {
        if req.target.ends_with("/manifests/old") {
            respond(
                conn,
                200,
                &[(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
                )],
                br#"{"schemaVersion":1,"name":"x","tag":"old","fsLayers":[]}"#,
            );
        } else {
            respond(
                conn,
                200,
                &[("Content-Type", "application/vnd.oci.image.index.v1+json".into())],
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
            );
        }
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let old: Reference = format!("{}/a/b:old", server.addr()).parse().unwrap();
    let e = rt
        .block_on(client(1 << 20).fetch_manifest(&old))
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema 1 manifests are not supported"), "{e}");
    let odd: Reference = format!("{}/a/b:odd", server.addr()).parse().unwrap();
    let e = rt
        .block_on(client(1 << 20).fetch_manifest(&odd))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("served as `application/vnd.oci.image.index.v1+json` but declares mediaType"),
        "{e}"
    );
}

/// Manifest bodies cut off mid-way (the connection closes after half) are
/// fetched again with the usual backoff, then verified.
#[test]
fn manifest_body_resets_are_retried() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let l = OciLayout::create(dir.path().join("l")).unwrap();
    let d = image(&l, 9, &[20_000], "amd64");
    let bytes = l.store().read_bytes(&d.digest).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let direct: Reference = format!("{}/f/app:1", reg.addr()).parse().unwrap();
    rt.block_on(client(1 << 20).push_image(&direct, &bytes, &d.media_type, l.store(), &[]))
        .unwrap();
    let resets = AtomicUsize::new(0);
    let proxy = FaultProxy::start(reg.addr(), move |_, req| {
        if req.method == "GET"
            && req.target.contains("/manifests/")
            && resets.fetch_add(1, Ordering::SeqCst) < 3
        {
            Fault::Truncate
        } else {
            Fault::Pass
        }
    });
    let via_proxy: Reference = format!("{}/f/app:1", proxy.server.addr()).parse().unwrap();
    let out = OciLayout::create(dir.path().join("out")).unwrap();
    let img = rt
        .block_on(client(1 << 20).pull_image(&via_proxy, &Platform::host(), out.store()))
        .unwrap();
    assert_eq!(img.digest, d.digest);
    let faults = proxy.faults.lock().unwrap().clone();
    assert_eq!(faults.len(), 3, "{faults:?}");
    assert!(faults
        .iter()
        .all(|(_, t, f)| t.contains("/manifests/") && *f == Fault::Truncate));
}

/// A registry that accepts connections and never answers fails the request
/// within its budget, naming it — not after read timeout × retries.
#[test]
fn a_registry_that_never_answers_fails_within_the_budget() {
    let addr = crate::support::http::silent_listener();
    let mut o = RegistryOptions::new(Vec::new(), Arc::new(()));
    o.transport.backoff = Duration::from_millis(20);
    o.transport.request_budget = Duration::from_secs(3);
    let c = Registry::new(o).unwrap();
    let r: Reference = format!("{addr}/silent/app:1").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = OciLayout::create(dir.path().join("out")).unwrap();
    let err = rt
        .block_on(c.pull_image(&r, &Platform::host(), out.store()))
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}: {err}");
    let msg = err.to_string();
    assert!(
        msg.contains("no answer within 3 s") && msg.contains("/silent/app/manifests/1"),
        "{msg}"
    );
    // The defaults keep a silent registry under a minute per request.
    let d = cairn::registry::transport::TransportOptions::default();
    assert!(d.request_budget <= Duration::from_secs(60));
}

/// Through the CLI: `cairn pull` and a build `FROM` a registry that accepts
/// connections and never answers fail with the budget that
/// `CAIRN_REGISTRY_TIMEOUT` sets (default 60 s), naming the repository; a
/// value that is not a number of seconds is reported, not ignored.
#[test]
fn a_silent_registry_fails_the_cli_within_its_budget_naming_the_reference() {
    let addr = crate::support::http::silent_listener();
    let t = tempfile::tempdir().unwrap();
    let reference = format!("{addr}/silent/app:1");
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {reference}\nRUN true\n"),
    )
    .unwrap();
    let mut pull = crate::support::cairn(t.path());
    pull.args(["pull", "-o"])
        .arg(format!("oci:{}", t.path().join("out").display()))
        .arg(&reference);
    let mut build = crate::support::cairn(t.path());
    build
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(t.path().join("cache"));
    for (what, mut c) in [("pull", pull), ("build", build)] {
        c.env(cairn::env::CAIRN_REGISTRY_TIMEOUT, "2");
        let o = crate::support::run(c, "");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.status.success(), "{what}: {out}");
        assert!(
            out.contains("no answer within 2 s") && out.contains("/silent/app"),
            "{what}: {out}"
        );
    }
    let mut c = crate::support::cairn(t.path());
    c.env(cairn::env::CAIRN_REGISTRY_TIMEOUT, "soon")
        .args(["pull", "-o"])
        .arg(format!("oci:{}", t.path().join("out2").display()))
        .arg("localhost:1/none/app:1");
    let o = crate::support::run(c, "");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "CAIRN_REGISTRY_TIMEOUT=\"soon\" is not a positive number of seconds; using 60 s"
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A build whose image is pushed completely but whose build record cannot be
/// pushed succeeds with a warning: the image is usable without its record.
#[test]
fn a_failed_record_push_after_a_complete_image_is_a_warning() {
    let reg = TestRegistry::start(Auth::None);
    let proxy = FaultProxy::start(reg.addr(), |_, req| {
        // The record goes up by digest (then the referrers tag `sha256-…`); the image by its tag.
        if req.method == "PUT" && req.target.contains("/manifests/sha256") {
            Fault::Status(500, None)
        } else {
            Fault::Pass
        }
    });
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
    std::fs::write(ctx.join("a"), "a\n").unwrap();
    let tag = format!("{}/f/recorded:1", proxy.server.addr());
    let mut c = crate::support::cairn(t.path());
    c.arg("build")
        .arg(&ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(t.path().join("cache"))
        .args(["-t", &tag, "--push"]);
    let o = crate::support::run(c, "");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("was pushed, but its build record") && stderr.contains(&tag),
        "{stderr}"
    );
    // The image itself is there, under its tag.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let direct: Reference = format!("{}/f/recorded:1", reg.addr()).parse().unwrap();
    rt.block_on(client(1 << 20).fetch_manifest(&direct))
        .unwrap();
    assert!(proxy
        .faults
        .lock()
        .unwrap()
        .iter()
        .any(|(m, t, _)| m == "PUT" && t.contains("/manifests/sha256")));
}
