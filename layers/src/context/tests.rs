use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn paths(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            if e.is_dir() {
                format!("{}/", e.path)
            } else {
                e.path.clone()
            }
        })
        .collect()
}

fn walk(root: &Path) -> Vec<Entry> {
    BuildContext::open(root, None).unwrap().walk().unwrap()
}

fn find<'a>(entries: &'a [Entry], path: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in {:?}", paths(entries)))
}

#[test]
fn order_is_a_full_byte_wise_sort() {
    let t = tempfile::tempdir().unwrap();
    for f in ["a/b", "a-b", "a.b", "a0", "a/c/d", "B", "é"] {
        write(t.path(), f, "x");
    }
    assert_eq!(
        paths(&walk(t.path())),
        ["B", "a/", "a-b", "a.b", "a/b", "a/c/", "a/c/d", "a0", "é"]
    );
}

#[test]
fn symlinks_are_entries_never_followed() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "sub/f", "x");
    symlink("/etc", t.path().join("etc-link")).unwrap();
    symlink("sub", t.path().join("sub-link")).unwrap();
    symlink("../../outside", t.path().join("dangling")).unwrap();
    let entries = walk(t.path());
    assert_eq!(
        paths(&entries),
        ["dangling", "etc-link", "sub/", "sub-link", "sub/f"]
    );
    let e = find(&entries, "etc-link");
    assert_eq!(
        e.kind,
        EntryKind::Symlink {
            target: "/etc".into()
        }
    );
    assert_eq!(e.mode, 0o777);
    assert_eq!(
        find(&entries, "dangling").kind,
        EntryKind::Symlink {
            target: "../../outside".into()
        }
    );
}

#[test]
fn a_symlinked_root_is_resolved_once() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "real/f", "x");
    symlink("real", t.path().join("link")).unwrap();
    let ctx = BuildContext::open(&t.path().join("link"), None).unwrap();
    assert_eq!(ctx.root(), fs::canonicalize(t.path().join("real")).unwrap());
    let entries = ctx.walk().unwrap();
    assert_eq!(paths(&entries), ["f"]);
    match &entries[0].kind {
        EntryKind::File {
            source: Source::Path(p),
            size,
        } => {
            assert_eq!(*size, 1);
            assert_eq!(p, &ctx.root().join("f"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hardlinks_point_at_the_first_kept_path_in_sort_order() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "z", "data");
    fs::hard_link(t.path().join("z"), t.path().join("a")).unwrap();
    fs::hard_link(t.path().join("z"), t.path().join("m")).unwrap();
    let entries = walk(t.path());
    assert!(matches!(
        find(&entries, "a").kind,
        EntryKind::File { size: 4, .. }
    ));
    for later in ["m", "z"] {
        assert_eq!(
            find(&entries, later).kind,
            EntryKind::Hardlink { target: "a".into() }
        );
    }
    // With the first one excluded, the next kept path holds the data.
    write(t.path(), ".dockerignore", "a\n");
    let entries = walk(t.path());
    assert!(matches!(find(&entries, "m").kind, EntryKind::File { .. }));
    assert_eq!(
        find(&entries, "z").kind,
        EntryKind::Hardlink { target: "m".into() }
    );
}

#[test]
fn modes_follow_the_git_rule_and_owner_and_xattrs_are_dropped() {
    let t = tempfile::tempdir().unwrap();
    let set = |rel: &str, mode: u32| {
        fs::set_permissions(t.path().join(rel), fs::Permissions::from_mode(mode)).unwrap()
    };
    for (f, mode) in [
        ("plain", 0o600),
        ("exec", 0o700),
        ("suid", 0o4755),
        ("grpx", 0o610),
    ] {
        write(t.path(), f, "x");
        set(f, mode);
    }
    fs::create_dir(t.path().join("private")).unwrap();
    set("private", 0o1700);
    let fifo = std::ffi::CString::new(t.path().join("fifo").into_os_string().into_encoded_bytes())
        .unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(t.path().join("sock")).unwrap();
    let entries = walk(t.path());
    assert_eq!(
        paths(&entries),
        ["exec", "fifo", "grpx", "plain", "private/", "suid"]
    );
    let mode = |p: &str| find(&entries, p).mode;
    assert_eq!(mode("plain"), 0o644);
    assert_eq!(mode("exec"), 0o755);
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("grpx"), 0o644);
    assert_eq!(mode("private"), 0o755);
    assert_eq!(mode("fifo"), 0o644);
    assert_eq!(find(&entries, "fifo").kind, EntryKind::Fifo);
    for e in &entries {
        assert_eq!((e.uid, e.gid), (0, 0));
        assert!(e.xattrs.is_empty());
    }
}

#[test]
fn devices_keep_their_numbers() {
    let t = tempfile::tempdir().unwrap();
    let p = std::ffi::CString::new(t.path().join("null").into_os_string().into_encoded_bytes())
        .unwrap();
    // SAFETY: valid NUL-terminated path; mknod of a char device needs CAP_MKNOD.
    let rc = unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if rc != 0 {
        eprintln!(
            "skipped: mknod needs CAP_MKNOD ({})",
            io::Error::last_os_error()
        );
        return;
    }
    let entries = walk(t.path());
    assert_eq!(
        find(&entries, "null").kind,
        EntryKind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(find(&entries, "null").mode, 0o644);
}

#[test]
fn mtime_is_the_files_own() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "f", "x");
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    fs::File::options()
        .write(true)
        .open(t.path().join("f"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    assert_eq!(find(&walk(t.path()), "f").mtime, 1_234_567_890);
}

#[test]
fn excluded_parents_of_kept_paths_are_still_sent() {
    let t = tempfile::tempdir().unwrap();
    for f in ["foo/bar1", "foo/bar2", "foo2", "bar"] {
        write(t.path(), f, "x");
    }
    write(t.path(), ".dockerignore", "foo*\n!foo/bar2\n");
    assert_eq!(
        paths(&walk(t.path())),
        [".dockerignore", "bar", "foo/", "foo/bar2"]
    );
}

#[test]
fn glob_exceptions_reach_into_excluded_dirs() {
    let t = tempfile::tempdir().unwrap();
    for f in ["sub/a.go", "sub/b.txt", "deep/x/y.go", "top.go", "top.txt"] {
        write(t.path(), f, "x");
    }
    write(t.path(), ".dockerignore", "*\n!**/*.go\n");
    assert_eq!(
        paths(&walk(t.path())),
        [
            "deep/",
            "deep/x/",
            "deep/x/y.go",
            "sub/",
            "sub/a.go",
            "top.go"
        ]
    );
}

#[test]
fn excluded_dirs_without_reachable_exceptions_are_not_entered() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "keep", "x");
    fs::create_dir(t.path().join("node_modules")).unwrap();
    // A tree too deep to walk: entering it would fail the walk.
    let deep = t
        .path()
        .join("node_modules")
        .join("d/".repeat(MAX_DEPTH + 1));
    fs::create_dir_all(&deep).unwrap();
    write(t.path(), ".dockerignore", "node_modules\n!keep\n");
    assert_eq!(paths(&walk(t.path())), [".dockerignore", "keep"]);
    // Without the pattern the same tree is an error.
    fs::remove_file(t.path().join(".dockerignore")).unwrap();
    let err = BuildContext::open(t.path(), None)
        .unwrap()
        .walk()
        .unwrap_err();
    assert!(matches!(err, ContextError::TooDeep { .. }), "{err}");
}

#[test]
fn names_that_are_not_utf8_keep_their_bytes_and_match_patterns() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("sub")).unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(t.path().join("sub").join(bad), "x").unwrap();
    std::os::unix::fs::symlink(
        std::ffi::OsStr::from_bytes(b"caf\xe9.txt"),
        t.path().join("sub/link"),
    )
    .unwrap();
    let all = walk(t.path());
    let file = all
        .iter()
        .find(|e| &*crate::raw_name::to_bytes(&e.path) == b"sub/caf\xe9.txt")
        .expect("the file is walked");
    assert!(
        matches!(&file.kind, EntryKind::File { source: Source::Path(p), .. } if p.ends_with(bad)),
        "{file:?}"
    );
    let link = all.iter().find(|e| e.path == "sub/link").unwrap();
    assert!(
        matches!(&link.kind, EntryKind::Symlink { target } if &*crate::raw_name::to_bytes(target) == b"caf\xe9.txt"),
        "{link:?}"
    );
    // `?` is one stray byte, as in Go's filepath.Match.
    write(t.path(), ".dockerignore", "sub/caf?.txt\n");
    let kept = paths(&walk(t.path()));
    assert!(!kept.iter().any(|p| p.starts_with("sub/caf")), "{kept:?}");
    assert!(kept.contains(&"sub/link".to_owned()), "{kept:?}");
}

#[test]
fn missing_and_non_directory_contexts_are_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let err = BuildContext::open(&missing, None).unwrap_err();
    assert!(matches!(err, ContextError::NotFound { .. }));
    assert!(err.to_string().contains("nope"), "{err}");
    write(t.path(), "file", "x");
    let err = BuildContext::open(&t.path().join("file"), None).unwrap_err();
    assert!(matches!(err, ContextError::NotADirectory { .. }), "{err}");
}

#[test]
fn invalid_ignore_file_names_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), ".dockerignore", "ok\n\n[z-a]\n");
    let err = BuildContext::open(t.path(), None).unwrap_err().to_string();
    assert!(
        err.ends_with(".dockerignore:3: invalid pattern `[z-a]`"),
        "{err}"
    );
}

#[test]
fn dockerfile_specific_ignore_file_replaces_the_root_one() {
    let t = tempfile::tempdir().unwrap();
    for f in ["a", "b", "docker/app.Dockerfile"] {
        write(t.path(), f, "x");
    }
    write(t.path(), ".dockerignore", "a\n");
    write(t.path(), "Dockerfile.dockerignore", "b\n");
    write(t.path(), "docker/app.Dockerfile.dockerignore", "docker\n");
    let names =
        |df: Option<&Path>| paths(&BuildContext::open(t.path(), df).unwrap().walk().unwrap());
    // Default Dockerfile: Dockerfile.dockerignore wins, not merged.
    assert!(names(None).contains(&"a".to_string()));
    assert!(!names(None).contains(&"b".to_string()));
    let df = t.path().join("docker/app.Dockerfile");
    let got = names(Some(&df));
    assert!(got.contains(&"a".into()) && got.contains(&"b".into()));
    assert!(!got.iter().any(|p| p.starts_with("docker")));
    // A Dockerfile without its own file falls back to the root one.
    let other = t.path().join("Other.Dockerfile");
    assert!(!names(Some(&other)).contains(&"a".to_string()));
}

#[test]
fn a_symlinked_root_dockerignore_is_resolved_inside_the_context() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "a", "x");
    write(t.path(), "conf/ignore", "a\n");
    symlink("conf/ignore", t.path().join(".dockerignore")).unwrap();
    assert!(!paths(&walk(t.path())).contains(&"a".to_string()));
    // An absolute target is taken relative to the root, never the host.
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "ign", "a\n");
    fs::remove_file(t.path().join(".dockerignore")).unwrap();
    symlink(outside.path().join("ign"), t.path().join(".dockerignore")).unwrap();
    assert!(paths(&walk(t.path())).contains(&"a".to_string()));
}

#[test]
fn walk_under_returns_a_subtree_with_context_paths() {
    let t = tempfile::tempdir().unwrap();
    for f in ["src/a.rs", "src/gen/b.rs", "src/gen/c.tmp", "other"] {
        write(t.path(), f, "x");
    }
    write(t.path(), ".dockerignore", "**/*.tmp\nbuild\n!build/keep\n");
    write(t.path(), "build/keep", "x");
    write(t.path(), "build/drop", "x");
    let ctx = BuildContext::open(t.path(), None).unwrap();
    assert_eq!(
        paths(&ctx.walk_under("./src/").unwrap()),
        ["src/", "src/a.rs", "src/gen/", "src/gen/b.rs"]
    );
    assert_eq!(paths(&ctx.walk_under("src/a.rs").unwrap()), ["src/a.rs"]);
    assert!(ctx.walk_under("src/gen/c.tmp").unwrap().is_empty());
    assert!(ctx.walk_under("missing").unwrap().is_empty());
    assert_eq!(
        paths(&ctx.walk_under("build").unwrap()),
        ["build/", "build/keep"]
    );
    assert!(matches!(
        ctx.walk_under("../x"),
        Err(ContextError::OutsideContext { .. })
    ));
}

#[test]
fn twenty_thousand_files_walk_quickly() {
    let t = tempfile::tempdir().unwrap();
    for d in 0..100 {
        let dir = t.path().join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..200 {
            fs::write(dir.join(format!("f{f:03}.js")), "").unwrap();
        }
    }
    write(t.path(), ".dockerignore", "**/*.map\nd05*\n!d050/f000.js\n");
    let start = std::time::Instant::now();
    let entries = walk(t.path());
    let took = start.elapsed();
    eprintln!("walked {} entries in {took:?}", entries.len());
    // 90 kept dirs of 200 files, d050 with one file, and .dockerignore.
    assert_eq!(entries.len(), 90 * 201 + 2 + 1);
    // Generous bound for a debug build on a shared machine; release is far faster.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

#[test]
fn nesting_past_the_bound_is_an_error_not_a_stack_overflow() {
    let t = tempfile::tempdir().unwrap();
    let ok = vec!["d"; MAX_DEPTH].join("/");
    write(t.path(), &format!("{ok}/f"), "x");
    assert_eq!(walk(t.path()).len(), MAX_DEPTH + 1);
    let deep = vec!["d"; 2_000].join("/");
    fs::create_dir_all(t.path().join(&deep)).unwrap();
    let err = BuildContext::open(t.path(), None)
        .unwrap()
        .walk()
        .unwrap_err();
    assert!(matches!(err, ContextError::TooDeep { .. }), "{err}");
}
