//! Rootless builds end to end (issue #6 item 2): the same Dockerfile built by
//! root and by the unprivileged test user (tests/support/unpriv-user.sh,
//! subordinate ids) gives the same image digest, with `chown` to ids the
//! image created landing in the layer; the single-id mapping builds too;
//! the user's layer directories, full of subordinate ids, can be removed.
//!
//! As root (CI, `just test` as root): builds as root and, through `runuser`,
//! as the test user `cairn-unpriv`; the root digests must also equal the
//! pins in `testdata/golden/rootless/` (`CAIRN_BLESS=1` re-pins). As any
//! other user with a subordinate id range (`just test-user` checks): the
//! "user" builds run as that user and are compared with the same pins.
//! The library parts that must run as the user re-run this binary
//! (`#[ignore]`d inner tests, selected with `--ignored --exact`).

use crate::support::{cairn, fixture_layout, manifest_digest, ok, run};
use cairn::image::Layer;
use cairn::sandbox::layer_dirs::LayerDirs;
use cairn_layers::blob_store::BlobStore;
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "cairn-unpriv";
/// Set for an inner test: the directory it works on.
const INNER_DIR: &str = "CAIRN_IT_ROOTLESS_DIR";

// BusyBox adduser writes today's day number into /etc/shadow: the sed pins
// it, so the pinned digest holds on any day (it broke at midnight UTC).
const DOCKERFILE: &str = "\
RUN addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs && sed -i -e 's/^\\(nextjs:[^:]*:\\)[0-9]*:/\\10:/' /etc/shadow && grep -q '^nextjs:[^:]*:0:' /etc/shadow
RUN mkdir -p /srv/app && echo x > /srv/app/x && chown -R nextjs:nodejs /srv/app && rm /etc/motd
RUN test ! -e /etc/motd
COPY package.json /home/node/app/
";

fn fixture() -> PathBuf {
    fixture_layout().unwrap_or_else(|| {
        panic!("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)")
    })
}

/// Whether this process is root (the outer tests need it).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The uid the "user" builds run as: the test user's as root (fails, not
/// skips, when it is missing), else this process's own, which must have
/// subordinate ids.
fn user_uid() -> u32 {
    if !is_root() {
        let me = rustix::process::getuid().as_raw();
        let name = String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
            .trim()
            .to_owned();
        let has_range = |f: &str| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    let owner = l.split(':').next().unwrap_or_default();
                    owner == name || owner == me.to_string()
                })
        };
        assert!(
            has_range("/etc/subuid") && has_range("/etc/subgid"),
            "the rootless tests run as {name} and need its subordinate ids: run \
             `sudo usermod --add-subuids 200000-265535 --add-subgids 200000-265535 {name}` \
             (and `sudo apt-get install uidmap`), or run `just test` as root"
        );
        return me;
    }
    let out = Command::new("id").args(["-u", USER]).output().unwrap();
    assert!(
        out.status.success(),
        "the unprivileged test user `{USER}` does not exist: run tests/support/unpriv-user.sh as root (CI does)"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Fail unless the user can read `paths` (only root switches users).
fn user_can_read(paths: &[&Path]) {
    if !is_root() {
        return;
    }
    for p in paths {
        let st = Command::new("runuser")
            .args(["-u", USER, "--", "test", "-r"])
            .arg(p)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "{USER} cannot read {}: put the checkout, target dir and fixture where it can",
            p.display()
        );
    }
}

/// A scratch tree: `ctx/` (readable by all) and `user/` (owned by the user).
struct Scratch {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new(uid: u32) -> Scratch {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ctx = root.join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM oci:{}:22-alpine\n{DOCKERFILE}", fixture().display()),
        )
        .unwrap();
        std::fs::write(ctx.join("package.json"), "{}\n").unwrap();
        for p in [&ctx, &ctx.join("Dockerfile"), &ctx.join("package.json")] {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let user = root.join("user");
        std::fs::create_dir(&user).unwrap();
        rustix::fs::chown(
            &user,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(uid)),
        )
        .unwrap();
        Scratch { _t: t, root }
    }
}

/// `cairn build` args writing an OCI layout to `out` with cache `cache`.
fn build_args(ctx: &Path, cache: &Path, out: &Path) -> Vec<String> {
    [
        "build".to_owned(),
        ctx.display().to_string(),
        "--progress".into(),
        "plain".into(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--sbom".into(),
        "-o".into(),
        format!("type=oci,dest={},tar=false", out.display()),
    ]
    .into()
}

/// Run `program args` as the test user (or, not being root, as ourselves)
/// with `HOME=home` and `env`.
fn as_user(home: &Path, env: &[(&str, &str)], program: &Path, args: &[String]) -> Output {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", USER, "--", "env"]);
        c
    } else {
        Command::new("env")
    };
    c.arg(format!("HOME={}", home.display()))
        .arg("NO_COLOR=1")
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(program)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("CAIRN_CACHE_DIR")
        .env_remove("CAIRN_SANDBOX_ID_MAP");
    run(c, "")
}

fn read_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The layer digests of the image `digest` in `layout`.
fn layers(layout: &Path, digest: &str) -> Vec<String> {
    read_json(layout, digest)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// (uid, gid) of `path` in the gzip layer `digest`, if present.
fn owner_in_layer(layout: &Path, digest: &str, path: &str) -> Option<(u64, u64)> {
    let hex = digest.trim_start_matches("sha256:");
    let f = std::fs::File::open(layout.join("blobs/sha256").join(hex)).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.entries().unwrap().map(Result::unwrap).find_map(|e| {
        let p = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        (p == path).then(|| (e.header().uid().unwrap(), e.header().gid().unwrap()))
    })
}

/// The image's layer that holds `path`, and its owner there.
fn find_owner(layout: &Path, digest: &str, path: &str) -> (String, (u64, u64)) {
    layers(layout, digest)
        .into_iter()
        .rev()
        .find_map(|l| owner_in_layer(layout, &l, path).map(|o| (l, o)))
        .unwrap_or_else(|| panic!("{path} in no layer of {digest}"))
}

/// The pinned digest of the rootless test build `name`: as root, `digest`
/// (root's build) must equal it (`CAIRN_BLESS=1` writes it); otherwise it
/// stands in for the root build this process cannot do.
fn pinned_root_digest(name: &str, digest: Option<&str>) -> String {
    let path = crate::support::testdata(&format!("golden/rootless/{name}.digest"));
    if let (Some(d), true) = (digest, std::env::var_os("CAIRN_BLESS").is_some()) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{d}\n")).unwrap();
    }
    let pinned = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run the test as root with CAIRN_BLESS=1",
                path.display()
            )
        })
        .trim()
        .to_owned();
    if let Some(d) = digest {
        assert_eq!(
            d,
            pinned,
            "root's build differs from the pin in {} (re-pin with CAIRN_BLESS=1 when the change is on purpose)",
            path.display()
        );
    }
    pinned
}

/// The scratch tree with the image built by root.
struct RootBuilt {
    s: Scratch,
    uid: u32,
    /// None when not root: the pinned digest stands in for root's build.
    root_out: Option<PathBuf>,
    root_digest: String,
}

impl RootBuilt {
    /// Fails when the test user (root) or the caller's subordinate ids
    /// (otherwise) are missing.
    fn new() -> RootBuilt {
        let fixture = fixture();
        let uid = user_uid();
        user_can_read(&[
            Path::new(env!("CARGO_BIN_EXE_cairn")),
            &fixture.join("index.json"),
        ]);
        let s = Scratch::new(uid);
        if !is_root() {
            let root_digest = pinned_root_digest("app", None);
            return RootBuilt {
                s,
                uid,
                root_out: None,
                root_digest,
            };
        }
        let root_out = s.root.join("root-out");
        let mut c = cairn(&s.root.join("root-home"));
        c.args(build_args(
            &s.root.join("ctx"),
            &s.root.join("root-cache"),
            &root_out,
        ))
        .env_remove("SOURCE_DATE_EPOCH");
        let root_digest = pinned_root_digest("app", Some(&ok(&run(c, ""))));
        RootBuilt {
            s,
            uid,
            root_out: Some(root_out),
            root_digest,
        }
    }
}

#[test]
fn root_and_unprivileged_builds_give_the_same_digest() {
    let r = RootBuilt::new();
    let (uid, root_out, root_digest) = (r.uid, &r.root_out, &r.root_digest);
    let (ctx, home) = (r.s.root.join("ctx"), r.s.root.join("user"));
    let cairn_bin = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let (cache, out) = (home.join("cache"), home.join("out"));
    let started = std::time::Instant::now();
    let built = as_user(&home, &[], cairn_bin, &build_args(&ctx, &cache, &out));
    let user_digest = ok(&built);
    eprintln!("rootless build: {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("subordinate ids"),
        "the user build must use its subordinate ids: {stderr}"
    );
    assert_eq!(
        &user_digest, root_digest,
        "root and rootless digests differ"
    );
    // So do the attestations (SBOM, provenance): the same artifact manifests.
    if let Some(root_out) = root_out {
        let attestations = |layout: &Path| {
            let index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
            index["manifests"][0]["annotations"]["vnd.cairn.attestations"].clone()
        };
        let root_list = attestations(root_out);
        assert_eq!(root_list.as_str().map(|l| l.split(',').count()), Some(2));
        assert_eq!(
            root_list,
            attestations(&out),
            "root and rootless attestations differ"
        );
    }

    // chown to the ids the image created is in the layer, in both.
    for layout in root_out.iter().chain([&out]) {
        let (_, owner) = find_owner(layout, root_digest, "srv/app");
        assert_eq!(owner, (1001, 1001), "srv/app in {}", layout.display());
        // COPY into a directory of the base keeps its container owner.
        let (_, node) = find_owner(layout, root_digest, "home/node");
        assert_eq!(node, (1000, 1000), "home/node in {}", layout.display());
    }

    // The cache belongs to the user: namespace root is the user itself.
    let layer_roots: Vec<PathBuf> = std::fs::read_dir(cache.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layer_roots.len(), 1, "{layer_roots:?}");
    let form = &layer_roots[0];
    assert!(form
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("userns-"));
    let unpacked: Vec<PathBuf> = std::fs::read_dir(form)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(unpacked.len() >= 4, "{unpacked:?}");
    for p in unpacked.iter().chain([&cache, form]) {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with(".unpack-"), "leftover {}", p.display());
        assert_eq!(std::fs::metadata(p).unwrap().uid(), uid, "{}", p.display());
    }
    // Container ids ≥ 1 are the user's subordinate ids on the host.
    let shadow = unpacked
        .iter()
        .map(|d| d.join("etc/shadow"))
        .find(|p| p.exists())
        .expect("etc/shadow in a layer directory");
    assert_ne!(std::fs::metadata(&shadow).unwrap().gid(), 42);
    // No run directories are left behind.
    let runs = cache.join("sandbox/runs");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run directories left: {left:?}");

    // The user cannot delete them itself (srv/app is a non-empty directory
    // of a subordinate id)...
    let rm = as_user(
        &home,
        &[],
        Path::new("rm"),
        &["-rf".into(), form.display().to_string()],
    );
    assert!(
        !rm.status.success(),
        "rm -rf of subordinate-owned files worked?"
    );
    // ...but cairn can, inside the namespace.
    let inner = as_user(
        &home,
        &[
            (INNER_DIR, &cache.display().to_string()),
            ("CAIRN_SANDBOX_HELPER", &cairn_bin.display().to_string()),
        ],
        &std::env::current_exe().unwrap(),
        &[
            "--ignored".into(),
            "--exact".into(),
            "rootless::inner_remove_layer_dirs".into(),
            "--nocapture".into(),
        ],
    );
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&inner.stdout),
        String::from_utf8_lossy(&inner.stderr)
    );
    assert!(inner.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(!form.exists(), "{} still there", form.display());
}

/// A rootless build's cache (layer directories of its subordinate ids,
/// run directories, records) is listed with sizes that add up to `du -sb`
/// of it, and the user's own `cache prune` removes its layer directories —
/// through its user namespace — and those of an older layout.
#[test]
fn rootless_cache_adds_up_and_prune_removes_its_layer_dirs() {
    let uid = user_uid();
    let s = Scratch::new(uid);
    let (ctx, home) = (s.root.join("ctx"), s.root.join("user"));
    let cairn_bin = Path::new(env!("CARGO_BIN_EXE_cairn"));
    user_can_read(&[&ctx, cairn_bin, &fixture()]);
    let cache = home.join("cache");
    ok(&as_user(
        &home,
        &[],
        cairn_bin,
        &build_args(&ctx, &cache, &home.join("out")),
    ));
    let cache_s = cache.display().to_string();
    let cairn = |args: &[&str]| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(["--cache-dir".to_owned(), cache_s.clone()]);
        ok(&as_user(&home, &[], cairn_bin, &a))
    };
    let form = || {
        std::fs::read_dir(cache.join("layers"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("userns-v2-")
            })
            .expect("the user's layer form directory")
    };
    // What an older cairn left: the same form without the scheme tag
    // (files of subordinate ids the user cannot delete itself).
    let current = form();
    let name = current.file_name().unwrap().to_string_lossy().into_owned();
    let old = cache
        .join("layers")
        .join(name.replace("userns-v2-", "userns-"));
    ok(&as_user(
        &home,
        &[],
        Path::new("mv"),
        &[current.display().to_string(), old.display().to_string()],
    ));
    // Unpacked again in the current form by the next build (which runs its steps).
    let mut again = build_args(&ctx, &cache, &home.join("out"));
    again.push("--no-cache".into());
    ok(&as_user(&home, &[], cairn_bin, &again));
    let listed: Value = serde_json::from_str(&cairn(&["cache", "ls", "--format", "json"])).unwrap();
    let total = listed["total_bytes"].as_u64().unwrap();
    if is_root() {
        let du = Command::new("du").arg("-sb").arg(&cache).output().unwrap();
        let du: u64 = String::from_utf8_lossy(&du.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(total, du, "cache ls as the user vs du -sb: {listed}");
    }
    cairn(&["cache", "prune"]);
    assert!(
        !old.exists(),
        "an older layout's layer dir survived a prune"
    );
    let form = form();
    assert!(
        std::fs::read_dir(&form).unwrap().count() >= 4,
        "a prune removed layers in use"
    );
    cairn(&["cache", "prune", "--all"]);
    let left: Vec<_> = std::fs::read_dir(&form)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "prune --all left rootless layer dirs: {left:?}"
    );
    let listed: Value = serde_json::from_str(&cairn(&["cache", "ls", "--format", "json"])).unwrap();
    assert!(listed["total_bytes"].as_u64().unwrap() <= 8192, "{listed}");
}

/// Inner part of the test above, as the user: remove every layer directory
/// of the cache in `$CAIRN_IT_ROOTLESS_DIR`.
#[test]
#[ignore]
fn inner_remove_layer_dirs() {
    let cache = PathBuf::from(std::env::var_os(INNER_DIR).expect("run by the outer test"));
    let dirs = LayerDirs::new(&cairn::cache::CacheLayout::new(&cache)).unwrap();
    assert!(dirs.root().exists());
    dirs.remove_all().unwrap();
    assert!(!dirs.root().exists());
}

/// The single-id mapping (no subordinate ids used): the build works and the
/// owners recorded for chown reach the layer; that step's layer is the one
/// root builds.
#[test]
fn single_id_mapping_builds_with_recorded_owners() {
    let r = RootBuilt::new();
    let (root_out, root_digest) = (&r.root_out, &r.root_digest);
    let (ctx, home) = (r.s.root.join("ctx"), r.s.root.join("user"));
    let cairn_bin = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let out = home.join("out");
    let built = as_user(
        &home,
        &[("CAIRN_SANDBOX_ID_MAP", "single")],
        cairn_bin,
        &build_args(&ctx, &home.join("cache"), &out),
    );
    let digest = ok(&built);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("only uid"),
        "single mapping expected: {stderr}"
    );
    let (layer, owner) = find_owner(&out, &digest, "srv/app");
    assert_eq!(owner, (1001, 1001));
    if let Some(root_out) = root_out {
        let (root_layer, _) = find_owner(root_out, root_digest, "srv/app");
        assert_eq!(
            layer, root_layer,
            "the chown step's layer differs from root's"
        );
    }
    let (_, node) = find_owner(&out, &digest, "home/node");
    assert_eq!(node, (1000, 1000), "recorded owner of a base directory");
}

/// Unpacking time of the node fixture's layers: in this process as root vs
/// inside the user namespace as the test user (`--ignored --nocapture`).
#[test]
#[ignore]
fn bench_unpack_node_fixture() {
    let fixture = fixture();
    let m = read_json(&fixture, &manifest_digest(&fixture, "22-alpine"));
    let config = read_json(&fixture, m["config"]["digest"].as_str().unwrap());
    let descs: Vec<Layer> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
        .map(|(l, d)| Layer {
            digest: l["digest"].as_str().unwrap().parse().unwrap(),
            diff_id: d.as_str().unwrap().parse().unwrap(),
            size: l["size"].as_u64().unwrap(),
            media_type: l["mediaType"].as_str().unwrap().into(),
        })
        .collect();
    let unpack = |dir: &Path| {
        let store = BlobStore::open(&fixture).unwrap();
        let dirs = LayerDirs::new(&cairn::cache::CacheLayout::new(dir)).unwrap();
        let form = dirs.root().to_path_buf(); // probes the sandbox first
        let started = std::time::Instant::now();
        for l in &descs {
            dirs.ensure(l, &store).unwrap();
        }
        let took = started.elapsed();
        dirs.remove_all().unwrap();
        (took, form)
    };
    if let Some(dir) = std::env::var_os(INNER_DIR) {
        let (took, form) = unpack(Path::new(&dir));
        println!(
            "UNPACK {} layers as uid {} into {}: {took:?}",
            descs.len(),
            rustix::process::getuid().as_raw(),
            form.display()
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (took, _) = unpack(t.path());
    println!("UNPACK {} layers in process as root: {took:?}", descs.len());
    if !is_root() {
        return;
    }
    let s = Scratch::new(user_uid());
    let home = s.root.join("user");
    let out = as_user(
        &home,
        &[
            (INNER_DIR, &home.display().to_string()),
            ("CAIRN_SANDBOX_HELPER", env!("CARGO_BIN_EXE_cairn")),
        ],
        &std::env::current_exe().unwrap(),
        &[
            "--ignored".into(),
            "--exact".into(),
            "rootless::bench_unpack_node_fixture".into(),
            "--nocapture".into(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for l in text.lines().filter(|l| l.starts_with("UNPACK")) {
        println!("{l}");
    }
}

/// What [`build_as_root_and_user`] leaves: the scratch tree, root's digest
/// and the user's home (its cache in `cache/`, its image layout in `out/`).
struct BothBuilt {
    s: Scratch,
    uid: u32,
    root_digest: String,
    home: PathBuf,
}

/// Build `text` (written as `ctx/NAME`) as root and as the user, and assert
/// that both give the same digest. `None` (skipped) unless run as root.
/// Build `text` (as Dockerfile `name`) as root, pinned, and as the user
/// (see the module doc for the roles when not root).
fn build_as_root_and_user(name: &str, text: &str) -> Option<BothBuilt> {
    let uid = user_uid();
    let s = Scratch::new(uid);
    let ctx = s.root.join("ctx");
    let dockerfile = ctx.join(name);
    std::fs::write(&dockerfile, text).unwrap();
    std::fs::set_permissions(&dockerfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = |cache: &Path, out: &Path| {
        let mut a = build_args(&ctx, cache, out);
        a.extend(["-f".to_owned(), dockerfile.display().to_string()]);
        a
    };
    let root_digest = if is_root() {
        let mut c = cairn(&s.root.join("root-home"));
        c.args(args(&s.root.join("root-cache"), &s.root.join("root-out")))
            .env_remove("SOURCE_DATE_EPOCH");
        pinned_root_digest(name, Some(&ok(&run(c, ""))))
    } else {
        pinned_root_digest(name, None)
    };
    let home = s.root.join("user");
    let built = as_user(
        &home,
        &[],
        Path::new(env!("CARGO_BIN_EXE_cairn")),
        &args(&home.join("cache"), &home.join("out")),
    );
    assert_eq!(ok(&built), root_digest, "root and rootless digests differ");
    Some(BothBuilt {
        s,
        uid,
        root_digest,
        home,
    })
}

/// `COPY --from` a stage whose RUN made a file only its (subordinate-id)
/// owner may read: the unprivileged build reads it where it lies in the
/// stage's plain layer blob (its own file), never through a layer directory
/// it could not read, and gives root's digest.
#[test]
fn copy_from_a_stage_with_private_files_works_unprivileged() {
    let text = format!(
        "FROM oci:{}:22-alpine AS secret\n\
         RUN mkdir -p /keep && echo private > /keep/key && chown -R 1001:1001 /keep \
         && chmod 0600 /keep/key && chmod 0700 /keep\n\
         FROM scratch\nCOPY --from=secret /keep /keep\n",
        fixture().display()
    );
    let Some(b) = build_as_root_and_user("Dockerfile.stages", &text) else {
        return;
    };
    let (_, owner) = find_owner(&b.home.join("out"), &b.root_digest, "keep/key");
    assert_eq!(owner, (1001, 1001));
}

/// The unprivileged build unpacks a `COPY --from` layer of RUN-made files
/// for its next RUN by moving them in inside the user namespace (the
/// helper's `--donors`), as root's does: the files are older than their
/// layer directory (and singly linked), a subordinate-owned file is
/// written, and the digest is root's.
#[test]
fn unprivileged_unpack_moves_run_files_in_and_gives_roots_digest() {
    let base = format!("oci:{}:22-alpine", fixture().display());
    let text = format!(
        "FROM {base} AS deps\n\
         RUN mkdir -p /build/nm/a && echo one > /build/nm/a/index.js \
         && echo theirs > /build/nm/a/owned && chown 1001:1001 /build/nm/a/owned\n\
         FROM {base}\nCOPY --from=deps /build/nm /srv/nm\n\
         RUN cat /srv/nm/a/index.js /srv/nm/a/owned > /srv/copied \
         && test \"$(stat -c %h /srv/nm/a/index.js)\" = 1\n"
    );
    let Some(b) = build_as_root_and_user("Dockerfile.donors", &text) else {
        return;
    };
    let dirs: Vec<PathBuf> = std::fs::read_dir(b.home.join("cache/layers"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("userns-")
        })
        .flat_map(|form| std::fs::read_dir(form).unwrap().map(|d| d.unwrap().path()))
        .filter(|d| d.join("srv/nm").exists())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?} under {}", b.s.root.display());
    let born = |p: &Path| std::fs::symlink_metadata(p).unwrap().created().ok();
    let dir = &dirs[0];
    if let (Some(dir_born), Some(linked), Some(written)) = (
        born(dir),
        born(&dir.join("srv/nm/a/index.js")),
        born(&dir.join("srv/nm/a/owned")),
    ) {
        assert!(linked < dir_born, "index.js was written, not moved in");
        assert!(written >= dir_born, "a subordinate-owned file was moved in");
    }
    assert_eq!(
        std::fs::symlink_metadata(dir.join("srv/nm/a/index.js"))
            .unwrap()
            .uid(),
        b.uid,
        "container root is the user"
    );
}
