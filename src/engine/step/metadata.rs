//! The config-only instructions (ENV, LABEL, ARG, EXPOSE, VOLUME, USER,
//! STOPSIGNAL, HEALTHCHECK, CMD, ENTRYPOINT, SHELL, MAINTAINER): each changes
//! the image config and adds an empty history entry; none touches the
//! filesystem or the cache.

use super::error::{Error, Result};
use crate::engine::history;
use crate::engine::stage_run::StageRun;
use crate::frontend::instructions::{Healthcheck, Instruction};
use crate::image::config::{Empty, Healthcheck as ConfigHealthcheck};
use std::collections::BTreeMap;

/// Apply a config-only instruction to the stage's image.
pub fn apply(run: &mut StageRun, inst: &Instruction) -> Result<()> {
    let shell = run.shell();
    match inst {
        Instruction::Env { pairs } => {
            let rc = run.image.image.config.run_config_mut();
            let mut h = String::from("ENV");
            for p in pairs {
                rc.set_env(&p.key, &p.value);
                h.push_str(&format!(" {}={}", p.key, p.value));
            }
            run.image.image.with_history(h);
        }
        Instruction::Label { pairs } => {
            let rc = run.image.image.config.run_config_mut();
            let labels = rc.labels.get_or_insert_with(BTreeMap::new);
            let mut h = String::from("LABEL");
            for p in pairs {
                labels.insert(p.key.clone(), p.value.clone());
                h.push_str(&format!(" {}={}", p.key, p.value));
            }
            run.image.image.with_history(h);
        }
        Instruction::Arg { args } => {
            let items: Vec<String> = args
                .iter()
                .map(|a| match &a.default {
                    Some(d) => format!("{}={}", a.name, d),
                    None => a.name.clone(),
                })
                .collect();
            run.image
                .image
                .with_history(format!("ARG {}", items.join(" ")));
        }
        Instruction::Expose { ports: words } => expose(run, words)?,
        Instruction::Volume { paths } => volume(run, paths)?,
        Instruction::User { user } => {
            run.image.image.config.run_config_mut().user = Some(user.clone());
            run.image.image.with_history(format!("USER {user}"));
        }
        Instruction::StopSignal { signal } => {
            run.image.image.config.run_config_mut().stop_signal = Some(signal.clone());
            run.image.image.with_history(format!("STOPSIGNAL {signal}"));
        }
        Instruction::Healthcheck(hc) => {
            run.image.image.config.run_config_mut().healthcheck = Some(healthcheck(hc));
            run.image.image.with_history(hc.history());
        }
        Instruction::Cmd { command } => {
            let argv = command.argv(&shell);
            run.image.image.config.run_config_mut().cmd = Some(argv.clone());
            run.cmd_set = true;
            run.image.image.with_history(history::command("CMD", &argv));
        }
        Instruction::Entrypoint { command } => {
            let argv = command.argv(&shell);
            let cmd_set = run.cmd_set;
            let rc = run.image.image.config.run_config_mut();
            rc.entrypoint = Some(argv.clone());
            if !cmd_set {
                // BuildKit: an ENTRYPOINT resets a CMD inherited from the base.
                rc.cmd = None;
            }
            run.image
                .image
                .with_history(history::command("ENTRYPOINT", &argv));
        }
        Instruction::Shell { shell } => {
            run.image.image.config.run_config_mut().shell = Some(shell.clone());
            run.image
                .image
                .with_history(format!("SHELL {}", history::go_list(shell)));
        }
        Instruction::Maintainer { name } => {
            run.image.image.config.author = Some(name.clone());
            run.image.image.with_history(format!("MAINTAINER {name}"));
        }
        Instruction::Workdir { .. }
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Run(_)
        | Instruction::Onbuild(_) => return Err(Error::NotConfigOnly),
    }
    Ok(())
}

/// EXPOSE: each port (ranges expanded) with its protocol.
fn expose(run: &mut StageRun, words: &[String]) -> Result<()> {
    let ps = ports(words)?;
    let rc = run.image.image.config.run_config_mut();
    let map = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
    for p in &ps {
        map.insert(p.clone(), Empty {});
    }
    run.image
        .image
        .with_history(format!("EXPOSE {}", history::go_list(&ps)));
    Ok(())
}

/// VOLUME: each path, none empty.
fn volume(run: &mut StageRun, paths: &[String]) -> Result<()> {
    let rc = run.image.image.config.run_config_mut();
    let map = rc.volumes.get_or_insert_with(BTreeMap::new);
    for p in paths {
        if p.trim().is_empty() {
            return Err(Error::EmptyVolume);
        }
        map.insert(p.trim().to_owned(), Empty {});
    }
    run.image
        .image
        .with_history(format!("VOLUME {}", history::go_list(paths)));
    Ok(())
}

/// HEALTHCHECK as the config holds it (durations in nanoseconds).
fn healthcheck(hc: &Healthcheck) -> ConfigHealthcheck {
    let nanos = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as i64);
    match hc {
        Healthcheck::None => ConfigHealthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        },
        Healthcheck::Cmd {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => ConfigHealthcheck {
            test: test.clone(),
            interval: nanos(*interval),
            timeout: nanos(*timeout),
            start_period: nanos(*start_period),
            start_interval: nanos(*start_interval),
            retries: retries.map_or(0, i64::from),
        },
    }
}

fn ports(words: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for w in words {
        let (port, proto) = w.split_once('/').unwrap_or((w, "tcp"));
        let port = port.rsplit(':').next().unwrap_or(port);
        let proto = proto.to_ascii_lowercase();
        let (lo, hi) = match port.split_once('-') {
            Some((a, b)) => (a, b),
            None => (port, port),
        };
        let number = |p: &str| {
            p.parse::<u32>().map_err(|source| Error::Port {
                word: w.clone(),
                source,
            })
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if !(lo <= hi && hi <= 65535) {
            return Err(Error::PortRange { word: w.clone() });
        }
        for p in lo..=hi {
            out.push(format!("{p}/{proto}"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
