//! Attacks on cairn (issue #20) that must fail safely: a base image whose
//! config lies about a layer's diff_id, a cache other users could reach,
//! a full disk inside RUN, secrets as environment variables, undecodable
//! Dockerfiles, credentials in references, odd file names in the context and
//! a killed unpack. Runs as root where it needs a second user or a tmpfs.

use crate::support::{cairn, fixture_layout, run};
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn fixture() -> PathBuf {
    fixture_layout()
        .expect("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)")
}

/// `cairn build CTX --progress plain --cache-dir CACHE EXTRA…`.
fn build(home: &Path, ctx: &Path, cache: &Path, extra: &[&str]) -> Output {
    let mut c = cairn(home);
    c.arg("build")
        .arg(ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(cache)
        .args(extra);
    run(c, "")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A context directory holding `dockerfile`.
fn context(root: &Path, name: &str, dockerfile: &str) -> PathBuf {
    let ctx = root.join(name);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// `layer` (a gzip tar) with `extra` files appended before its end blocks.
fn with_extra_files(layer: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(layer)
        .read_to_end(&mut plain)
        .unwrap();
    let mut end = 0u64;
    for e in tar::Archive::new(&plain[..]).entries().unwrap() {
        let e = e.unwrap();
        end = (e.raw_file_position() + e.size()).div_ceil(512) * 512;
    }
    plain.truncate(end as usize);
    let mut b = tar::Builder::new(plain);
    for (name, data) in extra {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, name, *data).unwrap();
    }
    let plain = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    gz.finish().unwrap()
}

/// An OCI layout at `dir` tagged `latest`: the node:22-alpine stand-in with
/// its manifest and config changed by `edit(manifest, config, put)`, where
/// `put(bytes)` stores a blob and returns its digest. The config is stored
/// after `edit`, and the manifest points at it.
fn derived_layout(
    dir: &Path,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value, &dyn Fn(&[u8]) -> String),
) {
    let honest = fixture();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let digest = crate::support::manifest_digest(&honest, "22-alpine");
    let read = |d: &str| {
        std::fs::read(
            honest
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let put = |bytes: &[u8]| {
        let d = cairn_layers::Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d.to_string()
    };
    let mut manifest: serde_json::Value = serde_json::from_slice(&read(&digest)).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        put(&read(l["digest"].as_str().unwrap()));
    }
    edit(&mut manifest, &mut config, &put);
    let c = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = put(&c).into();
    manifest["config"]["size"] = c.len().into();
    let m = serde_json::to_vec(&manifest).unwrap();
    let md = put(&m);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// [`derived_layout`] whose first layer blob also holds `/POISONED`, while
/// its config still claims the honest layer's diff_id. Returns the spoofed
/// blob's digest.
fn spoofing_layout(dir: &Path) -> String {
    let mut spoofed_digest = String::new();
    derived_layout(dir, |manifest, _, put| {
        let layer = &mut manifest["layers"][0];
        let honest = std::fs::read(
            dir.join("blobs/sha256").join(
                layer["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap();
        let spoofed =
            with_extra_files(&honest, &[("POISONED", b"planted by the spoofing image\n")]);
        spoofed_digest = put(&spoofed);
        layer["digest"] = spoofed_digest.clone().into();
        layer["size"] = spoofed.len().into();
    });
    spoofed_digest
}

/// A config claiming an honest base layer's diff_id for a blob with more
/// files is refused, naming the layer, and leaves nothing in the cache: an
/// honest build afterwards does not see the planted file.
#[test]
fn a_spoofed_diff_id_is_refused_and_does_not_poison_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let spoof = t.path().join("spoof");
    let spoofed_blob = spoofing_layout(&spoof);
    let cache = t.path().join("cache");
    let evil = context(
        t.path(),
        "evil",
        &format!("FROM oci:{}:latest\nRUN cat /POISONED\n", spoof.display()),
    );
    let o = build(t.path(), &evil, &cache, &[]);
    let out = text(&o);
    assert!(!o.status.success(), "the spoofing image was built:\n{out}");
    assert!(
        out.contains(&spoofed_blob) && out.contains("does not match its diff_id"),
        "the error does not name the layer:\n{out}"
    );
    let honest = context(
        t.path(),
        "honest",
        &format!(
            "FROM oci:{}:22-alpine\nRUN if [ -e /POISONED ]; then cat /POISONED; exit 7; fi\n",
            fixture().display()
        ),
    );
    let o = build(t.path(), &honest, &cache, &[]);
    assert!(
        o.status.success(),
        "the honest build saw the spoofed layer:\n{}",
        text(&o)
    );
}

/// A tmpfs of `mib` MiB mounted at `dir` (created) until dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk where the RUN step's files live is reported with its cause
/// and the file (was: "cannot decode the helper result … EOF").
#[test]
fn a_full_disk_in_run_names_enospc_and_the_path() {
    if !is_root() {
        eprintln!("\n!!! SKIPPING: mounting a tmpfs needs root !!!\n");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    // The RUN step's upper dir and result live in the sandbox state dir.
    let _small = Tmpfs::mount(&cache.join("sandbox"), 4);
    let ctx = context(
        t.path(),
        "ctx",
        &format!(
            "FROM oci:{}:22-alpine\n\
             RUN mkdir /many && cd /many && seq 1 3000 | xargs touch && \
             (head -c 8000000 /dev/zero > /fill || true) && echo filled\n",
            fixture().display()
        ),
    );
    let o = build(t.path(), &ctx, &cache, &[]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("No space left on device") && out.contains("sandbox/runs/"),
        "the cause or the path is missing:\n{out}"
    );
    assert!(
        !out.contains("cannot decode") && !out.contains("before reporting"),
        "{out}"
    );
}

/// Every byte under `dir` (gzip files decompressed), file by file.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            let mut plain = Vec::new();
            let bytes = if bytes.starts_with(&[0x1f, 0x8b])
                && flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .is_ok()
            {
                plain
            } else {
                bytes
            };
            (e.path().to_owned(), bytes)
        })
        .collect()
}

/// `RUN --mount=type=secret,id=…,env=NAME` sets NAME for that command only;
/// the value is in no layer, record, config or history.
#[test]
fn a_secret_as_env_reaches_the_command_only() {
    let t = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-Value-7f1d";
    // The Dockerfile holds its hash only.
    let hash = cairn_layers::Digest::of(secret.as_bytes()).hex()[..16].to_owned();
    let ctx = context(
        t.path(),
        "ctx",
        &format!(
            "FROM oci:{}:22-alpine\n\
             RUN --mount=type=secret,id=tok,env=TOKEN \
             test \"$(printf %s \"$TOKEN\" | sha256sum | cut -c1-16)\" = {hash} && \
             test ! -e /run/secrets/tok && echo \"${{#TOKEN}}\" > /token-length\n\
             RUN --mount=type=secret,id=tok,env=FILE_TOO,target=/run/secrets/t \
             test \"$FILE_TOO\" = \"$(cat /run/secrets/t)\" && touch /both\n\
             RUN test -z \"$TOKEN\" && test -z \"$FILE_TOO\" && touch /later-step-clean\n",
            fixture().display()
        ),
    );
    let out = t.path().join("out");
    let cache = t.path().join("cache");
    let mut c = cairn(t.path());
    c.arg("build")
        .arg(&ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(&cache)
        .args(["--secret", "id=tok,env=CAIRN_IT_TOKEN", "-o"])
        .arg(format!("type=oci,dest={},tar=false", out.display()))
        .env("CAIRN_IT_TOKEN", secret);
    let o = run(c, "");
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        !log.contains(secret),
        "the value is in the build output:\n{log}"
    );
    let mut files = contents(&out);
    for sub in ["steps", "slots"] {
        files.extend(contents(&cache.join(sub)));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (path, bytes) in &files {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret value is in {}",
            path.display()
        );
        for marker in ["token-length", "both", "later-step-clean"] {
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                seen.insert(marker);
            }
        }
    }
    // The steps ran and were captured: their files are in the image.
    assert_eq!(seen.len(), 3, "{seen:?}");
}

const OTHER_USER: &str = "cairn-unpriv";

/// Run `args` as [`OTHER_USER`].
fn as_other_user(args: &[&str]) -> Output {
    let mut c = std::process::Command::new("runuser");
    c.args(["-u", OTHER_USER, "--"]).args(args);
    run(c, "")
}

/// Another local user cannot reach the cache: not its setuid-root files
/// (from a RUN step, unpacked as the next step's lower layer), not its
/// records. A cache that was open to others is made private, with a warning.
#[test]
fn other_users_cannot_reach_the_cache_or_its_setuid_files() {
    if !is_root() {
        eprintln!("\n!!! SKIPPING: building as root and checking as {OTHER_USER} needs root !!!\n");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = t.path().join("cache");
    // An existing cache, as a umask of 022 would make it.
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = context(
        t.path(),
        "ctx",
        &format!(
            "FROM oci:{}:22-alpine\n\
             RUN cp /bin/busybox /bin/sush && chmod 4755 /bin/sush\n\
             RUN test -u /bin/sush\n",
            fixture().display()
        ),
    );
    let o = build(t.path(), &ctx, &cache, &[]);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("was accessible to other users (mode 0755); made it private"),
        "no warning:\n{log}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().mode() & 0o7777, 0o700);
    // The setuid file is in the cache (the second RUN's lower layer)…
    let suid: Vec<PathBuf> = walkdir::WalkDir::new(cache.join("layers"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "sush" && e.metadata().unwrap().mode() & 0o4000 != 0)
        .map(|e| e.path().to_owned())
        .collect();
    assert!(!suid.is_empty(), "no setuid file was unpacked");
    // … and out of the other user's reach, as is everything else there.
    for p in suid
        .iter()
        .chain([&cache.join("steps"), &cache.join("layers")])
    {
        let o = as_other_user(&["stat", &p.display().to_string()]);
        assert!(
            !o.status.success() && text(&o).contains("Permission denied"),
            "{OTHER_USER} reaches {}:\n{}",
            p.display(),
            text(&o)
        );
    }
    // A cache of another user is refused, not used.
    let theirs = t.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .args(["-u", OTHER_USER])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let uid: u32 = uid.trim().parse().unwrap();
    rustix::fs::chown(&theirs, Some(rustix::fs::Uid::from_raw(uid)), None).unwrap();
    let o = build(t.path(), &ctx, &theirs, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not to this user"), "{}", text(&o));
}

/// A character device in a base layer (`crw-rw-rw-`, the numbers of
/// `/dev/null`): unpacked as root it is kept, as SECURITY.md chooses (RUN
/// sees what the image holds, as with BuildKit), but only below the private
/// cache, so no other user can open or even find it.
#[test]
fn a_device_node_of_a_base_image_is_usable_by_no_other_user() {
    if !is_root() {
        eprintln!(
            "\n!!! SKIPPING: unpacking device nodes and checking as {OTHER_USER} needs root !!!\n"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let base = t.path().join("base");
    derived_layout(&base, |manifest, config, put| {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        b.append_data(&mut dir, "opt/", std::io::empty()).unwrap();
        let mut dev = tar::Header::new_ustar();
        dev.set_entry_type(tar::EntryType::Char);
        dev.set_mode(0o666);
        dev.set_size(0);
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        b.append_data(&mut dev, "opt/evil", std::io::empty())
            .unwrap();
        let plain = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let gz = gz.finish().unwrap();
        manifest["layers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": put(&gz), "size": gz.len(),
            }));
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(cairn_layers::Digest::of(&plain).to_string().into());
        if let Some(h) = config["history"].as_array_mut() {
            h.push(serde_json::json!({"created_by": "a device node"}));
        }
    });
    let cache = t.path().join("cache");
    let ctx = context(
        t.path(),
        "ctx",
        &format!(
            "FROM oci:{}:latest\nRUN test -c /opt/evil && test \"$(stat -c %t:%T /opt/evil)\" = 1:3\n",
            base.display()
        ),
    );
    let o = build(t.path(), &ctx, &cache, &[]);
    assert!(
        o.status.success(),
        "RUN does not see the image's device:\n{}",
        text(&o)
    );
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let nodes: Vec<PathBuf> = walkdir::WalkDir::new(cache.join("layers"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "evil")
        .map(|e| e.path().to_owned())
        .collect();
    assert!(!nodes.is_empty(), "the layer was not unpacked");
    for p in &nodes {
        let md = std::fs::symlink_metadata(p).unwrap();
        // Kept as the image has it: a world-writable device…
        assert!(md.file_type().is_char_device(), "{}", p.display());
        assert_eq!(md.rdev(), libc::makedev(1, 3), "{}", p.display());
        // … that no other user can reach.
        for args in [
            vec![
                "sh".to_owned(),
                "-c".into(),
                format!("echo x > '{}'", p.display()),
            ],
            vec!["stat".to_owned(), p.display().to_string()],
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = as_other_user(&args);
            assert!(
                !o.status.success() && text(&o).contains("Permission denied"),
                "{OTHER_USER} reaches {}:\n{}",
                p.display(),
                text(&o)
            );
        }
    }
}

/// A password typed into a reference (FROM, -t, pull) is in no error or log.
#[test]
fn credentials_in_references_are_never_shown() {
    let t = tempfile::tempdir().unwrap();
    let pw = "hunter2-Xq9";
    let ctx = context(
        t.path(),
        "ctx",
        &format!("FROM user:{pw}@registry.example.com/app:1\nRUN true\n"),
    );
    let cache = t.path().join("cache");
    let from = build(t.path(), &ctx, &cache, &[]);
    let tag = format!("user:{pw}@localhost:5000/app:1");
    std::fs::write(ctx.join("Plain"), "FROM scratch\n").unwrap();
    let push = build(
        t.path(),
        &ctx,
        &cache,
        &[
            "-f",
            &ctx.join("Plain").display().to_string(),
            "-t",
            &tag,
            "--push",
        ],
    );
    let mut c = cairn(t.path());
    c.args(["pull", "-o"])
        .arg(format!("oci:{}", t.path().join("out").display()))
        .arg(&tag);
    let pull = run(c, "");
    for o in [from, push, pull] {
        // The Dockerfile's own line may be quoted as written (the user's
        // file); nothing cairn says about it may repeat the password.
        let out = text(&o).replace(&format!("| FROM user:{pw}@registry.example.com/app:1"), "");
        assert!(!o.status.success(), "{out}");
        assert!(!out.contains(pw), "the password is shown:\n{out}");
        assert!(out.contains("***@"), "{out}");
    }
}

/// The layers of the image tagged in the OCI layout `dir`, bottom first,
/// as (exact name bytes, data) per member.
fn layout_layers(dir: &Path) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let blob = |d: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let gz = blob(l["digest"].as_str().unwrap());
            let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&gz[..]));
            ar.entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let name = e.path_bytes().into_owned();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (name, data)
                })
                .collect()
        })
        .collect()
}

/// A file name that is not UTF-8 somewhere in the context does not stop a
/// COPY of other files; a COPY that takes it keeps its exact bytes in the
/// layer and in the rootfs RUN sees, the step's cache key tells two such
/// names apart, and one a RUN creates is captured with its bytes.
#[test]
fn a_non_utf8_name_is_copied_with_its_exact_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let ctx = context(t.path(), "ctx", "FROM scratch\nCOPY ok.txt /ok.txt\n");
    std::fs::write(ctx.join("ok.txt"), "ok\n").unwrap();
    std::fs::create_dir(ctx.join("sub")).unwrap();
    let name = |b: &[u8]| ctx.join("sub").join(std::ffi::OsStr::from_bytes(b));
    std::fs::write(name(b"caf\xe9.txt"), "latin-1 name\n").unwrap();
    std::fs::write(ctx.join("sub/fine.txt"), "fine\n").unwrap();
    let cache = t.path().join("cache");
    let o = build(t.path(), &ctx, &cache, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = t.path().join("out");
    let layer_of = |dockerfile: &str| {
        std::fs::write(ctx.join("Copy"), dockerfile).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        let o = build(
            t.path(),
            &ctx,
            &cache,
            &[
                "-f",
                &ctx.join("Copy").display().to_string(),
                "-o",
                &format!("type=oci,dest={},tar=false", out.display()),
            ],
        );
        assert!(o.status.success(), "{dockerfile}:\n{}", text(&o));
        let mut layers = layout_layers(&out);
        layers.pop().unwrap()
    };
    let file = |layer: &[(Vec<u8>, Vec<u8>)], path: &[u8]| {
        layer
            .iter()
            .find(|(n, _)| n == path)
            .map(|(_, d)| d.clone())
    };
    for (dockerfile, path) in [
        ("FROM scratch\nCOPY . /app\n", &b"app/sub/caf\xe9.txt"[..]),
        ("FROM scratch\nCOPY sub/ /sub/\n", b"sub/caf\xe9.txt"),
        ("FROM scratch\nCOPY sub/*.txt /sub/\n", b"sub/caf\xe9.txt"),
    ] {
        let layer = layer_of(dockerfile);
        assert_eq!(
            file(&layer, path).as_deref(),
            Some(&b"latin-1 name\n"[..]),
            "{dockerfile}: {:?}",
            layer
                .iter()
                .map(|(n, _)| String::from_utf8_lossy(n))
                .collect::<Vec<_>>()
        );
    }
    // Another name that differs only in that byte is another cache key: the
    // layer holds the new name, not the cached old one.
    std::fs::rename(name(b"caf\xe9.txt"), name(b"caf\xe8.txt")).unwrap();
    let layer = layer_of("FROM scratch\nCOPY . /app\n");
    assert!(file(&layer, b"app/sub/caf\xe8.txt").is_some());
    assert!(file(&layer, b"app/sub/caf\xe9.txt").is_none());
    // RUN sees the exact name in its rootfs, and a name it makes is captured exactly.
    let layer = layer_of(&format!(
        "FROM oci:{}:22-alpine\nCOPY sub /app\n\
         RUN test -f \"$(printf '/app/caf\\350.txt')\" && touch /seen \"$(printf '/made\\351')\"\n",
        fixture().display()
    ));
    assert!(file(&layer, b"seen").is_some(), "RUN did not see the file");
    assert!(
        file(&layer, b"made\xe9").is_some(),
        "RUN's file name was not kept"
    );
}

/// A Dockerfile that is not UTF-8 gets the position of the first bad byte
/// and how to convert it, not "pass the Dockerfile with -f".
#[test]
fn an_undecodable_dockerfile_is_located() {
    let t = tempfile::tempdir().unwrap();
    let ctx = context(t.path(), "ctx", "");
    std::fs::write(
        ctx.join("Dockerfile"),
        b"FROM scratch\nLABEL maintainer=\"Jos\xe9\"\n",
    )
    .unwrap();
    let f = ctx.join("Dockerfile").display().to_string();
    for args in [
        vec!["parse".to_owned(), "-f".into(), f.clone()],
        vec![
            "build".into(),
            ctx.display().to_string(),
            "-f".into(),
            f.clone(),
            "--cache-dir".into(),
            t.path().join("cache").display().to_string(),
        ],
    ] {
        let mut c = cairn(t.path());
        c.args(&args);
        let o = run(c, "");
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(
            out.contains(&format!("{f}:2:22: the Dockerfile is not UTF-8"))
                && out.contains("iconv"),
            "{out}"
        );
        assert!(!out.contains("with -f"), "{out}");
    }
}

/// The staging directory of an unpack killed mid-way (SIGKILL) is removed by
/// the next build's sweep: no live process holds its lock.
#[test]
fn a_killed_unpack_leaves_nothing_after_the_next_build() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let ctx = context(
        t.path(),
        "ctx",
        &format!("FROM oci:{}:22-alpine\nRUN true\n", fixture().display()),
    );
    let staging = || -> Vec<PathBuf> {
        walkdir::WalkDir::new(cache.join("layers"))
            .max_depth(2)
            .into_iter()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".unpack-"))
            .map(|e| e.path().to_owned())
            .collect()
    };
    let mut killed = false;
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&cache);
        let mut c = cairn(t.path());
        c.arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--cache-dir"])
            .arg(&cache)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while staging().is_empty() && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
        if !staging().is_empty() {
            killed = true;
            break;
        }
    }
    assert!(killed, "never caught a build during its unpack");
    let o = build(t.path(), &ctx, &cache, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(staging(), Vec::<PathBuf>::new(), "left behind");
}
