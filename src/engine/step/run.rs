//! RUN steps: the cache key from what the command can see, and on a miss
//! the command in the sandbox, its captured change written as one layer.
//! Its mounts are [`mounts`].

pub mod mounts;

use super::error::{Error, Result};
use crate::engine::cache::Inputs;
use crate::engine::context_mount::ContextBind;
use crate::engine::layer_write::Index;
use crate::engine::stage_run::{layer_dirs_of, StageRun, StepAt, StepOutcome};
use crate::frontend::instructions::{CommandLine, NetworkMode, Run};
use crate::frontend::mount::{Mount as MountSpec, MountType};
use crate::frontend::Scope;
use crate::report::Event;
use crate::sandbox::{Mount, Network, RunSpec};
use cairn_layers::MtimePolicy;
use std::path::{Path, PathBuf};

/// Run a RUN step.
pub fn run(run: &mut StageRun, scope: &Scope, at: StepAt, r: &Run) -> Result<()> {
    let ctx = run.ctx;
    let scratch = tempfile::Builder::new()
        .prefix(".run-")
        .tempdir_in(ctx.cache.layout().dir(crate::cache::Bucket::Tmp))
        .map_err(Error::Scratch)?;
    let (argv, extra_mounts) = command(r, scope, &run.shell(), scratch.path())?;
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
    let mut inputs = Inputs::default();
    inputs.push("parent", run.image.fs_key.to_string());
    inputs.push("instruction", at.text.to_owned());
    inputs.push("command", argv.join(" "));
    for (k, v) in &env {
        inputs.push(format!("env {k}"), v.clone());
    }
    inputs.push("workdir", workdir.clone());
    inputs.push("user", user.clone());
    inputs.push("network", format!("{network:?}"));
    let opts = &ctx.req.run_options;
    key_run_options(opts, &mut inputs);
    let mut m = step_mounts(run, at.k, r, scope, scratch.path(), &mut inputs)?;
    m.mounts.extend(extra_mounts);
    // For the command only: not in the key (the mount is), the config or the history.
    if let Some(sock) = m.ssh_sock.take() {
        env.push(("SSH_AUTH_SOCK".into(), sock));
    }
    let created_by = crate::engine::history::run(&argv, &scope.history_args());
    let epoch = ctx.req.epoch;
    let spec = RunSpec {
        lowers: Vec::new(),
        argv,
        env,
        secret_env: m.secret_env,
        cwd: workdir,
        user,
        hostname: "buildkitsandbox".into(),
        network,
        mounts: m.mounts,
        extra_hosts: opts.extra_hosts.clone(),
        ulimits: opts.ulimits.clone(),
        shm_size: opts.shm_size,
        epoch,
        isolation: crate::engine::isolation::parse_isolation(&ctx.req.isolation)?,
        step_id: at.id,
        label: at.text.to_owned(),
    };
    let (fill, cache_mounts) = (m.fill, m.cache_mounts);
    run.cached_step(
        at,
        inputs,
        crate::engine::stage_run::Chain::ByInputs,
        created_by,
        |run| execute(run, spec, at.k, &fill, &cache_mounts),
    )?;
    drop(scratch);
    Ok(())
}

/// The command: exec form verbatim; shell form through SHELL; a `#!` heredoc
/// is executed as a file, as BuildKit does (then with the mount that shows it).
fn command(
    r: &Run,
    scope: &Scope,
    shell: &[String],
    scratch: &Path,
) -> Result<(Vec<String>, Vec<Mount>)> {
    let mut extra_mounts = Vec::new();
    let argv = match (&r.command, r.shebang_heredoc()) {
        (CommandLine::Exec(v), _) => v.clone(),
        (CommandLine::Shell(_), Some(h)) => {
            let dir = scratch.join("pipes");
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
    Ok((argv, extra_mounts))
}

/// `--add-host`, `--ulimit`, `--shm-size` in the key: only when set, so the
/// keys of builds without them stay what they were.
fn key_run_options(opts: &crate::engine::request::RunOptions, inputs: &mut Inputs) {
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
}

/// The step's `--mount`s, resolved.
struct StepMounts {
    mounts: Vec<Mount>,
    /// Secrets exposed as environment variables: name, host file.
    secret_env: Vec<(String, PathBuf)>,
    /// SSH_AUTH_SOCK: the target of the first ssh mount the build has an agent for.
    ssh_sock: Option<String>,
    /// Context subtrees to write out on a miss (`--mount=type=bind` of the context).
    fill: Vec<ContextBind>,
    /// Cache mounts: id, host directory (filled from an imported cache on a miss).
    cache_mounts: Vec<(String, PathBuf)>,
}

/// Parse and resolve the `--mount`s of RUN `k`, pushing each one's key to `inputs`.
fn step_mounts(
    run: &StageRun,
    k: usize,
    r: &Run,
    scope: &Scope,
    scratch: &Path,
    inputs: &mut Inputs,
) -> Result<StepMounts> {
    let opts = &run.ctx.req.run_options;
    let expand = |s: &str| scope.expand_word(s);
    let mut out = StepMounts {
        mounts: Vec::new(),
        secret_env: Vec::new(),
        ssh_sock: None,
        fill: Vec::new(),
        cache_mounts: Vec::new(),
    };
    let mut from_index = 0;
    let mut ssh_index = 0;
    for spec in &r.mount_specs {
        let mut m = MountSpec::parse(spec, Some(&expand)).map_err(|reason| Error::MountSpec {
            spec: spec.clone(),
            reason,
        })?;
        if m.kind == MountType::Ssh {
            // BuildKit's default targets; SSH_AUTH_SOCK names the first.
            let t = m
                .target
                .get_or_insert_with(|| format!("/run/buildkit/ssh_agent.{ssh_index}"));
            ssh_index += 1;
            if out.ssh_sock.is_none() && opts.ssh.contains_key(m.id.as_deref().unwrap_or("default"))
            {
                out.ssh_sock = Some(t.clone());
            }
        }
        let n = if m.from.is_some() {
            from_index += 1;
            from_index - 1
        } else {
            0
        };
        let res = mounts::resolve_mount(run, k, n, &m, scratch, &mut out.fill)?;
        if let Some(Mount::Cache { host, .. }) = &res.mount {
            out.cache_mounts.push((res.key.1.clone(), host.clone()));
        }
        inputs.push(res.key.0, res.key.1);
        out.mounts.extend(res.mount);
        out.secret_env.extend(res.env);
    }
    Ok(out)
}

/// On a miss: the command in the sandbox over the stage's layers (step
/// `at_k` of the stage), its captured change written as one layer.
fn execute(
    run: &mut StageRun,
    mut spec: RunSpec,
    at_k: usize,
    fill: &[ContextBind],
    cache_mounts: &[(String, PathBuf)],
) -> Result<StepOutcome> {
    let ctx = run.ctx;
    let sandbox = ctx.sandbox()?;
    spec.mounts = crate::engine::cache_import::before_run(
        ctx,
        &run.stage.platform,
        cache_mounts,
        spec.mounts,
    )?;
    for bind in fill {
        crate::engine::named_context::write_tree(&bind.entries, &bind.dir)?;
    }
    let unpacked = std::time::Instant::now();
    spec.lowers = layer_dirs_of(ctx, &run.image.image.layers)?;
    let lowers_time = unpacked.elapsed();
    let epoch = spec.epoch;
    let id = spec.step_id;
    let outcome = sandbox.run_with(&spec, ctx.reporter, &ctx.session.cancel)?;
    ctx.add_run_time(outcome.duration_in_command, outcome.duration_total);
    let entries = outcome.captured.entries().to_vec();
    let written = std::time::Instant::now();
    // A stage no output exports keeps the change as a directory, never as a
    // tar, when a later RUN of the stage stacks it as a lower: see
    // `engine::snapshot`.
    let snapshot = crate::engine::snapshot::chosen(ctx, run.stage, at_k);
    let result = if entries.is_empty() {
        StepOutcome::Empty
    } else if snapshot {
        StepOutcome::Layer(crate::engine::snapshot::make(
            ctx,
            entries,
            MtimePolicy::Clamp(epoch),
        )?)
    } else {
        StepOutcome::Layer(crate::engine::layer_write::write(
            ctx,
            entries,
            MtimePolicy::Clamp(epoch),
            Index::Drop,
            run.stage.index,
        )?)
    };
    // The command's own time apart from what the builder adds around it
    // (bench/report.py compares the command with BuildKit's step time).
    ctx.reporter.event(Event::RunTimes {
        id,
        times: crate::report::RunTimes {
            command: outcome.duration_in_command,
            capture: outcome.duration_capture,
            setup: outcome
                .duration_total
                .saturating_sub(outcome.duration_in_command + outcome.duration_capture),
            write: written.elapsed(),
            snapshot,
            lowers: lowers_time,
        },
    });
    drop(outcome);
    Ok(result)
}
