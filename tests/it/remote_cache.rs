//! `cairn build --cache-to/--cache-from`: step caches shared between
//! runners (separate local caches), through a directory and through a real
//! `docker-registry`.

use crate::build_copy::{build_in, write_tree};
use crate::support::ok;
use std::path::Path;

/// A two-stage app: the final image copies from the build stage.
pub(crate) fn app(ctx: &Path, branch: &str) {
    write_tree(
        ctx,
        &[
            (
                "Dockerfile",
                "FROM scratch AS build\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n\
                 FROM scratch\nCOPY --from=build /a.txt /out/a.txt\nCOPY c.txt /c.txt\n",
            ),
            ("a.txt", "alpha\n"),
            ("b.txt", "beta\n"),
            ("c.txt", &format!("branch {branch}\n")),
        ],
    );
}

/// Replace every blob of the cache directory `shared` by other bytes (new
/// files: the originals may be linked elsewhere).
fn poison_blobs(shared: &Path) {
    for e in std::fs::read_dir(shared.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, b"not the layer").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
}

/// Build `ctx` on the runner `home` (its own local cache); (digest, stderr).
pub(crate) fn build(home: &Path, ctx: &Path, extra: &[&str]) -> (String, String) {
    let out = build_in(home, ctx, &home.join("out"), extra);
    let digest = ok(&out);
    (digest, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_local_cache_dir_serves_a_fresh_runner_the_same_image_lazily_and_refuses_poison() {
    let t = tempfile::tempdir().unwrap();
    let (ctx, shared) = (t.path().join("ctx"), t.path().join("shared"));
    app(&ctx, "main");
    let to = format!("type=local,dest={},mode=max", shared.display());
    let from = format!("type=local,src={}", shared.display());
    let (original, log) = build(&t.path().join("r1"), &ctx, &["--cache-to", &to]);
    assert!(log.contains("4 entries added"), "{log}");
    // Step entries (`s…`); each COPY layer also has a content entry and a
    // file index (`c…`, `f…`).
    let entries = std::fs::read_dir(shared.join("entries"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('s')
        })
        .count();
    assert_eq!(entries, 4, "mode=max exports the build stage's steps too");
    // Exporting again adds nothing and rewrites nothing.
    let (_, log) = build(&t.path().join("r1"), &ctx, &["--cache-to", &to]);
    assert!(log.contains("0 entries added, 4 already there"), "{log}");

    let (fresh, log) = build(&t.path().join("r2"), &ctx, &["--cache-from", &from]);
    assert_eq!(fresh, original, "{log}");
    // Every step hit; only the final image's two layers were fetched (the
    // build stage's layers are never read).
    assert!(log.contains("4 steps hit, 2 blobs fetched"), "{log}");
    let (cold, _) = build(&t.path().join("r3"), &ctx, &[]);
    assert_eq!(cold, original);

    // An edit misses, explained against the shared cache's record.
    std::fs::write(ctx.join("c.txt"), "edited\n").unwrap();
    let (_, log) = build(&t.path().join("r4"), &ctx, &["--cache-from", &from]);
    assert!(
        log.contains("context file c.txt changed (nearest record in the local cache"),
        "{log}"
    );
    assert!(log.contains("3 steps hit"), "{log}");
    std::fs::write(ctx.join("c.txt"), "branch main\n").unwrap();

    // Poison every blob of the shared cache (new files: the originals may be
    // linked elsewhere): each is refused and its step rebuilt.
    poison_blobs(&shared);
    let (poisoned, log) = build(&t.path().join("r5"), &ctx, &["--cache-from", &from]);
    assert_eq!(poisoned, original, "{log}");
    assert!(log.contains("refused the layer"), "{log}");
    assert!(log.contains("0 blobs fetched"), "{log}");

    // A cache that cannot be read: a warning by default, an error with ignore-error=false.
    let file = t.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let broken = format!("type=local,src={}", file.display());
    let (d, log) = build(&t.path().join("r6"), &ctx, &["--cache-from", &broken]);
    assert_eq!(d, original);
    assert!(
        log.contains("continuing without it (ignore-error=true)"),
        "{log}"
    );
    let strict = format!("{broken},ignore-error=false");
    let out = build_in(
        &t.path().join("r7"),
        &ctx,
        &t.path().join("r7/out"),
        &["--cache-from", &strict],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "importing from the local cache {}",
            file.display()
        )),
        "{err}"
    );
}

/// Tags of `repo` in the registry at `addr`.
pub(crate) fn tags(addr: &str, repo: &str) -> Vec<String> {
    let url = format!("http://{addr}/v2/{repo}/tags/list?n=1000");
    let body = std::process::Command::new("curl")
        .args(["-sf", &url])
        .output()
        .unwrap();
    assert!(body.status.success(), "GET {url}");
    let v: serde_json::Value = serde_json::from_slice(&body.stdout).unwrap();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

#[test]
fn runners_building_two_branches_at_once_share_one_registry_cache_without_losing_entries() {
    use crate::support::registry::{Auth, TestRegistry};
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let cache_ref = format!("{}/app/cache", reg.addr());
    let to = format!("type=registry,ref={cache_ref},mode=max");
    let from = format!("type=registry,ref={cache_ref}");
    let branches = ["main", "feature", "fix", "docs"];
    for b in branches {
        app(&t.path().join(b), b);
    }
    // Four runners, each with its own local cache, build their branch at the
    // same time, push the image and export the cache.
    let built: Vec<(String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = branches
            .iter()
            .map(|b| {
                let (home, ctx) = (t.path().join(format!("runner-{b}")), t.path().join(b));
                let image = format!("{}/app:{b}", reg.addr());
                let (to, image) = (to.clone(), image);
                s.spawn(move || {
                    build(
                        &home,
                        &ctx,
                        &[
                            "--cache-to",
                            &to,
                            "-t",
                            &image,
                            "--output",
                            "type=image,push=true",
                        ],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (_, log) in &built {
        assert!(log.contains("cache export to the registry cache"), "{log}");
        // The image's layers are mounted from its repository, not sent again.
        assert!(log.contains("mounted sha256:"), "{log}");
    }
    // Every branch's entries are there: the two build-stage steps and the
    // COPY --from are shared, each branch adds its own last step.
    let steps = tags(&reg.addr(), "app/cache")
        .into_iter()
        .filter(|t| t.starts_with('s'))
        .count();
    assert_eq!(steps, 3 + 4, "no entry lost");
    assert!(reg.verify_blobs() > 0, "every blob stored, none corrupt");

    // A later, empty runner hits every step of every branch.
    let third = t.path().join("runner-later");
    for (b, (digest, _)) in branches.iter().zip(&built) {
        let (d, log) = build(&third.join(b), &t.path().join(b), &["--cache-from", &from]);
        assert_eq!(&d, digest, "{log}");
        assert!(log.contains("4 steps hit, 2 blobs fetched"), "{log}");
    }
    // A miss is explained against the nearest record in the registry cache.
    std::fs::write(t.path().join("main/c.txt"), "edited\n").unwrap();
    let (_, log) = build(
        &third.join("edit"),
        &t.path().join("main"),
        &["--cache-from", &from],
    );
    assert!(
        log.contains("context file c.txt changed (nearest record in the registry cache"),
        "{log}"
    );
    std::fs::write(t.path().join("main/c.txt"), "branch main\n").unwrap();
    // An unreachable cache warns and never fails the build (ignore-error defaults to true).
    let gone = format!(
        "type=registry,ref=127.0.0.1:{}/nobody",
        crate::support::registry::free_port()
    );
    let (d, log) = build(
        &t.path().join("runner-4"),
        &t.path().join("main"),
        &["--cache-from", &gone, "--cache-to", &gone],
    );
    assert_eq!(d, built[0].0);
    assert!(
        log.contains("continuing without it") && log.contains("the build is not failed"),
        "{log}"
    );
}

#[test]
fn a_multi_platform_build_exports_and_imports_every_platform() {
    let t = tempfile::tempdir().unwrap();
    let (ctx, shared) = (t.path().join("ctx"), t.path().join("shared"));
    write_tree(
        &ctx,
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\nCOPY a.txt /a.txt\n",
                    crate::multi_platform::busybox()
                ),
            ),
            ("a.txt", "alpha\n"),
        ],
    );
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    let to = format!("type=local,dest={},mode=max", shared.display());
    let from = format!("type=local,src={}", shared.display());
    let run = |home: &str, flags: &[&str]| {
        build(
            &t.path().join(home),
            &ctx,
            &[&platforms[..], flags].concat(),
        )
    };
    let (index, log) = run("r1", &["--cache-to", &to]);
    // The COPY's parent differs per platform: one entry each.
    assert!(log.contains("2 entries added"), "{log}");
    let (fresh, log) = run("r2", &["--cache-from", &from]);
    assert_eq!(fresh, index, "{log}");
    assert!(log.contains("2 steps hit"), "{log}");
    // Poisoned blobs are refused and both platforms' steps rebuilt, as in
    // a single-platform build.
    poison_blobs(&shared);
    let (poisoned, log) = run("r3", &["--cache-from", &from]);
    assert_eq!(poisoned, index, "{log}");
    assert!(log.contains("refused the layer"), "{log}");
}

/// `cairn build --progress json` with `extra`, without an output flag of
/// its own; (digest, the JSON events).
pub(crate) fn build_json(
    home: &Path,
    ctx: &Path,
    extra: &[&str],
) -> (String, Vec<serde_json::Value>) {
    let mut c = crate::support::build_command(home, ctx, "cache", "json");
    c.args(extra).env_remove("SOURCE_DATE_EPOCH");
    let out = crate::support::run(c, "");
    let digest = ok(&out);
    let events = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (digest, events)
}

/// The `transfer` line of `registry` (bytes moved), if the build sent one.
pub(crate) fn transfer<'a>(
    events: &'a [serde_json::Value],
    registry: &str,
) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["type"] == "transfer" && e["registry"] == registry)
        .unwrap_or_else(|| panic!("no transfer line for {registry}: {events:?}"))
}

#[test]
fn a_fresh_runner_pushing_what_the_registry_cache_holds_mounts_the_layers_and_downloads_none() {
    use crate::support::http::{Fault, FaultProxy};
    use crate::support::registry::{Auth, TestRegistry};
    use std::sync::{Arc, Mutex};
    let reg = TestRegistry::start(Auth::None);
    // Every request the registry gets, as `METHOD target`.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let proxy = FaultProxy::start(reg.addr(), move |_, req| {
        log.lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.target));
        Fault::Pass
    });
    let addr = proxy.server.addr();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    app(&ctx, "main");
    let to = format!("type=registry,ref={addr}/app/cache,mode=max");
    let from = format!("type=registry,ref={addr}/app/cache");
    // The first runner builds, pushes and exports the cache.
    let first = ["--cache-to", &to, "-t", &format!("{addr}/app:1"), "--push"];
    let (original, events) = build_json(&t.path().join("r1"), &ctx, &first);
    let sent = transfer(&events, &addr);
    assert!(
        sent["uploaded"]["layer_bytes"].as_u64().unwrap() > 0,
        "{sent}"
    );

    // A fresh runner (empty local cache) hits every step in the registry
    // cache and pushes the image to another repository of the registry.
    seen.lock().unwrap().clear();
    let fresh = [
        "--cache-from",
        &from,
        "-t",
        &format!("{addr}/app/release:1"),
        "--push",
    ];
    let (digest, events) = build_json(&t.path().join("r2"), &ctx, &fresh);
    assert_eq!(digest, original, "the same image as the original build");
    let moved = transfer(&events, &addr);
    assert_eq!(moved["downloaded"]["layer_bytes"], 0, "{moved}");
    assert_eq!(moved["uploaded"]["layer_bytes"], 0, "{moved}");
    // The image's two layers were mounted from the cache's repository.
    assert_eq!(moved["mounted"]["blobs"], 2, "{moved}");
    assert!(
        moved["mounted"]["layer_bytes"].as_u64().unwrap() > 0,
        "{moved}"
    );
    let info: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        info.iter()
            .any(|m| m.contains("4 steps hit, 0 blobs fetched")),
        "{info:?}"
    );
    // The registry's own view: no layer of the image was read, each was
    // mounted into the new repository.
    let manifest = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{}/v2/app/release/manifests/1", reg.addr()),
        ])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let requests = seen.lock().unwrap().clone();
    for l in manifest["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        assert!(
            !requests
                .iter()
                .any(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{d}"))),
            "layer {d} was downloaded: {requests:?}"
        );
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("POST /v2/app/release/blobs/uploads/")
                    && r.contains(&format!("mount={}", d.replace(':', "%3A")))
                    && r.contains("from=app%2Fcache")),
            "layer {d} was not mounted from the cache: {requests:?}"
        );
    }

    // Pushed to another registry (here: the same one under another name),
    // the layers cannot be mounted: they are downloaded once and uploaded.
    let elsewhere = format!("{}/other/app:2", reg.addr());
    let cross = ["--cache-from", &from, "-t", &elsewhere, "--push"];
    let (digest, events) = build_json(&t.path().join("r3"), &ctx, &cross);
    assert_eq!(digest, original);
    let cache_side = transfer(&events, &addr);
    let push_side = transfer(&events, &reg.addr());
    let cache_layers = cache_side["downloaded"]["layer_bytes"].as_u64().unwrap();
    assert!(cache_layers > 0, "{cache_side}");
    assert_eq!(
        push_side["uploaded"]["layer_bytes"], cache_layers,
        "{push_side}"
    );
    assert!(reg.verify_blobs() > 0);
}
