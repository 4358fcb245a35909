//! `--cache-to/--cache-from …,cache-mounts=`: the contents of a
//! `RUN --mount=type=cache` travel between runners (separate local caches)
//! through a real `docker-registry`, opt-in, bounded, never in the image.

use crate::build_run::context_from_fixture;
use crate::remote_cache::{build, tags};
use crate::support::registry::{Auth, TestRegistry};
use std::path::{Path, PathBuf};

/// An app whose RUN is a stand-in for `npm ci` with the npm cache mounted:
/// it says whether the cache held a package, then adds the lockfile's.
/// The image gets the lockfile only, whatever the cache held. (`MOUNT""-…`
/// so that the log's copy of the command does not say it.)
fn app(dir: &Path, lock: &str) -> PathBuf {
    let ctx = context_from_fixture(
        dir,
        "",
        "COPY lock.txt /app/lock.txt\n\
         RUN --mount=type=cache,id=npm,target=/root/.npm \
         if [ -f /root/.npm/pkg ]; then echo \"MOUNT\"\"-WARM $(cat /root/.npm/pkg | tr '\\n' ' ')\"; \
         else echo MOUNT\"\"-COLD; fi; cat /app/lock.txt >> /root/.npm/pkg; cp /app/lock.txt /app/installed\n",
    );
    std::fs::write(ctx.join("lock.txt"), format!("{lock}\n")).unwrap();
    ctx
}

#[test]
fn a_cache_mount_travels_through_the_registry_opt_in_bounded_and_outside_the_image() {
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let r = format!("{}/app/cache", reg.addr());
    let to = format!("type=registry,ref={r},mode=max,cache-mounts=true");
    let from = format!("type=registry,ref={r},cache-mounts=npm");
    let ctx = app(t.path(), "left-pad-1.0");

    // Runner A fills the mount and exports it.
    let (_, log) = build(&t.path().join("a"), &ctx, &["--cache-to", &to]);
    assert!(log.contains("MOUNT-COLD"), "{log}");
    assert!(
        log.contains("cache mounts: 1 written, 0 unchanged"),
        "{log}"
    );
    let mount_tags: Vec<String> = tags(&reg.addr(), "app/cache")
        .into_iter()
        .filter(|t| t.starts_with('m'))
        .collect();
    assert_eq!(mount_tags.len(), 1, "one entry per mount id");

    // A fresh runner whose steps all hit runs no RUN: the entry is not
    // replaced by its empty mount.
    let (_, log) = build(
        &t.path().join("a2"),
        &ctx,
        &["--cache-from", &from, "--cache-to", &to],
    );
    assert!(!log.contains("MOUNT-"), "the RUN hit: {log}");
    assert!(!log.contains("cache mounts:"), "{log}");

    // The lockfile changes: runner B (empty local cache) reruns the step
    // and finds A's package in the restored mount.
    app(t.path(), "left-pad-1.1");
    let (with_mount, log) = build(&t.path().join("b"), &ctx, &["--cache-from", &from]);
    assert!(log.contains("MOUNT-WARM left-pad-1.0"), "{log}");
    assert!(log.contains("1 cache mounts restored"), "{log}");
    // The same image as a runner that never had the mount: its contents
    // are not in a layer.
    let (cold, log) = build(&t.path().join("c"), &ctx, &[]);
    assert!(log.contains("MOUNT-COLD"), "{log}");
    assert_eq!(with_mount, cold);
    // Opt-in: without cache-mounts= on --cache-from nothing is restored.
    let plain = format!("type=registry,ref={r}");
    let (_, log) = build(&t.path().join("d"), &ctx, &["--cache-from", &plain]);
    assert!(log.contains("MOUNT-COLD"), "{log}");

    // Bounded: over cache-mounts-max, an import warns and the RUN runs
    // without it; an export warns and writes nothing.
    app(t.path(), "left-pad-1.2");
    let small_from = format!("{from},cache-mounts-max=4");
    let small_to = format!("{to},cache-mounts-max=4");
    let (_, log) = build(
        &t.path().join("e"),
        &ctx,
        &["--cache-from", &small_from, "--cache-to", &small_to],
    );
    assert!(log.contains("over cache-mounts-max=4"), "{log}");
    assert!(log.contains("MOUNT-COLD"), "{log}");
    assert!(log.contains("not exported"), "{log}");
    // The entry is still A's: a later runner restores left-pad-1.0.
    app(t.path(), "left-pad-1.3");
    let (_, log) = build(&t.path().join("f"), &ctx, &["--cache-from", &from]);
    assert!(log.contains("MOUNT-WARM left-pad-1.0"), "{log}");
    assert!(reg.verify_blobs() > 0);
}

/// A mount owned by another user (`USER node`, `uid=1000`), through a
/// cache directory: the restored files are the mount owner's, so the
/// `RUN` can add to them.
#[test]
fn a_restored_mount_belongs_to_its_owner() {
    let t = tempfile::tempdir().unwrap();
    let ctx = context_from_fixture(
        t.path(),
        "",
        "COPY lock.txt /lock.txt\nUSER node\n\
         RUN --mount=type=cache,id=own,target=/home/node/.npm,uid=1000,gid=1000 \
         if [ -d /home/node/.npm/pkgs ]; then echo OWN\"\"-WARM; fi; \
         mkdir -p /home/node/.npm/pkgs && cp /lock.txt /home/node/.npm/pkgs/\"$(cat /lock.txt)\"\n",
    );
    let shared = t.path().join("shared");
    let to = format!("type=local,dest={},cache-mounts=own", shared.display());
    let from = format!("type=local,src={},cache-mounts=own", shared.display());
    std::fs::write(ctx.join("lock.txt"), "a").unwrap();
    let (_, log) = build(&t.path().join("a"), &ctx, &["--cache-to", &to]);
    assert!(log.contains("cache mounts: 1 written"), "{log}");
    std::fs::write(ctx.join("lock.txt"), "b").unwrap();
    let (_, log) = build(&t.path().join("b"), &ctx, &["--cache-from", &from]);
    assert!(log.contains("OWN-WARM"), "{log}");
}
