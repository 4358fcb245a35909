//! Authentication against real registries: htpasswd (Basic) and
//! distribution's token mode with a test issuer; login/logout; redirects
//! without credentials; and no secret in anything cairn prints.

use crate::support::http::{respond, Server, TokenIssuer, ISSUER, REFRESH_TOKEN, SERVICE};
use crate::support::image::two_platform_layout;
use crate::support::registry::{Auth, TestRegistry};
use crate::support::{cairn, ok, run};
use cairn::image::manifest::Descriptor;
use cairn::registry::credentials::{Credential, Secret};
use cairn::registry::{CredentialSource, Reference, Registry, RegistryOptions};
use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "pw-Zq8Xk3-very-secret";

struct Transcript(Vec<u8>);

impl Transcript {
    fn add(&mut self, o: &Output) {
        self.0.extend_from_slice(&o.stdout);
        self.0.extend_from_slice(&o.stderr);
    }
    fn assert_clean(&self, secrets: &[&str]) {
        let all = String::from_utf8_lossy(&self.0);
        for s in secrets {
            assert!(!all.contains(s), "a secret was printed:\n{all}");
        }
        assert!(!all.contains("eyJ"), "a JWT was printed:\n{all}");
    }
}

fn cmd(home: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut c = cairn(home);
    c.args(args);
    c
}

/// A library client that knows `user`/[`PASSWORD`] for `registry` and nothing else.
fn client_with_password(registry: &str, user: &str) -> Registry {
    let mut o = RegistryOptions::default();
    o.transport.credentials = CredentialSource::Fixed(HashMap::from([(
        registry.to_owned(),
        Credential::UserPassword {
            username: user.into(),
            password: Secret::new(PASSWORD),
        },
    )]));
    Registry::new(o).unwrap()
}

fn auth_round_trip(reg_addr: &str, home: &std::path::Path, t: &mut Transcript) {
    let src = home.join("src");
    let (_l, idx, _amd, _arm) = two_platform_layout(&src, 11, &[20_000]);
    let src_ref = format!("oci:{}:multi", src.display());
    let dest = format!("{reg_addr}/private/app:1");

    let o = run(cmd(home, &["push", &src_ref, &dest]), "");
    t.add(&o);
    assert!(!o.status.success(), "anonymous push must fail");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(reg_addr) && err.contains("hint: log in first: `cairn login"),
        "{err}"
    );

    let o = run(
        cmd(
            home,
            &["login", reg_addr, "-u", "alice", "--password-stdin"],
        ),
        "wrong-password\n",
    );
    t.add(&o);
    assert!(!o.status.success(), "wrong password accepted");
    assert!(
        !home.join(".docker/config.json").exists(),
        "nothing stored after a failed login"
    );

    let o = run(
        cmd(
            home,
            &["login", reg_addr, "-u", "alice", "--password-stdin"],
        ),
        &format!("{PASSWORD}\n"),
    );
    t.add(&o);
    ok(&o);
    let cfg = home.join(".docker/config.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert!(v["auths"][reg_addr]["auth"].is_string(), "{v}");

    let o = run(cmd(home, &["push", &src_ref, &dest]), "");
    t.add(&o);
    assert_eq!(ok(&o), idx.digest.to_string());
    let out = format!("oci:{}", home.join("out").display());
    let o = run(cmd(home, &["pull", &dest, "--output", &out]), "");
    t.add(&o);
    ok(&o);
    let o = run(cmd(home, &["inspect", &dest]), "");
    t.add(&o);
    ok(&o);

    let o = run(cmd(home, &["logout", reg_addr]), "");
    t.add(&o);
    ok(&o);
    let o = run(cmd(home, &["pull", &dest, "--output", &out]), "");
    t.add(&o);
    assert!(!o.status.success(), "pull after logout must fail");
}

#[test]
fn htpasswd_basic_auth_login_push_pull_logout() {
    let reg = TestRegistry::start(Auth::Htpasswd {
        user: "alice".into(),
        password: PASSWORD.into(),
    });
    let home = tempfile::tempdir().unwrap();
    let mut t = Transcript(Vec::new());
    auth_round_trip(&reg.addr(), home.path(), &mut t);
    t.assert_clean(&[PASSWORD, "cHctWnE4WGsz"]);
}

/// A test token issuer (alice / [`PASSWORD`], or [`REFRESH_TOKEN`]) and a registry trusting it.
fn token_registry(dir: &std::path::Path) -> (TokenIssuer, TestRegistry) {
    let issuer = TokenIssuer::start(dir, "alice", PASSWORD);
    let reg = TestRegistry::start(Auth::Token {
        realm: issuer.realm(),
        service: SERVICE.into(),
        issuer: ISSUER.into(),
        cert: issuer.cert.clone(),
    });
    (issuer, reg)
}

#[test]
fn token_auth_login_push_pull_and_mount_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, reg) = token_registry(dir.path());
    let home = tempfile::tempdir().unwrap();
    let mut t = Transcript(Vec::new());
    auth_round_trip(&reg.addr(), home.path(), &mut t);
    t.assert_clean(&[PASSWORD]);

    // Library: a push mounting from another repository asks for pull on it.
    let client = client_with_password(&reg.addr(), "alice");
    let l = cairn::image::oci_layout::OciLayout::open(home.path().join("src")).unwrap();
    let d: Descriptor = l.resolve(Some("amd64")).unwrap();
    let bytes = l.store().read_bytes(&d.digest).unwrap();
    let target: Reference = format!("{}/other/app:1", reg.addr()).parse().unwrap();
    let from = cairn::registry::Repository::parse(&format!("{}/private/app", reg.addr())).unwrap();
    issuer.requests.lock().unwrap().clear();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.push_image(&target, &bytes, &d.media_type, l.store(), &[from]))
        .unwrap();
    let reqs = issuer.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|(auth, scopes)| *auth
            && scopes.contains(&"repository:other/app:pull,push".to_owned())
            && scopes.contains(&"repository:private/app:pull".to_owned())),
        "{reqs:?}"
    );
}

#[test]
fn redirects_do_not_carry_credentials_to_another_host() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(Vec::new()));
    let blob = b"redirected blob bytes".to_vec();
    let digest = cairn_layers::Digest::of(&blob);
    let seen2 = seen.clone();
    let body = blob.clone();
    let storage = Server::start(move |req, conn| {
        seen2
            .lock()
            .unwrap()
            .push(req.header("authorization").map(str::to_owned));
        respond(conn, 200, &[], &body);
    });
    let storage_port = storage.port;
    let front = Server::start(move |req, conn| match req.header("authorization") {
        None => respond(
            conn,
            401,
            &[("WWW-Authenticate", "Basic realm=\"t\"".into())],
            b"",
        ),
        Some(_) => respond(
            conn,
            307,
            &[("Location", format!("http://localhost:{storage_port}/data"))],
            b"",
        ),
    });
    let client = client_with_password(&front.addr(), "u");
    let r: Reference = format!("{}/a/b:1", front.addr()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_layers::blob_store::BlobStore::open(dir.path()).unwrap();
    let desc = Descriptor::new(
        "application/octet-stream",
        digest.clone(),
        blob.len() as u64,
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.fetch_blob(&r, &desc, &store))
        .unwrap();
    assert!(store.contains(&digest));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None],
        "Authorization forwarded across hosts"
    );
}

#[test]
fn identity_token_from_config_json_uses_the_refresh_token_grant() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, reg) = token_registry(dir.path());
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".docker")).unwrap();
    std::fs::write(
        home.path().join(".docker/config.json"),
        serde_json::json!({"auths": {reg.addr(): {"auth": "", "identitytoken": REFRESH_TOKEN}}})
            .to_string(),
    )
    .unwrap();
    let src = home.path().join("src");
    let (_l, _idx, amd, _arm) = two_platform_layout(&src, 12, &[5_000]);
    let mut t = Transcript(Vec::new());
    let o = run(
        cmd(
            home.path(),
            &[
                "push",
                &format!("oci:{}:amd64", src.display()),
                &format!("{}/id/app:1", reg.addr()),
            ],
        ),
        "",
    );
    t.add(&o);
    assert_eq!(ok(&o), amd.digest.to_string());
    t.assert_clean(&[REFRESH_TOKEN]);
    let reqs = issuer.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().all(|(authed, _)| *authed),
        "every token request used the refresh token: {reqs:?}"
    );
}

#[test]
fn tokens_are_cached_per_scope_and_renewed_when_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, reg) = token_registry(dir.path());
    let home = tempfile::tempdir().unwrap();
    let (l, _idx, amd, _arm) = two_platform_layout(&home.path().join("src"), 13, &[3_000]);
    let bytes = l.store().read_bytes(&amd.digest).unwrap();
    let client = client_with_password(&reg.addr(), "alice");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target: Reference = format!("{}/exp/app:1", reg.addr()).parse().unwrap();
    issuer
        .expires_in
        .store(2, std::sync::atomic::Ordering::SeqCst);
    rt.block_on(client.push_image(&target, &bytes, &amd.media_type, l.store(), &[]))
        .unwrap();
    let count = || issuer.requests.lock().unwrap().len();
    let after_push = count();
    assert_eq!(
        after_push, 1,
        "one token for the push scope, reused for every request"
    );
    // A pull needs another scope: one more token, then cached.
    rt.block_on(client.fetch_manifest(&target)).unwrap();
    rt.block_on(client.fetch_manifest(&target)).unwrap();
    assert_eq!(count(), after_push + 1);
    // After expiry: renewed.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    rt.block_on(client.fetch_manifest(&target)).unwrap();
    assert_eq!(count(), after_push + 2);
}

/// Token replies cut off mid-body or answered 503 are fetched again with
/// the usual backoff (a token service hiccup does not fail the pull).
#[test]
fn interrupted_token_replies_are_retried() {
    use crate::support::http::{Fault, FaultProxy};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let issuer = TokenIssuer::start(dir.path(), "alice", PASSWORD);
    let n = AtomicUsize::new(0);
    let proxy = FaultProxy::start(issuer.server.addr(), move |_, _| {
        match n.fetch_add(1, Ordering::SeqCst) {
            0 => Fault::Truncate,
            1 => Fault::Status(503, None),
            _ => Fault::Pass,
        }
    });
    let reg = TestRegistry::start(Auth::Token {
        realm: format!("http://{}/token", proxy.server.addr()),
        service: SERVICE.into(),
        issuer: ISSUER.into(),
        cert: issuer.cert.clone(),
    });
    let l = cairn::image::oci_layout::OciLayout::create(dir.path().join("l")).unwrap();
    let d = crate::support::image::image(&l, 5, &[1000], "amd64");
    let bytes = l.store().read_bytes(&d.digest).unwrap();
    let target: Reference = format!("{}/tok/app:1", reg.addr()).parse().unwrap();
    let got = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client_with_password(&reg.addr(), "alice").push_image(
            &target,
            &bytes,
            &d.media_type,
            l.store(),
            &[],
        ))
        .unwrap();
    assert_eq!(got, d.digest);
    let faults = proxy.faults.lock().unwrap().clone();
    assert_eq!(faults.len(), 2, "{faults:?}");
}

/// A token service that accepts connections and never answers fails the
/// pull within the request budget, naming the token URL.
#[test]
fn a_silent_token_service_fails_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = TokenIssuer::start(dir.path(), "alice", PASSWORD);
    let addr = crate::support::http::silent_listener();
    let reg = TestRegistry::start(Auth::Token {
        realm: format!("http://{addr}/token"),
        service: SERVICE.into(),
        issuer: ISSUER.into(),
        cert: issuer.cert.clone(),
    });
    let mut o = RegistryOptions::default();
    o.transport.request_budget = std::time::Duration::from_secs(3);
    let client = Registry::new(o).unwrap();
    let r: Reference = format!("{}/tok/app:1", reg.addr()).parse().unwrap();
    let started = std::time::Instant::now();
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.fetch_manifest(&r))
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{err}"
    );
    assert!(
        err.contains(&format!("{addr}/token")) && err.contains("no answer within 3 s"),
        "{err}"
    );
}
