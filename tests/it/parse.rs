//! The Dockerfile parse corpus: `testdata/dockerfile/parse/<case>/` holds a `Dockerfile`,
//! optional `args` (one `cairn parse` option per line: `--target X`, `--build-arg K=V`,
//! `--platform P`) and the golden `parse.json`; `testdata/dockerfile/errors/<case>/` holds
//! a `Dockerfile`, optional `args` and the golden `error.txt` (the rendered diagnostic).
//! An `args` line `--file PATH` reads the Dockerfile from `PATH` inside the case (as with
//! `cairn parse -f apps/backend/Dockerfile`); messages then name that path.
//! Goldens are rewritten only with `CAIRN_BLESS=1`.

use cairn::cli::parse::{load, to_json};
use cairn::frontend::{BuildOptions, Platform};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dockerfile")
}

fn bless() -> bool {
    std::env::var_os(cairn::env::CAIRN_BLESS).is_some_and(|v| v == "1")
}

/// Options from the case's `args` file; the platforms are fixed so goldens do not depend
/// on the machine.
fn options(dir: &Path) -> BuildOptions {
    let mut opts = BuildOptions {
        target: None,
        build_args: BTreeMap::new(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
        target_platform: None,
        ..BuildOptions::default()
    };
    let Ok(text) = fs::read_to_string(dir.join("args")) else {
        return opts;
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (flag, value) = line.split_once(' ').expect("args lines are `--flag value`");
        match flag {
            "--target" => opts.target = Some(value.to_owned()),
            "--build-arg" => {
                let (k, v) = value.split_once('=').expect("K=V");
                opts.build_args.insert(k.to_owned(), v.to_owned());
            }
            "--platform" => opts.target_platform = Some(Platform::parse(value).unwrap()),
            "--file" => {}
            other => panic!("unknown option {other} in {}", dir.display()),
        }
    }
    opts
}

/// The Dockerfile's path relative to the case (`--file` in `args`, else `Dockerfile`).
fn dockerfile(dir: &Path) -> PathBuf {
    let args = fs::read_to_string(dir.join("args")).unwrap_or_default();
    let file = args
        .lines()
        .find_map(|l| l.strip_prefix("--file "))
        .unwrap_or("Dockerfile");
    PathBuf::from(file)
}

fn outcome(dir: &Path) -> Result<String, String> {
    let label = dockerfile(dir);
    let src = fs::read(dir.join(&label)).unwrap();
    let src = String::from_utf8(src).expect("corpus Dockerfiles are UTF-8");
    match load(&src, &label, &options(dir)) {
        Ok((df, plan)) => Ok(serde_json::to_string_pretty(&to_json(&df, &plan)).unwrap() + "\n"),
        Err(d) => Err(d.to_string() + "\n"),
    }
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(dockerfile(p)).is_file())
        .collect();
    v.sort();
    v
}

fn check(dir: &Path, golden: &str, got: &str, failures: &mut Vec<String>) {
    let path = dir.join(golden);
    let want = fs::read_to_string(&path).unwrap_or_default();
    if want == got {
        return;
    }
    if bless() {
        fs::write(&path, got).unwrap();
    } else {
        failures.push(format!(
            "{}:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ));
    }
}

#[test]
fn corpus_parses_to_goldens() {
    let mut failures = Vec::new();
    let ok = cases("parse");
    let bad = cases("errors");
    for dir in &ok {
        match outcome(dir) {
            Ok(json) => check(dir, "parse.json", &json, &mut failures),
            Err(e) => failures.push(format!("{}: unexpected error\n{e}", dir.display())),
        }
    }
    for dir in &bad {
        match outcome(dir) {
            Err(e) => check(dir, "error.txt", &e, &mut failures),
            Ok(_) => failures.push(format!("{}: parsed but should fail", dir.display())),
        }
    }
    assert!(
        ok.len() + bad.len() >= 150,
        "corpus has {} cases",
        ok.len() + bad.len()
    );
    assert!(bad.len() >= 40, "only {} negative cases", bad.len());
    assert!(
        failures.is_empty(),
        "{} golden mismatches (CAIRN_BLESS=1 to rewrite after review):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_names_file_line_and_column() {
    for dir in cases("errors") {
        let e = outcome(&dir).unwrap_err();
        let first = e.lines().next().unwrap();
        let prefix = format!("{}:", dockerfile(&dir).display());
        let located = first
            .strip_prefix(&prefix)
            .and_then(|r| r.split(':').next())
            .is_some_and(|l| l.parse::<usize>().is_ok());
        // Only whole-file and option problems may lack a line.
        let unlocated_ok = [
            "file with no instructions",
            "could not be found",
            "has no FROM",
        ]
        .iter()
        .any(|m| first.contains(m));
        assert!(located || unlocated_ok, "{}: {first}", dir.display());
    }
}

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn cli_json_matches_the_library_and_reads_stdin() {
    let dir = root().join("parse/node-nextjs-standalone");
    let df = dir.join("Dockerfile");
    let out = cairn()
        .args(["parse", "--json", "--platform", "linux/amd64", "-f"])
        .arg(&df)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let golden: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("parse.json")).unwrap()).unwrap();
    assert_eq!(v["stages"], golden["stages"]);
    assert_eq!(v["instructions"], golden["instructions"]);

    let mut child = cairn()
        .args(["parse", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM alpine AS base\nRUN echo hi\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.contains("stage 0 base: image alpine"), "{text}");
    assert!(text.contains("RUN echo hi"), "{text}");
}

#[test]
fn cli_errors_exit_nonzero_with_location() {
    let tmp = tempfile::tempdir().unwrap();
    let df = tmp.path().join("Dockerfile");
    fs::write(&df, "FROM alpine\nCOPY --chwon=1 a b\n").unwrap();
    let out = cairn()
        .current_dir(tmp.path())
        .args(["parse"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: Dockerfile:2:6: unknown flag: --chwon"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean --chown?"), "{err}");

    let out = cairn()
        .current_dir(tmp.path())
        .args(["parse", "--target", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = cairn()
        .current_dir(tmp.path())
        .args(["parse", "-f", "missing"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read Dockerfile missing"));
}

#[test]
fn cli_warns_about_unused_build_args_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("Dockerfile"), "FROM alpine\nARG USED\n").unwrap();
    let out = cairn()
        .current_dir(tmp.path())
        .args(["parse", "--build-arg", "USED=1", "--build-arg", "TYPO=2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning: Dockerfile: build argument \"TYPO\" is not consumed by any ARG"),
        "{err}"
    );
    assert!(!err.contains("USED"), "{err}");
}
