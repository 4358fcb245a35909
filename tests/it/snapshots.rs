//! Snapshots (issue #22): the RUN layers of a stage no output exports stay
//! layer directories and are never written as blobs; the image, a later
//! `--target` of that stage and a `--cache-to mode=max` get the bytes a
//! build without snapshots writes.

use crate::support::{fixture_layout, manifest_digest};
use std::path::Path;

/// An installer stage whose RUNs leave owners, modes, a hard link, a
/// symlink and a whiteout; a runner that copies from it.
fn context(dir: &Path) -> std::path::PathBuf {
    let base = format!(
        "oci:{}:22-alpine",
        fixture_layout()
            .expect("the node:22-alpine stand-in is missing: run `just fixtures`")
            .display()
    );
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

    // The same build writing every layer as a blob makes the same image.
    let (d2, log2) = build(
        without.path(),
        &ctx,
        "image",
        &[("CAIRN_NO_SNAPSHOTS", "1")],
        &[],
    );
    assert!(
        run_lines(&log2).iter().all(|l| l.contains("layer write")),
        "{log2}"
    );
    assert!(dirs_without_blob(without.path()).is_empty());
    assert_eq!(d1, d2, "{log1}\n{log2}");

    // A rebuild hits the snapshot records.
    let (d3, log3) = build(with.path(), &ctx, "again", &[], &[]);
    assert_eq!(d3, d1);
    assert_eq!(log3.matches("CACHED").count(), 4, "{log3}");
    assert!(run_lines(&log3).is_empty(), "{log3}");

    // Exporting the installer stage later: its blobs are made from the
    // snapshots, byte for byte those a build without snapshots wrote.
    let target = ["--target", "installer"];
    let (t1, log4) = build(with.path(), &ctx, "installer", &[], &target);
    assert_eq!(log4.matches("CACHED").count(), 3, "{log4}");
    let (t2, _) = build(
        without.path(),
        &ctx,
        "installer",
        &[("CAIRN_NO_SNAPSHOTS", "1")],
        &target,
    );
    assert_eq!(t1, t2, "{log4}");
    assert!(
        dirs_without_blob(with.path()).is_empty(),
        "the blobs are made"
    );
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
