//! A fresh runner whose every step hits the registry cache pulls only its
//! base image's manifest and config, never its layers; a step that needs
//! the base's files pulls them then (real `docker-registry`).

use crate::build_copy::write_tree;
use crate::remote_cache::{build_json, transfer};
use crate::support::fixture_layout;
use crate::support::registry::{Auth, TestRegistry};
use std::path::PathBuf;

/// A registry holding the node:22-alpine stand-in, a scratch directory,
/// and in it the context `ctx` with `files` and a Dockerfile `FROM <that
/// base>` then `steps`.
pub(crate) fn on_pushed_base(
    steps: &str,
    files: &[(&str, &str)],
) -> (TestRegistry, tempfile::TempDir, PathBuf) {
    let fixture =
        fixture_layout().expect("the node:22-alpine stand-in is missing: run `just fixtures`");
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let base = crate::build::push_fixture(&reg, &fixture, &t.path().join("pusher"));
    let ctx = t.path().join("ctx");
    let dockerfile = format!("FROM {base}\n{steps}");
    let mut all = vec![("Dockerfile", dockerfile.as_str())];
    all.extend_from_slice(files);
    write_tree(&ctx, &all);
    (reg, t, ctx)
}

#[test]
fn a_fresh_runner_whose_steps_all_hit_downloads_no_base_layer() {
    let (reg, t, ctx) = on_pushed_base("WORKDIR /app\nCOPY a.txt ./\n", &[("a.txt", "alpha\n")]);
    let addr = reg.addr();
    let to = format!("type=registry,ref={addr}/app/cache,mode=max");
    let from = format!("type=registry,ref={addr}/app/cache");
    let image = format!("{addr}/app:1");
    let (original, _) = build_json(
        &t.path().join("r1"),
        &ctx,
        &["--cache-to", &to, "-t", &image, "--push"],
    );

    // A fresh runner, nothing changed, the image pushed again: the base's
    // manifest and config are read (the key needs the manifest digest, the
    // stage its config), none of its layers.
    let (fresh, events) = build_json(
        &t.path().join("r2"),
        &ctx,
        &["--cache-from", &from, "-t", &image, "--push"],
    );
    assert_eq!(fresh, original);
    let moved = transfer(&events, &addr);
    assert_eq!(moved["downloaded"]["layer_bytes"], 0, "{moved}");

    // An edit: the COPY reads the base's /app, so its layers are pulled now,
    // and the image is a cold build's.
    std::fs::write(ctx.join("a.txt"), "edited\n").unwrap();
    let (edited, events) = build_json(&t.path().join("r3"), &ctx, &["--cache-from", &from]);
    let moved = transfer(&events, &addr);
    assert!(
        moved["downloaded"]["layer_bytes"].as_u64().unwrap() > 0,
        "{moved}"
    );
    let summary: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        summary
            .iter()
            .any(|m| m.contains("base layers pulled when needed")),
        "{summary:?}"
    );
    let (cold, _) = build_json(&t.path().join("r4"), &ctx, &[]);
    assert_eq!(edited, cold);
}
