//! The `cairn build` flags buildx has for RUN steps and named contexts —
//! `--build-context`, `--ssh`, `--add-host`, `--ulimit`, `--shm-size` —
//! parsed and checked before any work: a bad value is an error that names
//! the flag and the fix.

use super::BuildArgs;
use crate::cli::hint::hint;
use crate::engine::named_context::{LocalContext, NamedContext, NamedContexts};
use crate::engine::request::RunOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `--add-host NAME:host-gateway` maps to. RUN shares the host's
/// network namespace (`--network default|host`), where the host is the loopback.
pub const HOST_GATEWAY: &str = "127.0.0.1";

/// Parse every flag of this module.
pub(super) fn parse(args: &BuildArgs) -> anyhow::Result<(RunOptions, NamedContexts)> {
    let run = RunOptions {
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| add_host(h))
            .collect::<anyhow::Result<_>>()?,
        ulimits: ulimits(&args.ulimits, args.isolation != "none")?,
        shm_size: args.shm_size.as_deref().map(shm_size).transpose()?,
        ssh: ssh(&args.ssh, std::env::var_os(crate::env::SSH_AUTH_SOCK))?,
    };
    Ok((run, build_contexts(&args.build_contexts)?))
}

/// `--add-host HOST:IP` (or `HOST=IP`, as newer docker).
fn add_host(s: &str) -> anyhow::Result<(String, String)> {
    let bad = |why: String| {
        hint(
            anyhow::anyhow!("--add-host {s}: {why}"),
            "write --add-host HOST:IP, e.g. --add-host db.internal:10.0.0.5 or --add-host api:host-gateway",
        )
    };
    let (host, ip) = match s.split_once('=') {
        Some(p) => p,
        None => s
            .split_once(':')
            .ok_or_else(|| bad("expected HOST:IP".into()))?,
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid_host {
        return Err(bad(format!("`{host}` is not a host name")));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let address = match ip {
        "host-gateway" => HOST_GATEWAY.to_owned(),
        _ => ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| bad(format!("`{ip}` is not an IP address or host-gateway")))?
            .to_string(),
    };
    Ok((host.to_owned(), address))
}

/// `--ulimit`s; `in_userns`: RUN runs in a user namespace, where no hard limit can be raised.
fn ulimits(
    items: &[String],
    in_userns: bool,
) -> anyhow::Result<Vec<crate::sandbox::limits::Ulimit>> {
    use crate::sandbox::limits;
    let mut out: Vec<limits::Ulimit> = Vec::new();
    for s in items {
        let u = limits::Ulimit::parse(s).map_err(|e| {
            hint(
                anyhow::anyhow!("--ulimit {s}: {e}"),
                "write --ulimit NAME=SOFT[:HARD], e.g. --ulimit nofile=1024:2048 (-1 is unlimited)",
            )
        })?;
        if let Some(own) = limits::above_own_hard_limit(&u).filter(|_| in_userns) {
            return Err(hint(
                anyhow::anyhow!(
                    "--ulimit {s}: above cairn's own hard limit of {own}, which RUN (in a user namespace) cannot raise"
                ),
                format!(
                    "ask for at most {own}, or raise the hard limit of the shell that starts cairn (`ulimit -H`, `prlimit`)"
                ),
            ));
        }
        // As docker: the last value of a name wins.
        out.retain(|o| o.name != u.name);
        out.push(u);
    }
    Ok(out)
}

fn shm_size(s: &str) -> anyhow::Result<u64> {
    crate::frontend::mount::ram_in_bytes(s)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            hint(
                anyhow::anyhow!("--shm-size {s}: not a size"),
                "give bytes or a size with a unit as docker: 64m, 512k, 1g (default 64m)",
            )
        })
}

/// `--ssh default|ID=SOCKET`; `default` alone takes `$SSH_AUTH_SOCK` (`auth_sock`).
fn ssh(
    items: &[String],
    auth_sock: Option<std::ffi::OsString>,
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for s in items {
        let (id, paths) = match s.split_once('=') {
            Some((id, p)) => (id, Some(p)),
            None => (s.as_str(), None),
        };
        let valid_id = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        anyhow::ensure!(
            valid_id,
            hint(
                anyhow::anyhow!("--ssh {s}: `{id}` is not an id"),
                "write --ssh default (the agent of $SSH_AUTH_SOCK) or --ssh ID=SOCKET",
            )
        );
        let path = match paths {
            Some(p) if p.contains(',') => {
                return Err(hint(
                    anyhow::anyhow!("--ssh {s}: one agent socket per id (as BuildKit)"),
                    "add the keys to one agent (`ssh-add KEY`) and pass its socket, or give each socket its own id",
                ))
            }
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => match &auth_sock {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                _ => {
                    return Err(hint(
                        anyhow::anyhow!("--ssh {s}: SSH_AUTH_SOCK is not set, so there is no agent to forward"),
                        "start one (`eval $(ssh-agent)` then `ssh-add`), or pass --ssh ID=/path/to/agent.sock",
                    ))
                }
            },
        };
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(&path) {
            Ok(m) if m.file_type().is_socket() => {}
            Ok(_) => {
                return Err(hint(
                    anyhow::anyhow!(
                        "--ssh {s}: {} is not a socket (cairn forwards agent sockets, not key files)",
                        path.display()
                    ),
                    "load the key into an agent (`eval $(ssh-agent)`, `ssh-add KEY`) and pass --ssh default",
                ))
            }
            Err(e) => {
                return Err(hint(
                    anyhow::anyhow!("--ssh {s}: cannot use {}: {e}", path.display()),
                    "pass the socket of a running ssh-agent (its SSH_AUTH_SOCK)",
                ))
            }
        }
        anyhow::ensure!(
            out.insert(id.to_owned(), path).is_none(),
            hint(
                anyhow::anyhow!("--ssh names `{id}` twice"),
                "give each id once"
            )
        );
    }
    Ok(out)
}

const CONTEXT_FORMS: &str =
    "NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR[:TAG|@sha256:…]";

/// `--build-context NAME=VALUE`, every value checked (directories exist,
/// references parse, layouts hold the tag or digest).
pub(in crate::cli) fn build_contexts(items: &[String]) -> anyhow::Result<NamedContexts> {
    let mut out = NamedContexts::new();
    for s in items {
        let bad = |why: String, fix: &str| hint(anyhow::anyhow!("--build-context {s}: {why}"), fix);
        let (name, value) = s.split_once('=').ok_or_else(|| {
            bad(
                "expected NAME=VALUE".into(),
                &format!("write {CONTEXT_FORMS}"),
            )
        })?;
        let valid_name = !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':' | '@')
            });
        if !valid_name {
            return Err(bad(
                format!("`{name}` is not a name"),
                "name it as the Dockerfile refers to it: a stage name or image name (letters, digits, . - _ / : @)",
            ));
        }
        let ctx = match value.split_once("://") {
            Some(("docker-image", r)) => {
                r.parse::<crate::registry::Reference>().map_err(|e| {
                    bad(
                        format!("bad image reference: {e}"),
                        "write docker-image://REGISTRY/REPO:TAG (or @sha256:…), e.g. docker-image://node:22-alpine",
                    )
                })?;
                NamedContext::Image(r.to_owned())
            }
            Some(("oci-layout", rest)) => NamedContext::Image(oci_layout(rest).map_err(|e| {
                bad(
                    format!("{e:#}"),
                    "write oci-layout://DIR[:TAG|@sha256:DIGEST] with DIR an OCI image layout (index.json, blobs/)",
                )
            })?),
            Some(("http" | "https" | "git" | "ssh", _)) => {
                return Err(bad(
                    "git and URL contexts are not supported by cairn".into(),
                    "clone or download it first and pass the directory: --build-context NAME=DIR",
                ))
            }
            Some((scheme, _)) => {
                return Err(bad(
                    format!("unknown scheme `{scheme}://`"),
                    &format!("use {CONTEXT_FORMS}"),
                ))
            }
            None if value.ends_with(".git") || value.starts_with("git@") => {
                return Err(bad(
                    "git contexts are not supported by cairn".into(),
                    "clone it first and pass the directory: --build-context NAME=DIR",
                ))
            }
            None => {
                let dir = std::path::absolute(Path::new(value))
                    .map_err(|e| bad(e.to_string(), "pass an existing directory"))?;
                if !dir.is_dir() {
                    return Err(bad(
                        format!("{} is not a directory", dir.display()),
                        &format!("pass an existing directory, or use {CONTEXT_FORMS}"),
                    ));
                }
                NamedContext::Dir(Arc::new(LocalContext::new(dir)))
            }
        };
        if out.insert(name.to_owned(), ctx).is_some() {
            return Err(hint(
                anyhow::anyhow!("--build-context names `{name}` twice"),
                "give each name once",
            ));
        }
    }
    Ok(out)
}

/// `DIR[:TAG|@sha256:HEX]` of an `oci-layout://` value, checked, as the
/// `oci:` reference the image source reads.
fn oci_layout(rest: &str) -> anyhow::Result<String> {
    use crate::image::oci_layout::{split_dir_tag, OciLayout};
    let (dir, pick) = match rest.rsplit_once('@') {
        Some((d, digest)) => (d, Some(digest)),
        None => {
            let (d, t) = split_dir_tag(rest);
            (d, t)
        }
    };
    let dir = std::path::absolute(Path::new(dir))?;
    let layout = OciLayout::open(&dir)?;
    let shown = dir.display();
    Ok(match (rest.contains('@'), pick) {
        (true, Some(digest)) => {
            let d: cairn_layers::Digest = digest
                .parse()
                .map_err(|_| anyhow::anyhow!("`{digest}` is not a sha256:… digest"))?;
            anyhow::ensure!(
                layout.store().contains(&d),
                "the layout {shown} has no blob {d}"
            );
            format!("oci:{shown}@{d}")
        }
        (_, tag) => {
            layout.resolve(tag)?;
            match tag {
                Some(t) => format!("oci:{shown}:{t}"),
                None => format!("oci:{shown}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_values() {
        assert_eq!(
            add_host("db:10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(add_host("v6:::1").unwrap(), ("v6".into(), "::1".into()));
        assert_eq!(add_host("v6=[::1]").unwrap(), ("v6".into(), "::1".into()));
        assert_eq!(
            add_host("gw:host-gateway").unwrap().1,
            HOST_GATEWAY.to_owned()
        );
        for bad in ["db", "db:nope", ":1.2.3.4", "a b:1.2.3.4"] {
            let e = format!("{:#}", add_host(bad).unwrap_err());
            assert!(e.contains("--add-host"), "{e}");
        }
    }

    #[test]
    fn shm_sizes_use_dockers_units() {
        assert_eq!(shm_size("64m").unwrap(), 64 << 20);
        assert_eq!(shm_size("1g").unwrap(), 1 << 30);
        assert_eq!(shm_size("512").unwrap(), 512);
        for bad in ["0", "lots", "-1m", "64q"] {
            assert!(format!("{:#}", shm_size(bad).unwrap_err()).contains("--shm-size"));
        }
    }

    #[test]
    fn ssh_values_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("agent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let file = t.path().join("id_ed25519");
        std::fs::write(&file, "k").unwrap();
        let s = |v: &[&str], env: Option<&Path>| {
            ssh(
                &v.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                env.map(|p| p.as_os_str().to_owned()),
            )
        };
        let m = s(&["default"], Some(&sock)).unwrap();
        assert_eq!(m["default"], sock);
        let m = s(&[&format!("gh={}", sock.display())], None).unwrap();
        assert_eq!(m["gh"], sock);
        for (v, env, msg) in [
            ("default".to_owned(), None, "SSH_AUTH_SOCK is not set"),
            (format!("k={}", file.display()), None, "is not a socket"),
            (format!("k={}/nope", t.path().display()), None, "cannot use"),
            (
                format!("k={0},{0}", sock.display()),
                None,
                "one agent socket per id",
            ),
            ("b@d".to_owned(), Some(sock.as_path()), "is not an id"),
        ] {
            let e = format!("{:#}", s(&[&v], env).unwrap_err());
            assert!(e.contains(msg) && e.contains("--ssh"), "{v}: {e}");
        }
        let e = format!("{:#}", s(&["default", "default"], Some(&sock)).unwrap_err());
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn build_context_values_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().display().to_string();
        let ok = build_contexts(&[
            format!("lib={dir}"),
            "base=docker-image://node:22-alpine".into(),
        ])
        .unwrap();
        assert!(matches!(ok["lib"], NamedContext::Dir(_)));
        assert!(matches!(&ok["base"], NamedContext::Image(r) if r == "node:22-alpine"));
        for (v, msg) in [
            ("lib".to_owned(), "expected NAME=VALUE"),
            (format!("lib={dir}/missing"), "is not a directory"),
            ("x=s3://bucket".to_owned(), "unknown scheme `s3://`"),
            (
                "x=docker-image://Bad:Ref:x".to_owned(),
                "bad image reference",
            ),
            (format!("x=oci-layout://{dir}"), "oci-layout"),
            ("x=https://github.com/a/b.git".to_owned(), "not supported"),
            (format!("a b={dir}"), "is not a name"),
        ] {
            let e = format!(
                "{:#}",
                build_contexts(std::slice::from_ref(&v)).unwrap_err()
            );
            assert!(e.contains(msg) && e.contains("--build-context"), "{v}: {e}");
        }
        let e = format!(
            "{:#}",
            build_contexts(&[format!("a={dir}"), format!("a={dir}")]).unwrap_err()
        );
        assert!(e.contains("twice"), "{e}");
    }
}
