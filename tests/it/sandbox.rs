//! RUN sandbox against the real node:22-alpine stand-in (its layers
//! unpacked as overlay lowers), as root and, where the unprivileged test
//! user exists (tests/support/unpriv-user.sh), as that user via `runuser`.

use cairn::report::{Event, Recorder};
use cairn::sandbox::{Mount, Network, RunSpec, Sandbox, SandboxError};
use cairn_layers::entry::{EntryKind, Source};
use cairn_layers::Entry;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const HELPER: &str = env!("CARGO_BIN_EXE_cairn");
const UNPRIV_USER: &str = "cairn-unpriv";
/// Set when this test binary re-runs itself as the unprivileged user.
const AS_USER_ENV: &str = "CAIRN_IT_SANDBOX_AS_USER";

struct Fixture {
    sandbox: Sandbox,
    lowers: Vec<PathBuf>,
    base: PathBuf,
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Per-uid scratch space (the unprivileged user cannot share root's).
fn base_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/cairn-it-sandbox-{}", uid()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The fixture's layer blobs, bottom first.
fn layer_blobs(oci: &Path) -> Vec<PathBuf> {
    let index = json(&oci.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    let m = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "22-alpine")
        .expect("tag 22-alpine in the fixture");
    let blob = |d: &serde_json::Value| {
        let d = d.as_str().unwrap();
        oci.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest = json(&blob(&m["digest"]));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(&l["digest"]))
        .collect()
}

/// None (and a loud message) when the fixture is absent.
fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let oci = oci_dir();
        if !oci.join("index.json").exists() {
            // CI builds the stand-in (`just test` depends on `just fixtures`): a
            // missing fixture there is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "no node:22-alpine stand-in at {}: run `just fixtures`",
                oci.display()
            );
            eprintln!(
                "\n\n!!! SKIPPING sandbox tests: no node:22-alpine stand-in at {} (set {} or run `just fixtures`) !!!\n",
                oci.display(),
                cairn::env::CAIRN_NODE_ALPINE_OCI
            );
            return None;
        }
        let base = base_dir();
        let sandbox = Sandbox::with_helper(base.join("state"), HELPER).unwrap();
        let lowers = unpack_layers(&sandbox, &oci, &base.join("layers"), &["tar", "--numeric-owner", "-xpzf"]);
        Some(Fixture {
            sandbox,
            lowers,
            base,
        })
    })
    .as_ref()
}

/// Unpack the fixture layers under `base/<subdir>` with `tar_args`, as
/// `sandbox`'s namespace root (so owners are in its mapping).
fn unpack_layers(sandbox: &Sandbox, oci: &Path, dir: &Path, tar_args: &[&str]) -> Vec<PathBuf> {
    let mut lowers = Vec::new();
    for blob in layer_blobs(oci) {
        let name = blob.file_name().unwrap().to_str().unwrap().to_owned();
        let layer = dir.join(&name);
        let done = dir.join(format!("{name}.done"));
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&layer);
            std::fs::create_dir_all(&layer).unwrap();
            let argv: Vec<String> = tar_args
                .iter()
                .map(|s| s.to_string())
                .chain([blob.display().to_string()])
                .collect();
            let code = sandbox
                .exec_in_userns(&argv, &layer, |l| eprintln!("tar: {l}"))
                .unwrap();
            assert_eq!(code, 0, "unpacking {}", blob.display());
            // The stand-in's layers carry no whiteouts; a future one must
            // be converted to overlay form first, so fail loudly.
            let wh = walkdir::WalkDir::new(&layer)
                .into_iter()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(".wh."));
            assert!(wh.is_none(), "layer {name} has whiteouts: convert them");
            std::fs::write(&done, b"").unwrap();
        }
        lowers.push(layer);
    }
    lowers
}

fn oci_dir() -> PathBuf {
    match std::env::var_os(cairn::env::CAIRN_NODE_ALPINE_OCI) {
        Some(p) => PathBuf::from(p),
        None => crate::support::fixture_layout().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/node-alpine/oci")
        }),
    }
}

fn sh(f: &Fixture, script: &str) -> RunSpec {
    let mut spec = RunSpec::new(
        f.lowers.clone(),
        vec!["/bin/sh".into(), "-c".into(), script.into()],
    );
    spec.epoch = 1_700_000_000;
    spec
}

fn run_ok(f: &Fixture, spec: &RunSpec) -> (cairn::sandbox::RunOutcome, Vec<String>) {
    let rec = Recorder::default();
    let out = f.sandbox.run(spec, &rec).unwrap_or_else(|e| panic!("{e}"));
    let lines = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::StepOutput { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect();
    (out, lines)
}

/// One comparable line per entry: path, kind, mode, uid, gid, mtime, content hash.
fn summary(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EntryKind::Dir => "dir".to_string(),
                EntryKind::File { size, source } => {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut source.open(*size + 1).unwrap(), &mut bytes)
                        .unwrap();
                    assert_eq!(bytes.len() as u64, *size, "{}", e.path);
                    format!("file {}", hex::encode(sha2::Sha256::digest(&bytes)))
                }
                other => format!("{other:?}"),
            };
            format!(
                "{} {} {:o} {}:{} {} {:?}",
                e.path, kind, e.mode, e.uid, e.gid, e.mtime, e.xattrs
            )
        })
        .collect()
}

fn find<'a>(entries: &'a [Entry], path: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.path == path)
}

macro_rules! fixture_or_skip {
    () => {
        match fixture() {
            Some(f) => f,
            None => return,
        }
    };
}

#[test]
fn echo_streams_output_and_changes_nothing() {
    let f = fixture_or_skip!();
    let (out, lines) = run_ok(f, &sh(f, "echo hi; echo err >&2"));
    assert_eq!(lines, ["hi", "err"]);
    assert_eq!(summary(out.captured.entries()), Vec::<String>::new());
    assert!(out.duration_in_command < out.duration_total);
}

#[test]
fn nonzero_exit_carries_code_and_tail() {
    let f = fixture_or_skip!();
    let script = "for i in $(seq 1 25); do echo line$i; done; exit 3";
    let err = f.sandbox.run(&sh(f, script), &()).unwrap_err();
    let SandboxError::Failed { code, tail, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*code, 3);
    assert_eq!(tail.len(), 20);
    assert_eq!((tail[0].as_str(), tail[19].as_str()), ("line6", "line25"));
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    // Killed by a signal: 128 + N.
    let err = f.sandbox.run(&sh(f, "kill -9 $$"), &()).unwrap_err();
    assert!(
        matches!(err, SandboxError::Failed { code: 137, .. }),
        "{err}"
    );
}

const ADDUSER: &str = "addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs && mkdir -p /srv/app && chown -R nextjs:nodejs /srv/app";

#[test]
fn adduser_and_chown_are_captured_with_container_ids() {
    let f = fixture_or_skip!();
    let (out, _) = run_ok(f, &sh(f, ADDUSER));
    let es = out.captured.entries();
    let app = find(es, "srv/app").expect("srv/app captured");
    assert_eq!((app.uid, app.gid), (1001, 1001));
    let home = find(es, "home/nextjs").expect("home/nextjs captured");
    assert_eq!(home.uid, 1001);
    assert!(find(es, "etc/passwd").is_some() && find(es, "etc/group").is_some());
    // Parents are present with real metadata.
    assert!(find(es, "srv").unwrap().is_dir());
    // Nothing cairn placed leaks.
    for e in es {
        for bad in [
            "etc/resolv.conf",
            "etc/hosts",
            "etc/hostname",
            "dev",
            "proc",
            "sys",
        ] {
            assert!(!e.path.ends_with(bad), "leaked {}", e.path);
        }
    }
    let mut sorted: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(
        sorted,
        es.iter().map(|e| e.path.as_str()).collect::<Vec<_>>()
    );
}

#[test]
fn quoted_heredoc_body_is_written_verbatim() {
    let f = fixture_or_skip!();
    let script = "cat > /f << 'EOF'\nhello $HOME `x`\nEOF\n";
    let (out, _) = run_ok(f, &sh(f, script));
    let e = find(out.captured.entries(), "f").expect("f captured");
    let EntryKind::File {
        source: Source::Path(p),
        ..
    } = &e.kind
    else {
        panic!("{e:?}")
    };
    assert_eq!(std::fs::read_to_string(p).unwrap(), "hello $HOME `x`\n");
    assert_eq!(e.mtime, 1_700_000_000, "mtime clamped to the epoch");
}

#[test]
fn apk_and_node_work() {
    let f = fixture_or_skip!();
    let (_, lines) = run_ok(
        f,
        &sh(f, "apk --no-network info 2>/dev/null | grep -x musl"),
    );
    assert_eq!(lines, ["musl"]);
    let (_, lines) = run_ok(f, &sh(f, "node -e 'console.log(6*7, process.version)'"));
    assert_eq!(lines, ["42 v22.20.0"]);
}

#[test]
fn rm_of_lower_file_is_a_whiteout_and_rm_rf_recreate_is_opaque() {
    let f = fixture_or_skip!();
    let (out, _) = run_ok(
        f,
        &sh(
            f,
            "rm /etc/issue && rm -rf /etc/apk && mkdir /etc/apk && echo x > /etc/apk/world",
        ),
    );
    let paths: Vec<&str> = out
        .captured
        .entries()
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "etc",
            "etc/.wh.issue",
            "etc/apk",
            "etc/apk/.wh..wh..opq",
            "etc/apk/world"
        ]
    );
    let wh = find(out.captured.entries(), "etc/.wh.issue").unwrap();
    assert!(matches!(wh.kind, EntryKind::File { size: 0, .. }));
    // containerd's (BuildKit's) whiteout form, and the layers crate's.
    let marker = cairn_layers::whiteout::whiteout_entry("etc/issue").unwrap();
    assert_eq!(
        (wh.mode, wh.uid, wh.gid),
        (marker.mode, marker.uid, marker.gid)
    );
    assert_eq!((wh.mode, wh.uid, wh.gid), (0, 0, 0));
    assert!(out.captured.entries().iter().all(|e| e.xattrs.is_empty()));
}

#[test]
fn network_none_has_no_route_but_loopback() {
    let f = fixture_or_skip!();
    let mut spec = sh(
        f,
        "wc -l < /proc/net/route; ip -o link show lo | grep -c UP",
    );
    spec.network = Network::None;
    let (_, lines) = run_ok(f, &spec);
    assert_eq!(lines, ["1", "1"], "only the header line of the route table");
    spec.network = Network::Default;
    let (_, lines) = run_ok(f, &spec);
    assert_ne!(lines[0], "1", "the host network has routes");
}

#[test]
fn cache_mount_persists_and_secret_never_leaks() {
    let f = fixture_or_skip!();
    let cache = f.base.join("cache-test");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).unwrap();
    let secret = f.base.join("secret-test");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mounts = vec![
        Mount::Cache {
            host: cache.clone(),
            target: "/root/.npm".into(),
            uid: 0,
            gid: 0,
            mode: 0o755,
            own_contents: false,
        },
        Mount::Secret {
            host: secret,
            target: "/run/secrets/npmrc".into(),
            uid: 1000,
            gid: 1000,
            mode: 0o400,
        },
        Mount::Tmpfs {
            target: "/mnt/new/deep".into(),
        },
    ];
    let mut spec = sh(f, "echo one > /root/.npm/x; cat /run/secrets/npmrc; stat -c '%u %a' /run/secrets/npmrc; touch /mnt/new/deep/t");
    spec.mounts = mounts.clone();
    let (out, lines) = run_ok(f, &spec);
    assert_eq!(lines, ["s3cret", "1000 400"]);
    assert_eq!(summary(out.captured.entries()), Vec::<String>::new());
    let mut spec = sh(f, "cat /root/.npm/x; echo two > /new");
    spec.mounts = mounts;
    let (out, lines) = run_ok(f, &spec);
    assert_eq!(lines, ["one"]);
    let paths: Vec<&str> = out
        .captured
        .entries()
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, ["new"]);
}

#[test]
fn bind_mount_from_layer_dirs_is_read_only_unless_rw() {
    let f = fixture_or_skip!();
    let mut spec = sh(
        f,
        "ls /from/yarn-v1.22.22/bin/yarn && ! touch /from/x 2>/dev/null",
    );
    spec.mounts = vec![Mount::Bind {
        from: f.lowers.clone(),
        source: "/opt".into(),
        target: "/from".into(),
        rw: false,
    }];
    let (out, lines) = run_ok(f, &spec);
    assert_eq!(lines, ["/from/yarn-v1.22.22/bin/yarn"]);
    assert!(out.captured.entries().is_empty());
    spec.argv[2] = "touch /from/x && ls /from/x".into();
    if let Mount::Bind { rw, .. } = &mut spec.mounts[0] {
        *rw = true;
    }
    let (out, _) = run_ok(f, &spec);
    assert!(
        out.captured.entries().is_empty(),
        "rw bind writes are discarded"
    );
    assert!(!f.lowers.iter().any(|l| l.join("opt/x").exists()));
}

#[test]
fn user_is_resolved_in_the_rootfs() {
    let f = fixture_or_skip!();
    let mut spec = sh(f, "id -u; id -g; echo $HOME; pwd");
    spec.user = "node".into();
    spec.cwd = "/home/node".into();
    let (_, lines) = run_ok(f, &spec);
    assert_eq!(lines, ["1000", "1000", "/home/node", "/home/node"]);
    spec.user = "ghost".into();
    let err = f.sandbox.run(&spec, &()).unwrap_err().to_string();
    assert!(err.contains("unable to find user `ghost`"), "{err}");
}

#[test]
fn identical_runs_capture_identical_entries() {
    let f = fixture_or_skip!();
    let spec = sh(f, "mkdir -p /a/b && echo x > /a/b/f && ln /a/b/f /a/h && ln -s b/f /a/s && chmod 4711 /a/b/f && touch /etc/x");
    let a = summary(run_ok(f, &spec).0.captured.entries());
    let b = summary(run_ok(f, &spec).0.captured.entries());
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.starts_with("a/h Hardlink")), "{a:#?}");
}

#[test]
fn run_dirs_are_removed_with_the_sandbox_and_stale_ones_swept() {
    let f = fixture_or_skip!();
    let runs = f.base.join("state/runs");
    // A stale run dir of a killed cairn: no lock holder, files of other ids.
    let stale = runs.join("run-stale-test");
    std::fs::create_dir_all(stale.join("upper/d")).unwrap();
    std::fs::write(stale.join("lock"), b"").unwrap();
    // A sandbox of its own: run dirs go when its last clone does.
    let sandbox = Sandbox::with_helper(f.base.join("state"), HELPER).unwrap();
    let out = sandbox
        .run(&sh(f, "true"), &())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!stale.exists(), "stale run dir swept");
    let upper = out.captured.upper();
    assert!(upper.exists());
    drop(out);
    assert!(
        upper.exists(),
        "removed when the step ended, not with the build"
    );
    // A later step of the same build (its sweep) leaves it alone: still locked.
    let clone = sandbox.clone();
    drop(
        clone
            .run(&sh(f, "true"), &())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(upper.exists(), "a live build's run dir was swept");
    drop((sandbox, clone));
    assert!(!upper.exists(), "run dir not removed with the sandbox");
}

fn unpriv_user_ready() -> bool {
    if uid() != 0
        || !std::process::Command::new("id")
            .arg(UNPRIV_USER)
            .output()
            .is_ok_and(|o| o.status.success())
    {
        eprintln!("\n!!! SKIPPING unprivileged sandbox test: run as root after tests/support/unpriv-user.sh !!!\n");
        return false;
    }
    // The user must reach this binary, the helper and the fixture (a
    // checkout under /root is not reachable).
    let exe = std::env::current_exe().unwrap();
    for path in [
        exe.as_path(),
        Path::new(HELPER),
        &oci_dir().join("index.json"),
    ] {
        let reachable = std::process::Command::new("runuser")
            .args(["-u", UNPRIV_USER, "--", "test", "-r"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !reachable {
            eprintln!(
                "\n!!! SKIPPING unprivileged sandbox test: {UNPRIV_USER} cannot read {} !!!\n",
                path.display()
            );
            return false;
        }
    }
    true
}

/// Run this test binary as the unprivileged user with `args`.
fn as_unpriv_user(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("runuser")
        .args(["-u", UNPRIV_USER, "--", "env", &format!("{AS_USER_ENV}=1")])
        .arg(format!("HOME=/tmp/cairn-it-home-{UNPRIV_USER}"))
        .arg(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As the unprivileged user (subordinate ids), the same command captures
/// the same entries as root. Runs this binary again under `runuser`.
#[test]
fn unprivileged_user_captures_what_root_captures() {
    let f = fixture_or_skip!();
    if std::env::var_os(AS_USER_ENV).is_some() {
        // Inner run: print the summary for the outer test.
        let (out, _) = run_ok(f, &sh(f, ADDUSER));
        let json = serde_json::to_string(&summary(out.captured.entries())).unwrap();
        println!("SUMMARY {json}");
        return;
    }
    if !unpriv_user_ready() {
        return;
    }
    let name = "sandbox::unprivileged_user_captures_what_root_captures";
    let (ok, stdout, stderr) =
        as_unpriv_user(&["--exact", name, "--nocapture", "--test-threads=1"]);
    assert!(ok, "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("SUMMARY ").map(|(_, j)| j))
        .unwrap_or_else(|| panic!("no summary in {stdout}\n{stderr}"));
    let theirs: Vec<String> = serde_json::from_str(line).unwrap();
    let ours = summary(run_ok(f, &sh(f, ADDUSER)).0.captured.entries());
    assert_eq!(theirs, ours);
}

/// Every other sandbox test also passes rootless (subordinate ids).
#[test]
fn every_sandbox_test_passes_as_the_unprivileged_user() {
    fixture_or_skip!();
    if std::env::var_os(AS_USER_ENV).is_some() || !unpriv_user_ready() {
        return;
    }
    let (ok, stdout, stderr) = as_unpriv_user(&[
        "sandbox::",
        "--skip",
        "every_sandbox_test_passes_as_the_unprivileged_user",
        "--skip",
        "unprivileged_user_captures_what_root_captures",
        "--test-threads=2",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok"), "{stdout}");
}

/// `RUN touch /x` over a lower of ≥ 200k files: overhead beyond the command.
/// `cargo test --release -- --ignored bench_ --nocapture`.
#[test]
#[ignore]
fn bench_touch_on_200k_files() {
    let f = fixture_or_skip!();
    let big = f.base.join("big");
    if !big.join(".done").exists() {
        for d in 0..2000 {
            let dir = big.join(format!("d{d:04}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..100 {
                std::fs::write(dir.join(format!("f{i:03}")), b"0123456789abcdef").unwrap();
            }
        }
        std::fs::write(big.join(".done"), b"").unwrap();
    }
    let mut lowers = f.lowers.clone();
    lowers.push(big);
    // Baseline: starting a process at all, under the same machine load.
    let mut base: Vec<_> = (0..15)
        .map(|_| {
            let t = std::time::Instant::now();
            std::process::Command::new("/bin/true").status().unwrap();
            t.elapsed()
        })
        .collect();
    base.sort();
    eprintln!(
        "baseline spawn+wait of /bin/true: median {:?}",
        base[base.len() / 2]
    );
    let mut samples = Vec::new();
    for _ in 0..15 {
        let mut spec = RunSpec::new(lowers.clone(), vec!["/bin/touch".into(), "/x".into()]);
        spec.epoch = 1;
        let t = std::time::Instant::now();
        let out = f.sandbox.run(&spec, &()).unwrap();
        let total = t.elapsed();
        assert_eq!(out.captured.entries().len(), 1);
        let t2 = std::time::Instant::now();
        drop(out.captured);
        samples.push((total, out.duration_in_command, t2.elapsed()));
    }
    samples.sort();
    for (total, cmd, cleanup) in &samples {
        eprintln!(
            "total {total:?}  in command {cmd:?}  overhead {:?}  cleanup {cleanup:?}",
            *total - *cmd
        );
    }
    let (total, cmd, _) = samples[samples.len() / 2];
    eprintln!(
        "MEDIAN total {total:?}, overhead beyond the command {:?}",
        total - cmd
    );
}

/// SIGKILL of the process that called `Sandbox::run` ends the whole
/// sandbox (no process survives) and the next run sweeps its directory.
#[test]
fn killing_the_caller_kills_the_step_and_the_next_run_sweeps() {
    let f = fixture_or_skip!();
    // The mark is this run's own (the victim is told it): other runs of the
    // suite on the machine leave their sleepers out of the count.
    if let Ok(mark) = std::env::var("CAIRN_IT_SANDBOX_VICTIM") {
        let _ = f.sandbox.run(&sh(f, &format!("{mark} & {mark}")), &());
        return;
    }
    let mark = format!("sleep {}", 9_000_000 + std::process::id());
    let mark = mark.as_str();
    let sleepers = || -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == mark)
            })
            .count()
    };
    // Killed when the test ends, even by a failed assertion: a victim left
    // behind keeps the test harness's output pipe open and the run hangs.
    struct Victim(std::process::Child);
    impl Drop for Victim {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut victim = Victim(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sandbox::killing_the_caller_kills_the_step_and_the_next_run_sweeps",
            ])
            .env("CAIRN_IT_SANDBOX_VICTIM", mark)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wait_for = |want: &dyn Fn(usize) -> bool| {
        for _ in 0..200 {
            if want(sleepers()) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    };
    assert!(wait_for(&|n| n == 2), "the step did not start");
    // The victim's run dir (other tests run in parallel with their own).
    let before: Vec<_> = std::fs::read_dir(f.base.join("state/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p.join("request.json")).is_ok_and(|r| r.contains(mark)))
        .collect();
    assert_eq!(before.len(), 1);
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    assert!(
        wait_for(&|n| n == 0),
        "processes of the killed step survived"
    );
    let (_out, _) = run_ok(f, &sh(f, "true"));
    for p in before {
        assert!(!p.exists(), "{} not swept", p.display());
    }
}

/// `--isolation=none` (root only, no user namespace) captures the same
/// entries as the user-namespace mode; as non-root it is refused.
#[test]
fn isolation_none_matches_overlay_as_root_and_is_refused_otherwise() {
    let f = fixture_or_skip!();
    let mut spec = sh(f, ADDUSER);
    spec.isolation = cairn::sandbox::Isolation::None;
    if uid() != 0 {
        let err = f.sandbox.run(&spec, &()).unwrap_err();
        assert!(matches!(err, SandboxError::Unavailable { .. }), "{err}");
        return;
    }
    let (out, _) = run_ok(f, &spec);
    assert_eq!(out.chosen.isolation, cairn::sandbox::Isolation::None);
    let none = summary(out.captured.entries());
    spec.isolation = cairn::sandbox::Isolation::Overlay;
    assert_eq!(none, summary(run_ok(f, &spec).0.captured.entries()));
}

/// Single-id mapping (no subordinate ids): chown to unmapped ids is
/// recorded by the seccomp supervisor and captured as the container ids.
#[test]
fn single_id_map_records_chown_to_other_ids() {
    let f = fixture_or_skip!();
    let sandbox = Sandbox::with_helper(f.base.join("state"), HELPER)
        .unwrap()
        .with_single_id_map();
    // Only id 0 exists in this mapping: owners cannot be kept by tar.
    let lowers = unpack_layers(
        &sandbox,
        &oci_dir(),
        &f.base.join("layers-single"),
        &["tar", "--no-same-owner", "-xpzf"],
    );
    let mut spec = sh(
        f,
        &format!("{ADDUSER} && chown 7:8 /etc/motd && chown 0:0 /srv && stat -c '%u' /srv/app"),
    );
    spec.lowers = lowers;
    let rec = Recorder::default();
    let out = sandbox.run(&spec, &rec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.chosen.identity,
        cairn::sandbox::idmap::IdentityKind::Single
    );
    let es = out.captured.entries();
    let owner = |p: &str| {
        let e = find(es, p).unwrap_or_else(|| panic!("{p} not captured"));
        (e.uid, e.gid)
    };
    assert_eq!(owner("srv/app"), (1001, 1001));
    assert_eq!(owner("home/nextjs").0, 1001);
    assert_eq!(owner("etc/motd"), (7, 8));
    assert_eq!(owner("srv"), (0, 0));
    assert!(
        es.iter().all(|e| e.xattrs.is_empty()),
        "the record is not a layer xattr"
    );
}

/// `cairn doctor` reports the probe and the chosen mode, as text and JSON.
#[test]
fn doctor_reports_the_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(HELPER);
        cmd.arg("doctor").arg("--state-dir").arg(dir.path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(false);
    assert!(
        text.contains("isolation modes (strongest first):"),
        "{text}"
    );
    assert!(text.contains("user.max_user_namespaces"), "{text}");
    let (jcode, json) = run(true);
    assert_eq!(code, jcode);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ladder = v["ladder"].as_array().unwrap();
    assert_eq!(ladder[0]["isolation"], "Overlay");
    if code == Some(0) {
        assert!(text.contains("chosen (auto): overlay"), "{text}");
        assert_eq!(ladder[0]["strength"], "Preferred");
    }
}

/// fuse-overlayfs mode (asked for explicitly): the same entries as kernel
/// overlayfs for whiteouts, opaque dirs and chown.
#[test]
fn fuse_overlay_captures_what_kernel_overlay_captures() {
    let f = fixture_or_skip!();
    let script = format!(
        "{ADDUSER} && rm /etc/issue && rm -rf /etc/apk && mkdir /etc/apk && echo x > /etc/apk/world"
    );
    let mut spec = sh(f, &script);
    spec.isolation = cairn::sandbox::Isolation::FuseOverlay;
    if let Err(e) = f.sandbox.probe().choose(spec.isolation) {
        eprintln!("\n!!! SKIPPING fuse-overlayfs test: {e} !!!\n");
        return;
    }
    let (out, _) = run_ok(f, &spec);
    assert_eq!(out.chosen.isolation, cairn::sandbox::Isolation::FuseOverlay);
    let fuse = summary(out.captured.entries());
    spec.isolation = cairn::sandbox::Isolation::Overlay;
    let kernel = summary(run_ok(f, &spec).0.captured.entries());
    assert_eq!(fuse, kernel);
}

/// Copy mode (asked for explicitly): the same entries as kernel overlayfs.
#[test]
fn copy_mode_captures_what_overlay_captures() {
    let f = fixture_or_skip!();
    let script = format!(
        "{ADDUSER} && rm /etc/issue && rm -rf /etc/apk && mkdir /etc/apk && echo x > /etc/apk/world && rm -rf /opt && ln /etc/passwd /etc/pw2 && touch /etc/motd"
    );
    let mut spec = sh(f, &script);
    spec.isolation = cairn::sandbox::Isolation::Copy;
    let (out, _) = run_ok(f, &spec);
    assert_eq!(out.chosen.isolation, cairn::sandbox::Isolation::Copy);
    let copied = summary(out.captured.entries());
    spec.isolation = cairn::sandbox::Isolation::Overlay;
    let kernel = summary(run_ok(f, &spec).0.captured.entries());
    assert_eq!(copied, kernel);
    assert!(
        copied.iter().any(|l| l.starts_with(".wh.opt ")),
        "{copied:#?}"
    );
}

/// The default network is the host's: npm reaches its registry (through
/// the machine's TLS-intercepting CA, mounted as a secret, never captured).
#[test]
fn default_network_reaches_the_npm_registry() {
    use std::net::ToSocketAddrs;
    let f = fixture_or_skip!();
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ("registry.npmjs.org", 443).to_socket_addrs().is_err() || !ca.exists() {
        eprintln!(
            "\n!!! SKIPPING npm registry test: registry.npmjs.org does not resolve here !!!\n"
        );
        return;
    }
    let mut spec = sh(f, "npm view left-pad@1.3.0 version");
    spec.env
        .push(("NODE_EXTRA_CA_CERTS".into(), "/run/secrets/ca.pem".into()));
    spec.env
        .push(("npm_config_update_notifier".into(), "false".into()));
    spec.mounts.push(Mount::Secret {
        host: ca.to_path_buf(),
        target: "/run/secrets/ca.pem".into(),
        uid: 0,
        gid: 0,
        mode: 0o444,
    });
    spec.mounts.push(Mount::Tmpfs {
        target: "/root/.npm".into(),
    });
    let (out, lines) = run_ok(f, &spec);
    assert_eq!(lines.last().map(String::as_str), Some("1.3.0"), "{lines:?}");
    let leaked: Vec<&str> = out
        .captured
        .entries()
        .iter()
        .map(|e| e.path.as_str())
        .filter(|p| p.contains("secrets") || p.starts_with("root/.npm"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// `RUN touch /x` on the node fixture in every available mode (median of 7).
/// `cargo test --test it bench_modes -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_modes() {
    use cairn::sandbox::Isolation;
    let f = fixture_or_skip!();
    for mode in [
        Isolation::Overlay,
        Isolation::FuseOverlay,
        Isolation::Copy,
        Isolation::None,
    ] {
        if f.sandbox.probe().choose(mode).is_err() {
            eprintln!("{}: not available", mode.name());
            continue;
        }
        let mut spec = RunSpec::new(f.lowers.clone(), vec!["/bin/touch".into(), "/x".into()]);
        spec.isolation = mode;
        let mut samples: Vec<_> = (0..7)
            .map(|_| {
                let out = f.sandbox.run(&spec, &()).unwrap();
                (out.duration_total, out.duration_in_command)
            })
            .collect();
        samples.sort();
        let (total, cmd) = samples[samples.len() / 2];
        eprintln!(
            "{:<13} median total {total:?}, in command {cmd:?}",
            mode.name()
        );
    }
}

/// A missing program is a setup error naming it; a missing working
/// directory is created (buildkit does the same) and captured.
#[test]
fn missing_program_and_missing_workdir() {
    let f = fixture_or_skip!();
    let spec = RunSpec::new(f.lowers.clone(), vec!["no-such-program".into()]);
    let err = f.sandbox.run(&spec, &()).unwrap_err();
    assert!(matches!(err, SandboxError::Setup { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("\"no-such-program\": executable file not found in $PATH"),
        "{err}"
    );
    let mut spec = sh(f, "pwd");
    spec.cwd = "/work/dir".into();
    let (out, lines) = run_ok(f, &spec);
    assert_eq!(lines, ["/work/dir"]);
    let paths: Vec<&str> = out
        .captured
        .entries()
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, ["work", "work/dir"]);
}

/// A mount target under an image symlink (`/var/run -> ../run` in Alpine)
/// lands where the link points, in overlay and copy mode.
#[test]
fn mount_targets_follow_image_symlinks() {
    let f = fixture_or_skip!();
    for mode in [
        cairn::sandbox::Isolation::Overlay,
        cairn::sandbox::Isolation::Copy,
    ] {
        let mut spec = sh(f, "touch /run/cache-x/f && ls /var/run/cache-x");
        spec.isolation = mode;
        spec.mounts = vec![Mount::Tmpfs {
            target: "/var/run/cache-x".into(),
        }];
        let (out, lines) = run_ok(f, &spec);
        assert_eq!(lines, ["f"], "{}", mode.name());
        assert!(
            out.captured.entries().is_empty(),
            "{}: {:?}",
            mode.name(),
            out.captured.entries()
        );
    }
}
