//! `cairn build --cache-to/--cache-from`: step caches shared between
//! runners (separate local caches), through a directory and through a real
//! `docker-registry`.

use crate::build_copy::{build_in, write_tree};
use crate::support::ok;
use std::path::Path;

/// A two-stage app: the final image copies from the build stage.
fn app(ctx: &Path, branch: &str) {
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

/// Build `ctx` on the runner `home` (its own local cache); (digest, stderr).
fn build(home: &Path, ctx: &Path, extra: &[&str]) -> (String, String) {
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
    let entries = std::fs::read_dir(shared.join("entries")).unwrap().count();
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
    for e in std::fs::read_dir(shared.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, b"not the layer").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
    let (poisoned, log) = build(&t.path().join("r5"), &ctx, &["--cache-from", &from]);
    assert_eq!(poisoned, original, "{log}");
    assert!(log.contains("refused the layer"), "{log}");
    assert!(log.contains("0 blobs fetched"), "{log}");
}
