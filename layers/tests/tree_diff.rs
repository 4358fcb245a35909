//! Round trips through `Tree::snapshot` and `diff`: build a tree, snapshot,
//! mutate, diff, and check the exact entry list.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

mod support;

use cairn_layers::tree::{diff, SnapshotOptions, Tree};
use cairn_layers::{Entry, EntryKind, Source};

fn set_mtime(p: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let f = fs::File::options().read(true).open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    set_mtime(&p, 1000);
}

fn mkdir(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir(&p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A compact, exact description of an entry: path, kind, mode, ids, mtime.
fn describe(e: &Entry, root: &Path) -> String {
    let kind = match &e.kind {
        EntryKind::Dir => "dir".to_string(),
        EntryKind::File { size, source } => {
            match source {
                Source::Path(p) => assert_eq!(p, &root.join(&e.path)),
                Source::Bytes(b) => assert!(b.is_empty() && e.path.contains(".wh.")),
                Source::Range { .. } => panic!("a tree diff reads files from the tree"),
            }
            format!("file {size}")
        }
        EntryKind::Symlink { target } => format!("symlink {target}"),
        EntryKind::Hardlink { target } => format!("hardlink {target}"),
        other => format!("{other:?}"),
    };
    format!(
        "{} {kind} {:o} {}:{} {}",
        e.path, e.mode, e.uid, e.gid, e.mtime
    )
}

fn build_base(root: &Path) {
    mkdir(root, "a");
    for f in ["keep.txt", "edit.txt", "chmod.txt", "chown.txt", "del.txt"] {
        write(root, &format!("a/{f}"), "v1");
    }
    write(root, "a/inplace.txt", "AAAA");
    mkdir(root, "gone");
    write(root, "gone/x", "x");
    mkdir(root, "gone/sub");
    write(root, "gone/sub/y", "y");
    mkdir(root, "swap");
    write(root, "swap/c", "c");
    write(root, "f2d", "file");
    mkdir(root, "untouched");
    write(root, "untouched/z", "z");
    write(root, "hl1", "linked");
    for d in ["a", "gone/sub", "gone", "swap", "untouched"] {
        set_mtime(&root.join(d), 500);
    }
}

#[test]
fn round_trip_reports_exactly_the_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    build_base(root);
    let before = Tree::snapshot(root).unwrap();
    assert_eq!(before.len(), 17);
    // Coarse-grained kernels tick ctime every few ms; RUN steps take longer.
    std::thread::sleep(Duration::from_millis(20));

    write(root, "a/new.txt", "new");
    write(root, "a/edit.txt", "v2-longer");
    fs::set_permissions(root.join("a/chmod.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let privileged = unsafe { libc::geteuid() } == 0;
    if privileged {
        std::os::unix::fs::lchown(root.join("a/chown.txt"), Some(1234), Some(4321)).unwrap();
    }
    fs::remove_file(root.join("a/del.txt")).unwrap();
    fs::remove_dir_all(root.join("gone")).unwrap();
    fs::remove_dir_all(root.join("swap")).unwrap();
    write(root, "swap", "now a file");
    fs::remove_file(root.join("f2d")).unwrap();
    mkdir(root, "f2d");
    write(root, "f2d/inner", "i");
    // Same size, same mtime, different bytes: only ctime tells.
    fs::write(root.join("a/inplace.txt"), "BBBB").unwrap();
    set_mtime(&root.join("a/inplace.txt"), 1000);
    fs::hard_link(root.join("hl1"), root.join("a/hl2")).unwrap();
    symlink("keep.txt", root.join("a/link")).unwrap();
    std::os::unix::fs::lchown(root.join("a/link"), Some(7), Some(8)).ok();
    for d in ["a", "f2d"] {
        set_mtime(&root.join(d), 2000);
    }

    let after = Tree::snapshot(root).unwrap();
    let entries = diff(&before, &after, root).unwrap();
    let got: Vec<String> = entries.iter().map(|e| describe(e, root)).collect();
    let link_ids = if privileged { "7:8" } else { "0:0" };
    let chown = if privileged {
        "a/chown.txt file 2 644 1234:4321 1000".to_string()
    } else {
        String::new()
    };
    let (uid, gid) = (unsafe { libc::geteuid() }, unsafe { libc::getegid() });
    let ids = format!("{uid}:{gid}");
    let link_line = if privileged {
        format!("a/link symlink keep.txt 777 {link_ids} ")
    } else {
        format!("a/link symlink keep.txt 777 {ids} ")
    };
    let mut want = vec![
        ".wh.gone file 0 0 0:0 0".to_string(),
        format!("a dir 755 {ids} 2000"),
        "a/.wh.del.txt file 0 0 0:0 0".to_string(),
        format!("a/chmod.txt file 2 600 {ids} 1000"),
        chown,
        format!("a/edit.txt file 9 644 {ids} 1000"),
        format!("a/hl2 file 6 644 {ids} 1000"),
        format!("a/inplace.txt file 4 644 {ids} 1000"),
        link_line,
        format!("a/new.txt file 3 644 {ids} 1000"),
        format!("f2d dir 755 {ids} 2000"),
        format!("f2d/inner file 1 644 {ids} 1000"),
        format!("hl1 hardlink a/hl2 644 {ids} 1000"),
        format!("swap file 10 644 {ids} 1000"),
    ];
    want.retain(|l| !l.is_empty());
    // The symlink's mtime is "now": compare it without the trailing mtime.
    let got: Vec<String> = got
        .into_iter()
        .map(|l| {
            if l.starts_with("a/link ") {
                l[..l.rfind(' ').unwrap() + 1].to_string()
            } else {
                l
            }
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn nothing_changed_means_no_entries() {
    let tmp = tempfile::tempdir().unwrap();
    build_base(tmp.path());
    let a = Tree::snapshot(tmp.path()).unwrap();
    let b = Tree::snapshot(tmp.path()).unwrap();
    assert!(diff(&a, &b, tmp.path()).unwrap().is_empty());
}

#[test]
fn parents_carry_their_real_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("x/y/z")).unwrap();
    fs::set_permissions(root.join("x"), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(root.join("x/y"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&root.join("x"), 42);
    let before = Tree::snapshot(root).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    write(root, "x/y/z/new", "n");
    // Restore the directory mtimes the new file bumped: x/y/z still differs.
    set_mtime(&root.join("x/y/z"), 77);
    let after = Tree::snapshot(root).unwrap();
    let entries = diff(&before, &after, root).unwrap();
    let got: Vec<(String, u32, u64)> = entries
        .iter()
        .map(|e| (e.path.clone(), e.mode, e.mtime))
        .collect();
    let y_mtime = after.get("x/y").unwrap().mtime.sec as u64;
    assert_eq!(
        got,
        [
            ("x".into(), 0o711, 42),
            ("x/y".into(), 0o750, y_mtime),
            ("x/y/z".into(), 0o755, 77),
            ("x/y/z/new".into(), 0o644, 1000),
        ]
    );
}

#[test]
fn dir_replaced_by_symlink_and_deep_deletions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("d/e/f")).unwrap();
    write(root, "d/e/f/g", "g");
    fs::create_dir_all(root.join("k/l")).unwrap();
    write(root, "k/l/m", "m");
    write(root, "k/keep", "keep");
    let before = Tree::snapshot(root).unwrap();
    fs::remove_dir_all(root.join("d")).unwrap();
    symlink("/elsewhere", root.join("d")).unwrap();
    fs::remove_dir_all(root.join("k/l")).unwrap();
    let after = Tree::snapshot(root).unwrap();
    let paths: Vec<String> = diff(&before, &after, root)
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    // One whiteout for k/l (not for k/l/m); d's old children need none.
    assert_eq!(paths, ["d", "k", "k/.wh.l"]);
}

#[test]
fn hashed_snapshots_compare_distinct_copies_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    fs::create_dir(&a).unwrap();
    build_base(&a);
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(status.success());
    // Same size and mtime, other bytes.
    fs::write(b.join("a/inplace.txt"), "CCCC").unwrap();
    set_mtime(&b.join("a/inplace.txt"), 1000);
    set_mtime(&b.join("a"), 500);

    let hashed = SnapshotOptions {
        hash_content: true,
        ..Default::default()
    };
    let ta = Tree::snapshot_with(&a, &hashed).unwrap();
    let tb = Tree::snapshot(&b).unwrap();
    let paths: Vec<String> = diff(&ta, &tb, &b)
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, ["a", "a/inplace.txt"]);

    // Without hashes, distinct inodes mean "changed" everywhere (documented).
    let plain = Tree::snapshot(&a).unwrap();
    assert_eq!(diff(&plain, &tb, &b).unwrap().len(), tb.len());
}

#[test]
fn xattrs_are_captured_and_filtered() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let before = Tree::snapshot(root).unwrap();
    write(root, "f", "x");
    for (name, value) in [("user.mime", "text/plain"), ("user.overlay.opaque", "y")] {
        let p =
            std::ffi::CString::new(root.join("f").into_os_string().into_encoded_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        let r = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    }
    let after = Tree::snapshot(root).unwrap();
    let entries = diff(&before, &after, root).unwrap();
    assert_eq!(entries.len(), 1);
    let keys: Vec<&str> = entries[0].xattrs.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, ["user.mime"]);
}

#[test]
fn non_utf8_names_are_reported() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        "x",
    )
    .unwrap();
    let err = Tree::snapshot(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn sockets_are_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let before = Tree::snapshot(tmp.path()).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
    let after = Tree::snapshot(tmp.path()).unwrap();
    assert_eq!(after.len(), 1);
    assert!(diff(&before, &after, tmp.path()).unwrap().is_empty());

    // A socket replacing a file: the file's deletion is what can be recorded.
    write(tmp.path(), "f", "x");
    let before = Tree::snapshot(tmp.path()).unwrap();
    fs::remove_file(tmp.path().join("f")).unwrap();
    let _f = std::os::unix::net::UnixListener::bind(tmp.path().join("f")).unwrap();
    let after = Tree::snapshot(tmp.path()).unwrap();
    let paths: Vec<String> = diff(&before, &after, tmp.path())
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, [".wh.f"]);
}

/// The RUN fallback in miniature: unpack a base, snapshot, apply a change
/// (here: unpacking an upper layer with whiteouts), snapshot, diff. The diff
/// must describe the upper layer's effect.
#[test]
fn diff_of_an_applied_layer_reproduces_its_effect() {
    use cairn_layers::unpack::{unpack, UnpackOptions};
    let lower = support::tar(&[
        ("etc/", b""),
        ("etc/motd", b"hi"),
        ("etc/hosts", b"h"),
        ("usr/", b""),
        ("usr/include/", b""),
        ("usr/include/a.h", b"a"),
        ("usr/lib/", b""),
        ("usr/lib/libc.so", b"c"),
    ]);
    let upper = support::tar(&[
        ("etc/", b""),
        ("etc/.wh.motd", b""),
        ("etc/hosts", b"changed"),
        ("usr/", b""),
        ("usr/.wh.include", b""),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    unpack(&lower[..], root, &UnpackOptions::default()).unwrap();
    let before = Tree::snapshot(root).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    unpack(&upper[..], root, &UnpackOptions::default()).unwrap();
    let after = Tree::snapshot(root).unwrap();
    let got: Vec<(String, u64)> = diff(&before, &after, root)
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.mtime))
        .collect();
    let want: Vec<(String, u64)> = [
        ("etc", 100),
        ("etc/.wh.motd", 0),
        ("etc/hosts", 100),
        ("usr", 100),
        ("usr/.wh.include", 0),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn whiteout_named_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let before = Tree::snapshot(tmp.path()).unwrap();
    write(tmp.path(), ".wh.etc", "");
    let after = Tree::snapshot(tmp.path()).unwrap();
    let err = diff(&before, &after, tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`.wh.etc` uses the reserved whiteout prefix `.wh.`; such names cannot be stored in an image layer"
    );
}
