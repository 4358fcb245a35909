//! RUN steps: the cache key from what the command can see, and on a miss
//! the command in the sandbox, its captured change written as one layer.

use crate::engine::cache::Inputs;
use crate::engine::layer_write::Index;
use crate::engine::request::SecretSource;
use crate::engine::stage_run::{layer_dirs_of, StageRun, StepOutcome};
use crate::frontend::graph::Source;
use crate::frontend::instructions::{CommandLine, NetworkMode, Run};
use crate::frontend::mount::{Mount as MountSpec, MountType};
use crate::frontend::Scope;
use crate::report::Event;
use crate::sandbox::{Mount, Network, RunSpec};
use anyhow::Context as _;
use cairn_layers::MtimePolicy;
use std::path::PathBuf;

/// A mount resolved for the sandbox, plus what it contributes to the cache key.
struct Resolved {
    mount: Option<Mount>,
    /// A secret exposed as an environment variable: name, host file.
    env: Option<(String, PathBuf)>,
    key: (String, String),
}

fn resolve_mount(
    run: &StageRun,
    k: usize,
    n: usize,
    m: &MountSpec,
    scratch: &std::path::Path,
    fill: &mut Vec<crate::engine::context_mount::ContextBind>,
) -> anyhow::Result<Resolved> {
    let ctx = run.ctx;
    let target = m.target.clone().unwrap_or_default();
    let abs = |t: &str| {
        if t.starts_with('/') {
            t.to_owned()
        } else {
            format!("{}/{}", run.workdir().trim_end_matches('/'), t)
        }
    };
    Ok(match m.kind {
        MountType::Cache => {
            let id = m.id.clone().unwrap_or_else(|| abs(&target));
            let host = ctx.cache.mount_dir(&id).with_context(|| {
                format!(
                    "creating cache mount {}",
                    ctx.cache.layout().mount(&id).display()
                )
            })?;
            Resolved {
                mount: Some(Mount::Cache {
                    host,
                    target: abs(&target),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o755),
                    own_contents: false,
                }),
                env: None,
                key: (format!("mount cache {}", abs(&target)), id),
            }
        }
        MountType::Tmpfs => Resolved {
            mount: Some(Mount::Tmpfs {
                target: abs(&target),
            }),
            env: None,
            key: (format!("mount tmpfs {}", abs(&target)), String::new()),
        },
        MountType::Secret => {
            let id =
                m.id.clone()
                    .or_else(|| m.source.clone())
                    .or_else(|| {
                        m.target
                            .as_deref()
                            .and_then(|t| t.rsplit('/').next())
                            .map(str::to_owned)
                    })
                    .ok_or_else(|| anyhow::anyhow!("secret mount needs id="))?;
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
            match host {
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
                None if m.required => {
                    return Err(crate::error::hint(
                        anyhow::anyhow!("secret `{id}` is required but was not provided"),
                        format!(
                            "pass it with --secret id={id},src=PATH or --secret id={id},env=VAR"
                        ),
                    ))
                }
                None => Resolved {
                    mount: None,
                    env: None,
                    key,
                },
            }
        }
        MountType::Bind => {
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
                        let r = run.done.get(i).ok_or_else(|| {
                            anyhow::anyhow!("internal error: stage {i} not built")
                        })?;
                        let dirs = r
                            .image
                            .image
                            .layers
                            .iter()
                            .map(|l| ctx.layer_dirs.ensure(l, &ctx.store))
                            .collect::<anyhow::Result<Vec<PathBuf>>>()?;
                        (dirs, format!("stage {i} {}", r.image.fs_key))
                    }
                    Some(Source::Image(reference)) => {
                        let b = ctx.images.fetch(
                            reference,
                            &run.stage.platform,
                            &ctx.store,
                            ctx.reporter,
                        )?;
                        let dirs = b
                            .layers
                            .iter()
                            .map(|l| ctx.layer_dirs.ensure(l, &ctx.store))
                            .collect::<anyhow::Result<Vec<PathBuf>>>()?;
                        (dirs, format!("image {reference} {}", b.digest))
                    }
                    // Its kept files only, keyed by all of them: the mount shows the whole context.
                    Some(Source::Local(name)) => {
                        let local = crate::engine::ctx::named_dir(ctx, name)?;
                        let tree =
                            local.tree(&ctx.cache.layout().dir(crate::cache::Bucket::Tmp))?;
                        let content = local.content_inputs(ctx.context_hashes())?;
                        let digest =
                            cairn_layers::Digest::of(serde_json::to_string(&content)?.as_bytes());
                        (
                            vec![tree.to_path_buf()],
                            format!("build context {name} {digest}"),
                        )
                    }
                    None => anyhow::bail!("internal error: no source recorded for --mount from="),
                },
            };
            let key_source = m.source.clone().unwrap_or_default();
            Resolved {
                env: None,
                mount: Some(Mount::Bind {
                    from,
                    source,
                    target: abs(&target),
                    rw: !m.readonly,
                }),
                key: (
                    format!("mount bind {}", abs(&target)),
                    format!("{from_key}:{key_source}:{}", !m.readonly),
                ),
            }
        }
        MountType::Ssh => {
            let id = m.id.clone().unwrap_or_else(|| "default".into());
            let target = abs(&target);
            // The key names the id and target: the socket's path differs between machines and agents.
            let key = (format!("mount ssh {id}"), target.clone());
            match ctx.req.run_options.ssh.get(&id) {
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
                    let (e, fix) = missing_ssh(&id);
                    return Err(crate::error::hint(anyhow::anyhow!(e), fix));
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
            }
        }
    })
}

/// What is wrong, and the fix.
fn missing_ssh(id: &str) -> (String, String) {
    let flag = if id == "default" {
        "--ssh default (the agent of $SSH_AUTH_SOCK)".to_owned()
    } else {
        format!("--ssh {id}=SOCKET")
    };
    (
        format!("ssh agent `{id}` is required but the build was not given it"),
        format!("pass {flag}, or drop `required` to run without it"),
    )
}

/// Before any work: every `RUN --mount=type=ssh,required` names an id the build was given.
pub fn check_ssh(
    df: &crate::frontend::Dockerfile,
    plan: &crate::frontend::BuildPlan,
    given: &std::collections::BTreeMap<String, PathBuf>,
) -> anyhow::Result<()> {
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
                let (e, fix) = missing_ssh(id);
                return Err(step.error(df, e).with_hint(fix).into());
            }
        }
    }
    Ok(())
}

fn write_private(p: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
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

/// Run a RUN step.
pub fn run(
    run: &mut StageRun,
    scope: &Scope,
    k: usize,
    index: usize,
    id: usize,
    r: &Run,
    text: &str,
) -> anyhow::Result<()> {
    let ctx = run.ctx;
    let shell = run.shell();
    let scratch = tempfile::Builder::new()
        .prefix(".run-")
        .tempdir_in(ctx.cache.layout().dir(crate::cache::Bucket::Tmp))
        .context("creating a scratch directory in the cache")?;
    // The command: exec form verbatim; shell form through SHELL; a `#!` heredoc
    // is executed as a file, as BuildKit does.
    let mut extra_mounts = Vec::new();
    let argv = match (&r.command, r.shebang_heredoc()) {
        (CommandLine::Exec(v), _) => v.clone(),
        (CommandLine::Shell(_), Some(h)) => {
            let dir = scratch.path().join("pipes");
            std::fs::create_dir_all(&dir)?;
            let body = if h.expand {
                scope.expand_heredoc(&h.content)?
            } else {
                h.content.clone()
            };
            let file = dir.join(&h.name);
            std::fs::write(&file, body)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
            extra_mounts.push(Mount::Bind {
                from: vec![dir],
                source: h.name.clone(),
                target: format!("/dev/pipes/{}", h.name),
                rw: false,
            });
            vec![format!("/dev/pipes/{}", h.name)]
        }
        (CommandLine::Shell(_), None) => {
            let script = r.script().unwrap_or_default();
            shell.iter().cloned().chain([script]).collect()
        }
    };
    let mut env = scope.run_env();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    let user = run.user();
    let workdir = run.workdir();
    // The RUN's own --network, else the build's (`cairn build --network`).
    let network = match r.network.or(ctx.req.network) {
        None | Some(NetworkMode::Default) => Network::Default,
        Some(NetworkMode::Host) => Network::Host,
        Some(NetworkMode::None) => Network::None,
    };
    let expand = |s: &str| scope.expand_word(s).map_err(|e| e.to_string());
    let mut mounts = Vec::new();
    let mut secret_env = Vec::new();
    let mut inputs = Inputs::default();
    inputs.push("parent", run.image.fs_key.to_string());
    inputs.push("instruction", text.to_owned());
    inputs.push("command", argv.join(" "));
    for (k, v) in &env {
        inputs.push(format!("env {k}"), v.clone());
    }
    inputs.push("workdir", workdir.clone());
    inputs.push("user", user.clone());
    inputs.push("network", format!("{network:?}"));
    let opts = &ctx.req.run_options;
    // Only when set, so the keys of builds without them stay what they were.
    for (name, value) in [
        (
            "add-host",
            opts.extra_hosts
                .iter()
                .map(|(h, a)| format!("{h}:{a}"))
                .collect::<Vec<_>>(),
        ),
        ("ulimit", opts.ulimits.iter().map(|u| u.display()).collect()),
        (
            "shm-size",
            opts.shm_size.iter().map(u64::to_string).collect(),
        ),
    ] {
        if !value.is_empty() {
            inputs.push(name, value.join(","));
        }
    }
    let mut from_index = 0;
    let mut ssh_index = 0;
    let mut ssh_sock = None;
    let mut fill = Vec::new();
    let mut cache_mounts = Vec::new();
    for spec in &r.mount_specs {
        let mut m = MountSpec::parse(spec, Some(&expand))
            .map_err(|e| anyhow::anyhow!("--mount={spec}: {e}"))?;
        if m.kind == MountType::Ssh {
            // BuildKit's default targets; SSH_AUTH_SOCK names the first.
            let t = m
                .target
                .get_or_insert_with(|| format!("/run/buildkit/ssh_agent.{ssh_index}"));
            ssh_index += 1;
            if ssh_sock.is_none() && opts.ssh.contains_key(m.id.as_deref().unwrap_or("default")) {
                ssh_sock = Some(t.clone());
            }
        }
        let n = if m.from.is_some() {
            from_index += 1;
            from_index - 1
        } else {
            0
        };
        let res = resolve_mount(run, k, n, &m, scratch.path(), &mut fill)?;
        if let Some(Mount::Cache { host, .. }) = &res.mount {
            cache_mounts.push((res.key.1.clone(), host.clone()));
        }
        inputs.push(res.key.0, res.key.1);
        mounts.extend(res.mount);
        secret_env.extend(res.env);
    }
    mounts.extend(extra_mounts);
    // For the command only: not in the key (the mount is), the config or the history.
    if let Some(sock) = ssh_sock {
        env.push(("SSH_AUTH_SOCK".into(), sock));
    }
    let isolation = crate::engine::isolation::parse_isolation(&ctx.req.isolation)?;
    let created_by = crate::engine::history::run(&argv, &scope.history_args());
    let epoch = ctx.req.epoch;
    let stage = run.stage.index;
    run.cached_step(id, index, text, inputs, created_by, |run| {
        let sandbox = ctx.sandbox()?;
        let mounts = crate::engine::cache_import::before_run(ctx, &cache_mounts, mounts.clone())?;
        for bind in &fill {
            crate::engine::named_context::write_tree(&bind.entries, &bind.dir)?;
        }
        let unpacked = std::time::Instant::now();
        let lowers: Vec<PathBuf> = layer_dirs_of(ctx, &run.image.image.layers)?;
        let lowers_time = unpacked.elapsed();
        let spec = RunSpec {
            lowers,
            argv: argv.clone(),
            env: env.clone(),
            secret_env: secret_env.clone(),
            cwd: workdir.clone(),
            user: user.clone(),
            hostname: "buildkitsandbox".into(),
            network,
            mounts,
            extra_hosts: opts.extra_hosts.clone(),
            ulimits: opts.ulimits.clone(),
            shm_size: opts.shm_size,
            epoch,
            isolation,
            step_id: id,
            label: text.to_owned(),
        };
        let outcome = sandbox.run(&spec, ctx.reporter)?;
        ctx.add_run_time(outcome.duration_in_command, outcome.duration_total);
        let entries = outcome.captured.entries().to_vec();
        let written = std::time::Instant::now();
        let result = if entries.is_empty() {
            StepOutcome::Empty
        } else {
            StepOutcome::Layer(crate::engine::layer_write::write(
                ctx,
                entries,
                MtimePolicy::Clamp(epoch),
                Index::Drop,
                stage,
            )?)
        };
        // The command's own time apart from what the builder adds around it (bench/report.py compares the
        // command with BuildKit's step time).
        ctx.reporter.event(Event::RunTimes {
            id,
            times: crate::report::RunTimes {
                command: outcome.duration_in_command,
                capture: outcome.duration_capture,
                setup: outcome
                    .duration_total
                    .saturating_sub(outcome.duration_in_command + outcome.duration_capture),
                write: written.elapsed(),
                lowers: lowers_time,
            },
        });
        drop(outcome);
        Ok(result)
    })?;
    drop(scratch);
    Ok(())
}
