//! Snapshots (issue #22): the RUN, COPY and ADD layers a later RUN of a
//! stage no output exports stacks stay layer directories and are never
//! written as blobs; the image, a later `--target` of that stage and a
//! `--cache-to mode=max` get the bytes a build without snapshots writes.

use crate::support::{fixture_layout, manifest_digest};
use std::path::Path;

/// The node:22-alpine stand-in as a `FROM` reference.
fn base() -> String {
    format!(
        "oci:{}:22-alpine",
        fixture_layout()
            .expect("the node:22-alpine stand-in is missing: run `just fixtures`")
            .display()
    )
}

/// An installer stage whose RUNs leave owners, modes, a hard link, a
/// symlink and a whiteout; a runner that copies from it.
fn context(dir: &Path) -> std::path::PathBuf {
    let base = base();
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS installer\n\
             RUN mkdir -p /app/node_modules/a /app/node_modules/b \
             && echo one > /app/node_modules/a/index.js && chmod 0600 /app/node_modules/a/index.js \
             && ln /app/node_modules/a/index.js /app/node_modules/a/hard \
             && head -c 300000 /dev/zero > /app/node_modules/b/blob.bin \
             && chown 1001:1002 /app/node_modules/b/blob.bin \
             && ln -s ../a/index.js /app/node_modules/b/link && rm -rf /usr/local/share/doc\n\
             RUN cat /app/node_modules/a/index.js > /app/out.txt && rm /app/node_modules/b/link\n\
             RUN echo done > /app/done\n\
             FROM {base}\n\
             COPY --from=installer /app /app\n"
        ),
    )
    .unwrap();
    ctx
}

/// `cairn build` into an OCI layout `home/NAME`: (image digest, log).
fn build(
    home: &Path,
    ctx: &Path,
    name: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (String, String) {
    let out = home.join(name);
    let dest = format!("type=oci,dest={},tar=false", out.display());
    let args: Vec<&str> = ["-o", dest.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    crate::build_run::build_env(home, ctx, env, &args)
}

/// The `#N RUN command …` lines of a log.
fn run_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" RUN command "))
        .collect()
}

/// The diff_ids (hex) of the stand-in's layers.
fn base_diff_ids() -> Vec<String> {
    let layout = fixture_layout().unwrap();
    let json = |d: &str| -> serde_json::Value {
        let p = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let m = json(&manifest_digest(&layout, "22-alpine"));
    let c = json(m["config"]["digest"].as_str().unwrap());
    c["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().trim_start_matches("sha256:").to_owned())
        .collect()
}

/// The diff_id hex names of the layer directories in the cache at `home`
/// that have no blob, but the base's (gzip blobs, named otherwise).
fn dirs_without_blob(home: &Path) -> Vec<String> {
    let cache = home.join("cache");
    let base = base_diff_ids();
    let mut out = Vec::new();
    for form in std::fs::read_dir(cache.join("layers")).unwrap().flatten() {
        for d in std::fs::read_dir(form.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = d.file_name().to_string_lossy().into_owned();
            if name.len() == 64
                && !base.contains(&name)
                && !cache.join("blobs/sha256").join(&name).exists()
            {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn a_stage_no_output_exports_keeps_its_run_layers_as_directories_with_the_same_image() {
    let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ctx = context(with.path());
    let (d1, log1) = build(with.path(), &ctx, "image", &[], &[]);
    // The RUNs a later RUN stacks on are snapshots; the stage's last one,
    // which only COPY --from reads, is a plain blob.
    let runs = run_lines(&log1);
    assert_eq!(runs.len(), 3, "{log1}");
    assert!(
        runs[..2]
            .iter()
            .all(|l| l.contains(", snapshot ") && !l.contains("layer write")),
        "{log1}"
    );
    assert!(runs[2].contains("layer write"), "{log1}");
    assert_eq!(dirs_without_blob(with.path()).len(), 2, "{log1}");

    same_image_without_snapshots_and_cached_again(with.path(), without.path(), &ctx, &d1, 4);

    // Exporting the installer stage later: its blobs are made from the
    // snapshots, byte for byte those a build without snapshots wrote.
    export_equals_a_build_without_snapshots(with.path(), without.path(), &ctx, "installer", 3);
}

/// The build of `ctx` writing every layer as a blob (in the cache at
/// `without`) makes `image` too; a rebuild in the cache at `with` hits the
/// snapshot records (`cached` steps).
fn same_image_without_snapshots_and_cached_again(
    with: &Path,
    without: &Path,
    ctx: &Path,
    image: &str,
    cached: usize,
) {
    let (d2, log2) = build(without, ctx, "image", &[("CAIRN_NO_SNAPSHOTS", "1")], &[]);
    assert!(
        run_lines(&log2).iter().all(|l| l.contains("layer write")),
        "{log2}"
    );
    assert!(dirs_without_blob(without).is_empty(), "{log2}");
    assert_eq!(d2, image, "{log2}");
    let (d3, log3) = build(with, ctx, "again", &[], &[]);
    assert_eq!(d3, image);
    assert_eq!(log3.matches("CACHED").count(), cached, "{log3}");
    assert!(run_lines(&log3).is_empty(), "{log3}");
}

/// `--target STAGE` in the cache at `with` (whose snapshots of the stage
/// are made into blobs, every step CACHED — `cached` of them) gives the
/// image a build without snapshots in the cache at `without` gives.
fn export_equals_a_build_without_snapshots(
    with: &Path,
    without: &Path,
    ctx: &Path,
    stage: &str,
    cached: usize,
) {
    let target = ["--target", stage];
    let (t1, log) = build(with, ctx, stage, &[], &target);
    assert!(run_lines(&log).is_empty(), "{log}");
    // No snapshot failed to give its bytes back.
    assert_eq!(log.matches("CACHED").count(), cached, "{log}");
    assert!(!log.contains("runs again"), "{log}");
    let (t2, _) = build(without, ctx, stage, &[("CAIRN_NO_SNAPSHOTS", "1")], &target);
    assert_eq!(t1, t2, "{log}");
    assert!(dirs_without_blob(with).is_empty(), "the blobs are made");
}

#[test]
fn a_cache_export_of_every_stage_writes_blobs() {
    let t = tempfile::tempdir().unwrap();
    let ctx = context(t.path());
    let dest = t.path().join("exported");
    let to = format!("type=local,dest={},mode=max", dest.display());
    let (_, log) = build(t.path(), &ctx, "image", &[], &["--cache-to", &to]);
    let runs = run_lines(&log);
    assert_eq!(runs.len(), 3, "{log}");
    assert!(runs.iter().all(|l| l.contains("layer write")), "{log}");
    assert!(dirs_without_blob(t.path()).is_empty(), "{log}");
}

/// A builder stage whose COPYs (from a stage, from the context) a RUN
/// stacks: the COPY --from reads the deps stage's last RUN layer, whose
/// files it takes as donors; the RUN records what it sees of them.
fn copy_context(dir: &Path) -> std::path::PathBuf {
    let base = base();
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::write(ctx.join("src/page.txt"), "page\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS deps\n\
             RUN mkdir -p /app/node_modules/a /app/node_modules/b \
             && echo one > /app/node_modules/a/index.js && chmod 0600 /app/node_modules/a/index.js \
             && echo two > /app/node_modules/a/shared.js && ln /app/node_modules/a/shared.js /app/node_modules/a/hard \
             && head -c 300000 /dev/zero > /app/node_modules/b/blob.bin \
             && chown 1001:1002 /app/node_modules/b/blob.bin && ln -s ../a/index.js /app/node_modules/b/link\n\
             FROM {base} AS builder\n\
             WORKDIR /build\n\
             COPY --from=deps /app/node_modules ./node_modules\n\
             COPY src/ ./src/\n\
             RUN cat node_modules/a/index.js src/page.txt > out.txt \
             && stat -c '%n %h %u:%g %a %Y' node_modules/a/* node_modules/b/* src/page.txt >> out.txt\n\
             FROM {base}\n\
             COPY --from=builder /build /srv\n"
        ),
    )
    .unwrap();
    ctx
}

#[test]
fn a_copy_a_later_run_stacks_is_made_as_its_directory_with_the_same_image() {
    let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ctx = copy_context(with.path());
    let (d1, log1) = build(with.path(), &ctx, "image", &[], &[]);
    // The builder's two COPYs are directories without a blob; the RUNs
    // (each the last of its stage) are blobs.
    assert_eq!(dirs_without_blob(with.path()).len(), 2, "{log1}");
    assert!(
        run_lines(&log1).iter().all(|l| l.contains("layer write")),
        "{log1}"
    );

    // (The rebuild hits step and content records.)
    same_image_without_snapshots_and_cached_again(with.path(), without.path(), &ctx, &d1, 6);

    // Exporting the builder stage later: the COPY layers' blobs are made
    // from their directories, byte for byte a build without snapshots's.
    export_equals_a_build_without_snapshots(with.path(), without.path(), &ctx, "builder", 5);
}
