//! Functional tests of `unpack`: metadata, ownership, xattrs, whiteout modes
//! (flattening lower + upper layers, overlay form, kept), compression sniffing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use cairn_layers::unpack::{unpack, unpack_auto, UnpackError, UnpackOptions, WhiteoutMode};

/// A tiny layer builder producing real tar bytes.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    }

    fn dir(mut self, path: &str, mode: u32, mtime: u64) -> Layer {
        let mut h = Self::header(tar::EntryType::Directory, mode, mtime);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Layer {
        self.file_meta(path, data, 0o644, 1_000, (0, 0))
    }

    fn file_meta(
        mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        mtime: u64,
        ids: (u64, u64),
    ) -> Layer {
        let mut h = Self::header(tar::EntryType::Regular, mode, mtime);
        h.set_uid(ids.0);
        h.set_gid(ids.1);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 1_000);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn hardlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 1_000);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn pax(mut self, records: &[(&str, &[u8])]) -> Layer {
        self.0
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn opts(mode: WhiteoutMode) -> UnpackOptions {
    UnpackOptions {
        whiteouts: mode,
        preserve_ownership: false,
        owner_xattr: None,
        donors: None,
        expect_diff_id: None,
        ..Default::default()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn applies_modes_setuid_and_mtimes_including_dirs_after_children() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Layer::new()
        .dir("./usr/", 0o755, 111)
        .dir("./usr/bin/", 0o555, 222)
        .file_meta("./usr/bin/su", b"#!", 0o4755, 333, (0, 0))
        .file_meta("./usr/bin/wall", b"w", 0o2711, 444, (0, 0))
        .dir("tmp", 0o1777, 555)
        .symlink("usr/bin/link", "su")
        .bytes();
    let stats = unpack(&tar[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!((stats.dirs, stats.files, stats.symlinks), (3, 2, 1));
    assert_eq!(stats.bytes, 3);
    let root = tmp.path();
    assert_eq!(mode_of(&root.join("usr/bin/su")), 0o4755);
    assert_eq!(mode_of(&root.join("usr/bin/wall")), 0o2711);
    assert_eq!(mode_of(&root.join("usr/bin")), 0o555);
    assert_eq!(mode_of(&root.join("tmp")), 0o1777);
    let mtime = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mtime();
    assert_eq!(mtime("usr"), 111);
    assert_eq!(mtime("usr/bin"), 222, "dir mtime must survive its children");
    assert_eq!(mtime("usr/bin/su"), 333);
    assert_eq!(mtime("tmp"), 555);
    assert_eq!(mtime("usr/bin/link"), 1_000);
    assert_eq!(
        fs::read_link(root.join("usr/bin/link")).unwrap(),
        Path::new("su")
    );
}

#[test]
fn modes_do_not_depend_on_umask_for_implicit_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Layer::new().file("a/b/c", b"x").bytes();
    let old = unsafe { libc::umask(0o077) };
    let res = unpack(&tar[..], tmp.path(), &UnpackOptions::default());
    unsafe { libc::umask(old) };
    res.unwrap();
    assert_eq!(mode_of(&tmp.path().join("a")), 0o755);
    assert_eq!(mode_of(&tmp.path().join("a/b")), 0o755);
    assert_eq!(mode_of(&tmp.path().join("a/b/c")), 0o644);
}

#[test]
fn ownership_only_when_asked() {
    let tar = Layer::new()
        .dir("home", 0o755, 1)
        .file_meta("home/f", b"x", 0o4750, 1, (1000, 1001))
        .symlink("home/l", "f")
        .bytes();
    let me = unsafe { libc::geteuid() };

    let tmp = tempfile::tempdir().unwrap();
    unpack(&tar[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::metadata(tmp.path().join("home/f")).unwrap().uid(), me);

    if me != 0 {
        return; // chown to other ids needs privilege
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = UnpackOptions {
        preserve_ownership: true,
        ..Default::default()
    };
    unpack(&tar[..], tmp.path(), &o).unwrap();
    let m = fs::metadata(tmp.path().join("home/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    // chown before chmod: setuid survives.
    assert_eq!(m.permissions().mode() & 0o7777, 0o4750);
    // lchown: the link is owned by the tar's ids (0), its target untouched.
    let l = fs::symlink_metadata(tmp.path().join("home/l")).unwrap();
    assert_eq!((l.uid(), l.gid()), (0, 0));
}

/// Single-id user namespaces: owners other than 0:0 go to an xattr, the
/// inodes stay the caller's, and a layer cannot forge the record.
#[test]
fn owner_xattr_records_instead_of_chown() {
    let name = "user.cairn.owner";
    let tar = Layer::new()
        .dir("home", 0o755, 1)
        .file_meta("home/f", b"x", 0o4750, 1, (1000, 1001))
        .file_meta("home/root", b"r", 0o644, 1, (0, 0))
        .pax(&[("SCHILY.xattr.user.cairn.owner", b"7:7")])
        .file_meta("home/forged", b"y", 0o644, 1, (0, 0))
        .symlink("home/l", "f")
        .bytes();
    let tmp = tempfile::tempdir().unwrap();
    let o = UnpackOptions {
        preserve_ownership: true,
        owner_xattr: Some(name.into()),
        ..Default::default()
    };
    let stats = unpack(&tar[..], tmp.path(), &o).unwrap();
    let me = unsafe { libc::geteuid() };
    let get = |p: &str| {
        let path = tmp.path().join(p);
        if getxattr_missing(&path, name) {
            return None;
        }
        let mut buf = [0u8; 64];
        let n = rustix_getxattr(&path, name, &mut buf);
        Some(buf[..n].to_vec())
    };
    let f = fs::metadata(tmp.path().join("home/f")).unwrap();
    assert_eq!(f.uid(), me, "no chown happened");
    assert_eq!(f.permissions().mode() & 0o7777, 0o4750);
    assert_eq!(get("home/f").as_deref(), Some(&b"1000:1001"[..]));
    assert_eq!(get("home/root"), None);
    assert_eq!(
        get("home/forged"),
        None,
        "the layer's own record is dropped"
    );
    assert!(stats.skipped_xattrs.iter().all(|s| s.path != "home/f"));
}

#[test]
fn pax_mtime_nanoseconds_and_xattr_allowlist() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Layer::new()
        .pax(&[
            ("mtime", b"1700000000.123456789"),
            ("SCHILY.xattr.user.keep", b"yes"),
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.evil", b"1"),
        ])
        .file("f", b"data")
        .bytes();
    let stats = unpack(&tar[..], tmp.path(), &UnpackOptions::default()).unwrap();
    let m = fs::metadata(tmp.path().join("f")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 123_456_789));
    let skipped: Vec<(&str, &str)> = stats
        .skipped_xattrs
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("user.overlay.opaque", "not allowlisted"),
            ("trusted.evil", "not allowlisted")
        ]
    );
    let mut buf = [0u8; 16];
    let n = rustix_getxattr(&tmp.path().join("f"), "user.keep", &mut buf);
    assert_eq!(&buf[..n], b"yes");
    assert!(getxattr_missing(
        &tmp.path().join("f"),
        "user.overlay.opaque"
    ));
}

fn rustix_getxattr(p: &Path, name: &str, buf: &mut [u8]) -> usize {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(
        r >= 0,
        "getxattr {name}: {}",
        std::io::Error::last_os_error()
    );
    r as usize
}

fn getxattr_missing(p: &Path, name: &str) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
    r < 0
}

fn lower() -> Vec<u8> {
    Layer::new()
        .dir("etc", 0o755, 1)
        .file("etc/motd", b"hi")
        .file("etc/hosts", b"h")
        .dir("etc/apk", 0o755, 1)
        .file("etc/apk/world", b"old")
        .dir("etc/apk/keys", 0o755, 1)
        .file("etc/apk/keys/k1", b"k")
        .dir("usr", 0o755, 1)
        .dir("usr/include", 0o755, 1)
        .file("usr/include/a.h", b"a")
        .bytes()
}

fn upper() -> Vec<u8> {
    // What containerd would write for: rm etc/motd; rm -rf usr/include;
    // rm -rf etc/apk; mkdir etc/apk; echo new > etc/apk/world.
    Layer::new()
        .dir("etc", 0o755, 2)
        .file(".wh.never-existed", b"")
        .file("etc/.wh.motd", b"")
        .dir("etc/apk", 0o700, 2)
        .file("etc/apk/.wh..wh..opq", b"")
        .file("etc/apk/world", b"new")
        .dir("usr", 0o755, 2)
        .file("usr/.wh.include", b"")
        .bytes()
}

#[test]
fn apply_mode_flattens_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(WhiteoutMode::Apply);
    unpack(&lower()[..], tmp.path(), &o).unwrap();
    let stats = unpack(&upper()[..], tmp.path(), &o).unwrap();
    assert_eq!(stats.whiteouts, 4);
    assert_eq!(
        names(tmp.path()),
        ["etc", "etc/apk", "etc/apk/world", "etc/hosts", "usr"]
    );
    assert_eq!(fs::read(tmp.path().join("etc/apk/world")).unwrap(), b"new");
    assert_eq!(mode_of(&tmp.path().join("etc/apk")), 0o700);
}

#[test]
fn apply_mode_opaque_marker_position_does_not_matter() {
    // Marker after the new content: the new content stays, lower content goes.
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(WhiteoutMode::Apply);
    unpack(&lower()[..], tmp.path(), &o).unwrap();
    let late = Layer::new()
        .dir("etc/apk", 0o755, 2)
        .dir("etc/apk/keys", 0o755, 2)
        .file("etc/apk/keys/k2", b"k2")
        .file("etc/apk/.wh..wh..opq", b"")
        .bytes();
    unpack(&late[..], tmp.path(), &o).unwrap();
    let apk: Vec<String> = names(&tmp.path().join("etc/apk"));
    assert_eq!(apk, ["keys", "keys/k2"]);
}

#[test]
fn apply_mode_whiteout_only_hides_lower_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(WhiteoutMode::Apply);
    let same = Layer::new()
        .file("new", b"mine")
        .file(".wh.new", b"")
        .file(".wh.missing-parent-is-fine", b"")
        .file("nodir/.wh.x", b"")
        .bytes();
    unpack(&same[..], tmp.path(), &o).unwrap();
    assert_eq!(names(tmp.path()), ["new"]);
}

#[test]
fn keep_mode_writes_whiteouts_as_files() {
    let tmp = tempfile::tempdir().unwrap();
    let stats = unpack(&upper()[..], tmp.path(), &opts(WhiteoutMode::Keep)).unwrap();
    assert_eq!(stats.whiteouts, 4);
    let wh = fs::symlink_metadata(tmp.path().join("etc/.wh.motd")).unwrap();
    assert!(wh.is_file());
    assert!(tmp.path().join("etc/apk/.wh..wh..opq").is_file());
    assert!(tmp.path().join("usr/.wh.include").is_file());
}

#[test]
fn overlay_mode_writes_char_devices_and_opaque_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let res = unpack(&upper()[..], tmp.path(), &opts(WhiteoutMode::Overlay));
    if let Err(UnpackError::OverlayWhiteoutDenied { .. }) = res {
        let msg = res.unwrap_err().to_string();
        assert!(msg.contains("mknod"), "{msg}");
        return; // unprivileged host: the error says so
    }
    res.unwrap();
    for p in ["etc/motd", "usr/include", "never-existed"] {
        let m = fs::symlink_metadata(tmp.path().join(p)).unwrap();
        assert!(m.file_type().is_char_device(), "{p}");
        assert_eq!(m.rdev(), 0, "{p}");
    }
    assert!(!tmp.path().join("etc/apk/.wh..wh..opq").exists());
    let mut buf = [0u8; 4];
    let n = rustix_getxattr(&tmp.path().join("etc/apk"), "user.overlay.opaque", &mut buf);
    assert_eq!(&buf[..n], b"y");
    assert_eq!(fs::read(tmp.path().join("etc/apk/world")).unwrap(), b"new");
}

#[test]
fn hardlinks_share_the_inode() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Layer::new()
        .file("bin/busybox", b"bb")
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("./bin/ls", "./bin/busybox")
        .bytes();
    let stats = unpack(&tar[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(stats.hardlinks, 2);
    let a = fs::metadata(tmp.path().join("bin/busybox")).unwrap();
    let b = fs::metadata(tmp.path().join("bin/ls")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
}

#[test]
fn replaces_existing_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Layer::new()
        .dir("d", 0o755, 1)
        .file("d/child", b"c")
        .file("f", b"f")
        .file("s", b"plain")
        .bytes();
    unpack(&first[..], tmp.path(), &UnpackOptions::default()).unwrap();
    let second = Layer::new()
        .file("d", b"now a file")
        .dir("f", 0o755, 1)
        .file("f/x", b"x")
        .symlink("s", "f/x")
        .bytes();
    unpack(&second[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("d")).unwrap(), b"now a file");
    assert!(tmp.path().join("f").is_dir());
    assert_eq!(
        fs::read_link(tmp.path().join("s")).unwrap(),
        Path::new("f/x")
    );
}

#[test]
fn parent_that_is_a_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Layer::new().file("a", b"x").file("a/b", b"y").bytes();
    let err = unpack(&tar[..], tmp.path(), &UnpackOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar entry `a/b`: parent `a` is not a directory"
    );
}

#[test]
fn gzip_and_zstd_are_sniffed() {
    let tar = Layer::new().file("hello", b"world").bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    unpack_auto(&gz[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("hello")).unwrap(), b"world");

    let tmp = tempfile::tempdir().unwrap();
    unpack_auto(&tar[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("hello")).unwrap(), b"world");

    let tmp = tempfile::tempdir().unwrap();
    let zstd = zstd::stream::encode_all(&tar[..], 3).unwrap();
    unpack_auto(&zstd[..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("hello")).unwrap(), b"world");

    // A corrupt gzip stream is an error, not a panic.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    assert!(unpack_auto(&bad[..], tmp.path(), &UnpackOptions::default()).is_err());
}

#[test]
fn missing_dest_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Layer::new().file("x", b"").bytes();
    let err = unpack(
        &tar[..],
        &tmp.path().join("nope"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("cannot open extraction root"));
}

/// A donor that qualifies is moved in (same inode, one link, gone from where
/// it was) and becomes the entry: the tar's mode, times and xattrs, its own
/// extra xattrs gone. One with another link, or of another size, is not
/// touched: the data is written.
#[test]
fn donors_are_moved_in_when_they_qualify_and_written_around_when_not() {
    use std::collections::HashMap;
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let (donors_dir, dest) = (tmp.path().join("upper"), tmp.path().join("dest"));
    fs::create_dir_all(&donors_dir).unwrap();
    fs::create_dir(&dest).unwrap();
    let donor = |name: &str, data: &[u8]| {
        let p = donors_dir.join(name);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    };
    let a = donor("a", b"alpha");
    let xattr_ok =
        rustix::fs::setxattr(&a, "user.junk", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    let shared = donor("shared", b"bravo");
    fs::hard_link(&shared, donors_dir.join("other-name")).unwrap();
    let short = donor("short", b"char");
    let donor_meta = fs::metadata(&a).unwrap();
    let tar = Layer::new()
        .dir("app", 0o755, 1_000)
        .file_meta("app/a", b"alpha", 0o755, 1_234, (0, 0))
        .file("app/b", b"bravo")
        .file("app/c", b"charlie")
        .file("app/d", b"delta")
        .bytes();
    let donors: HashMap<String, std::path::PathBuf> = [
        ("app/a", a.clone()),
        ("app/b", shared.clone()),
        ("app/c", short.clone()),
        ("app/d", donors_dir.join("missing")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let o = UnpackOptions {
        donors: Some(Arc::new(donors)),
        ..opts(WhiteoutMode::Overlay)
    };
    let stats = unpack(&tar[..], &dest, &o).unwrap();
    assert_eq!((stats.files, stats.donated), (4, 1), "{stats:?}");

    let got = fs::metadata(dest.join("app/a")).unwrap();
    assert_eq!(
        got.ino(),
        donor_meta.ino(),
        "app/a is not the donor's inode"
    );
    assert_eq!(got.nlink(), 1, "linked, not moved");
    assert!(!a.exists(), "the donor is still where it was");
    assert_eq!(got.mode() & 0o7777, 0o755);
    assert_eq!(got.mtime(), 1_234);
    assert_eq!(fs::read(dest.join("app/a")).unwrap(), b"alpha");
    if xattr_ok {
        assert!(getxattr_missing(&dest.join("app/a"), "user.junk"));
    }
    for (name, data, donor) in [("b", &b"bravo"[..], &shared), ("c", b"charlie", &short)] {
        let got = fs::metadata(dest.join("app").join(name)).unwrap();
        let d = fs::metadata(donor).unwrap();
        assert_ne!(got.ino(), d.ino(), "app/{name} was taken");
        assert_eq!(d.mode() & 0o7777, 0o600, "donor of app/{name} was changed");
        assert_eq!(fs::read(dest.join("app").join(name)).unwrap(), data);
    }
    assert_eq!(fs::read(dest.join("app/d")).unwrap(), b"delta");
}

/// The diff_id is hashed while unpacking, over the whole uncompressed
/// stream (trailing zero blocks and padding included, gzip or not), and a
/// claim the bytes do not meet refuses the layer.
#[test]
fn diff_id_is_hashed_while_unpacking_and_checked() {
    let mut tar = Layer::new().file("etc/os-release", b"honest").bytes();
    // Padding past the end-of-archive blocks is part of the diff_id too.
    tar.extend_from_slice(&[0u8; 4096]);
    let want = cairn_layers::DiffId(cairn_layers::Digest::of(&tar));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    for input in [&tar[..], &gz[..]] {
        let tmp = tempfile::tempdir().unwrap();
        let got = unpack_auto(input, tmp.path(), &opts(WhiteoutMode::Apply)).unwrap();
        assert_eq!(got.diff_id.as_ref(), Some(&want));
        let tmp = tempfile::tempdir().unwrap();
        let checked = UnpackOptions {
            expect_diff_id: Some(want.clone()),
            ..opts(WhiteoutMode::Apply)
        };
        unpack_auto(input, tmp.path(), &checked).unwrap();
    }
    // A layer claiming the honest diff_id but holding more files.
    let spoof = Layer::new()
        .file("etc/os-release", b"honest")
        .file("POISONED", b"planted")
        .bytes();
    let tmp = tempfile::tempdir().unwrap();
    let claimed = UnpackOptions {
        expect_diff_id: Some(want.clone()),
        ..opts(WhiteoutMode::Apply)
    };
    let err = unpack_auto(&spoof[..], tmp.path(), &claimed).unwrap_err();
    assert!(
        matches!(&err, UnpackError::DiffIdMismatch { expected, .. } if *expected == want),
        "{err}"
    );
    assert!(err.to_string().contains(&want.to_string()), "{err}");
}

/// A caller that hashes the raw bytes itself (a download checked at its
/// end) spares the unpack a second hash of a plain tar, whose diff_id is
/// then the caller's digest; a claim naming another diff_id is refused
/// before anything is written; a compressed stream is hashed all the same.
#[test]
fn a_plain_tar_the_caller_hashes_is_not_hashed_again() {
    use cairn_layers::unpack::HashedBy;
    let tar = Layer::new().file("etc/os-release", b"honest").bytes();
    let digest = cairn_layers::Digest::of(&tar);
    let by_caller = |d: &cairn_layers::Digest, expect| UnpackOptions {
        expect_diff_id: Some(cairn_layers::DiffId(expect)),
        hashed_by: HashedBy::Caller {
            digest: Some(d.clone()),
        },
        ..opts(WhiteoutMode::Apply)
    };
    // The caller's digest stands for the bytes (it checks them itself).
    let other = cairn_layers::Digest::of(b"other");
    let tmp = tempfile::tempdir().unwrap();
    let got = unpack_auto(&tar[..], tmp.path(), &by_caller(&other, other.clone())).unwrap();
    assert_eq!(got.diff_id, Some(cairn_layers::DiffId(other.clone())));
    // A config naming another diff_id than the caller's digest: refused,
    // nothing written.
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_auto(&tar[..], tmp.path(), &by_caller(&digest, other.clone())).unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
    assert!(names(tmp.path()).is_empty());
    // gzip: the caller hashed the compressed bytes, the diff_id is hashed here.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let gz_digest = cairn_layers::Digest::of(&gz);
    let tmp = tempfile::tempdir().unwrap();
    let got = unpack_auto(&gz[..], tmp.path(), &by_caller(&gz_digest, digest.clone())).unwrap();
    assert_eq!(got.diff_id, Some(cairn_layers::DiffId(digest.clone())));
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_auto(&gz[..], tmp.path(), &by_caller(&gz_digest, other)).unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
}

/// A compressed layer is decoded on a second thread, chunk by chunk: many
/// chunks arrive whole and hashed, a refusal early in a long stream ends
/// the unpack (the decoder stops instead of blocking on a full queue), and
/// a stream cut short is an error.
#[test]
fn long_gzip_streams_decode_ahead() {
    // 6 MB once decoded (what is cut into chunks): dozens of them.
    let big: Vec<Vec<u8>> = (0..6u8)
        .map(|i| (0..1u32 << 20).map(|j| (j % 251) as u8 ^ i).collect())
        .collect();
    let gzip = |tar: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        gz.finish().unwrap()
    };
    let mut layer = Layer::new();
    for (i, data) in big.iter().enumerate() {
        layer = layer.file(&format!("blob/{i}"), data);
    }
    let tar = layer.bytes();
    let gz = gzip(&tar);
    let tmp = tempfile::tempdir().unwrap();
    let checked = UnpackOptions {
        expect_diff_id: Some(cairn_layers::DiffId(cairn_layers::Digest::of(&tar))),
        ..opts(WhiteoutMode::Overlay)
    };
    let stats = unpack_auto(&gz[..], tmp.path(), &checked).unwrap();
    assert_eq!(stats.bytes, 6 << 20);
    for (i, data) in big.iter().enumerate() {
        assert!(fs::read(tmp.path().join(format!("blob/{i}"))).unwrap() == *data);
    }

    // A link out of the layer first, then megabytes the unpack never reads.
    let mut evil = Layer::new().symlink("out", "/etc");
    for (i, data) in big.iter().enumerate() {
        evil = evil.file(&format!("out/{i}"), data);
    }
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_auto(&gzip(&evil.bytes())[..], tmp.path(), &checked).unwrap_err();
    assert!(err.to_string().contains("is a symlink"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    // (Cut inside a file: reading its data fails where it is written.)
    let err = unpack_auto(&gz[..gz.len() / 2], tmp.path(), &checked).unwrap_err();
    assert!(err.to_string().contains("blob/"), "{err}");
}
