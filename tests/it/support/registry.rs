//! A real `docker-registry` (distribution 2.8) on 127.0.0.1:<free port>,
//! state in a temp dir, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the registry authenticates.
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// htpasswd (Basic) with one user.
    Htpasswd { user: String, password: String },
    /// Bearer tokens from an issuer whose certificate is `cert`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

pub struct TestRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestRegistry {
    pub fn start(auth: Auth) -> Self {
        Self::start_with(auth, None)
    }

    /// Serve over TLS with `(cert, key)` when given.
    pub fn start_with(auth: Auth, tls: Option<(PathBuf, PathBuf)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let hash = bcrypt::hash(password, 4).unwrap();
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, format!("{user}:{hash}\n")).unwrap();
                format!("auth:\n  htpasswd:\n    realm: cairn-test\n    path: {}\n", f.display())
            }
            Auth::Token {
                realm,
                service,
                issuer,
                cert,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let tls_yaml = match tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_yaml}{auth_yaml}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("docker-registry must be installed (Debian package `docker-registry`)");
        let mut r = TestRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!("docker-registry exited ({st}):\n{}", r.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen:\n{}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn blob_root(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2/blobs/sha256")
    }

    /// Every blob the registry stores, re-hashed: returns (count), panics on any mismatch.
    pub fn verify_blobs(&self) -> usize {
        let mut n = 0;
        for shard in std::fs::read_dir(self.blob_root())
            .into_iter()
            .flatten()
            .flatten()
        {
            for blob in std::fs::read_dir(shard.path()).unwrap().flatten() {
                let data = blob.path().join("data");
                let bytes = std::fs::read(&data).unwrap();
                let name = blob.file_name().to_string_lossy().into_owned();
                assert_eq!(
                    cairn_layers::Digest::of(&bytes).hex(),
                    name,
                    "registry holds a corrupt blob at {}",
                    data.display()
                );
                n += 1;
            }
        }
        n
    }

    /// Whether the registry's storage has `digest`.
    pub fn has_blob(&self, d: &cairn_layers::Digest) -> bool {
        self.blob_root()
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
            .is_file()
    }

    pub fn storage(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
