//! Unpacking as root *inside a user namespace* (the rootless RUN setup):
//! device nodes are skipped and reported, overlay whiteouts (0/0 character
//! devices) and `user.overlay.opaque` still work, and a real overlayfs mount
//! with `userxattr` over the unpacked layers shows the expected merged view.
//!
//! The test re-executes its own binary under `unshare --user --map-root-user
//! --mount`; the inner run does the work. Hosts where unprivileged user
//! namespaces are disabled report the reason and skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use cairn_layers::unpack::{unpack, UnpackError, UnpackOptions, WhiteoutMode};

const INNER: &str = "CAIRN_TEST_INSIDE_USERNS";

fn corpus(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/tars/evil")
            .join(name),
    )
    .unwrap()
}

#[test]
fn unpack_inside_user_namespace() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    let probe = Command::new("unshare").args(["-Urm", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("skipping: cannot create a user namespace here: {other:?}");
            return;
        }
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .arg("-Urm")
        .arg(exe)
        .args(["--exact", "unpack_inside_user_namespace", "--nocapture"])
        .env(INNER, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
}

fn inner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| -> PathBuf {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    };

    // Devices are skipped and reported; the FIFO is still created.
    let dev = dir("dev");
    let stats = unpack(
        &corpus("device-node.tar")[..],
        &dev,
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(stats.skipped_devices, ["null", "sda"]);
    assert_eq!(stats.special, 1);
    assert!(!dev.join("null").exists());

    // Ownership outside the (single-id) mapping fails with a clear message.
    let own = dir("own");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(1000);
    h.set_size(0);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, "f", &[][..]).unwrap();
    let owned = b.into_inner().unwrap();
    let opts = UnpackOptions {
        preserve_ownership: true,
        ..Default::default()
    };
    let err = unpack(&owned[..], &own, &opts).unwrap_err();
    assert!(matches!(err, UnpackError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("mapped in this user namespace"),
        "{err}"
    );

    // Overlay form, then a real userxattr overlay mount over it.
    let lower = support::tar(&[
        ("etc/", b""),
        ("etc/motd", b"hi"),
        ("etc/hosts", b"h"),
        ("etc/apk/", b""),
        ("etc/apk/world", b"old"),
        ("etc/apk/keys/", b""),
        ("etc/apk/keys/k1", b"k"),
    ]);
    let upper = support::tar(&[
        ("etc/", b""),
        ("etc/.wh.motd", b""),
        ("etc/apk/", b""),
        ("etc/apk/.wh..wh..opq", b""),
        ("etc/apk/world", b"new"),
    ]);
    let overlay = UnpackOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..Default::default()
    };
    let (l1, l2) = (dir("l1"), dir("l2"));
    unpack(&lower[..], &l1, &overlay).unwrap();
    unpack(&upper[..], &l2, &overlay).unwrap();
    let (up, work, merged) = (dir("up"), dir("work"), dir("merged"));
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={},userxattr",
        l2.display(),
        l1.display(),
        up.display(),
        work.display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "cairn-test", "-o", &opts])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount failed");
    let listing = |p: &str| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(merged.join(p))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let etc = listing("etc");
    let apk = listing("etc/apk");
    let world = fs::read(merged.join("etc/apk/world")).unwrap();
    let _ = Command::new("umount").arg(&merged).status();
    assert_eq!(etc, ["apk", "hosts"]);
    assert_eq!(apk, ["world"]);
    assert_eq!(world, b"new");
}
