//! Stages scheduled at step granularity, and `COPY --from` layers made
//! ahead while the source stage still runs (src/engine/speculate.rs): the
//! image is the one a build without it makes, the layer is discarded when
//! a later step of the source stage changes what it copied, and a failing
//! source stage's own error is the one shown. With `--cache-from` a copy is
//! made ahead only once its lookup missed: a hit stays lazy.

use crate::build_copy::write_tree;
use crate::build_run::build_env;
use crate::remote_cache::build_json;
use crate::support::registry::{Auth, TestRegistry};
use crate::support::{cairn, fixture_layout, run};
use std::path::{Path, PathBuf};

fn fixture() -> String {
    let f = fixture_layout().expect("the node:22-alpine stand-in is missing: run `just fixtures`");
    format!("oci:{}:22-alpine", f.display())
}

/// A builder that makes `node_modules`, then (while the runner already
/// waits at its `COPY --from=builder`) sleeps and runs `later` (a layer
/// kept as a snapshot directory: a RUN follows it); a runner
/// copying package.json, node_modules and .next from it.
fn app(dir: &Path, later: &str) -> std::path::PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let text = format!(
        "FROM {base} AS builder\n\
         WORKDIR /build\n\
         RUN mkdir -p node_modules/pkg/lib node_modules/.bin \
         && echo '{{\"name\":\"app\"}}' > package.json \
         && printf 'module.exports = 1;\\n' > node_modules/pkg/lib/index.js \
         && seq 1 200000 > node_modules/pkg/big.txt \
         && ln -s ../pkg/lib/index.js node_modules/.bin/pkg\n\
         RUN sleep 3 && mkdir -p .next && echo built > .next/BUILD_ID && {later}\n\
         RUN echo done > .done\n\
         FROM {base} AS runner\n\
         WORKDIR /srv/app\n\
         RUN addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs\n\
         COPY --from=builder --chown=nextjs:nodejs /build/package.json ./package.json\n\
         COPY --from=builder --chown=nextjs:nodejs /build/node_modules ./node_modules\n\
         COPY --from=builder --chown=nextjs:nodejs /build/.next ./.next\n",
        base = fixture()
    );
    std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    ctx
}

/// Build `ctx` in a fresh cache under `dir`: (digest, log).
fn cold(dir: &Path, ctx: &Path, speculate: bool) -> (String, String) {
    let env: &[(&str, &str)] = match speculate {
        true => &[],
        false => &[("CAIRN_NO_SPECULATION", "1")],
    };
    build_env(dir, ctx, env, &[])
}

#[test]
fn copies_made_ahead_give_the_image_a_build_without_them_gives() {
    let t = tempfile::tempdir().unwrap();
    let ctx = app(t.path(), "true");
    let (plain, plain_log) = cold(&t.path().join("a"), &ctx, false);
    assert!(!plain_log.contains("made ahead"), "{plain_log}");
    let (ahead, log) = cold(&t.path().join("b"), &ctx, true);
    // package.json and node_modules were made while the builder slept;
    // .next did not exist yet: copied once the builder finished.
    assert_eq!(
        log.matches("made ahead while the source stage ran").count(),
        2,
        "{log}"
    );
    assert_eq!(ahead, plain, "{log}");
}

#[test]
fn a_later_step_changing_the_copied_tree_discards_the_layer_made_ahead() {
    let t = tempfile::tempdir().unwrap();
    let ctx = app(t.path(), "echo changed > node_modules/pkg/lib/index.js");
    let (plain, _) = cold(&t.path().join("a"), &ctx, false);
    let (ahead, log) = cold(&t.path().join("b"), &ctx, true);
    // Kept, the stale node_modules would be in the image.
    assert_eq!(ahead, plain, "{log}");
    assert!(
        log.contains(
            "layer made ahead discarded: a later step of the stage changed /build/node_modules"
        ),
        "{log}"
    );
    // package.json was not touched: its layer made ahead is kept.
    assert_eq!(
        log.matches("made ahead while the source stage ran").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_failing_source_stage_shows_its_own_error_to_a_waiting_consumer() {
    let t = tempfile::tempdir().unwrap();
    let ctx = app(t.path(), "exit 7");
    for (n, env) in [(0, vec![]), (1, vec![("CAIRN_NO_SPECULATION", "1")])] {
        let home = t.path().join(n.to_string());
        let mut c = cairn(&home);
        c.envs(env)
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--cache-dir"])
            .arg(home.join("cache"));
        let o = run(c, "");
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("[builder 4/5] RUN sleep 3"), "{err}");
        assert!(err.contains("exited with code 7"), "{err}");
        assert!(!err.contains("internal error"), "{err}");
    }
}

/// A stage that fails while an independent one still runs: the running one
/// stops at its next step, and the error is the failing stage's.
#[test]
fn a_stage_failing_beside_a_running_one_shows_its_own_error() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let text = format!(
        "FROM {base} AS slow\nRUN sleep 2\nRUN touch /never\n\
         FROM {base} AS broken\nRUN exit 5\n\
         FROM {base}\nCOPY --from=slow /etc/hostname /a\nCOPY --from=broken /etc/hostname /b\n",
        base = fixture()
    );
    std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    let err = crate::support::build_err(t.path(), &ctx);
    assert!(err.contains("[broken 2/2] RUN exit 5"), "{err}");
    assert!(err.contains("exited with code 5"), "{err}");
    assert!(!err.contains("internal error"), "{err}");
    assert!(!err.contains("RUN touch /never"), "{err}");
}

/// With `--cache-from` (a real `docker-registry`): a builder whose last RUN
/// reads `a.txt`, a runner copying from it; the registry holds the base
/// and a cache of a first build (`mode`); (registry, dir, ctx, cache ref).
fn on_registry(mode: &str) -> (TestRegistry, tempfile::TempDir, PathBuf, String) {
    let fixture =
        fixture_layout().expect("the node:22-alpine stand-in is missing: run `just fixtures`");
    let reg = TestRegistry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let base = crate::build::push_fixture(&reg, &fixture, &t.path().join("pusher"));
    let text = format!(
        "FROM {base} AS builder\n\
         WORKDIR /build\n\
         RUN mkdir -p node_modules/pkg && echo '{{\"name\":\"app\"}}' > package.json \
         && seq 1 200000 > node_modules/pkg/big.txt\n\
         COPY a.txt ./\n\
         RUN sleep 3 && mkdir -p .next && cat a.txt > .next/BUILD_ID\n\
         FROM {base} AS runner\n\
         WORKDIR /srv/app\n\
         RUN addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs\n\
         COPY --from=builder --chown=nextjs:nodejs /build/package.json ./package.json\n\
         COPY --from=builder --chown=nextjs:nodejs /build/node_modules ./node_modules\n\
         COPY --from=builder --chown=nextjs:nodejs /build/.next ./.next\n"
    );
    let ctx = t.path().join("ctx");
    write_tree(&ctx, &[("Dockerfile", &text), ("a.txt", "alpha\n")]);
    let cache = format!("{}/app/cache", reg.addr());
    let to = format!("type=registry,ref={cache},mode={mode}");
    let image = format!("{}/app:1", reg.addr());
    build_json(
        &t.path().join("r1"),
        &ctx,
        &["--cache-to", &to, "-t", &image, "--push"],
    );
    (reg, t, ctx, format!("type=registry,ref={cache}"))
}

fn made_ahead(events: &[serde_json::Value]) -> usize {
    serde_json::to_string(events)
        .unwrap()
        .matches("made ahead while the source stage ran")
        .count()
}

fn import_line(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.starts_with("cache import"))
        .unwrap_or_else(|| panic!("no cache import line: {events:?}"))
        .to_owned()
}

#[test]
fn with_cache_from_a_copy_that_misses_is_made_ahead() {
    let (_reg, t, ctx, from) = on_registry("max");
    std::fs::write(ctx.join("a.txt"), "edited\n").unwrap();
    // A fresh runner: the builder's last RUN misses (a.txt changed), so the
    // runner's copies (keyed on the builder's final key) miss too: package.json
    // and node_modules are made while it sleeps, .next once it finished.
    let (fresh, events) = build_json(&t.path().join("r2"), &ctx, &["--cache-from", &from]);
    assert_eq!(made_ahead(&events), 2, "{events:?}");
    let (cold, _) = build_json(&t.path().join("r3"), &ctx, &[]);
    assert_eq!(fresh, cold);
}

#[test]
fn with_cache_from_a_copy_that_hits_is_not_made_ahead_and_fetches_nothing() {
    // mode=min: the runner's steps are in the cache, the builder's are not;
    // a fresh runner runs the builder again (its last RUN misses) while its
    // copies hit: made ahead, they would fetch the runner's layers below
    // them, which a push only mounts.
    let (reg, t, ctx, from) = on_registry("min");
    let image = format!("{}/app:2", reg.addr());
    let (_, events) = build_json(
        &t.path().join("r2"),
        &ctx,
        &["--cache-from", &from, "-t", &image, "--push"],
    );
    assert_eq!(made_ahead(&events), 0, "{events:?}");
    let line = import_line(&events);
    assert!(line.contains("steps hit, 0 blobs fetched"), "{line}");
}
