//! The buildx flags that shape RUN steps and what stages read, end to end on
//! the node:22-alpine stand-in with RUN in the sandbox: `--add-host`,
//! `--ulimit`, `--shm-size`, `--ssh` with `RUN --mount=type=ssh` (a real
//! ssh-agent, spoken to from inside the step), and `--build-context` (a
//! sibling directory, an OCI layout, a registry image).

use crate::support::registry::{Auth, TestRegistry};
use crate::support::{build_command, fixture_layout, manifest_digest, ok, run};
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture_dir() -> PathBuf {
    fixture_layout()
        .expect("the node:22-alpine stand-in is missing: run `just fixtures` (just test does)")
}

fn fixture() -> String {
    format!("oci:{}:22-alpine", fixture_dir().display())
}

/// `cairn build CTX --progress plain --cache-dir HOME/cache EXTRA…`, run in `cwd`.
fn build_in(home: &Path, cwd: &Path, ctx: &Path, extra: &[&str]) -> Output {
    let mut c = build_command(home, ctx, "cache", "plain");
    c.current_dir(cwd).args(extra);
    run(c, "")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The paths in the image's new layers, and its JSON blobs (config with the
/// history, manifest, build record), as text: what must not hold a given string.
fn image_text(out: &Path) -> (String, String) {
    let (mut all, mut json) = (String::new(), String::new());
    let base = fixture_dir().join("blobs/sha256");
    for f in walkdir::WalkDir::new(out.join("blobs"))
        .into_iter()
        .flatten()
        .filter(|f| f.file_type().is_file() && !base.join(f.file_name()).exists())
    {
        let bytes = std::fs::read(f.path()).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
            for e in ar.entries().unwrap() {
                all.push_str(&e.unwrap().path().unwrap().to_string_lossy());
                all.push('\n');
            }
        } else {
            json.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    (all, json)
}

#[test]
fn add_host_ulimit_and_shm_size_reach_run_and_not_the_image() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM {}\nRUN (ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; cat /etc/hosts) > /flags.txt\n",
            fixture()
        ),
    );
    let out = t.path().join("out");
    let dest = format!("type=local,dest={}", out.display());
    let o = build_in(
        t.path(),
        t.path(),
        &ctx,
        &[
            "--ulimit",
            "nofile=1234:2345",
            "--shm-size",
            "96m",
            "--add-host",
            "db.internal:10.1.2.3",
            "--add-host",
            "gw:host-gateway",
            "-o",
            &dest,
        ],
    );
    ok(&o);
    let flags = read(&out.join("flags.txt"));
    let lines: Vec<&str> = flags.lines().collect();
    assert_eq!(&lines[..2], ["1234", "2345"], "{flags}");
    // df -k: Filesystem 1K-blocks …: 96 MiB is 98304 blocks.
    assert!(
        lines[2].split_whitespace().nth(1) == Some("98304"),
        "{flags}"
    );
    assert!(flags.contains("10.1.2.3\tdb.internal"), "{flags}");
    assert!(flags.contains("127.0.0.1\tgw"), "{flags}");
    // /etc/hosts is the sandbox's, never the image's.
    let hosts = std::fs::read_to_string(out.join("etc/hosts")).unwrap_or_default();
    assert!(!hosts.contains("db.internal"), "{hosts}");

    // Without the flags: Docker's 64 MiB /dev/shm, and the step is not the cached one.
    let out2 = t.path().join("out2");
    let o = build_in(
        t.path(),
        t.path(),
        &ctx,
        &["-o", &format!("type=local,dest={}", out2.display())],
    );
    ok(&o);
    assert!(!stderr(&o).contains("CACHED"), "{}", stderr(&o));
    let flags = read(&out2.join("flags.txt"));
    let lines: Vec<&str> = flags.lines().collect();
    assert!(
        lines[2].split_whitespace().nth(1) == Some("65536"),
        "{flags}"
    );
    assert_ne!(lines[0], "1234", "{flags}");
    assert!(!flags.contains("db.internal"), "{flags}");
}

#[test]
fn bad_run_flag_values_fail_before_work_naming_the_flag() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    // No FROM reachable and no RUN: only the flags can fail.
    write(&ctx.join("Dockerfile"), "FROM scratch\n");
    for (flag, value, says) in [
        ("--ulimit", "nofiles=1", "unknown limit `nofiles`"),
        ("--ulimit", "nofile=10:5", "above its hard limit"),
        (
            "--ulimit",
            "nofile=1:9999999999",
            "above cairn's own hard limit",
        ),
        ("--shm-size", "lots", "not a size"),
        ("--add-host", "db", "expected HOST:IP"),
        ("--add-host", "db:10.0.0.300", "not an IP address"),
        ("--ssh", "default=/nonexistent/agent.sock", "cannot use"),
        (
            "--build-context",
            "lib=s3://bucket/x",
            "unknown scheme `s3://`",
        ),
        ("--build-context", "lib=./no-such-dir", "is not a directory"),
        (
            "--build-context",
            "base=docker-image://UPPER/Case",
            "bad image reference",
        ),
    ] {
        let o = build_in(t.path(), t.path(), &ctx, &[flag, value]);
        let e = stderr(&o);
        assert!(!o.status.success(), "{flag} {value}");
        assert!(e.contains(flag) && e.contains(says), "{flag} {value}: {e}");
        assert!(e.contains("hint"), "{flag} {value}: the fix: {e}");
    }
}

/// A real ssh-agent holding one new ed25519 key, stopped on drop.
struct Agent {
    child: std::process::Child,
    sock: PathBuf,
}

/// `program` run as `user` (exec'd in place by setpriv, so the child is the program itself), or as we are.
fn command_as(user: Option<&str>, program: &str) -> std::process::Command {
    match user {
        Some(u) => {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid", u, "--regid", u, "--init-groups", program]);
            c
        }
        None => std::process::Command::new(program),
    }
}

impl Agent {
    fn start(dir: &Path, comment: &str) -> Agent {
        Agent::start_as(None, dir, comment)
    }

    /// An agent of `user` (the socket is theirs, mode 0600).
    fn start_as(user: Option<&str>, dir: &Path, comment: &str) -> Agent {
        let sock = dir.join("agent.sock");
        let child = command_as(user, "ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) is installed");
        while !sock.exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key = dir.join("id_test");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let st = std::process::Command::new("ssh-add")
            .env("SSH_AUTH_SOCK", &sock)
            .arg(&key)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        Agent { child, sock }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RUN that asks the agent at $SSH_AUTH_SOCK (or its argument) for its keys
/// (SSH2_AGENTC_REQUEST_IDENTITIES) and prints their comments: `ssh-add -l`
/// in node, which the stand-in has.
const LIST_KEYS: &str = r#"const s=require('net').connect(process.argv[2]||process.env.SSH_AUTH_SOCK);let b=Buffer.alloc(0);s.on('data',d=>{b=Buffer.concat([b,d]);if(b.length>=4&&b.length>=4+b.readUInt32BE(0)){let o=9,n=b.readUInt32BE(5),c=[];for(let i=0;i<n;i++){o+=4+b.readUInt32BE(o);const l=b.readUInt32BE(o);c.push(b.slice(o+4,o+4+l).toString());o+=4+l}console.log('type='+b[4]+' keys='+c.join(','));s.end()}});s.write(Buffer.from([0,0,0,1,11]))"#;

#[test]
fn ssh_agent_is_forwarded_to_the_run_that_mounts_it_and_nowhere_else() {
    let t = tempfile::tempdir().unwrap();
    let agent = Agent::start(t.path(), "cairn-ssh-test-key");
    let ctx = t.path().join("ctx");
    write(&ctx.join("list.js"), LIST_KEYS);
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM {}\nCOPY list.js /\n\
             RUN --mount=type=ssh (echo \"sock=$SSH_AUTH_SOCK\"; stat -c '%a %u' $SSH_AUTH_SOCK; node /list.js) > /ssh.txt\n\
             USER node\n\
             RUN --mount=type=ssh,id=gh,target=/home/node/agent,uid=1000,mode=0600,required node /list.js /home/node/agent > /tmp/gh.txt\n\
             RUN (echo \"after=${{SSH_AUTH_SOCK:-unset}}\"; ls /run/buildkit 2>&1; ls /home/node/agent 2>&1; true) > /tmp/after.txt\n",
            fixture()
        ),
    );
    let out = t.path().join("out");
    let mut c = build_command(t.path(), &ctx, "cache", "plain");
    c.env("SSH_AUTH_SOCK", &agent.sock)
        .args(["--ssh", "default", "--ssh"])
        .arg(format!("gh={}", agent.sock.display()))
        .arg("-o")
        .arg(format!("type=oci,dest={},tar=false", out.display()))
        .arg("-o")
        .arg(format!("type=local,dest={}", t.path().join("fs").display()));
    ok(&run(c, ""));
    let fs = t.path().join("fs");
    let ssh = read(&fs.join("ssh.txt"));
    assert!(ssh.contains("sock=/run/buildkit/ssh_agent.0"), "{ssh}");
    assert!(
        ssh.contains("600 0"),
        "BuildKit's default owner and mode: {ssh}"
    );
    // type 12 = SSH2_AGENT_IDENTITIES_ANSWER: the agent answered through the socket.
    assert!(ssh.contains("type=12 keys=cairn-ssh-test-key"), "{ssh}");
    let gh = read(&fs.join("tmp/gh.txt"));
    assert!(
        gh.contains("keys=cairn-ssh-test-key"),
        "USER node reaches its socket: {gh}"
    );
    let after = read(&fs.join("tmp/after.txt"));
    assert!(after.contains("after=unset"), "{after}");
    assert!(!after.contains("ssh_agent"), "{after}");
    // Neither the socket, its path nor the agent's location is in a layer, the config or the history.
    let (paths, json) = image_text(&out);
    for p in ["run/buildkit", "home/node/agent\n"] {
        assert!(!paths.contains(p), "{p} is in a layer:\n{paths}");
    }
    let sock = agent.sock.display().to_string();
    assert!(
        json.contains("\"history\"") && paths.contains("ssh.txt"),
        "the image was read"
    );
    assert!(
        !json.contains(&sock),
        "the agent's socket is named in the image or record"
    );
    assert!(!json.contains("SSH_AUTH_SOCK="), "in the config: {json}");
    let mut records = 0;
    for f in walkdir::WalkDir::new(t.path().join("cache/steps"))
        .into_iter()
        .flatten()
        .filter(|f| f.file_type().is_file())
    {
        let rec = std::fs::read_to_string(f.path()).unwrap_or_default();
        assert!(!rec.contains(&sock), "{rec}");
        records += usize::from(rec.contains("mount ssh gh"));
    }
    assert!(records > 0, "the step records were read");
}

#[test]
fn a_required_ssh_mount_without_an_agent_fails_at_its_line_before_work() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    // The base does not exist: the error must come before it is looked for.
    write(
        &ctx.join("Dockerfile"),
        "FROM localhost:1/nowhere:1\nRUN echo x\nRUN --mount=type=ssh,id=gh,required=true git clone git@github.com:acme/private\n",
    );
    let o = build_in(t.path(), t.path(), &ctx, &["--ssh", "other=/dev/null"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--ssh other"), "/dev/null is no socket: {e}");
    let o = build_in(t.path(), t.path(), &ctx, &[]);
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(e.contains("Dockerfile:3"), "{e}");
    assert!(e.contains("ssh agent `gh` is required"), "{e}");
    assert!(e.contains("--ssh gh=SOCKET"), "{e}");
    assert!(!e.contains("nowhere"), "nothing was pulled: {e}");
}

#[test]
fn a_sibling_directory_as_a_named_context_with_its_own_dockerignore() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let app = repo.join("apps/web");
    let shared = repo.join("libs/shared");
    write(&shared.join("index.js"), "module.exports = 1;\n");
    write(&shared.join("local.env"), "TOKEN=nope\n");
    write(&shared.join(".dockerignore"), "*.env\n");
    std::os::unix::fs::symlink("/etc", shared.join("hostetc")).unwrap();
    write(&app.join("server.js"), "require('shared');\n");
    write(
        &app.join("Dockerfile"),
        &format!(
            "FROM scratch AS shared\nCOPY this-stage-is-replaced /\n\
             FROM {}\nWORKDIR /app\nCOPY server.js ./\nCOPY --from=shared . node_modules/shared/\n\
             RUN --mount=from=shared,target=/mnt/shared (ls -A /mnt/shared; cat /mnt/shared/index.js) > /app/mounted.txt\n",
            fixture()
        ),
    );
    let out = t.path().join("out");
    let dest = format!("type=local,dest={}", out.display());
    // Relative to where cairn runs, as buildx.
    let args = ["--build-context", "shared=../../libs/shared", "-o", &dest];
    ok(&build_in(t.path(), &app, Path::new("."), &args));
    assert_eq!(
        read(&out.join("app/node_modules/shared/index.js")),
        "module.exports = 1;\n"
    );
    assert!(!out.join("app/node_modules/shared/local.env").exists());
    let mounted = read(&out.join("app/mounted.txt"));
    assert!(
        mounted.contains("index.js") && mounted.contains("module.exports = 1;"),
        "{mounted}"
    );
    assert!(!mounted.contains("local.env"), "{mounted}");
    // The link is copied as a link, never followed to the host's /etc.
    let link = std::fs::read_link(out.join("app/node_modules/shared/hostetc")).unwrap();
    assert_eq!(link, Path::new("/etc"));

    // Unchanged: every step cached. A changed file: COPY and RUN run again.
    let o = build_in(t.path(), &app, Path::new("."), &args);
    ok(&o);
    let log = stderr(&o);
    assert_eq!(log.matches("CACHED").count(), 4, "{log}");
    write(&shared.join("index.js"), "module.exports = 2;\n");
    let o = build_in(t.path(), &app, Path::new("."), &args);
    ok(&o);
    let log = stderr(&o);
    assert_eq!(
        log.matches("CACHED").count(),
        2,
        "WORKDIR and COPY server.js only: {log}"
    );
    assert!(read(&out.join("app/mounted.txt")).contains("module.exports = 2;"));
    // A change the .dockerignore excludes changes nothing.
    write(&shared.join("local.env"), "TOKEN=other\n");
    let o = build_in(t.path(), &app, Path::new("."), &args);
    assert_eq!(stderr(&o).matches("CACHED").count(), 4, "{}", stderr(&o));

    // Never read outside the directory: a path through the link to /etc is not there.
    write(
        &app.join("Dockerfile"),
        &format!("FROM {}\nCOPY --from=shared hostetc/passwd /p\n", fixture()),
    );
    let o = build_in(t.path(), &app, Path::new("."), &args);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("hostetc/passwd"), "{e}");

    // FROM a directory context: its files at /, nothing else.
    write(&app.join("Dockerfile"), "FROM shared\n");
    let out2 = t.path().join("out2");
    let dest2 = format!("type=local,dest={}", out2.display());
    ok(&build_in(
        t.path(),
        &app,
        Path::new("."),
        &["--build-context", "shared=../../libs/shared", "-o", &dest2],
    ));
    let mut names: Vec<String> = std::fs::read_dir(&out2)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".dockerignore", "hostetc", "index.js"]);
}

#[test]
fn an_image_named_context_pins_from_an_oci_layout_or_a_registry() {
    let fixture = fixture_dir();
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    // `node:22-alpine` is not reachable here: only the named context makes this build work.
    write(
        &ctx.join("Dockerfile"),
        "FROM node:22-alpine\nRUN node -e 'console.log(process.version)' > /v\nCOPY --from=tools /etc/alpine-release /tools-release\n",
    );
    let digest = manifest_digest(&fixture, "22-alpine");
    let reg = TestRegistry::start(Auth::None);
    let image = crate::build::push_fixture(&reg, &fixture, t.path());
    let mut digests = Vec::new();
    for base in [
        format!("oci-layout://{}:22-alpine", fixture.display()),
        format!("oci-layout://{}@{digest}", fixture.display()),
        format!("docker-image://{image}"),
    ] {
        let out = t.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let o = build_in(
            t.path(),
            t.path(),
            &ctx,
            &[
                "--build-context",
                &format!("node:22-alpine={base}"),
                "--build-context",
                &format!("tools=oci-layout://{}:22-alpine", fixture.display()),
                "-o",
                &format!("type=local,dest={}", out.display()),
            ],
        );
        digests.push(ok(&o));
        assert!(read(&out.join("v")).starts_with("v22."), "{base}");
        assert!(out.join("tools-release").is_file(), "{base}");
    }
    // The same base by tag, digest or registry: the same image.
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// As root, the same flags for the unprivileged test user (tests/support/unpriv-user.sh): RUN in a user
/// namespace with subordinate ids, the agent theirs, the proxy in their helper. As any other user the tests
/// above already run rootless, and this one runs as them too.
#[test]
fn the_run_flags_work_rootless() {
    let root = rustix::process::geteuid().is_root();
    let user = root.then_some("cairn-unpriv");
    let t = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    if root {
        let st = std::process::Command::new("chown")
            .args(["cairn-unpriv:cairn-unpriv"])
            .arg(&home)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "the test user cairn-unpriv must exist (tests/support/unpriv-user.sh)"
        );
    }
    let agent = Agent::start_as(user, &home, "rootless-key");
    let ctx = t.path().join("ctx");
    let lib = t.path().join("lib");
    write(&lib.join("a.txt"), "hi-lib\n");
    write(&ctx.join("list.js"), LIST_KEYS);
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM {}\nCOPY list.js /\nCOPY --from=lib a.txt /\n\
             RUN --mount=type=ssh,required node /list.js && ulimit -n && ulimit -Hn && df -k /dev/shm && cat /etc/hosts /a.txt\n\
             USER node\nRUN --mount=type=ssh,uid=1000 node /list.js\n",
            fixture()
        ),
    );
    for d in [&ctx, &lib] {
        let st = std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(d)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut c = command_as(user, "env");
    c.arg(format!("HOME={}", home.display()))
        .arg(format!("SSH_AUTH_SOCK={}", agent.sock.display()))
        .arg("NO_COLOR=1")
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(home.join("cache"))
        .args([
            "--ssh",
            "default",
            "--ulimit",
            "nofile=512:1024",
            "--shm-size",
            "32m",
        ])
        .args(["--add-host", "x:1.2.3.4", "--build-context"])
        .arg(format!("lib={}", lib.display()));
    let o = run(c, "");
    ok(&o);
    let log = stderr(&o);
    assert!(!root || log.contains("subordinate ids"), "rootless: {log}");
    assert_eq!(log.matches("type=12 keys=rootless-key").count(), 2, "{log}");
    for want in [" 512\n", " 1024\n", "32768", "1.2.3.4\tx", "hi-lib"] {
        assert!(log.contains(want), "{want:?} in {log}");
    }
}
