//! `cairn check`: every rule against a Dockerfile that breaks it and one that does not
//! (`testdata/check/rules/<Rule>/{bad,good}/`, each a context with its `Dockerfile` and
//! the golden `expected.txt`), the reference apps (`testdata/check/apps/<app>.txt`), every
//! rule's doc page, the comparison table with BuildKit's rule documentation, and the
//! command line (exit codes, JSON, the directive, `BUILDKIT_DOCKERFILE_CHECK`,
//! `cairn build --check`). Goldens are rewritten only with `CAIRN_BLESS=1`.

use crate::support::{cli, testdata};
use cairn::check::{self, Options, Origin, RULES};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

fn bless() -> bool {
    std::env::var_os(cairn::env::CAIRN_BLESS).is_some_and(|v| v == "1")
}

/// Check `dockerfile` (relative to `context`) as the CLI does; messages name `dockerfile`.
fn check_dir(context: &Path, dockerfile: &str, target: Option<&str>) -> check::Report {
    let path = context.join(dockerfile);
    let src = fs::read_to_string(&path).unwrap();
    let opts = Options {
        context: Some(context.to_path_buf()),
        dockerfile_path: Some(path),
        build_args: Default::default(),
        target: target.map(str::to_owned),
        ..Options::default()
    };
    check::run(&src, Path::new(dockerfile), &opts).unwrap()
}

fn golden(path: &Path, actual: &str) {
    if bless() {
        fs::write(path, actual).unwrap();
        return;
    }
    let want = fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "missing golden {} (CAIRN_BLESS=1 writes it)",
            path.display()
        )
    });
    assert_eq!(actual, want, "golden {} differs", path.display());
}

#[test]
fn every_rule_has_a_breaking_and_a_clean_dockerfile() {
    for rule in &RULES {
        let dir = testdata("check/rules").join(rule.name);
        for kind in ["bad", "good"] {
            let case = dir.join(kind);
            assert!(
                case.join("Dockerfile").is_file(),
                "{} has no {kind}/Dockerfile",
                rule.name
            );
            let report = check_dir(&case, "Dockerfile", None);
            golden(&case.join("expected.txt"), &check::render::text(&report));
            let hits = report
                .violations
                .iter()
                .filter(|v| v.rule.name == rule.name)
                .count();
            if kind == "bad" {
                assert!(
                    hits > 0,
                    "{}: bad/Dockerfile does not trigger it",
                    rule.name
                );
            } else {
                assert_eq!(hits, 0, "{}: good/Dockerfile triggers it", rule.name);
            }
        }
    }
}

#[test]
fn reference_apps_check_with_only_the_violations_they_document() {
    let apps = [
        ("nextjs-3stage", "Dockerfile"),
        ("nextjs-standalone", "Dockerfile"),
        ("unified-targets", "Dockerfile"),
        ("monorepo-backend", "apps/backend/Dockerfile"),
        ("turborepo-web", "apps/web/Dockerfile"),
    ];
    let readme = fs::read_to_string(testdata("apps/README.md")).unwrap();
    for (app, file) in apps {
        let report = check_dir(&testdata("apps").join(app), file, None);
        assert!(report.error.is_none(), "{app}: {:?}", report.error);
        golden(
            &testdata("check/apps").join(format!("{app}.txt")),
            &check::render::text(&report),
        );
        // Each rule an app breaks is explained in testdata/apps/README.md's check table.
        for v in &report.violations {
            let row = format!("| `{app}` | {} |", v.rule.name);
            assert!(
                readme.contains(&row),
                "README does not document {app}'s {}",
                v.rule.name
            );
        }
    }
}

#[test]
fn every_rule_has_a_doc_page_with_what_why_bad_and_good() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for rule in &RULES {
        let page = fs::read_to_string(root.join(rule.doc()))
            .unwrap_or_else(|_| panic!("no doc page {}", rule.doc()));
        assert!(
            page.starts_with(&format!("# {}\n", rule.name)),
            "{}",
            rule.doc()
        );
        for section in ["## What", "## Why", "## Bad", "## Good"] {
            assert!(page.contains(section), "{} lacks {section}", rule.doc());
        }
        if let Some(url) = rule.buildkit_url() {
            assert!(
                page.contains(&url),
                "{} does not link BuildKit's page",
                rule.doc()
            );
        }
    }
}

/// The rows of `docs/checks/buildkit-comparison.md`'s table: rule, BuildKit's
/// description, experimental, then the facts read in BuildKit's page.
fn comparison_rows() -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("docs/checks/buildkit-comparison.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_rule_table_matches_buildkits_rule_documentation_case_by_case() {
    let rows = comparison_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let ours: BTreeSet<&str> = RULES
        .iter()
        .filter(|r| r.origin == Origin::BuildKit)
        .map(|r| r.name)
        .collect();
    assert_eq!(documented, ours);
    for row in &rows {
        let rule = check::rule(&row[0]).unwrap();
        assert_eq!(row[1], rule.description, "{}: description", rule.name);
        assert_eq!(
            row[2] == "yes",
            rule.experimental,
            "{}: experimental",
            rule.name
        );
        // BuildKit's ❌ example is the bad case and its ✅ example the good one.
        let bad = testdata("check/rules")
            .join(rule.name)
            .join("bad/expected.txt");
        let text = fs::read_to_string(bad).unwrap();
        assert!(
            text.contains(&format!(": {}: ", rule.name)),
            "{}",
            rule.name
        );
    }
}

fn tmp_context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let o = cli(home.path(), &args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `cairn build [EXTRA] CONTEXT --cache-dir HOME/cache`, and that cache directory.
fn build_args(home: &Path, context: &Path, extra: &[&str]) -> (std::path::PathBuf, Vec<String>) {
    let cache = home.join("cache");
    let mut args = vec!["build".to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        context.display().to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
    ]);
    (cache, args)
}

const PINNED: &str =
    "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn exit_status_follows_error_true_from_the_directive_or_the_build_arg() {
    let warn = tmp_context(&format!("FROM {PINNED} as base\n"));
    let dir = warn.path().to_str().unwrap();
    let (code, out, _) = run(&["check", dir]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Dockerfile:1:"), "{out}");
    assert!(
        out.contains(": FromAsCasing: 'as' and 'FROM' keywords' casing do not match"),
        "{out}"
    );
    assert!(out.contains("docs: docs/checks/FromAsCasing.md (BuildKit: https://docs.docker.com/go/dockerfile/rule/from-as-casing/)"), "{out}");
    assert!(out.ends_with("check: 1 warning (FromAsCasing)\n"), "{out}");

    let err = tmp_context(&format!("# check=error=true\nFROM {PINNED} as base\n"));
    let dir = err.path().to_str().unwrap();
    let (code, out, _) = run(&["check", dir]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("lint violation found for rules: FromAsCasing"),
        "{out}"
    );
    // The build arg replaces the directive: without error=true it only warns.
    let (code, _, _) = run(&[
        "check",
        dir,
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=skip=JSONArgsRecommended",
    ]);
    assert_eq!(code, 0);
    let (code, out, _) = run(&[
        "check",
        dir,
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=skip=FromAsCasing;error=true",
    ]);
    assert_eq!((code, out.as_str()), (0, "check: no problems found\n"));
    let (code, _, err_text) = run(&[
        "check",
        dir,
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=loud=yes",
    ]);
    assert_eq!(code, 1);
    assert!(err_text.contains("BUILDKIT_DOCKERFILE_CHECK"), "{err_text}");
    // `skip=all` with error=true: nothing to report, nothing fails.
    let all = tmp_context(&format!(
        "# check=skip=all;error=true\nFROM {PINNED} as base\nMAINTAINER me\n"
    ));
    let (code, _, _) = run(&["check", all.path().to_str().unwrap()]);
    assert_eq!(code, 0);
}

#[test]
fn json_output_is_the_documented_document() {
    let d = tmp_context(&format!("FROM {PINNED} AS Base\nCMD node server.js\n"));
    let (code, out, _) = run(&["check", d.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed"], false);
    assert_eq!(v["config"]["from"], "default");
    let rules: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["StageNameCasing", "JSONArgsRecommended"]);
    let first = &v["violations"][0];
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(1), Some(88))
    );
    assert_eq!(first["severity"], "warning");
    assert_eq!(first["origin"], "buildkit");
    assert_eq!(first["doc"], "docs/checks/StageNameCasing.md");
    assert_eq!(
        first["buildkit_url"],
        "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
    );
    // Every key docs/check-json.md describes is present.
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/check-json.md"))
        .unwrap();
    for key in first
        .as_object()
        .unwrap()
        .keys()
        .chain(v.as_object().unwrap().keys())
    {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/check-json.md does not describe {key}"
        );
    }
}

#[test]
fn build_check_checks_and_stops_before_building() {
    let d = tmp_context(&format!(
        "# check=error=true\nFROM {PINNED}\nMAINTAINER me\n"
    ));
    let home = tempfile::tempdir().unwrap();
    let (cache, args) = build_args(home.path(), d.path(), &["--check"]);
    let o = cli(home.path(), &args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(": MaintainerDeprecated: "), "{out}");
    assert!(!cache.exists(), "build --check must not build");
    // A file that cannot be built: the parse error, exit 1.
    let bad = tmp_context("FROM alpine\nRUNN x\n");
    let (code, out, _) = run(&["check", bad.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("Dockerfile:2:1: unknown instruction: RUNN"),
        "{out}"
    );
}

#[test]
fn build_arg_values_never_appear_in_the_output() {
    let d = tmp_context("ARG BASE=node:22-alpine\nFROM ${BASE}\nARG P\nEXPOSE $P\nWORKDIR $P\nARG API_TOKEN\nRUN echo $API_TOKEN\n");
    let dir = d.path().to_str().unwrap();
    for format in ["text", "json"] {
        let (code, out, err) = run(&[
            "check",
            dir,
            "--format",
            format,
            "--build-arg",
            "BASE=registry.example/s3cr3t-base:1",
            "--build-arg",
            "P=10.0.0.1:8080:80/S3CR3T",
            "--build-arg",
            "API_TOKEN=s3cr3t-token",
        ]);
        assert_eq!(code, 0, "{out}{err}");
        for rule in [
            "BaseImageNotPinned",
            "ExposeInvalidFormat",
            "ExposeProtoCasing",
            "WorkdirRelativePath",
            "SecretAsBuildArg",
        ] {
            assert!(out.contains(rule), "{rule} missing:\n{out}");
        }
        assert!(
            !out.to_lowercase().contains("s3cr3t"),
            "a build-arg value leaked:\n{out}"
        );
    }
}

/// BuildKit's `testCopyIgnoredFiles` and `testCopyIgnoredFileContextRoot`.
#[test]
fn copy_ignored_file_follows_buildkits_tests() {
    let case = |ignore: &str, dockerfile: &str| -> Vec<String> {
        let d = tmp_context(dockerfile);
        fs::write(d.path().join(".dockerignore"), ignore).unwrap();
        check_dir(d.path(), "Dockerfile", None)
            .violations
            .iter()
            .filter(|v| v.rule.name == "CopyIgnoredFile")
            .map(|v| format!("{}: {}", v.pos.line, v.message))
            .collect()
    };
    assert_eq!(
        case(
            "\nDockerfile\n",
            "FROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n"
        ),
        [
            "2: Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore",
            "3: Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore"
        ]
    );
    let from_stage = "FROM scratch AS base\nCOPY Dockerfile /foobar\nADD Dockerfile /windy\n\nFROM base\nCOPY --from=base /foobar /Dockerfile\n";
    assert!(case("foobar\n", from_stage).is_empty());
    // Exceptions turn the rule off; `.` only with a pattern that excludes everything.
    assert!(case("**\n!Dockerfile\n", "FROM scratch\nCOPY ./Dockerfile .\n").is_empty());
    assert!(case("**\n!Dockerfile\n", "FROM scratch\nCOPY . .\n").is_empty());
    assert!(case(".*\n", "FROM scratch\nCOPY . .\n").is_empty());
    assert_eq!(
        case("*\n", "FROM scratch\nCOPY . .\n"),
        ["2: Attempting to Copy file \".\" that is excluded by .dockerignore"]
    );
}

/// As in BuildKit, `error=true` fails a plain build too, before any work.
#[test]
fn a_plain_build_stops_on_a_violation_when_error_is_true() {
    let d = tmp_context("# check=error=true\nFROM scratch\nMAINTAINER me\n");
    let home = tempfile::tempdir().unwrap();
    let (cache, args) = build_args(home.path(), d.path(), &[]);
    let o = cli(home.path(), &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(": MaintainerDeprecated: "), "{err}");
    assert!(
        err.contains("lint violation found for rules: MaintainerDeprecated"),
        "{err}"
    );
    assert!(!cache.exists(), "nothing may be built");
    // The build arg turns it off again (it replaces the directive).
    let mut args = args;
    args.extend([
        "--build-arg".into(),
        "BUILDKIT_DOCKERFILE_CHECK=skip=all;error=true".into(),
        "--progress".into(),
        "plain".into(),
    ]);
    let o = cli(home.path(), &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("lint violation"), "{err}");
}

/// `--target` decides which stages ship: the runner's `adduser` and `.next` copy do not
/// count when the builder is the image.
#[test]
fn the_target_decides_what_ships() {
    let app = testdata("apps/nextjs-3stage");
    let rules = |target: Option<&str>| -> BTreeSet<&'static str> {
        check_dir(&app, "Dockerfile", target)
            .violations
            .iter()
            .map(|v| v.rule.name)
            .collect()
    };
    let runner = rules(Some("runner"));
    assert!(runner.contains("BusyboxAdduser") && runner.contains("NextCacheShipped"));
    let builder = rules(Some("builder"));
    assert!(!builder.contains("BusyboxAdduser") && !builder.contains("NextCacheShipped"));
    assert!(builder.contains("BaseImageNotPinned"));
    let r = check_dir(&app, "Dockerfile", Some("nope"));
    assert!(r.failed());
    let e = r.error.expect("an unknown target is an error");
    assert!(e.message.contains("\"nope\""), "{}", e.message);
}

/// `--build-context NAME=…` replaces the stage or image of that name for the checks
/// too: `FROM lib` is not an unpinned image, `COPY --from=shared` not a later stage.
#[test]
fn named_contexts_are_neither_images_nor_stages() {
    let d = tmp_context(&format!(
        "# check=error=true\nFROM lib AS base\nFROM {PINNED}\nCOPY --from=shared x /x\nFROM scratch AS shared\n"
    ));
    let lib = tempfile::tempdir().unwrap();
    let ctx = d.path().display().to_string();
    let (code, out, _) = run(&["check", &ctx]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BaseImageNotPinned: base image lib"), "{out}");
    assert!(out.contains("cannot copy from stage \"shared\""), "{out}");
    let lib_ctx = format!("lib={}", lib.path().display());
    let shared_ctx = format!("shared=docker-image://{PINNED}");
    let named = ["--build-context", &lib_ctx, "--build-context", &shared_ctx];
    for cmd in [&["check"][..], &["build", "--check"][..]] {
        let args: Vec<&str> = cmd
            .iter()
            .copied()
            .chain(named)
            .chain([ctx.as_str()])
            .collect();
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{cmd:?}: {out}{err}");
        assert!(out.contains("no problems found"), "{cmd:?}: {out}");
    }
    // Values are checked as `cairn build` checks them.
    let (code, _, err) = run(&["check", "--build-context", "lib=/no/such/dir", &ctx]);
    assert_ne!(code, 0);
    assert!(err.contains("--build-context lib=/no/such/dir"), "{err}");
}
