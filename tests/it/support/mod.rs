//! Shared test kit: real registries, a fault-injecting proxy, a token issuer,
//! synthetic images and a `cairn` command runner.

#![allow(dead_code)]

pub mod http;
pub mod image;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The built `cairn` binary with an isolated docker config and home.
pub fn cairn(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("NO_COLOR", "1")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY");
    c
}

/// `cairn build CTX --progress PROGRESS --cache-dir HOME/CACHE`: where every
/// build a test runs starts (add its flags with `.args(…)`, then [`run`]).
pub fn build_command(home: &Path, ctx: &Path, cache: &str, progress: &str) -> Command {
    let mut c = cairn(home);
    c.arg("build")
        .arg(ctx)
        .args(["--progress", progress, "--cache-dir"])
        .arg(home.join(cache));
    c
}

/// Run, feeding `stdin`, and return the output.
pub fn run(mut c: Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Run `cairn ARGS` with an isolated home and no stdin.
pub fn cli(home: &Path, args: &[String]) -> Output {
    let mut c = cairn(home);
    c.args(args);
    run(c, "")
}

/// stdout as a trimmed string, panicking with stderr when the command failed.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A path under the repository's `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// `cairn build CONTEXT --progress plain --cache-dir HOME/cache`, which must
/// fail: its stderr.
pub fn build_err(home: &Path, ctx: &Path) -> String {
    let mut c = cairn(home);
    c.arg("build")
        .arg(ctx)
        .args(["--progress", "plain", "--cache-dir"])
        .arg(home.join("cache"));
    let o = run(c, "");
    assert!(!o.status.success(), "build should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The node:22-alpine stand-in layout, if built (`just fixtures`, which
/// `just test` runs): `$CAIRN_FIXTURE_OCI`, else this checkout's
/// `target/fixtures/node-alpine/oci`.
pub fn fixture_layout() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CAIRN_FIXTURE_OCI").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/node-alpine/oci")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("index.json").is_file())
}

/// The stand-in's pinned digest for `tag` (`22-alpine`, `22-alpine-multi`):
/// every build of testdata/base/node-alpine must give these.
pub fn fixture_pin(tag: &str) -> String {
    let pins = std::fs::read_to_string(testdata("base/node-alpine/digests")).unwrap();
    pins.lines()
        .find_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no pin for {tag} in testdata/base/node-alpine/digests"))
        .to_owned()
}

/// How many layers the stand-in's `22-alpine` image has (the layers a build
/// on it adds come after these).
pub fn fixture_layer_count(layout: &Path) -> usize {
    let hex = manifest_digest(layout, "22-alpine");
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(hex.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    m["layers"].as_array().unwrap().len()
}

/// The digest of the manifest tagged `tag` in the OCI layout `layout`.
pub fn manifest_digest(layout: &Path, tag: &str) -> String {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no manifest tagged {tag} in {}", layout.display()))["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}
