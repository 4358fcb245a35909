//! `cairn context ls` run as a real process on real directories.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cairn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected failure, got {o:?}");
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn write(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The listing of `testdata/contexts/node-app`, against its golden file
/// (re-bless with `CAIRN_BLESS=1`).
#[test]
fn lists_the_node_app_context_like_the_golden_file() {
    let ctx = repo().join("testdata/contexts/node-app");
    // git cannot hold a `.git` directory; it is made here to prove it is excluded.
    let t = tempfile::tempdir().unwrap();
    copy_tree(&ctx, t.path());
    write(t.path(), ".git/HEAD", "ref: refs/heads/main\n");
    write(t.path(), ".git/objects/pack/x", "x");
    fs::write(
        t.path().join(".dockerignore"),
        fs::read_to_string(ctx.join(".dockerignore")).unwrap() + ".git\n",
    )
    .unwrap();
    let got = stdout(&cairn(t.path(), &["context", "ls"]));
    let golden = repo().join("testdata/contexts/node-app.ls");
    if std::env::var_os("CAIRN_BLESS").is_some() {
        fs::write(&golden, &got).unwrap();
    }
    assert_eq!(got, fs::read_to_string(&golden).unwrap());
}

fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            fs::create_dir(&dst).unwrap();
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn default_context_is_the_current_directory_and_dirs_end_in_slash() {
    let t = tempfile::tempdir().unwrap();
    for f in ["a/b", "a-b", "a.b", "a0"] {
        write(t.path(), f, "x");
    }
    symlink("/etc", t.path().join("etc")).unwrap();
    assert_eq!(
        stdout(&cairn(t.path(), &["context", "ls"])),
        "a/\na-b\na.b\na/b\na0\netc\n"
    );
    // The same with an explicit context argument from elsewhere.
    let parent = t.path().parent().unwrap();
    let name = t.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(
        stdout(&cairn(parent, &["context", "ls", name])),
        "a/\na-b\na.b\na/b\na0\netc\n"
    );
}

#[test]
fn dockerfile_flag_selects_its_own_ignore_file() {
    let t = tempfile::tempdir().unwrap();
    for f in [
        "keep",
        "drop-root",
        "drop-specific",
        "docker/web.Dockerfile",
    ] {
        write(t.path(), f, "x");
    }
    write(t.path(), ".dockerignore", "drop-root\n");
    write(
        t.path(),
        "docker/web.Dockerfile.dockerignore",
        "drop-specific\ndocker\n",
    );
    assert_eq!(
        stdout(&cairn(t.path(), &["context", "ls"])),
        ".dockerignore\ndocker/\ndocker/web.Dockerfile\ndocker/web.Dockerfile.dockerignore\ndrop-specific\nkeep\n"
    );
    assert_eq!(
        stdout(&cairn(
            t.path(),
            &["context", "ls", "-f", "docker/web.Dockerfile"]
        )),
        ".dockerignore\ndrop-root\nkeep\n"
    );
    let err = stderr(&cairn(
        t.path(),
        &["context", "ls", "-f", "nope.Dockerfile"],
    ));
    assert!(
        err.contains("Dockerfile `nope.Dockerfile` does not exist"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn explain_names_file_line_and_pattern() {
    let t = tempfile::tempdir().unwrap();
    for f in ["build/keep.txt", "build/other.txt", "src/main.rs"] {
        write(t.path(), f, "x");
    }
    write(
        t.path(),
        ".dockerignore",
        "# build output\nbuild\n!build/keep.txt\n",
    );
    let explain = |p: &str| stdout(&cairn(t.path(), &["context", "ls", "--explain", p]));
    assert_eq!(
        explain("build/other.txt"),
        "build/other.txt: excluded by ./.dockerignore:2: `build` (it matches the parent directory `build`)\n"
    );
    assert_eq!(
        explain("build/keep.txt"),
        "build/keep.txt: included by ./.dockerignore:3: `!build/keep.txt`\n"
    );
    assert_eq!(
        explain("build"),
        "build: excluded by ./.dockerignore:2: `build`\nnote: still sent, as the parent directory of included paths\n"
    );
    assert_eq!(
        explain("src/main.rs"),
        "src/main.rs: included: no pattern matches it\n"
    );
    assert_eq!(
        explain("ghost"),
        "ghost: included: no pattern matches it\nnote: `ghost` does not exist in the context\n"
    );
}

#[test]
fn errors_name_the_path_and_say_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let err = stderr(&cairn(t.path(), &["context", "ls", "missing-dir"]));
    assert!(
        err.starts_with("error: build context `missing-dir` does not exist"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");

    write(t.path(), "ctx/.dockerignore", "ok\n# fine\n[z-a]\n");
    let err = stderr(&cairn(t.path(), &["context", "ls", "ctx"]));
    assert!(
        err.starts_with("error: ctx/.dockerignore:3: invalid pattern `[z-a]`"),
        "{err}"
    );
    assert!(err.contains("Caused by:"), "{err}");

    write(t.path(), "ctx/.dockerignore", "a\n!\n");
    let err = stderr(&cairn(t.path(), &["context", "ls", "ctx"]));
    assert!(
        err.starts_with("error: ctx/.dockerignore:2: invalid pattern `!`"),
        "{err}"
    );
}

/// As root every file is readable, so this runs `cairn` as `nobody` via setpriv.
#[test]
fn unreadable_file_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    write(t.path(), "ctx/ok", "x");
    write(t.path(), "ctx/secret", "x");
    for (p, mode) in [("ctx", 0o755), ("ctx/ok", 0o644), ("ctx/secret", 0o000)] {
        fs::set_permissions(t.path().join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    let run = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .current_dir(t.path())
            .output()
    };
    let out = match run(&["context", "ls", "ctx"]) {
        Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("setpriv:") => o,
        other => {
            eprintln!("skipped: cannot run as nobody with setpriv ({other:?})");
            return;
        }
    };
    if setpriv_was_refused(&out) {
        eprintln!("skipped: not running as root, so setpriv cannot drop privileges");
        return;
    }
    let err = stderr(&out);
    assert!(err.contains("cannot read `"), "{err}");
    assert!(err.contains("ctx/secret"), "{err}");
    // Excluding it makes the context usable again.
    fs::write(t.path().join("ctx/.dockerignore"), "secret\n").unwrap();
    fs::set_permissions(
        t.path().join("ctx/.dockerignore"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = run(&["context", "ls", "ctx"]).unwrap();
    assert_eq!(stdout(&out), ".dockerignore\nok\n");

    // An unreadable directory fails the walk, naming it...
    fs::create_dir(t.path().join("ctx/private")).unwrap();
    fs::set_permissions(
        t.path().join("ctx/private"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let err = stderr(&run(&["context", "ls", "ctx"]).unwrap());
    assert!(err.contains("ctx/private"), "{err}");
    // ...unless it is excluded: then it is only entered for exceptions, and
    // like BuildKit a permission error there is not fatal.
    fs::write(
        t.path().join("ctx/.dockerignore"),
        "secret\nprivate\n!private/x\n",
    )
    .unwrap();
    let out = run(&["context", "ls", "ctx"]).unwrap();
    assert_eq!(stdout(&out), ".dockerignore\nok\n");
}

/// setpriv fails with EPERM when the tests do not run as root.
fn setpriv_was_refused(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("Operation not permitted")
}
