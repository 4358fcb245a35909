//! Build arguments and the expansion environment.
//!
//! * Global ARGs (before the first `FROM`) and the automatic platform args are visible only
//!   in `FROM` lines ([`GlobalArgs`]); a stage re-declares `ARG NAME` to use one.
//! * Inside a stage, [`Scope`] holds the image config `Env` (base image, then `ENV`) and the
//!   declared ARGs. Lookups prefer `ENV` over an `ARG` of the same name.
//! * `--build-arg` values override ARG defaults and are used verbatim (never expanded).
//! * Proxy args (`HTTP_PROXY`, …) reach `RUN` without being declared but stay out of
//!   expansion, history and the image config unless declared.

use super::expand::{ExpandError, Lexer, Lookup};
use super::instructions::Instruction;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Proxy args BuildKit passes to `RUN` without an `ARG`.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Args BuildKit itself interprets; passing them is never "unused".
pub const BUILTIN_ARGS: [&str; 11] = [
    "BUILDKIT_BUILD_NAME",
    "BUILDKIT_CACHE_MOUNT_NS",
    "BUILDKIT_CONTEXT_KEEP_GIT_DIR",
    "BUILDKIT_DOCKERFILE_CHECK",
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_SANDBOX_HOSTNAME",
    "BUILDKIT_SYNTAX",
    "SOURCE_DATE_EPOCH",
    "BUILDKIT_SBOM_SCAN_CONTEXT",
    "BUILDKIT_SBOM_SCAN_STAGE",
];

pub use crate::image::platform::Platform;

/// Values visible to `FROM` lines: automatic platform args, `TARGETSTAGE`, and the global
/// ARGs (with `--build-arg` overrides). A stage's `ARG NAME` without default takes its
/// value from here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalArgs {
    values: BTreeMap<String, String>,
    declared: Vec<String>,
}

impl Lookup for GlobalArgs {
    fn lookup(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }
}

impl GlobalArgs {
    /// The automatic args for these platforms and target stage name, with `--build-arg`
    /// overrides of the same names.
    pub fn automatic(
        build: &Platform,
        target: &Platform,
        target_stage: &str,
        build_args: &BTreeMap<String, String>,
    ) -> GlobalArgs {
        let mut values = BTreeMap::new();
        for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
            values.insert(format!("{prefix}PLATFORM"), p.to_string());
            values.insert(format!("{prefix}OS"), p.os.clone());
            values.insert(format!("{prefix}OSVERSION"), String::new());
            values.insert(format!("{prefix}ARCH"), p.architecture.clone());
            values.insert(format!("{prefix}VARIANT"), p.variant_str().to_owned());
        }
        values.insert("TARGETSTAGE".into(), target_stage.into());
        for (k, v) in build_args {
            if values.contains_key(k) {
                values.insert(k.clone(), v.clone());
            }
        }
        GlobalArgs {
            values,
            declared: Vec::new(),
        }
    }

    /// Apply a global `ARG` (its default already expanded against `self`).
    pub fn declare(
        &mut self,
        name: &str,
        default: Option<String>,
        build_args: &BTreeMap<String, String>,
    ) {
        self.declared.push(name.to_owned());
        if let Some(v) = build_args.get(name) {
            self.values.insert(name.to_owned(), v.clone());
        } else if let Some(d) = default {
            self.values.insert(name.to_owned(), d);
        }
    }

    /// The value of a global arg (declared or automatic).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Names declared with a global `ARG`, in order.
    pub fn declared(&self) -> &[String] {
        &self.declared
    }
}

/// The expansion environment of one stage while it is built. Clone it to start a stage
/// `FROM` another one (ENV and ARGs are inherited).
#[derive(Debug, Clone)]
pub struct Scope {
    escape: char,
    env: Vec<(String, String)>,
    args: Vec<(String, Option<String>)>,
    globals: Arc<GlobalArgs>,
    build_args: Arc<BTreeMap<String, String>>,
}

impl Lookup for Scope {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }
}

impl Scope {
    /// A fresh stage scope on a base image whose config `Env` is `base_env` (`KEY=value`).
    pub fn new(
        escape: char,
        base_env: &[String],
        globals: Arc<GlobalArgs>,
        build_args: Arc<BTreeMap<String, String>>,
    ) -> Scope {
        let mut s = Scope {
            escape,
            env: Vec::new(),
            args: Vec::new(),
            globals,
            build_args,
        };
        for kv in base_env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            s.set_env(k, v);
        }
        s
    }

    /// `ProcessWord` with this environment.
    pub fn expand_word(&self, word: &str) -> Result<String, ExpandError> {
        Lexer::new(self.escape).process_word(word, self)
    }

    /// `ProcessWords` (expansion, then split at unquoted whitespace).
    pub fn expand_words(&self, word: &str) -> Result<Vec<String>, ExpandError> {
        Lexer::new(self.escape).process_words(word, self)
    }

    /// Expand a heredoc body as BuildKit does for `COPY <<EOF` (quotes kept).
    pub fn expand_heredoc(&self, body: &str) -> Result<String, ExpandError> {
        Lexer {
            skip_process_quotes: true,
            ..Lexer::new(self.escape)
        }
        .process_word(body, self)
    }

    /// `ENV key=value`: replace the key in place, else append (BuildKit `addEnv`).
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_owned(),
            None => self.env.push((key.to_owned(), value.to_owned())),
        }
    }

    /// `ARG name[=default]` with the default already expanded: `--build-arg` wins, then
    /// the default, then the global value of the same name.
    pub fn declare_arg(&mut self, name: &str, default: Option<String>) {
        let value = self
            .build_args
            .get(name)
            .cloned()
            .or(default)
            .or_else(|| self.globals.get(name).map(str::to_owned));
        match self.args.iter_mut().find(|(k, _)| k == name) {
            Some(a) => a.1 = value,
            None => self.args.push((name.to_owned(), value)),
        }
    }

    /// Record the effect of an already expanded `ENV` or `ARG` (others are ignored).
    pub fn apply(&mut self, expanded: &Instruction) {
        match expanded {
            Instruction::Env { pairs } => pairs.iter().for_each(|p| self.set_env(&p.key, &p.value)),
            Instruction::Arg { args } => args
                .iter()
                .for_each(|a| self.declare_arg(&a.name, a.default.clone())),
            _ => {}
        }
    }

    /// The image config `Env` (`KEY=value`, in order); ARGs are never in it.
    pub fn image_env(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The environment of a `RUN`: config env, then ARGs with a value that ENV does not
    /// override, then undeclared proxy args given with `--build-arg`.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        for (k, v) in &self.args {
            if let Some(v) = v {
                if !out.iter().any(|(e, _)| e == k) {
                    out.push((k.clone(), v.clone()));
                }
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.build_args.get(p) {
                if !out.iter().any(|(e, _)| e == p) {
                    out.push((p.to_owned(), v.clone()));
                }
            }
        }
        out
    }

    /// Declared ARGs that have a value, in declaration order: BuildKit's `|N K=v …` RUN
    /// history prefix and part of the cache key.
    pub fn history_args(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect()
    }

    /// The escape character of the Dockerfile.
    pub fn escape(&self) -> char {
        self.escape
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::instructions::{ArgDecl, KeyValue};

    fn scope(build_args: &[(&str, &str)]) -> Scope {
        let ba: BTreeMap<String, String> = build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = Platform::parse("linux/arm/v7").unwrap();
        let mut g = GlobalArgs::automatic(&Platform::host(), &p, "runner", &ba);
        g.declare("NODE", Some("22".into()), &ba);
        Scope::new('\\', &["PATH=/bin".into()], Arc::new(g), Arc::new(ba))
    }

    #[test]
    fn precedence_build_arg_default_global() {
        let mut s = scope(&[("B", "from-cli"), ("HTTP_PROXY", "http://p")]);
        assert_eq!(
            s.expand_word("${NODE:-none}").unwrap(),
            "none",
            "globals need redeclaring"
        );
        s.declare_arg("NODE", None);
        s.declare_arg("B", Some("default".into()));
        s.declare_arg("TARGETPLATFORM", None);
        s.declare_arg("EMPTY", None);
        assert_eq!(
            s.expand_word("$NODE $B $TARGETPLATFORM ${EMPTY-unset}")
                .unwrap(),
            "22 from-cli linux/arm/v7 unset"
        );
        assert_eq!(s.expand_word("${HTTP_PROXY:-none}").unwrap(), "none");
        s.apply(&Instruction::Env {
            pairs: vec![KeyValue {
                key: "B".into(),
                value: "env".into(),
            }],
        });
        s.apply(&Instruction::Arg {
            args: vec![ArgDecl {
                name: "B".into(),
                default: Some("later".into()),
            }],
        });
        assert_eq!(s.expand_word("$B").unwrap(), "env", "ENV overrides ARG");
        assert_eq!(s.image_env(), ["PATH=/bin", "B=env"]);
        let run: Vec<String> = s
            .run_env()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            run,
            [
                "PATH=/bin",
                "B=env",
                "NODE=22",
                "TARGETPLATFORM=linux/arm/v7",
                "HTTP_PROXY=http://p"
            ]
        );
        assert_eq!(s.history_args().len(), 3);
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        let g = GlobalArgs::automatic(
            &Platform::parse("linux/amd64").unwrap(),
            &Platform::parse("linux/arm/v7").unwrap(),
            "default",
            &[("BUILDARCH".to_string(), "x".to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(g.get("TARGETVARIANT"), Some("v7"));
        assert_eq!(g.get("BUILDARCH"), Some("x"));
    }
}
