//! RUN's `--mount`s resolved for the sandbox (cache, tmpfs, secret, bind,
//! ssh), each with what it adds to the step's cache key; and the check,
//! before any work, that every required ssh agent was given.

use crate::engine::context_mount::ContextBind;
use crate::engine::ctx::BuildCtx;
use crate::engine::request::SecretSource;
use crate::engine::stage_run::StageRun;
use crate::engine::step::error::{missing_ssh_fix, Error, Result};
use crate::frontend::graph::Source;
use crate::frontend::mount::{Mount as MountSpec, MountType};
use crate::report::Event;
use crate::sandbox::Mount;
use std::path::PathBuf;

/// A mount resolved for the sandbox, plus what it contributes to the cache key.
pub struct Resolved {
    pub mount: Option<Mount>,
    /// A secret exposed as an environment variable: name, host file.
    pub env: Option<(String, PathBuf)>,
    pub key: (String, String),
}

/// Resolve `--mount` number `n` of step `k` (its `from=` index among the step's mounts).
pub fn resolve_mount(
    run: &StageRun,
    k: usize,
    n: usize,
    m: &MountSpec,
    scratch: &std::path::Path,
    fill: &mut Vec<ContextBind>,
) -> Result<Resolved> {
    let at = Target {
        target: m.target.clone().unwrap_or_default(),
        workdir: run.workdir(),
    };
    match m.kind {
        MountType::Cache => cache(run.ctx, m, &at),
        MountType::Tmpfs => Ok(Resolved {
            mount: Some(Mount::Tmpfs {
                target: at.abs(&at.target),
            }),
            env: None,
            key: (format!("mount tmpfs {}", at.abs(&at.target)), String::new()),
        }),
        MountType::Secret => secret(run.ctx, m, &at, n, scratch),
        MountType::Bind => bind(run, k, n, m, &at, scratch, fill),
        MountType::Ssh => ssh(run.ctx, m, &at),
    }
}

/// A mount's target, made absolute against the step's WORKDIR.
struct Target {
    target: String,
    workdir: String,
}

impl Target {
    fn abs(&self, t: &str) -> String {
        if t.starts_with('/') {
            t.to_owned()
        } else {
            format!("{}/{}", self.workdir.trim_end_matches('/'), t)
        }
    }
}

/// `type=cache`: a directory of the cache, by id (default: the target).
fn cache(ctx: &BuildCtx, m: &MountSpec, at: &Target) -> Result<Resolved> {
    let id = m.id.clone().unwrap_or_else(|| at.abs(&at.target));
    let host = ctx
        .cache
        .mount_dir(&id)
        .map_err(|source| Error::CacheMount {
            path: ctx.cache.layout().mount(&id),
            source,
        })?;
    Ok(Resolved {
        mount: Some(Mount::Cache {
            host,
            target: at.abs(&at.target),
            uid: m.uid.unwrap_or(0),
            gid: m.gid.unwrap_or(0),
            mode: m.mode.unwrap_or(0o755),
            own_contents: false,
        }),
        env: None,
        key: (format!("mount cache {}", at.abs(&at.target)), id),
    })
}

/// `type=secret`: a file (or environment variable) of `--secret`, never in a key.
fn secret(
    ctx: &BuildCtx,
    m: &MountSpec,
    at: &Target,
    n: usize,
    scratch: &std::path::Path,
) -> Result<Resolved> {
    let abs = |t: &str| at.abs(t);
    let id =
        m.id.clone()
            .or_else(|| m.source.clone())
            .or_else(|| {
                m.target
                    .as_deref()
                    .and_then(|t| t.rsplit('/').next())
                    .map(str::to_owned)
            })
            .ok_or(Error::SecretNoId)?;
    // `env=` without a target is an environment variable only (BuildKit).
    let target = match (&m.target, &m.env) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(format!("/run/secrets/{id}")),
    };
    // The key names the secret id only: values never reach a key, a layer or a log.
    let key = (
        format!("mount secret {id}"),
        match (&target, &m.env) {
            (Some(t), None) => abs(t),
            (Some(t), Some(e)) => format!("{} env={e}", abs(t)),
            (None, Some(e)) => format!("env={e}"),
            (None, None) => String::new(),
        },
    );
    let host = match ctx.req.secrets.get(&id) {
        Some(SecretSource::File(p)) => Some(p.clone()),
        Some(SecretSource::Env(var)) => match std::env::var_os(var) {
            Some(v) => {
                let p = scratch.join(format!("secret-{n}"));
                write_private(&p, v.as_encoded_bytes())?;
                Some(p)
            }
            None => None,
        },
        None => None,
    };
    Ok(match host {
        Some(host) => Resolved {
            env: m.env.clone().map(|name| (name, host.clone())),
            mount: target.map(|target| Mount::Secret {
                host,
                target: abs(&target),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o400),
            }),
            key,
        },
        None if m.required => return Err(Error::SecretRequired { id }),
        None => Resolved {
            mount: None,
            env: None,
            key,
        },
    })
}

/// `type=bind`: the context's kept files, a stage's, an image's or a named context's.
fn bind(
    run: &StageRun,
    k: usize,
    n: usize,
    m: &MountSpec,
    at: &Target,
    scratch: &std::path::Path,
    fill: &mut Vec<ContextBind>,
) -> Result<Resolved> {
    let ctx = run.ctx;
    let mut source = m.source.clone().unwrap_or_default();
    let (from, from_key) = match m.from.as_ref() {
        // The kept files of the subtree only, keyed by their content.
        None => {
            let dir = scratch.join(format!("context-{}", fill.len()));
            let bind = crate::engine::context_mount::plan(ctx, &source, dir.clone())?;
            let key = format!("context {}", bind.digest);
            source = bind.source.clone();
            fill.push(bind);
            (vec![dir], key)
        }
        Some(_) => match run
            .stage
            .sources
            .get(&k)
            .and_then(|v| v.get(n))
            .or_else(|| run.stage.sources.get(&k).and_then(|v| v.first()))
        {
            Some(Source::Stage(i)) => {
                let r = run.done.get(i).ok_or(Error::StageNotBuilt { stage: *i })?;
                let dirs = r
                    .image
                    .image
                    .layers
                    .iter()
                    .map(|l| ctx.layer_dirs.ensure(l, &ctx.store))
                    .collect::<std::result::Result<Vec<PathBuf>, _>>()?;
                (dirs, format!("stage {i} {}", r.image.fs_key))
            }
            Some(Source::Image(reference)) => {
                let b =
                    ctx.images
                        .fetch(reference, &run.stage.platform, &ctx.store, ctx.reporter)?;
                let dirs = b
                    .layers
                    .iter()
                    .map(|l| ctx.layer_dirs.ensure(l, &ctx.store))
                    .collect::<std::result::Result<Vec<PathBuf>, _>>()?;
                (dirs, format!("image {reference} {}", b.digest))
            }
            // Its kept files only, keyed by all of them: the mount shows the whole context.
            Some(Source::Local(name)) => {
                let local = crate::engine::ctx::named_dir(ctx, name)?;
                let tree = local.tree(&ctx.cache.layout().dir(crate::cache::Bucket::Tmp))?;
                let content = local.content_inputs(ctx.context_hashes())?;
                let digest = cairn_layers::Digest::of(serde_json::to_string(&content)?.as_bytes());
                (
                    vec![tree.to_path_buf()],
                    format!("build context {name} {digest}"),
                )
            }
            None => {
                return Err(Error::NoSource {
                    what: "--mount from=",
                })
            }
        },
    };
    let key_source = m.source.clone().unwrap_or_default();
    Ok(Resolved {
        env: None,
        mount: Some(Mount::Bind {
            from,
            source,
            target: at.abs(&at.target),
            rw: !m.readonly,
        }),
        key: (
            format!("mount bind {}", at.abs(&at.target)),
            format!("{from_key}:{key_source}:{}", !m.readonly),
        ),
    })
}

/// `type=ssh`: a socket of `--ssh`, keyed by its id and target.
fn ssh(ctx: &BuildCtx, m: &MountSpec, at: &Target) -> Result<Resolved> {
    let id = m.id.clone().unwrap_or_else(|| "default".into());
    let target = at.abs(&at.target);
    // The key names the id and target: the socket's path differs between machines and agents.
    let key = (format!("mount ssh {id}"), target.clone());
    Ok(match ctx.req.run_options.ssh.get(&id) {
        Some(host) => Resolved {
            mount: Some(Mount::Ssh {
                host: host.clone(),
                target,
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o600),
            }),
            env: None,
            key,
        },
        None if m.required => {
            return Err(Error::SshRequired { id });
        }
        None => {
            // As BuildKit: an optional ssh mount without an agent is left out.
            ctx.reporter.event(Event::Warning(format!(
                "RUN --mount=type=ssh,id={id}: no --ssh {id} given, the step runs without an agent"
            )));
            Resolved {
                mount: None,
                env: None,
                key,
            }
        }
    })
}

/// Before any work: every `RUN --mount=type=ssh,required` names an id the build was given.
pub fn check_ssh(
    df: &crate::frontend::Dockerfile,
    plan: &crate::frontend::BuildPlan,
    given: &std::collections::BTreeMap<String, PathBuf>,
) -> std::result::Result<(), crate::frontend::diagnostic::Diagnostic> {
    for step in plan.stages.iter().flat_map(|s| &s.steps) {
        let crate::frontend::Instruction::Run(r) = &step.instruction else {
            continue;
        };
        for m in r
            .mounts
            .iter()
            .filter(|m| m.kind == MountType::Ssh && m.required)
        {
            let id = m.id.as_deref().unwrap_or("default");
            // An id from an ARG is known only when the step runs (checked there).
            if !id.contains('$') && !given.contains_key(id) {
                let e = Error::SshRequired { id: id.to_owned() };
                return Err(step.error(df, e.to_string()).with_hint(missing_ssh_fix(id)));
            }
        }
    }
    Ok(())
}

fn write_private(p: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(bytes)?;
    Ok(())
}
