//! `cairn build` with RUN steps on the node:22-alpine stand-in: the Node
//! deployment idioms (adduser/chown, heredocs, apk, npm ci from the npm
//! registry with a cache mount and the machine CA as a secret), whiteouts,
//! and identical RUN layers across two builds.

use crate::support::{cairn, fixture_layer_count, fixture_layout, ok, run};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Layers of the stand-in, below those a build adds.
fn base_layers() -> usize {
    fixture_layer_count(&fixture_layout().expect("the node:22-alpine stand-in is missing"))
}

fn fixture() -> String {
    let f = fixture_layout()
        .expect("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)");
    format!("oci:{}:22-alpine", f.display())
}

/// `dir/ctx` with a Dockerfile `FROM <stand-in><from_suffix>\n<body>`.
pub(crate) fn context_from_fixture(
    dir: &Path,
    from_suffix: &str,
    body: &str,
) -> std::path::PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let text = format!("FROM {}{from_suffix}\n{body}", fixture());
    std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    ctx
}

fn build(home: &Path, ctx: &Path, extra: &[&str]) -> (String, String) {
    build_env(home, ctx, &[], extra)
}

/// [`build`] with environment variables.
pub(crate) fn build_env(
    home: &Path,
    ctx: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (String, String) {
    let mut c = cairn(home);
    c.envs(env.iter().copied())
        .arg("build")
        .arg(ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(home.join("cache"))
        .args(extra);
    let out = run(c, "");
    (ok(&out), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// path → (uid, gid, mode, size) of every entry of every layer added on top of the base.
fn new_layer_entries(
    layout: &Path,
    digest: &str,
    skip: usize,
) -> Vec<BTreeMap<String, (u64, u64, u32, u64)>> {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let m: Value = serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap();
    m["layers"].as_array().unwrap()[skip..]
        .iter()
        .map(|l| {
            let f = std::fs::File::open(blob(l["digest"].as_str().unwrap())).unwrap();
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            ar.entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    (
                        e.path()
                            .unwrap()
                            .to_string_lossy()
                            .trim_end_matches('/')
                            .to_owned(),
                        (
                            h.uid().unwrap(),
                            h.gid().unwrap(),
                            h.mode().unwrap(),
                            h.size().unwrap(),
                        ),
                    )
                })
                .collect()
        })
        .collect()
}

const DOCKERFILE: &str = r#"FROM BASE AS base
RUN addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs
WORKDIR /srv/app
RUN mkdir -p /srv/app/.next && chown -R nextjs:nodejs /srv/app && rm /etc/motd
RUN cat > next.config.js << 'NEXTCONFIG'
module.exports = { output: process.env.HOME };
NEXTCONFIG
RUN ! grep -q standalone next.config.js && apk --no-network info | grep -q musl
USER nextjs
RUN node -e 'require("fs").writeFileSync("/srv/app/.next/BUILD", "ok")'
"#;

#[test]
fn node_idioms_owners_whiteouts_and_identical_layers() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        DOCKERFILE.replace("BASE", &fixture()),
    )
    .unwrap();
    let out = t.path().join("out");
    let (d1, log) = build(
        &t.path().join("h1"),
        &ctx,
        &["-o", &format!("type=oci,dest={},tar=false", out.display())],
    );
    assert!(
        log.contains("RUN isolation:"),
        "the isolation used is reported:\n{log}"
    );
    let layers = new_layer_entries(&out, &d1, base_layers());
    let all: BTreeMap<String, (u64, u64, u32, u64)> = layers
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(all["srv/app"].0, 1001, "chown -R nextjs:nodejs → 1001");
    assert_eq!(
        (all["srv/app/.next"].0, all["srv/app/.next"].1),
        (1001, 1001)
    );
    assert!(
        all.contains_key("etc/.wh.motd"),
        "rm of a base file is a whiteout: {:?}",
        all.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        all["srv/app/.next/BUILD"].0, 1001,
        "USER nextjs owns what it writes"
    );
    assert!(all.contains_key("etc/passwd") && all.contains_key("etc/group"));
    for leak in [
        "etc/resolv.conf",
        "etc/hosts",
        "etc/hostname",
        "dev",
        "proc",
        "sys",
    ] {
        assert!(!all.contains_key(leak), "{leak} leaked into a RUN layer");
    }
    // The heredoc body was written verbatim (quoted delimiter: no expansion).
    let next_config = all.get("srv/app/next.config.js").expect("heredoc file");
    assert_eq!(
        next_config.3,
        "module.exports = { output: process.env.HOME };\n".len() as u64
    );

    // A second build from scratch (other cache, other dir) gives the same digest.
    let ctx2 = t.path().join("elsewhere/ctx");
    std::fs::create_dir_all(&ctx2).unwrap();
    std::fs::copy(ctx.join("Dockerfile"), ctx2.join("Dockerfile")).unwrap();
    let (d2, _) = build(&t.path().join("h2"), &ctx2, &[]);
    assert_eq!(d1, d2, "RUN layers must be identical across builds");
    // And a warm rebuild is all cache hits.
    let (d3, warm) = build(&t.path().join("h1"), &ctx, &[]);
    assert_eq!(d1, d3);
    assert!(!warm.contains("cache miss"), "{warm}");
}

/// Files a RUN command writes get the container's umask (0022), not the
/// umask of whoever started cairn: the same image under umask 077.
#[test]
fn run_files_do_not_depend_on_the_callers_umask() {
    let t = tempfile::tempdir().unwrap();
    let ctx = context_from_fixture(
        t.path(),
        "",
        "RUN mkdir /made && echo x > /made/file && cp /etc/hostname /made/copy\n",
    );
    let digests: Vec<String> = ["022", "077"]
        .iter()
        .map(|mask| {
            let home = t.path().join(format!("h{mask}"));
            let out = home.join("out");
            let mut c = cairn(&home);
            c.env("CAIRN_UMASK_TEST", mask)
                .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"));
            let mut sh = std::process::Command::new("sh");
            sh.args([
                "-c",
                "umask $CAIRN_UMASK_TEST && exec \"$CAIRN_BIN\" \"$@\"",
                "sh",
            ])
            .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--cache-dir"])
            .arg(home.join("cache"))
            .arg("-o")
            .arg(format!("type=oci,dest={},tar=false", out.display()));
            let d = ok(&run(sh, ""));
            let layers = new_layer_entries(&out, &d, base_layers());
            let run_layer = layers.last().unwrap();
            assert_eq!(run_layer["made"].2, 0o755, "umask {mask}: {run_layer:?}");
            assert_eq!(
                run_layer["made/file"].2, 0o644,
                "umask {mask}: {run_layer:?}"
            );
            assert_eq!(
                run_layer["made/copy"].2, 0o644,
                "umask {mask}: {run_layer:?}"
            );
            d
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn failing_run_reports_step_code_and_output_tail() {
    let t = tempfile::tempdir().unwrap();
    let ctx = context_from_fixture(
        t.path(),
        " AS deps",
        "RUN echo first-line && echo to-stderr >&2 && exit 3\n",
    );
    let err = crate::support::build_err(t.path(), &ctx);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("deps"), "{err}");
    assert!(err.contains("3"), "exit code: {err}");
    assert!(err.contains("to-stderr"), "output tail: {err}");
}

#[test]
fn npm_ci_from_the_registry_with_cache_mount_and_ca_secret() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("package.json"),
        r#"{"name":"t","version":"1.0.0","dependencies":{"is-number":"7.0.0"}}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("package-lock.json"),
        r#"{"name":"t","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"t","version":"1.0.0","dependencies":{"is-number":"7.0.0"}},"node_modules/is-number":{"version":"7.0.0","resolved":"https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz","integrity":"sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==","engines":{"node":">=0.12.0"}}}}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {} AS deps\nWORKDIR /build\nCOPY package.json package-lock.json ./\nRUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca,target=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca npm_config_cafile=/run/secrets/ca npm ci --no-audit --no-fund\n",
            fixture()
        ),
    )
    .unwrap();
    let out = t.path().join("out");
    let (d, log) = build(
        t.path(),
        &ctx,
        &[
            "--secret",
            "id=ca,src=/etc/ssl/certs/ca-certificates.crt",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
        ],
    );
    assert!(log.contains("added 1 package"), "{log}");
    let layers = new_layer_entries(&out, &d, base_layers());
    let all: Vec<&String> = layers.iter().flat_map(|l| l.keys()).collect();
    assert!(
        all.iter()
            .any(|p| p.as_str() == "build/node_modules/is-number/package.json"),
        "{all:?}"
    );
    assert!(
        !all.iter().any(|p| p.starts_with("root/.npm")),
        "the cache mount never reaches a layer: {all:?}"
    );
    assert!(
        !all.iter().any(|p| p.starts_with("run/secrets")),
        "the secret never reaches a layer"
    );
    // The secret's value is neither in the history nor in the cache records.
    let ca = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
    let needle = ca
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with('-'))
        .unwrap();
    for f in walkdir::WalkDir::new(t.path().join("cache/steps"))
        .into_iter()
        .flatten()
    {
        if f.file_type().is_file() {
            assert!(!std::fs::read_to_string(f.path()).unwrap().contains(needle));
        }
    }
    assert!(
        t.path()
            .join("cache/mounts")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "npm cache persisted"
    );
}

#[test]
fn cairn_run_starts_a_built_image_in_the_sandbox() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nENV GREETING=hello\nWORKDIR /srv\nUSER node\nENTRYPOINT [\"node\", \"-e\"]\nCMD [\"console.log(process.env.GREETING, process.cwd(), process.getuid())\"]\n",
            fixture()
        ),
    )
    .unwrap();
    let out = t.path().join("out");
    build(
        t.path(),
        &ctx,
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            "-t",
            "app:1",
        ],
    );
    let image = format!("oci:{}:1", out.display());
    let cache = t.path().join("cache");
    let mut c = cairn(t.path());
    c.arg("run").arg("--cache-dir").arg(&cache).arg(&image);
    assert_eq!(
        ok(&run(c, "")),
        "hello /srv 1000",
        "ENTRYPOINT + CMD, Env, WORKDIR and USER applied"
    );
    let mut c = cairn(t.path());
    c.arg("run")
        .arg("--cache-dir")
        .arg(&cache)
        .args(["-e", "GREETING=hi", "--entrypoint", "sh"])
        .arg(&image)
        .args(["-c", "echo $GREETING; exit 7"]);
    let o = run(c, "");
    assert_eq!(o.status.code(), Some(7), "the container's exit code");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hi");
    // Everything after IMAGE is the container's, flags too (as `docker run`):
    // neither cairn's `--version` nor its `-e` may take them.
    let echo = |args: &[&str]| {
        let mut c = cairn(t.path());
        c.arg("run")
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--entrypoint", "echo"])
            .arg(&image)
            .args(args);
        ok(&run(c, ""))
    };
    assert_eq!(echo(&["--version", "-e", "X=1"]), "--version -e X=1");
    assert_eq!(
        echo(&["--", "-n", "--"]),
        "--",
        "only a first `--` is cairn's"
    );
}

/// `COPY --from` a stage whose RUN layer was never unpacked reads the files
/// where they lie in the plain layer blob; the copied layer must be the one
/// copying from an unpacked directory gives (owners, modes, setuid bits,
/// symlinks, contents), and the build must be the one a fresh cache gives.
#[test]
fn copy_from_a_plain_stage_layer_equals_copy_from_its_unpacked_directory() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let ctx = home.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let dockerfile = |extra: &str| {
        format!(
            "FROM {} AS deps\n\
             RUN mkdir -p /build/node_modules/.bin /build/node_modules/pkg/lib \
             && printf 'module.exports = 1;\\n' > /build/node_modules/pkg/lib/index.js \
             && head -c 200000 /dev/urandom > /build/node_modules/pkg/blob.bin \
             && ln -s ../pkg/lib/index.js /build/node_modules/.bin/pkg \
             && chown -R 1001:1002 /build/node_modules/pkg \
             && chmod 4750 /build/node_modules/pkg/lib/index.js\n\
             {extra}\
             FROM scratch\nCOPY --from=deps /build/node_modules /node_modules\n",
            fixture()
        )
    };
    // Plain: the deps layer is only ever read by COPY --from (indexed in its
    // blob; written as one without snapshots, see tests/it/snapshots.rs).
    std::fs::write(ctx.join("Dockerfile"), dockerfile("")).unwrap();
    let out = home.join("out");
    let (d1, log) = build_env(
        home,
        &ctx,
        &[("CAIRN_NO_SNAPSHOTS", "1")],
        &["-o", &format!("type=oci,dest={},tar=false", out.display())],
    );
    let indexed = new_layer_entries(&out, &d1, 0);
    let layer_dirs = std::fs::read_dir(home.join("cache/layers/host-v2"))
        .unwrap()
        .count();

    // A RUN after it makes the same layer an overlay lower: unpacked first.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile("RUN true\n")).unwrap();
    let out2 = other.path().join("out");
    let (d2, _) = build(
        other.path(),
        &ctx,
        &["-o", &format!("type=oci,dest={},tar=false", out2.display())],
    );
    let unpacked = new_layer_entries(&out2, &d2, 0);
    assert!(
        std::fs::read_dir(other.path().join("cache/layers/host-v2"))
            .unwrap()
            .count()
            > layer_dirs,
        "the second build unpacked the deps layer"
    );
    // Random bytes differ between the two RUNs: compare everything but blob.bin's content.
    assert_eq!(indexed, unpacked, "{log}");
    // The copied files' digests (for reuse by content) are remembered per
    // immutable source: members of the plain blob, files of the layer directory.
    let memo = |cache: &Path| std::fs::read_to_string(cache.join("file-digests.json")).unwrap();
    assert!(
        memo(&home.join("cache")).contains("\"blob:"),
        "{}",
        memo(&home.join("cache"))
    );
    assert!(memo(&other.path().join("cache")).contains("\"dir:"));
    let pkg = &indexed[0]["node_modules/pkg/lib/index.js"];
    assert_eq!((pkg.0, pkg.1, pkg.2 & 0o7777), (1001, 1002, 0o4750));
    assert!(indexed[0].contains_key("node_modules/.bin/pkg"));
    let copied = crate::build_copy::layers(&out, &d1);
    assert_eq!(
        copied[0]["node_modules/pkg/lib/index.js"].data,
        b"module.exports = 1;\n"
    );
    assert_eq!(copied[0]["node_modules/pkg/blob.bin"].data.len(), 200_000);
}

/// The blob of the layer with diff_id `sha256:hex` in image `digest` of layout `out`.
fn exported_blob(out: &Path, digest: &str, hex: &str) -> std::path::PathBuf {
    let blob = |d: &str| {
        out.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let m: Value = serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap();
    let c: Value = serde_json::from_slice(
        &std::fs::read(blob(m["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let i = c["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|d| d.as_str() == Some(&format!("sha256:{hex}")))
        .unwrap_or_else(|| panic!("no layer {hex} in {digest}"));
    blob(m["layers"][i]["digest"].as_str().unwrap())
}

/// Everything an unpack sets, per path under `root`: type, mode, owner,
/// mtime (ns), symlink target or content digest, xattrs.
fn tree(root: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let what = if m.is_file() {
                let data = std::fs::read(e.path()).unwrap();
                format!("file {}", cairn_layers::Digest::of(&data))
            } else if m.file_type().is_symlink() {
                format!(
                    "symlink {}",
                    std::fs::read_link(e.path()).unwrap().display()
                )
            } else {
                format!("{:?}", m.file_type())
            };
            let mut names = vec![0u8; 4096];
            let n = rustix::fs::llistxattr(e.path(), &mut names).unwrap_or(0);
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let value = format!(
                "{what} {:o} {}:{} {}.{} xattrs {:?}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec(),
                String::from_utf8_lossy(&names[..n])
            );
            (rel, value)
        })
        .collect()
}

/// A layer made of a finished RUN step's files — the RUN layer itself, or a
/// `COPY --from` of that stage read in its blob — is unpacked for the next
/// RUN by moving those files in: the directory must be the one an unpack of
/// the blob writes (the next RUN sees one link per file, as after a write),
/// and its files must be the RUN's own (born before the directory was).
/// Files the build may not take (owned by another user) are written.
#[test]
fn layers_of_run_files_are_unpacked_by_moving_them_and_equal_a_plain_unpack() {
    if !rustix::process::geteuid().is_root() {
        return; // the rootless tests build their own
    }
    let deps = format!(
        "FROM {} AS deps\n\
         RUN mkdir -p /build/node_modules/a /build/node_modules/b \
         && echo one > /build/node_modules/a/index.js \
         && head -c 100000 /dev/urandom > /build/node_modules/b/blob.bin \
         && chmod 0400 /build/node_modules/b/blob.bin \
         && ln -s ../a/index.js /build/node_modules/b/link \
         && echo theirs > /build/node_modules/b/owned && chown 1001:1001 /build/node_modules/b/owned\n",
        fixture()
    );
    // The RUN layer as the next RUN's lower; a COPY --from of it (read in
    // its plain blob) as the next RUN's lower. Separate builds: a donor is
    // taken once.
    // The RUN after sees each file once (link count 1), as when written.
    let own = format!(
        "{deps}RUN test -s /build/node_modules/b/blob.bin \
         && test \"$(stat -c %h /build/node_modules/a/index.js)\" = 1\n"
    );
    let copied = format!(
        "{deps}FROM {}\n\
         COPY --from=deps /build/node_modules /srv/node_modules\n\
         RUN cat /srv/node_modules/a/index.js /srv/node_modules/b/owned > /srv/copied \
         && test \"$(stat -c %h /srv/node_modules/a/index.js)\" = 1\n",
        fixture()
    );
    for (df, top) in [(own, "build"), (copied, "srv")] {
        let t = tempfile::tempdir().unwrap();
        let home = t.path();
        let ctx = home.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), df).unwrap();
        let out = home.join("out");
        // Blobs unpacked with donors (a snapshot is tests/it/snapshots.rs's).
        let (digest, log) = build_env(
            home,
            &ctx,
            &[("CAIRN_NO_SNAPSHOTS", "1")],
            &["-o", &format!("type=oci,dest={},tar=false", out.display())],
        );
        let blobs = home.join("cache/blobs/sha256");
        let dirs: Vec<_> = std::fs::read_dir(home.join("cache/layers/host-v2"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|d| d.join(top).join("node_modules").exists())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}\n{log}");
        let dir = &dirs[0];
        let hex = dir.file_name().unwrap().to_string_lossy().into_owned();
        // The layer dir is named by diff_id: a plain stage layer's blob has
        // that name, an exported layer is found through the image config.
        let plain = blobs.join(&hex);
        let blob = if plain.exists() {
            plain
        } else {
            exported_blob(&out, &digest, &hex)
        };
        let fresh = home.join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        let mut c = cairn(home);
        c.arg("__layer-dir")
            .arg("unpack")
            .arg(&blob)
            .arg(&fresh)
            .arg("--diff-id")
            .arg(format!("sha256:{hex}"));
        ok(&run(c, ""));
        assert_eq!(tree(dir), tree(&fresh), "layer dir {hex}\n{log}");

        let born = |p: &Path| std::fs::symlink_metadata(p).unwrap().created().ok();
        let modules = dir.join(top).join("node_modules");
        let (moved, written) = (modules.join("a/index.js"), modules.join("b/owned"));
        if let (Some(dir_born), Some(moved_born), Some(written_born)) =
            (born(dir), born(&moved), born(&written))
        {
            assert!(
                moved_born < dir_born,
                "{} was written, not moved in",
                moved.display()
            );
            assert!(
                written_born >= dir_born,
                "{} was moved in",
                written.display()
            );
        }
    }
}

/// Issue #21, checked against BuildKit by `just compat`: COPY --from of a
/// directory copies its contents (an existing destination keeps its owner and
/// mode, a new one is 0755 root) and keeps hard links (esbuild's postinstall
/// links its binary) — whether the stage's layer is read from its blob or
/// from its unpacked directory (a RUN after it makes it an overlay lower).
#[test]
fn copy_from_a_stage_keeps_hard_links_and_the_destinations_metadata() {
    for extra in ["", "RUN true\n"] {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        let text = format!(
            "FROM {base} AS src\n\
             RUN mkdir -p /out/d/bin /out/d/@esbuild && echo esbuild > /out/d/@esbuild/esbuild \
             && ln /out/d/@esbuild/esbuild /out/d/bin/esbuild && chown -R 4321:4321 /out/d && chmod 700 /out/d\n\
             {extra}\
             FROM {base}\n\
             RUN mkdir /app && chmod 751 /app\n\
             WORKDIR /app\n\
             COPY --from=src --chown=1234:1234 /out/d ./\n\
             COPY --from=src /out/d /new\n",
            base = fixture()
        );
        std::fs::write(ctx.join("Dockerfile"), text).unwrap();
        let out = t.path().join("out");
        let (digest, log) = build(
            t.path(),
            &ctx,
            &["-o", &format!("type=oci,dest={},tar=false", out.display())],
        );
        let ls = crate::build_copy::layers(&out, &digest);
        let (into_app, into_new) = (&ls[ls.len() - 2], &ls[ls.len() - 1]);
        let app = &into_app["app"];
        assert_eq!((app.uid, app.gid, app.mode), (0, 0, 0o751), "{extra}{log}");
        let new = &into_new["new"];
        assert_eq!((new.uid, new.gid, new.mode), (0, 0, 0o755), "{extra}");
        for (layer, root, owner) in [(into_app, "app", 1234), (into_new, "new", 4321)] {
            let file = &layer[&format!("{root}/@esbuild/esbuild")];
            assert_eq!(
                (file.kind, file.uid, &file.data[..]),
                ('f', owner, &b"esbuild\n"[..])
            );
            let link = &layer[&format!("{root}/bin/esbuild")];
            assert_eq!(
                (link.kind, link.link.as_str()),
                ('h', format!("{root}/@esbuild/esbuild").as_str()),
                "{extra}: a hard link, not a second copy"
            );
        }
    }
}

/// The plain log splits a RUN step's time (issue #22: the command alone against BuildKit's step), and the
/// summary line carries cairn's own peak memory, without its RUN children: a RUN that holds 200 MB leaves
/// cairn's figure far below it.
#[test]
fn run_step_time_is_split_and_cairns_own_peak_memory_excludes_the_run() {
    let t = tempfile::tempdir().unwrap();
    let ctx = context_from_fixture(
        t.path(),
        "",
        "RUN node -e 'const b = Buffer.alloc(200 << 20, 1); setTimeout(() => console.log(b[7]), 1200)' > /out\n",
    );
    let (_, log) = build(t.path(), &ctx, &[]);
    let split = log
        .lines()
        .find_map(|l| l.strip_prefix("#2 RUN command "))
        .unwrap_or_else(|| panic!("no split line for the RUN step:\n{log}"));
    let secs = |s: &str| s.trim_end_matches('s').parse::<f64>().unwrap();
    let parts: Vec<&str> = split.split(", ").collect();
    assert_eq!(parts.len(), 5, "{split}");
    assert!(secs(parts[0]) >= 1.2, "the command slept 1.2 s: {split}");
    for (part, name) in parts[1..].iter().zip([
        "capture ",
        "layer write ",
        "sandbox setup ",
        "lower layers ",
    ]) {
        assert!(part.starts_with(name), "{split}");
        assert!(secs(&part[name.len()..]) >= 0.0);
    }
    let done = log
        .lines()
        .find_map(|l| l.strip_prefix("#2 DONE "))
        .map(secs)
        .unwrap();
    assert!(
        done + 0.05 >= secs(parts[0]),
        "the step includes its command: {split} vs {done}"
    );
    let rss: u64 = log
        .lines()
        .find_map(|l| l.split(", cairn peak RSS ").nth(1))
        .and_then(|r| r.strip_suffix(" MB"))
        .unwrap_or_else(|| panic!("no peak RSS in the summary:\n{log}"))
        .parse()
        .unwrap();
    assert!(
        rss > 0 && rss < 200,
        "cairn's own peak, not the RUN's 200 MB: {rss} MB"
    );
}
