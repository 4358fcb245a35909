//! A fresh runner reuses a `COPY --from` layer by its content through the
//! registry cache, as a runner that kept its local cache does: the
//! layer-by-content records and the file indexes of layers travel with the
//! step entries (`crate::cache::remote`), against a real `docker-registry`.

use crate::build_copy::write_tree;
use crate::remote_cache::build_json;
use crate::support::registry::{Auth, TestRegistry};
use std::path::Path;

/// `deps` makes the files, `build` copies them and a source file, the
/// final stage copies both from `build`: editing the source changes
/// `build`, so the final `COPY --from=build /build/lib` misses its step key
/// and can only be reused by what it holds.
fn app(ctx: &Path, source: &str) {
    let mut files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("lib/m{i}.js"), format!("module {i}\n").repeat(50)))
        .collect();
    files.push((
        "Dockerfile".into(),
        "FROM scratch AS deps\nCOPY lib/ /deps/lib/\n\
         FROM scratch AS build\nCOPY --from=deps /deps/lib /build/lib\nCOPY src.txt /build/src.txt\n\
         FROM scratch\nCOPY --from=build /build/lib /app/lib\nCOPY --from=build /build/src.txt /app/src.txt\n"
            .into(),
    ));
    files.push(("src.txt".into(), source.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write_tree(ctx, &refs);
}

/// The output lines of the step whose instruction is `text`.
fn step_lines(events: &[serde_json::Value], text: &str) -> Vec<String> {
    let id = events
        .iter()
        .find(|e| e["type"] == "step_start" && e["text"] == text)
        .unwrap_or_else(|| panic!("no step {text}: {events:?}"))["id"]
        .clone();
    events
        .iter()
        .filter(|e| e["type"] == "step_output" && e["id"] == id)
        .filter_map(|e| e["line"].as_str().map(str::to_owned))
        .collect()
}

fn messages(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

fn tags(reg: &TestRegistry, repo: &str) -> Vec<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{}/v2/{repo}/tags/list", reg.addr())])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_fresh_runner_reuses_a_copy_from_layer_by_content_through_the_registry_cache() {
    let reg = TestRegistry::start(Auth::None);
    let addr = reg.addr();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    app(&ctx, "v1\n");
    let to = format!("type=registry,ref={addr}/app/cache,mode=max");
    let from = format!("type=registry,ref={addr}/app/cache");
    let (_, events) = build_json(&t.path().join("r1"), &ctx, &["--cache-to", &to]);
    assert!(
        messages(&events).iter().any(|m| m.contains("file indexes")),
        "{:?}",
        messages(&events)
    );

    // One line edited; a fresh runner (empty local cache).
    app(&ctx, "v2\n");
    let (fresh, events) = build_json(&t.path().join("r2"), &ctx, &["--cache-from", &from]);
    let copy = step_lines(&events, "COPY --from=build /build/lib /app/lib");
    assert!(
        copy.iter()
            .any(|l| l.contains("same files as an earlier build (registry cache)")),
        "the COPY --from was not reused by content: {copy:?}"
    );
    let summary = messages(&events);
    assert!(
        summary
            .iter()
            .any(|m| m.contains("1 layers found by content, 1 file indexes read")),
        "{summary:?}"
    );
    // The same image as a cold build of the edited app.
    let (cold, _) = build_json(&t.path().join("r3"), &ctx, &[]);
    assert_eq!(fresh, cold);

    // A file index whose tag was pointed at another layer's index (each
    // `f…` tag given the next one's manifest) is refused: the files are
    // hashed, the layer is still reused and the image is the same.
    let f: Vec<String> = tags(&reg, "app/cache")
        .into_iter()
        .filter(|t| t.starts_with('f'))
        .collect();
    assert!(f.len() >= 2, "{f:?}");
    let manifest = |tag: &str| {
        std::process::Command::new("curl")
            .args([
                "-sf",
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
                &format!("http://{addr}/v2/app/cache/manifests/{tag}"),
            ])
            .output()
            .unwrap()
            .stdout
    };
    let bodies: Vec<Vec<u8>> = f.iter().map(|t| manifest(t)).collect();
    for (i, tag) in f.iter().enumerate() {
        let body = &bodies[(i + 1) % f.len()];
        let tmp = t.path().join("m.json");
        std::fs::write(&tmp, body).unwrap();
        let put = std::process::Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary",
                &format!("@{}", tmp.display()),
                &format!("http://{addr}/v2/app/cache/manifests/{tag}"),
            ])
            .status()
            .unwrap();
        assert!(put.success());
    }
    let (poisoned, events) = build_json(&t.path().join("r4"), &ctx, &["--cache-from", &from]);
    assert_eq!(poisoned, cold);
    let warnings = messages(&events);
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("refused the file index")),
        "{warnings:?}"
    );
    let copy = step_lines(&events, "COPY --from=build /build/lib /app/lib");
    assert!(
        copy.iter()
            .any(|l| l.contains("same files as an earlier build (registry cache)")),
        "{copy:?}"
    );
}
