//! `RUN --mount=type=bind` of the main build context on the node:22-alpine
//! stand-in: the mount shows what `.dockerignore` keeps, and the step's key
//! follows the content of the mounted subtree (and nothing outside it).

use crate::support::{cairn, fixture_layout, ok, run};
use std::path::Path;

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn build(home: &Path, ctx: &Path, out: &Path) -> std::process::Output {
    let mut c = cairn(home);
    c.arg("build")
        .arg(ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(home.join("cache"))
        .arg("-o")
        .arg(format!("type=local,dest={}", out.display()));
    run(c, "")
}

fn base() -> String {
    let f = fixture_layout().expect("the node:22-alpine stand-in is missing: run `just fixtures`");
    format!("oci:{}:22-alpine", f.display())
}

#[test]
fn a_context_bind_mount_is_filtered_and_keyed_by_its_subtree() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write(&ctx.join("src/a.js"), "one\n");
    write(&ctx.join("src/secret.env"), "TOKEN=nope\n");
    write(&ctx.join("other.txt"), "outside\n");
    write(&ctx.join(".dockerignore"), "src/secret.env\nout\n");
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM {}\n\
             RUN --mount=type=bind,source=src,target=/m (ls -A /m; cat /m/a.js) > /sub.txt\n\
             RUN --mount=type=bind,source=../../src/,target=/up ls -A /up > /up.txt\n\
             RUN --mount=type=bind,target=/ctx find /ctx | sort > /all.txt\n\
             RUN --mount=type=bind,source=other.txt,target=/o.txt cat /o.txt > /o.out\n",
            base()
        ),
    );
    let out = t.path().join("out");
    let first = build(t.path(), &ctx, &out);
    ok(&first);
    let sub = read(&out.join("sub.txt"));
    assert_eq!(sub, "a.js\none\n");
    // `..` stays inside the context, as a COPY source does.
    assert_eq!(read(&out.join("up.txt")), "a.js\n");
    let all = read(&out.join("all.txt"));
    assert!(
        all.contains("/ctx/other.txt") && all.contains("/ctx/src/a.js"),
        "{all}"
    );
    assert!(!all.contains("secret.env"), "{all}");
    assert_eq!(read(&out.join("o.out")), "outside\n");

    let cached = |o: &std::process::Output| {
        ok(o);
        String::from_utf8_lossy(&o.stderr).matches("CACHED").count()
    };
    assert_eq!(cached(&build(t.path(), &ctx, &out)), 4);
    // Outside `src`: the two subtree mounts keep their hit; the whole-context
    // mount runs (and so the step after it, with the new bytes).
    write(&ctx.join("other.txt"), "changed\n");
    assert_eq!(cached(&build(t.path(), &ctx, &out)), 2);
    assert_eq!(read(&out.join("o.out")), "changed\n");
    // Excluded by .dockerignore: nothing runs.
    write(&ctx.join("src/secret.env"), "TOKEN=other\n");
    assert_eq!(cached(&build(t.path(), &ctx, &out)), 4);
    // A mounted file: its step (the first, so all) runs again and sees the new bytes.
    write(&ctx.join("src/a.js"), "two\n");
    assert_eq!(cached(&build(t.path(), &ctx, &out)), 0);
    assert_eq!(read(&out.join("sub.txt")), "a.js\ntwo\n");
}

#[test]
fn a_context_bind_mount_never_follows_a_link_out_of_the_context() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::os::unix::fs::symlink("/etc", ctx.join("hostetc")).unwrap();
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM {}\nRUN --mount=type=bind,source=hostetc,target=/m cat /m/passwd > /p\n",
            base()
        ),
    );
    let o = build(t.path(), &ctx, &t.path().join("out"));
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("bind mount source `hostetc` is not in the build context"),
        "{e}"
    );
    assert!(!t.path().join("out/p").exists());
}
