//! `cairn login` and `cairn logout`: credentials in docker's `config.json`.

use super::pull::{runtime, StderrReporter};
use super::GlobalArgs;
use crate::registry::credentials::{Credential, DockerConfig, Secret};
use crate::registry::{CredentialSource, Registry, RegistryOptions};
use crate::report::{Event, Reporter};
use anyhow::Context as _;
use clap::Args;
use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `cairn login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (host[:port]); default Docker Hub.
    #[arg(value_name = "REGISTRY", default_value = "docker.io")]
    pub registry: String,
    /// Username.
    #[arg(long, short)]
    pub username: String,
    /// Read the password (or token) from stdin; the only way to give it, so it never shows in `ps`.
    #[arg(long = "password-stdin", required = true)]
    pub password_stdin: bool,
}

/// Arguments of `cairn logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (host[:port]); default Docker Hub.
    #[arg(value_name = "REGISTRY", default_value = "docker.io")]
    pub registry: String,
}

/// `https://index.docker.io/v1/` or `http://host:5000` → the registry's host[:port].
fn registry_name(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

/// Run `cairn login`.
pub fn run_login(args: LoginArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let registry = registry_name(&args.registry);
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = Secret::new(password.trim_end_matches(['\n', '\r']));
    if password.expose().is_empty() {
        anyhow::bail!("empty password on stdin");
    }
    if args.username.is_empty() {
        anyhow::bail!("empty username");
    }
    let mut opts =
        RegistryOptions::new(global.insecure_registries.clone(), Arc::new(StderrReporter));
    opts.transport.credentials = CredentialSource::Fixed(HashMap::from([(
        registry.clone(),
        Credential::UserPassword {
            username: args.username.clone(),
            password: password.clone(),
        },
    )]));
    let reg = Registry::new(opts)?;
    runtime()?
        .block_on(reg.check_login(&registry))
        .with_context(|| format!("logging in to {registry}"))?;
    let mut cfg = DockerConfig::load_default()?;
    cfg.store(&registry, &args.username, &password)?;
    StderrReporter.event(Event::Info(format!(
        "login succeeded; credentials for {registry} stored in {}",
        cfg.path().display()
    )));
    Ok(ExitCode::SUCCESS)
}

/// Run `cairn logout`.
pub fn run_logout(args: LogoutArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let registry = registry_name(&args.registry);
    let mut cfg = DockerConfig::load_default()?;
    let msg = if cfg.erase(&registry)? {
        format!("removed credentials for {registry}")
    } else {
        format!("not logged in to {registry}")
    };
    StderrReporter.event(Event::Info(msg));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_names() {
        assert_eq!(
            super::registry_name("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(super::registry_name("localhost:5000"), "localhost:5000");
        assert_eq!(super::registry_name("http://h:1/x"), "h:1");
    }
}
