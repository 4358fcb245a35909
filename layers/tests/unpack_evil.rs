//! The hostile tar corpus (`testdata/tars/evil/`, made by
//! `testdata/tars/make_evil.py`): one test per file. Every test extracts into
//! `<tmp>/dest` next to `<tmp>/sentinel` and checks that the sentinel stays
//! byte-identical (and that absolute targets like `/tmp/...` and
//! `/etc/passwd` are untouched).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cairn_layers::unpack::{
    unpack, unpack_auto, Refusal, UnpackError, UnpackOptions, UnpackStats, WhiteoutMode,
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tars/evil")
}

/// Everything observable about a directory tree (not following symlinks).
fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let what = if m.file_type().is_symlink() {
            format!("link {}", fs::read_link(e.path()).unwrap().display())
        } else if m.is_file() {
            format!("file {:?}", fs::read(e.path()).unwrap())
        } else {
            "dir".to_string()
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} mtime={}.{} ino={} nlink={}",
                m.mode(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino(),
                m.nlink()
            ),
        );
    }
    out
}

/// What a tree holds (paths, kinds, contents, modes), not when or where;
/// what is too deep to read by path is only counted.
fn shape(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let Ok(e) = e else {
                return "unreadable".to_owned();
            };
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let Ok(m) = e.path().symlink_metadata() else {
                return format!("{rel}: unreadable");
            };
            let what = if m.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(e.path()).ok())
            } else if m.is_file() {
                format!("file {:?}", fs::read(e.path()).ok())
            } else {
                format!("{:?}", m.file_type())
            };
            format!("{rel}: {what} mode={:o}", m.mode())
        })
        .collect()
}

/// A copy of `from`'s tree (directories, files, symlinks) at `to`: a
/// destination as a test planted it.
fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        let t = e.file_type();
        if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else if t.is_dir() {
            fs::create_dir(dest).unwrap();
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

struct Sandbox {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    sentinel: PathBuf,
    before: BTreeMap<String, String>,
    passwd: Vec<u8>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let sentinel = tmp.path().join("sentinel");
        fs::create_dir(&dest).unwrap();
        fs::create_dir_all(sentinel.join("sub")).unwrap();
        fs::write(sentinel.join("victim"), "victim\n").unwrap();
        fs::write(sentinel.join("sub/inner"), "inner\n").unwrap();
        std::os::unix::fs::symlink("victim", sentinel.join("link")).unwrap();
        let before = fingerprint(&sentinel);
        Sandbox {
            tmp,
            dest,
            sentinel,
            before,
            passwd: fs::read("/etc/passwd").unwrap(),
        }
    }

    fn run(&self, file: &str, mode: WhiteoutMode) -> Result<UnpackStats, UnpackError> {
        let bytes = fs::read(corpus_dir().join(file)).unwrap();
        let opts = UnpackOptions {
            whiteouts: mode,
            preserve_ownership: false,
            owner_xattr: None,
            donors: None,
            expect_diff_id: None,
            ..Default::default()
        };
        // The same tar gzipped goes through `unpack_auto`'s decoding thread:
        // refused, failed or written alike.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        let gz = gz.finish().unwrap();
        // Left for the temporary directory's removal, as `dest` is.
        let dest = tempfile::Builder::new()
            .prefix("dest-gzip")
            .tempdir_in(self.tmp.path())
            .unwrap()
            .keep();
        copy_tree(&self.dest, &dest);
        let gzipped = unpack_auto(&gz[..], &dest, &opts);
        let plain = unpack(&bytes[..], &self.dest, &opts);
        let outcome = |r: &Result<UnpackStats, UnpackError>| match r {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(outcome(&gzipped), outcome(&plain), "{file}");
        assert_eq!(shape(&dest), shape(&self.dest), "{file}");
        plain
    }

    fn assert_contained(&self) {
        assert_eq!(
            fingerprint(&self.sentinel),
            self.before,
            "sentinel next to dest changed"
        );
        assert_eq!(fs::read("/etc/passwd").unwrap(), self.passwd);
        for p in ["/tmp/cairn-evil-absolute", "/tmp/cairn-evil-symlink-abs"] {
            assert!(fs::symlink_metadata(p).is_err(), "{p} was created");
        }
    }
}

/// Extract `file` in every whiteout mode; each run must leave the outside alone.
fn each_mode(file: &str, check: impl Fn(&Sandbox, Result<UnpackStats, UnpackError>)) {
    for mode in [
        WhiteoutMode::Apply,
        WhiteoutMode::Keep,
        WhiteoutMode::Overlay,
    ] {
        let sb = Sandbox::new();
        let res = sb.run(file, mode);
        sb.assert_contained();
        check(&sb, res);
    }
}

fn refusal(res: Result<UnpackStats, UnpackError>) -> (String, Refusal) {
    match res {
        Err(UnpackError::Refused { path, reason }) => (path, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assert_message_names(res: &Result<UnpackStats, UnpackError>, needle: &str) {
    let err = res.as_ref().expect_err("expected an error");
    let msg = err.to_string();
    assert!(
        msg.contains(needle),
        "message {msg:?} should name {needle:?}"
    );
}

#[test]
fn dotdot() {
    each_mode("dotdot.tar", |_, res| {
        assert_message_names(&res, "../sentinel/pwned");
        assert_eq!(refusal(res).1, Refusal::ParentComponent);
    });
}

#[test]
fn dotdot_nested() {
    each_mode("dotdot-nested.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ParentComponent)
    });
}

#[test]
fn absolute() {
    each_mode("absolute.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::Absolute)
    });
}

#[test]
fn symlink_abs_then_write() {
    each_mode("symlink-abs-then-write.tar", |sb, res| {
        let (path, reason) = refusal(res);
        assert_eq!(path, "a/cairn-evil-symlink-abs");
        assert_eq!(reason, Refusal::ThroughSymlink("a".into()));
        // The symlink itself was created verbatim.
        assert_eq!(fs::read_link(sb.dest.join("a")).unwrap(), Path::new("/tmp"));
    });
}

#[test]
fn symlink_rel_then_write() {
    each_mode("symlink-rel-then-write.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ThroughSymlink("a".into()))
    });
}

#[test]
fn symlink_parent_then_write() {
    each_mode("symlink-parent-then-write.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ThroughSymlink("p".into()))
    });
}

#[test]
fn symlink_chain_then_write() {
    each_mode("symlink-chain-then-write.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ThroughSymlink("a".into()))
    });
}

#[test]
fn symlink_then_dir() {
    each_mode("symlink-then-dir.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ThroughSymlink("a".into()))
    });
}

#[test]
fn symlink_then_overwrite() {
    each_mode("symlink-then-overwrite.tar", |sb, res| {
        res.unwrap();
        let m = fs::symlink_metadata(sb.dest.join("x")).unwrap();
        assert!(m.is_file());
        assert_eq!(fs::read(sb.dest.join("x")).unwrap(), b"pwned\n");
    });
}

#[test]
fn hardlink_etc_passwd() {
    each_mode("hardlink-etc-passwd.tar", |_, res| {
        assert_eq!(
            refusal(res).1,
            Refusal::HardlinkAbsolute("/etc/passwd".into())
        )
    });
}

#[test]
fn hardlink_dotdot() {
    each_mode("hardlink-dotdot.tar", |_, res| {
        assert_eq!(
            refusal(res).1,
            Refusal::HardlinkEscape("../sentinel/victim".into())
        )
    });
}

#[test]
fn hardlink_through_symlink() {
    each_mode("hardlink-through-symlink.tar", |_, res| {
        let (path, reason) = refusal(res);
        assert_eq!(path, "h");
        assert_eq!(reason, Refusal::ThroughSymlink("s".into()));
    });
}

#[test]
fn hardlink_to_dir() {
    each_mode("hardlink-to-dir.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::HardlinkToDir("dir".into()))
    });
}

#[test]
fn hardlink_missing() {
    each_mode("hardlink-missing.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::HardlinkMissing("nope".into()))
    });
}

#[test]
fn hardlink_then_overwrite() {
    each_mode("hardlink-then-overwrite.tar", |sb, res| {
        let stats = res.unwrap();
        assert_eq!((stats.files, stats.hardlinks), (2, 1));
        assert_eq!(fs::read(sb.dest.join("orig")).unwrap(), b"original\n");
        assert_eq!(fs::read(sb.dest.join("h")).unwrap(), b"replaced\n");
    });
}

#[test]
fn whiteout_dotdot() {
    each_mode("whiteout-dotdot.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ParentComponent)
    });
}

#[test]
fn whiteout_dotdot_inner() {
    each_mode("whiteout-dotdot-inner.tar", |_, res| {
        assert_eq!(refusal(res).1, Refusal::ParentComponent)
    });
}

fn assert_bad_whiteout(res: Result<UnpackStats, UnpackError>) {
    assert!(
        matches!(res, Err(UnpackError::Whiteout { .. })),
        "expected an invalid-whiteout error, got {res:?}"
    );
}

#[test]
fn whiteout_of_dot() {
    each_mode("whiteout-of-dot.tar", |sb, res| {
        assert_bad_whiteout(res);
        assert!(sb.dest.is_dir());
    });
}

#[test]
fn whiteout_of_dotdot() {
    each_mode("whiteout-of-dotdot.tar", |_, res| assert_bad_whiteout(res));
}

#[test]
fn whiteout_empty() {
    each_mode("whiteout-empty.tar", |_, res| assert_bad_whiteout(res));
}

#[test]
fn whiteout_reserved() {
    each_mode("whiteout-reserved.tar", |_, res| assert_bad_whiteout(res));
}

#[test]
fn whiteout_through_symlink() {
    for mode in [WhiteoutMode::Apply, WhiteoutMode::Overlay] {
        let sb = Sandbox::new();
        let res = sb.run("whiteout-through-symlink.tar", mode);
        sb.assert_contained();
        assert_eq!(refusal(res).1, Refusal::ThroughSymlink("s".into()));
    }
}

#[test]
fn opaque_through_symlink() {
    for mode in [WhiteoutMode::Apply, WhiteoutMode::Overlay] {
        let sb = Sandbox::new();
        let res = sb.run("opaque-through-symlink.tar", mode);
        sb.assert_contained();
        assert_eq!(refusal(res).1, Refusal::ThroughSymlink("s".into()));
    }
}

#[test]
fn whiteout_symlink() {
    let sb = Sandbox::new();
    let stats = sb.run("whiteout-symlink.tar", WhiteoutMode::Apply).unwrap();
    sb.assert_contained();
    assert_eq!(stats.whiteouts, 1);
    // Same-layer rule: the whiteout does not hide the link this tar created.
    assert!(fs::symlink_metadata(sb.dest.join("s")).is_ok());

    // Planted by a lower layer: the link goes, its target stays.
    let sb = Sandbox::new();
    std::os::unix::fs::symlink("../sentinel", sb.dest.join("s")).unwrap();
    let bytes = fs::read(corpus_dir().join("whiteout-symlink.tar")).unwrap();
    // Only the whiteout entry: skip the symlink header by unpacking a
    // one-entry tar built from the corpus bytes' second member.
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut b = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_str() == Some(".wh.s") {
            let h = e.header().clone();
            b.append(&h, &[][..]).unwrap();
        }
    }
    let only_whiteout = b.into_inner().unwrap();
    unpack(&only_whiteout[..], &sb.dest, &UnpackOptions::default()).unwrap();
    sb.assert_contained();
    assert!(fs::symlink_metadata(sb.dest.join("s")).is_err());
}

#[test]
fn preexisting_symlink() {
    for mode in [WhiteoutMode::Apply, WhiteoutMode::Overlay] {
        let sb = Sandbox::new();
        std::os::unix::fs::symlink("../sentinel", sb.dest.join("etc")).unwrap();
        let res = sb.run("preexisting-symlink.tar", mode);
        sb.assert_contained();
        let (path, reason) = refusal(res);
        assert_eq!(path, "etc/passwd");
        assert_eq!(reason, Refusal::ThroughSymlink("etc".into()));
    }
}

#[test]
fn preexisting_symlink_dir_entry() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink("../sentinel", sb.dest.join("etc")).unwrap();
    sb.run("preexisting-symlink-dir-entry.tar", WhiteoutMode::Apply)
        .unwrap();
    sb.assert_contained();
    // The directory entry replaced the planted symlink.
    assert!(fs::symlink_metadata(sb.dest.join("etc")).unwrap().is_dir());
    assert_eq!(fs::read(sb.dest.join("etc/passwd")).unwrap(), b"ok\n");
}

#[test]
fn huge_names() {
    each_mode("huge-names.tar", |sb, res| {
        let stats = res.unwrap();
        assert_eq!((stats.files, stats.symlinks), (2, 1));
        let deep = vec!["d".repeat(100); 100].join("/");
        // Long host paths: read through a relative walk to stay under PATH_MAX.
        let mut dir = sb.dest.clone();
        for c in deep.split('/').take(30) {
            dir.push(c);
        }
        assert!(dir.is_dir());
        let target = fs::read_link(sb.dest.join("longlink")).unwrap();
        assert_eq!(target.as_os_str().len(), 40 * 101);
        assert_eq!(
            fs::read(sb.dest.join("x".repeat(255))).unwrap(),
            b"max component\n"
        );
    });
}

#[test]
fn huge_names_gnu() {
    each_mode("huge-names-gnu.tar", |sb, res| {
        res.unwrap();
        let p = sb
            .dest
            .join("g")
            .join("n".repeat(200))
            .join("m".repeat(200));
        assert_eq!(fs::read(p).unwrap(), b"gnu\n");
    });
}

#[test]
fn component_too_long() {
    each_mode("component-too-long.tar", |_, res| {
        match &res {
            Err(UnpackError::Io { path, source, .. }) => {
                assert_eq!(path.len(), 300);
                assert_eq!(source.raw_os_error(), Some(libc::ENAMETOOLONG));
            }
            other => panic!("expected ENAMETOOLONG, got {other:?}"),
        }
        assert_message_names(&res, &"y".repeat(300));
    });
}

#[test]
fn too_deep() {
    each_mode("too-deep.tar", |sb, res| {
        assert_eq!(refusal(res).1, Refusal::TooDeep(1024));
        assert!(
            !sb.dest.join("a").exists(),
            "nothing created before refusing"
        );
    });
}

#[test]
fn device_node() {
    each_mode("device-node.tar", |sb, res| {
        let stats = res.unwrap();
        let fifo = fs::symlink_metadata(sb.dest.join("fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.permissions().mode() & 0o7777, 0o644);
        if stats.skipped_devices.is_empty() {
            // Privileged: real nodes with the right numbers.
            assert_eq!(stats.special, 3);
            let null = fs::symlink_metadata(sb.dest.join("null")).unwrap();
            assert!(null.file_type().is_char_device());
            assert_eq!(null.rdev(), libc::makedev(1, 3));
            assert_eq!(null.permissions().mode() & 0o7777, 0o666);
            let sda = fs::symlink_metadata(sb.dest.join("sda")).unwrap();
            assert!(sda.file_type().is_block_device());
            assert_eq!(sda.rdev(), libc::makedev(8, 0));
        } else {
            assert_eq!(stats.skipped_devices, vec!["null", "sda"]);
            assert_eq!(stats.special, 1);
        }
    });
}

#[test]
fn truncated_header() {
    each_mode("truncated-header.tar", |_, res| {
        assert!(matches!(res, Err(UnpackError::Read { .. })), "got {res:?}");
    });
}

#[test]
fn truncated_data() {
    each_mode("truncated-data.tar", |_, res| {
        let (path, reason) = refusal(res);
        assert_eq!(path, "a/one");
        assert_eq!(
            reason,
            Refusal::TruncatedData {
                expected: 3000,
                got: 1000
            }
        );
    });
}

#[test]
fn truncated_boundary() {
    each_mode("truncated-boundary.tar", |_, res| match res {
        Err(UnpackError::Truncated { after }) => assert_eq!(after, "a/two"),
        other => panic!("expected Truncated, got {other:?}"),
    });
}

#[test]
fn bad_checksum() {
    each_mode("bad-checksum.tar", |_, res| {
        let err = res.unwrap_err();
        assert!(matches!(err, UnpackError::Read { .. }));
        let chain = format!("{:?}", std::error::Error::source(&err));
        assert!(chain.contains("checksum"), "{chain}");
    });
}

#[test]
fn bad_mode() {
    each_mode("bad-mode.tar", |sb, res| {
        let (path, reason) = refusal(res);
        assert_eq!((path.as_str(), reason), ("m", Refusal::BadHeader("mode")));
        assert!(!sb.dest.join("m").exists());
    });
}

#[test]
fn file_then_dir() {
    each_mode("file-then-dir.tar", |sb, res| {
        res.unwrap();
        assert!(sb.dest.join("x").is_dir());
        assert_eq!(fs::read(sb.dest.join("x/y")).unwrap(), b"child\n");
    });
}

#[test]
fn dir_then_file() {
    each_mode("dir-then-file.tar", |sb, res| {
        res.unwrap();
        assert_eq!(fs::read(sb.dest.join("d")).unwrap(), b"now a file\n");
    });
}

#[test]
fn root_as_symlink() {
    each_mode("root-as-symlink.tar", |sb, res| {
        assert_eq!(refusal(res).1, Refusal::RootNotDir);
        assert!(fs::symlink_metadata(&sb.dest).unwrap().is_dir());
    });
}

/// Truncating any tar of the corpus at 512-byte boundaries and inside
/// blocks gives an error or a result, never a panic or an escape. Each
/// file's cuts go into one shared dest, which also exercises extracting
/// over the debris of earlier attempts.
#[test]
fn every_prefix_of_every_tar_is_handled() {
    let sb = Sandbox::new();
    let mut n = 0;
    for (i, entry) in fs::read_dir(corpus_dir()).unwrap().enumerate() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        let dest = sb.dest.join(format!("t{i}"));
        fs::create_dir(&dest).unwrap();
        let blocks = bytes.len() / 512;
        let cuts = (0..=blocks).flat_map(|b| [b * 512, b * 512 + 1, b * 512 + 300]);
        for cut in cuts.filter(|&c| c <= bytes.len()) {
            n += 1;
            let _ = unpack_auto(&bytes[..cut], &dest, &UnpackOptions::default());
        }
    }
    sb.assert_contained();
    assert!(n > 500, "{n}");
}

/// Deterministic byte flips over every corpus tar (a poor man's fuzzer):
/// errors are fine, panics and escapes are not.
#[test]
fn random_mutations_never_panic_or_escape() {
    let sb = Sandbox::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut runs = 0;
    for (i, file) in files.iter().enumerate() {
        let original = fs::read(file).unwrap();
        let dest = sb.dest.join(format!("m{i}"));
        fs::create_dir(&dest).unwrap();
        for _ in 0..15 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                // Bias towards headers, where the interesting fields are.
                let limit = if next() % 4 == 0 {
                    bytes.len()
                } else {
                    bytes.len().min(2048)
                };
                let at = (next() as usize) % limit.max(1);
                if let Some(b) = bytes.get_mut(at) {
                    *b = next() as u8;
                }
            }
            runs += 1;
            let _ = unpack(&bytes[..], &dest, &UnpackOptions::default());
        }
    }
    sb.assert_contained();
    assert!(runs >= 500, "{runs}");
}

#[test]
fn every_corpus_file_has_a_test() {
    let covered = [
        "absolute",
        "bad-checksum",
        "bad-mode",
        "component-too-long",
        "device-node",
        "dir-then-file",
        "dotdot",
        "dotdot-nested",
        "file-then-dir",
        "hardlink-dotdot",
        "hardlink-etc-passwd",
        "hardlink-missing",
        "hardlink-then-overwrite",
        "hardlink-through-symlink",
        "hardlink-to-dir",
        "huge-names",
        "huge-names-gnu",
        "opaque-through-symlink",
        "preexisting-symlink",
        "preexisting-symlink-dir-entry",
        "root-as-symlink",
        "symlink-abs-then-write",
        "symlink-chain-then-write",
        "symlink-parent-then-write",
        "symlink-rel-then-write",
        "symlink-then-dir",
        "symlink-then-overwrite",
        "too-deep",
        "truncated-boundary",
        "truncated-data",
        "truncated-header",
        "whiteout-dotdot",
        "whiteout-dotdot-inner",
        "whiteout-empty",
        "whiteout-of-dot",
        "whiteout-of-dotdot",
        "whiteout-reserved",
        "whiteout-symlink",
        "whiteout-through-symlink",
    ];
    let mut files: Vec<String> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .map(|n| n.trim_end_matches(".tar").to_owned())
        .collect();
    files.sort();
    assert_eq!(files, covered);
}
