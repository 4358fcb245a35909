//! The registry cache against a failing or hostile registry: the fault
//! proxy of the registry tests during export and import, a registry that
//! refuses the entries' manifest type, and entries poisoned in the
//! registry. The build never fails by default, nothing corrupt is kept
//! locally, and a later build is the same image.

use crate::build_copy::build_in;
use crate::remote_cache::{app, build, tags};
use crate::support::http::{Fault, FaultProxy};
use crate::support::registry::{Auth, TestRegistry};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every blob of the local cache at `home` hashes to its name.
pub(crate) fn local_blobs_verify(home: &Path) -> usize {
    let dir = home.join("cache/blobs/sha256");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() != 64 {
            continue;
        }
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(
            cairn_layers::Digest::of(&bytes).hex(),
            name,
            "corrupt blob kept in {}",
            dir.display()
        );
        n += 1;
    }
    n
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .arg("-sf")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?}");
    out.stdout
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The manifest of `repo:tag` at `addr`.
fn manifest(addr: &str, repo: &str, tag: &str) -> serde_json::Value {
    let url = format!("http://{addr}/v2/{repo}/manifests/{tag}");
    serde_json::from_slice(&curl(&["-H", &format!("Accept: {OCI_MANIFEST}"), &url])).unwrap()
}

/// The step entries' tags of `repo` with their manifests.
fn entries(addr: &str, repo: &str) -> Vec<(String, serde_json::Value)> {
    tags(addr, repo)
        .into_iter()
        .filter(|t| t.starts_with('s'))
        .map(|t| {
            let m = manifest(addr, repo, &t);
            (t, m)
        })
        .collect()
}

#[test]
fn export_and_import_through_injected_faults_keep_nothing_corrupt() {
    let reg = TestRegistry::start(Auth::None);
    let n_blob_gets = AtomicUsize::new(0);
    // 500s, lost answers to uploads, a truncated first blob download.
    let proxy = FaultProxy::start(reg.addr(), move |n, req| {
        let blob_get = req.method == "GET" && req.target.contains("/blobs/sha256:");
        if blob_get && n_blob_gets.fetch_add(1, Ordering::SeqCst) % 3 == 0 {
            return Fault::Truncate;
        }
        if req.method == "PUT" && req.target.contains("/blobs/uploads/") && n % 2 == 0 {
            return Fault::DropResponse;
        }
        if n % 4 == 1 {
            return Fault::Status(500, None);
        }
        Fault::Pass
    });
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    app(&ctx, "main");
    let via = format!("{}/app/cache", proxy.server.addr());
    let (original, log) = build(
        &t.path().join("a"),
        &ctx,
        &["--cache-to", &format!("type=registry,ref={via},mode=max")],
    );
    let export_faults = proxy.faults.lock().unwrap().len();
    assert!(export_faults > 0, "no fault during the export: {log}");
    assert!(log.contains("cache export to the registry cache"), "{log}");
    // The registry holds complete blobs only.
    reg.verify_blobs();

    // Import through the same faults: the same image, every local blob sound.
    let b = t.path().join("b");
    let from = format!("type=registry,ref={via}");
    let (d, log) = build(&b, &ctx, &["--cache-from", &from]);
    assert_eq!(d, original, "{log}");
    assert!(
        proxy.faults.lock().unwrap().len() > export_faults,
        "no fault during the import"
    );
    assert!(local_blobs_verify(&b) > 0);
    // A later build, straight from the registry, hits what went through.
    let direct = format!("type=registry,ref={}/app/cache", reg.addr());
    let (d, log) = build(&t.path().join("c"), &ctx, &["--cache-from", &direct]);
    assert_eq!(d, original, "{log}");
    assert!(log.contains("4 steps hit, 2 blobs fetched"), "{log}");
    // And B's own cache, filled through the faults, builds the same image
    // again (the build stage's records came without their blobs: lazy).
    let (d, log) = build(&b, &ctx, &[]);
    assert_eq!(d, original, "{log}");
    assert!(
        log.contains("[stage-1 2/2] COPY c.txt /c.txt\n#4 CACHED"),
        "{log}"
    );
}

#[test]
fn a_registry_refusing_artifact_manifests_gets_image_manifests_or_a_clear_error() {
    let reg = TestRegistry::start(Auth::None);
    // As Harbor or an older ECR: a manifest with an artifactType, or a
    // config that is not an image config, is MANIFEST_INVALID.
    let picky = FaultProxy::start(reg.addr(), |_, req| {
        let body = String::from_utf8_lossy(&req.body);
        if req.method == "PUT"
            && req.target.contains("/manifests/")
            && (body.contains("artifactType")
                || !body.contains("application/vnd.oci.image.config.v1+json"))
        {
            return Fault::Refuse(400, "MANIFEST_INVALID");
        }
        Fault::Pass
    });
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    app(&ctx, "main");
    let via = format!("{}/app/cache", picky.server.addr());
    let (original, log) = build(
        &t.path().join("a"),
        &ctx,
        &[
            "--cache-to",
            &format!("type=registry,ref={via},mode=max,ignore-error=false"),
        ],
    );
    assert!(log.contains("written as image manifests"), "{log}");
    assert!(log.contains("4 entries added"), "{log}");
    let shapes = entries(&reg.addr(), "app/cache");
    assert_eq!(shapes.len(), 4);
    for (tag, m) in &shapes {
        assert!(m.get("artifactType").is_none(), "{tag}: {m}");
    }
    let (d, log) = build(
        &t.path().join("b"),
        &ctx,
        &["--cache-from", &format!("type=registry,ref={via}")],
    );
    assert_eq!(d, original);
    assert!(log.contains("4 steps hit"), "{log}");

    // A registry that refuses every manifest: a warning by default…
    let refusing = FaultProxy::start(reg.addr(), |_, req| {
        if req.method == "PUT" && req.target.contains("/manifests/") {
            return Fault::Refuse(415, "MANIFEST_INVALID");
        }
        Fault::Pass
    });
    let no = format!("{}/app/nocache", refusing.server.addr());
    let (d, log) = build(
        &t.path().join("c"),
        &ctx,
        &["--cache-to", &format!("type=registry,ref={no}")],
    );
    assert_eq!(d, original);
    assert!(log.contains("the build is not failed"), "{log}");
    // …and with ignore-error=false an error naming the ref and what to do.
    let strict = format!("type=registry,ref={no},ignore-error=false");
    let out = build_in(
        &t.path().join("d"),
        &ctx,
        &t.path().join("d/out"),
        &["--cache-to", &strict],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for says in [
        format!("{no}:s"),
        "refused the cache entry both as an OCI artifact and as an image manifest".into(),
        "type=local,dest=DIR".into(),
    ] {
        assert!(err.contains(&says), "{says:?} not in {err}");
    }
}

/// Change the bytes of the layer blob of every step entry of `repo` in
/// `reg`'s storage (the entries intact).
pub(crate) fn corrupt_entry_layers(reg: &TestRegistry, repo: &str) {
    for (_, m) in entries(&reg.addr(), repo) {
        let Some(d) = m["layers"][1]["digest"].as_str() else {
            continue;
        };
        let hex = d.trim_start_matches("sha256:");
        let data = reg
            .storage()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        let mut bytes = std::fs::read(&data).unwrap();
        for b in &mut bytes {
            *b ^= 0x5a;
        }
        std::fs::write(&data, bytes).unwrap();
    }
}

#[test]
fn entries_poisoned_in_the_registry_are_refused_and_rebuilt() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    app(&ctx, "main");
    let r = format!("{}/app/cache", reg.addr());
    let (original, _) = build(
        &t.path().join("a"),
        &ctx,
        &["--cache-to", &format!("type=registry,ref={r},mode=max")],
    );
    let from = format!("type=registry,ref={r}");

    // Someone with push access re-tags every entry with a manifest naming
    // another entry's layer (each is a blob the registry has).
    let before = entries(&reg.addr(), "app/cache");
    assert_eq!(before.len(), 4);
    for (i, (tag, m)) in before.iter().enumerate() {
        let mut m = m.clone();
        let other = &before[(i + 1) % before.len()].1["layers"][1];
        m["layers"][1] = other.clone();
        let file = t.path().join(format!("m{i}.json"));
        std::fs::write(&file, serde_json::to_vec(&m).unwrap()).unwrap();
        curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {OCI_MANIFEST}"),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://{}/v2/app/cache/manifests/{tag}", reg.addr()),
        ]);
    }
    let b = t.path().join("b");
    let (d, log) = build(&b, &ctx, &["--cache-from", &from]);
    assert_eq!(d, original, "{log}");
    assert!(log.contains("is not its record's"), "{log}");
    // No step is served; the COPY layers are found again by their content
    // (those entries were left intact).
    assert!(log.contains("0 steps hit"), "{log}");
    // What B keeps is its own build: it serves B again, the same image.
    let (d, log) = build(&b, &ctx, &[]);
    assert_eq!(d, original);
    assert!(!log.contains("cache miss"), "{log}");

    // Bytes changed in the registry's storage (the entries intact): each
    // blob is refused on download, its step rebuilt, nothing kept.
    let reg2 = TestRegistry::start(Auth::None);
    let r2 = format!("{}/app/cache", reg2.addr());
    build(
        &t.path().join("a2"),
        &ctx,
        &["--cache-to", &format!("type=registry,ref={r2},mode=max")],
    );
    corrupt_entry_layers(&reg2, "app/cache");
    let c = t.path().join("c");
    let (d, log) = build(
        &c,
        &ctx,
        &["--cache-from", &format!("type=registry,ref={r2}")],
    );
    assert_eq!(d, original, "{log}");
    assert!(log.contains("refused the layer"), "{log}");
    assert!(log.contains("0 blobs fetched"), "{log}");
    local_blobs_verify(&c);
}
