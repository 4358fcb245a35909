//! Typed instructions: every flag parsed and checked (BuildKit `instructions/parse.go`,
//! `bflag.go`). Words that BuildKit expands are kept as written here; the engine expands
//! them step by step with [`Instruction::expand`] because `ENV` values accumulate.

use super::ast::{Heredoc, Node, Word};
use super::diagnostic::{Diagnostic, Pos};
use super::duration::{format_go_duration, parse_go_duration};
use super::mount::Mount;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A command in exec form (argv, used verbatim) or shell form (run by `SHELL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandLine {
    /// `["node", "server.js"]`.
    Exec(Vec<String>),
    /// `node server.js` (continuations joined).
    Shell(String),
}

impl CommandLine {
    /// The argv: exec form verbatim; shell form = `shell` + the command as one argument.
    pub fn argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
        }
    }
}

/// `--network=` of `RUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The sandbox's default network.
    Default,
    /// No network.
    None,
    /// The host network.
    Host,
}

/// `--security=` of `RUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// The normal sandbox.
    Sandbox,
    /// Privileged (needs an entitlement).
    Insecure,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command (heredoc words included in the shell form text).
    pub command: CommandLine,
    /// Heredocs of the command, in order.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` specs as written (expanded per step).
    pub mount_specs: Vec<String>,
    /// `--mount` parsed without expansion (for the stage graph and early errors).
    pub mounts: Vec<Mount>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security`.
    pub security: Option<SecurityMode>,
}

impl Run {
    /// The shell-form script as BuildKit runs it: for `RUN <<EOF` alone, the heredoc body;
    /// with heredocs among other words, the line followed by `"\n" + body + name` for each
    /// heredoc (the shell then reads them). `None` for the exec form.
    pub fn script(&self) -> Option<String> {
        let CommandLine::Shell(line) = &self.command else {
            return None;
        };
        if self.heredocs.is_empty() {
            return Some(line.clone());
        }
        if super::ast::heredocs_from_line(line.trim()).map(|h| h.len()) == Ok(1)
            && line
                .trim()
                .starts_with(|c: char| c == '<' || c.is_ascii_digit())
            && !line.trim().contains(char::is_whitespace)
        {
            return Some(self.heredocs[0].content.clone());
        }
        let mut s = line.clone();
        for h in &self.heredocs {
            s.push('\n');
            s.push_str(&h.content);
            s.push_str(&h.name);
        }
        Some(s)
    }

    /// A single `RUN <<EOF` whose body starts with `#!`: BuildKit writes it to a file and
    /// executes it directly instead of passing it to the shell.
    pub fn shebang_heredoc(&self) -> Option<&Heredoc> {
        let h = self.heredocs.first()?;
        let single =
            self.heredocs.len() == 1 && self.script().as_deref() == Some(h.content.as_str());
        (single && h.content.starts_with("#!")).then_some(h)
    }
}

/// A `COPY`/`ADD` source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopySource {
    /// A path (or glob, URL, git ref) as written.
    Path(String),
    /// A heredoc: a file named after the delimiter with the body as content (mode 0644).
    Heredoc(Heredoc),
}

/// `COPY` and `ADD` (the ADD-only options are `None`/empty for COPY).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// `--from=` (stage name or index, or image); never expanded.
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--exclude=` patterns (never expanded).
    pub exclude: Vec<String>,
    /// Sources in order.
    pub sources: Vec<CopySource>,
    /// Destination as written.
    pub dest: String,
    /// `ADD --checksum=`.
    pub checksum: Option<String>,
    /// `ADD --keep-git-dir`.
    pub keep_git_dir: Option<bool>,
    /// `ADD --unpack`.
    pub unpack: Option<bool>,
}

/// A `KEY=value` of `ENV` or `LABEL` (as written until expanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// One name of an `ARG` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The name (never expanded).
    pub name: String,
    /// The default value (expanded when the ARG runs).
    pub default: Option<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable an inherited check (`Test ["NONE"]`).
    None,
    /// `HEALTHCHECK [options] CMD …`.
    Cmd {
        /// `["CMD-SHELL", cmd]` or `["CMD", argv…]`.
        test: Vec<String>,
        /// `--interval` (`None` = runtime default).
        interval: Option<Duration>,
        /// `--timeout`.
        timeout: Option<Duration>,
        /// `--start-period`.
        start_period: Option<Duration>,
        /// `--start-interval`.
        start_interval: Option<Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

impl Healthcheck {
    /// The `Test` array of the image config.
    pub fn test(&self) -> Vec<String> {
        match self {
            Healthcheck::None => vec!["NONE".into()],
            Healthcheck::Cmd { test, .. } => test.clone(),
        }
    }

    /// BuildKit's history text: `HEALTHCHECK {Test:[…] Interval:5m0s …}`.
    pub fn history(&self) -> String {
        let (interval, timeout, sp, si, retries) = match self {
            Healthcheck::None => (None, None, None, None, None),
            Healthcheck::Cmd {
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
                ..
            } => (
                *interval,
                *timeout,
                *start_period,
                *start_interval,
                *retries,
            ),
        };
        let d = |v: Option<Duration>| format_go_duration(v.unwrap_or_default());
        format!(
            "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
            self.test().join(" "),
            d(interval),
            d(timeout),
            d(sp),
            d(si),
            retries.unwrap_or(0)
        )
    }
}

/// An `ONBUILD` trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnBuild {
    /// What goes into `Config.OnBuild`: the line without `ONBUILD`, heredocs appended.
    pub trigger: String,
    /// The trigger, parsed (checked now, run in downstream builds).
    pub instruction: Box<Instruction>,
}

/// `FROM [--platform=…] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// The base as written (may use global ARGs).
    pub image: String,
    /// `--platform=` as written.
    pub platform: Option<String>,
    /// The stage name, lower-cased.
    pub name: Option<String>,
}

/// Every instruction but `FROM` (which starts a [`super::Stage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Instruction {
    /// `RUN`.
    Run(Run),
    /// `CMD`.
    Cmd {
        /// The command.
        command: CommandLine,
    },
    /// `ENTRYPOINT`.
    Entrypoint {
        /// The command.
        command: CommandLine,
    },
    /// `SHELL [...]`.
    Shell {
        /// The new shell argv.
        shell: Vec<String>,
    },
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Copy),
    /// `ENV`.
    Env {
        /// Pairs in order.
        pairs: Vec<KeyValue>,
    },
    /// `LABEL`.
    Label {
        /// Pairs in order.
        pairs: Vec<KeyValue>,
    },
    /// `ARG`.
    Arg {
        /// Names in order.
        args: Vec<ArgDecl>,
    },
    /// `EXPOSE`.
    Expose {
        /// Port words as written (`80`, `443/tcp`, `$PORT`).
        ports: Vec<String>,
    },
    /// `VOLUME`.
    Volume {
        /// Paths.
        paths: Vec<String>,
    },
    /// `USER`.
    User {
        /// `user[:group]`.
        user: String,
    },
    /// `WORKDIR`.
    Workdir {
        /// The path.
        path: String,
    },
    /// `STOPSIGNAL`.
    StopSignal {
        /// The signal as written.
        signal: String,
    },
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `ONBUILD`.
    Onbuild(OnBuild),
    /// `MAINTAINER` (deprecated; sets `author`).
    Maintainer {
        /// The author.
        name: String,
    },
}

impl Instruction {
    /// Whether BuildKit runs it as a filesystem step (RUN, COPY, ADD), as opposed to a
    /// config-only change.
    pub fn changes_filesystem(&self) -> bool {
        matches!(
            self,
            Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_)
        )
    }
}

/// Every instruction keyword BuildKit knows.
pub const KEYWORDS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub source: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, pos: Pos, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.file, self.source, pos, msg)
    }
    fn at_node(&self, n: &Node, msg: impl Into<String>) -> Diagnostic {
        self.err(n.span.start, msg)
            .with_len(n.keyword_raw.chars().count())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Str,
    List,
}

#[derive(Default)]
struct Flags {
    strs: BTreeMap<&'static str, String>,
    bools: BTreeMap<&'static str, bool>,
    lists: BTreeMap<&'static str, Vec<String>>,
    pos: BTreeMap<&'static str, Pos>,
}

impl Flags {
    fn str(&mut self, k: &str) -> Option<String> {
        self.strs.remove(k)
    }
    fn bool(&self, k: &str) -> Option<bool> {
        self.bools.get(k).copied()
    }
    fn list(&mut self, k: &str) -> Vec<String> {
        self.lists.remove(k).unwrap_or_default()
    }
}

/// Edit distance with adjacent transpositions (`chwon` is one edit from `chown`), for
/// "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

pub(crate) fn suggest<'a>(
    word: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    options
        .into_iter()
        .map(|o| (distance(word, o), o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 4) && *d < word.len().max(1))
        .min()
        .map(|(_, o)| o)
}

/// `BFlags.Parse`.
fn parse_flags(
    ctx: &Ctx,
    node: &Node,
    specs: &[(&'static str, Kind)],
) -> Result<Flags, Diagnostic> {
    let mut out = Flags::default();
    for w in &node.flags {
        let body = w.text.strip_prefix("--").unwrap_or(&w.text);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let len = w.text.chars().count();
        let Some(&(key, kind)) = specs.iter().find(|(k, _)| *k == name) else {
            let mut d = ctx
                .err(w.pos, format!("unknown flag: --{name}"))
                .with_len(len);
            let sibling = match (node.keyword.as_str(), name) {
                ("copy", "checksum" | "keep-git-dir" | "unpack") => Some("ADD"),
                ("add", "from" | "parents") => Some("COPY"),
                _ => None,
            };
            if let Some(other) = sibling {
                d = d.with_hint(format!(
                    "--{name} is accepted by {other}, not {}",
                    node.keyword.to_uppercase()
                ));
            } else if let Some(s) = suggest(name, specs.iter().map(|s| s.0)) {
                d = d.with_hint(format!("did you mean --{s}?"));
            } else if specs.is_empty() {
                d = d.with_hint(format!("{} takes no flags", node.keyword.to_uppercase()));
            } else {
                let all: Vec<String> = specs.iter().map(|s| format!("--{}", s.0)).collect();
                d = d.with_hint(format!(
                    "{} accepts {}",
                    node.keyword.to_uppercase(),
                    all.join(", ")
                ));
            }
            return Err(d);
        };
        if kind != Kind::List && out.pos.contains_key(key) {
            return Err(ctx
                .err(w.pos, format!("duplicate flag specified: --{name}"))
                .with_len(len));
        }
        out.pos.insert(key, w.pos);
        match kind {
            Kind::Bool => {
                let v = match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(ctx
                            .err(
                                w.pos,
                                format!("expecting boolean value for flag {name}, not: {other}"),
                            )
                            .with_len(len)
                            .with_hint(format!("use --{name}, --{name}=true or --{name}=false")))
                    }
                };
                out.bools.insert(key, v);
            }
            Kind::Str | Kind::List => {
                let Some(v) = value else {
                    return Err(ctx
                        .err(w.pos, format!("missing a value on flag: --{name}"))
                        .with_len(len)
                        .with_hint(format!("write --{name}=<value> (a space is not accepted)")));
                };
                if kind == Kind::Str {
                    out.strs.insert(key, v.to_owned());
                } else {
                    out.lists.entry(key).or_default().push(v.to_owned());
                }
            }
        }
    }
    Ok(out)
}

fn texts(ws: &[Word]) -> Vec<String> {
    ws.iter().map(|w| w.text.clone()).collect()
}

/// The command of RUN/CMD/ENTRYPOINT: exec form items or the shell form line.
fn command(node: &Node) -> CommandLine {
    if node.json {
        CommandLine::Exec(texts(&node.args))
    } else {
        CommandLine::Shell(
            node.args
                .first()
                .map(|w| w.text.clone())
                .unwrap_or_default(),
        )
    }
}

fn at_least_one(ctx: &Ctx, node: &Node) -> Result<(), Diagnostic> {
    if node.args.is_empty() {
        let kw = node.keyword.to_uppercase();
        return Err(ctx.at_node(node, format!("{kw} requires at least one argument")));
    }
    Ok(())
}

fn exactly_one(ctx: &Ctx, node: &Node) -> Result<String, Diagnostic> {
    match node.args.as_slice() {
        [w] => Ok(w.text.clone()),
        _ => Err(ctx.at_node(
            node,
            format!(
                "{} requires exactly one argument",
                node.keyword.to_uppercase()
            ),
        )),
    }
}

/// Validate a stage name as BuildKit does and lower-case it.
pub(crate) fn stage_name(name: &str) -> Result<String, InvalidStageName> {
    let lower = name.to_ascii_lowercase();
    let mut cs = lower.chars();
    let ok = cs.next().is_some_and(|c| c.is_ascii_lowercase())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok && name.is_ascii() {
        Ok(lower)
    } else {
        Err(InvalidStageName(name.to_owned()))
    }
}

/// A stage name BuildKit refuses.
#[derive(Debug, thiserror::Error)]
#[error("invalid name for build stage: {0:?}, name can't start with a number or contain symbols")]
pub struct InvalidStageName(pub String);

/// Parse `FROM`.
pub(crate) fn parse_from(ctx: &Ctx, node: &Node) -> Result<From, Diagnostic> {
    let mut flags = parse_flags(ctx, node, &[("platform", Kind::Str)])?;
    let (image, name) = match node.args.as_slice() {
        [img] => (img, None),
        [img, as_, name] if as_.text.eq_ignore_ascii_case("as") => {
            let n = stage_name(&name.text).map_err(|m| {
                ctx.err(name.pos, m.to_string())
                    .with_len(name.text.chars().count())
                    .with_hint(
                        "stage names start with a letter and use only a-z, 0-9, '-', '_' and '.'",
                    )
            })?;
            (img, Some(n))
        }
        _ => {
            return Err(ctx
                .at_node(node, "FROM requires either one or three arguments")
                .with_hint("write FROM <image> [AS <name>]"))
        }
    };
    Ok(From {
        image: image.text.clone(),
        platform: flags.str("platform"),
        name,
    })
}

fn is_heredoc_word(w: &str) -> Option<Heredoc> {
    super::ast::heredocs_from_line(w)
        .ok()?
        .into_iter()
        .next()
        .filter(|_| w.contains("<<"))
}

fn parse_copy(ctx: &Ctx, node: &Node, add: bool) -> Result<Copy, Diagnostic> {
    let specs: &[(&'static str, Kind)] = if add {
        &[
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("exclude", Kind::List),
            ("checksum", Kind::Str),
            ("keep-git-dir", Kind::Bool),
            ("unpack", Kind::Bool),
        ]
    } else {
        &[
            ("from", Kind::Str),
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("parents", Kind::Bool),
            ("exclude", Kind::List),
        ]
    };
    let mut flags = parse_flags(ctx, node, specs)?;
    let kw = node.keyword.to_uppercase();
    if node.args.len() < 2 {
        let n = node.args.len();
        return Err(ctx
            .at_node(
                node,
                if n == 0 {
                    format!("{kw} requires at least two arguments")
                } else {
                    format!("{kw} requires at least two arguments, but only one was provided. destination could not be determined")
                },
            )
            .with_hint(format!("write {kw} <src>... <dest>")));
    }
    let (dest, srcs) = node
        .args
        .split_last()
        .ok_or_else(|| ctx.at_node(node, "missing destination"))?;
    if !node.json && is_heredoc_word(&dest.text).is_some() {
        return Err(ctx.err(
            dest.pos,
            format!("{kw} cannot accept a heredoc as a destination"),
        ));
    }
    let mut heredocs = node.heredocs.iter();
    let mut sources = Vec::new();
    for s in srcs {
        match (!node.json).then(|| is_heredoc_word(&s.text)).flatten() {
            Some(h) => {
                let body = heredocs.find(|d| d.name == h.name).ok_or_else(|| {
                    ctx.err(s.pos, format!("heredoc {:?} has no body", h.name))
                        .with_hint("quote a delimiter with spaces in it on one word, or use a name without spaces")
                })?;
                sources.push(CopySource::Heredoc(body.clone()));
            }
            None => {
                if !add && (s.text.starts_with("http://") || s.text.starts_with("https://")) {
                    return Err(ctx
                        .err(s.pos, "source can't be a URL for COPY")
                        .with_hint("use ADD for URLs"));
                }
                if !add
                    && (s.text.starts_with("git@")
                        || s.text.ends_with(".git")
                        || s.text.contains(".git#"))
                    && s.text.contains("://") | s.text.starts_with("git@")
                {
                    return Err(ctx
                        .err(s.pos, "source can't be a git ref for COPY")
                        .with_hint("use ADD for git sources"));
                }
                sources.push(CopySource::Path(s.text.clone()));
            }
        }
    }
    let from = flags.str("from");
    if let Some(f) = &from {
        if f.contains('$') {
            let pos = flags.pos.get("from").copied().unwrap_or(node.span.start);
            return Err(ctx
                .err(pos, "variable expansion is not supported for --from")
                .with_hint(
                    "define a new stage with FROM using ARG from global scope as a workaround",
                ));
        }
    }
    Ok(Copy {
        from,
        chown: flags.str("chown"),
        chmod: flags.str("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.list("exclude"),
        sources,
        dest: dest.text.clone(),
        checksum: flags.str("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.bool("unpack"),
    })
}

fn duration_flag(
    ctx: &Ctx,
    flags: &mut Flags,
    name: &'static str,
) -> Result<Option<Duration>, Diagnostic> {
    let Some(v) = flags.str(name) else {
        return Ok(None);
    };
    let pos = flags.pos.get(name).copied().unwrap_or_default();
    if v.is_empty() {
        return Ok(None);
    }
    let (neg, d) = parse_go_duration(&v).map_err(|e| {
        ctx.err(pos, format!("invalid --{name}: {e}"))
            .with_hint("use a Go duration such as 30s, 1m30s or 500ms")
    })?;
    if d.is_zero() {
        return Ok(None);
    }
    if neg || d < Duration::from_millis(1) {
        return Err(ctx.err(pos, format!("--{name} {v:?} cannot be less than 1ms")));
    }
    Ok(Some(d))
}

fn parse_healthcheck(ctx: &Ctx, node: &Node) -> Result<Healthcheck, Diagnostic> {
    let mut flags = parse_flags(
        ctx,
        node,
        &[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ],
    )?;
    let Some(typ) = node.args.first() else {
        return Err(ctx
            .at_node(node, "HEALTHCHECK requires at least one argument")
            .with_hint("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE"));
    };
    match typ.text.to_ascii_uppercase().as_str() {
        "NONE" => {
            if node.args.len() > 1 {
                return Err(ctx.at_node(node, "HEALTHCHECK NONE takes no arguments"));
            }
            Ok(Healthcheck::None)
        }
        "CMD" => {
            let rest = &node.args[1..];
            if rest.is_empty() {
                return Err(ctx.err(typ.pos, "missing command after HEALTHCHECK CMD"));
            }
            let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_owned()];
            test.extend(texts(rest));
            let retries = match flags.str("retries") {
                None => None,
                Some(v) => {
                    let pos = flags.pos.get("retries").copied().unwrap_or_default();
                    let n: i64 = v
                        .parse()
                        .ok()
                        .filter(|n| i32::try_from(*n).is_ok())
                        .ok_or_else(|| {
                            ctx.err(pos, format!("invalid --retries {v:?}: not a number"))
                        })?;
                    if n < 0 {
                        return Err(ctx.err(pos, format!("--retries cannot be negative ({n})")));
                    }
                    u32::try_from(n).ok().filter(|n| *n > 0)
                }
            };
            Ok(Healthcheck::Cmd {
                test,
                interval: duration_flag(ctx, &mut flags, "interval")?,
                timeout: duration_flag(ctx, &mut flags, "timeout")?,
                start_period: duration_flag(ctx, &mut flags, "start-period")?,
                start_interval: duration_flag(ctx, &mut flags, "start-interval")?,
                retries,
            })
        }
        other => Err(ctx
            .err(typ.pos, format!("unknown type {other:?} in HEALTHCHECK"))
            .with_hint("try CMD or NONE")),
    }
}

fn key_values(ctx: &Ctx, node: &Node) -> Result<Vec<KeyValue>, Diagnostic> {
    at_least_one(ctx, node)?;
    let mut out = Vec::new();
    for pair in node.args.chunks(2) {
        let [k, v] = pair else {
            return Err(ctx.at_node(
                node,
                format!("{} must have two arguments", node.keyword.to_uppercase()),
            ));
        };
        if k.text.is_empty() {
            return Err(ctx.err(
                k.pos,
                format!("{} names can not be blank", node.keyword.to_uppercase()),
            ));
        }
        out.push(KeyValue {
            key: k.text.clone(),
            value: v.text.clone(),
        });
    }
    Ok(out)
}

const NETWORK: [(&str, NetworkMode); 3] = [
    ("default", NetworkMode::Default),
    ("none", NetworkMode::None),
    ("host", NetworkMode::Host),
];

/// An instruction that takes no flags.
fn no_flags(ctx: &Ctx, node: &Node) -> Result<(), Diagnostic> {
    parse_flags(ctx, node, &[]).map(|_| ())
}

/// `RUN [--mount=…] [--network=…] [--security=…] COMMAND`.
fn parse_run(ctx: &Ctx, node: &Node) -> Result<Run, Diagnostic> {
    let mut flags = parse_flags(
        ctx,
        node,
        &[
            ("mount", Kind::List),
            ("network", Kind::Str),
            ("security", Kind::Str),
        ],
    )?;
    if node.args.is_empty() && node.heredocs.is_empty() {
        return Err(ctx.at_node(node, "RUN requires at least one argument"));
    }
    let flag_pos = |flags: &Flags, k| flags.pos.get(k).copied().unwrap_or(node.span.start);
    let network = match flags.str("network") {
        None => None,
        Some(v) => Some(
            NETWORK
                .iter()
                .find(|(n, _)| *n == v)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    ctx.err(
                        flag_pos(&flags, "network"),
                        format!("network mode {v:?} not supported"),
                    )
                    .with_hint("use --network=default, none or host")
                })?,
        ),
    };
    let security = match flags.str("security").as_deref() {
        None => None,
        Some("sandbox") => Some(SecurityMode::Sandbox),
        Some("insecure") => Some(SecurityMode::Insecure),
        Some(v) => {
            return Err(ctx
                .err(
                    flag_pos(&flags, "security"),
                    format!("security mode {v:?} not supported"),
                )
                .with_hint("use --security=sandbox or insecure"))
        }
    };
    let mount_specs = flags.list("mount");
    let mut mounts = Vec::new();
    for (spec, w) in mount_specs
        .iter()
        .zip(node.flags.iter().filter(|w| w.text.starts_with("--mount=")))
    {
        mounts.push(Mount::parse(spec, None).map_err(|m| {
            ctx.err(w.pos, format!("invalid --mount: {m}"))
                .with_len(w.text.chars().count())
        })?);
    }
    Ok(Run {
        command: command(node),
        heredocs: node.heredocs.clone(),
        mount_specs,
        mounts,
        network,
        security,
    })
}

/// `ARG NAME[=DEFAULT] …`.
fn parse_arg(ctx: &Ctx, node: &Node) -> Result<Vec<ArgDecl>, Diagnostic> {
    no_flags(ctx, node)?;
    at_least_one(ctx, node)?;
    let mut args = Vec::new();
    for w in &node.args {
        let (name, default) = match w.text.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (w.text.clone(), None),
        };
        if name.is_empty() {
            return Err(ctx.err(w.pos, "ARG names can not be blank"));
        }
        args.push(ArgDecl { name, default });
    }
    Ok(args)
}

/// `ONBUILD INSTRUCTION`: the trigger as written, and parsed.
fn parse_onbuild(ctx: &Ctx, node: &Node) -> Result<OnBuild, Diagnostic> {
    no_flags(ctx, node)?;
    let Some(sub) = &node.sub else {
        return Err(ctx.at_node(node, "ONBUILD requires at least one argument"));
    };
    match sub.keyword.as_str() {
        "onbuild" => {
            return Err(ctx.at_node(sub, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
        }
        "from" | "maintainer" => {
            return Err(ctx.at_node(
                sub,
                format!(
                    "{} isn't allowed as an ONBUILD trigger",
                    sub.keyword.to_uppercase()
                ),
            ))
        }
        _ => {}
    }
    let mut sub = (**sub).clone();
    sub.heredocs = node.heredocs.clone();
    sub.span.end_line = node.span.end_line;
    let inner = parse_instruction(ctx, &sub)?;
    let mut trigger = sub.original.clone();
    for h in &node.heredocs {
        trigger.push('\n');
        trigger.push_str(&h.content);
        trigger.push_str(&h.name);
    }
    Ok(OnBuild {
        trigger,
        instruction: Box::new(inner),
    })
}

/// Parse a non-FROM instruction.
pub(crate) fn parse_instruction(ctx: &Ctx, node: &Node) -> Result<Instruction, Diagnostic> {
    Ok(match node.keyword.as_str() {
        "run" => Instruction::Run(parse_run(ctx, node)?),
        "cmd" | "entrypoint" => {
            no_flags(ctx, node)?;
            let command = command(node);
            if node.keyword == "cmd" {
                Instruction::Cmd { command }
            } else {
                Instruction::Entrypoint { command }
            }
        }
        "shell" => {
            no_flags(ctx, node)?;
            if !node.json {
                return Err(ctx
                    .at_node(node, "SHELL requires the arguments to be in JSON form")
                    .with_hint("write SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]"));
            }
            at_least_one(ctx, node)?;
            Instruction::Shell {
                shell: texts(&node.args),
            }
        }
        "copy" => Instruction::Copy(parse_copy(ctx, node, false)?),
        "add" => Instruction::Add(parse_copy(ctx, node, true)?),
        "env" => {
            no_flags(ctx, node)?;
            Instruction::Env {
                pairs: key_values(ctx, node)?,
            }
        }
        "label" => {
            no_flags(ctx, node)?;
            Instruction::Label {
                pairs: key_values(ctx, node)?,
            }
        }
        "arg" => Instruction::Arg {
            args: parse_arg(ctx, node)?,
        },
        "expose" => {
            no_flags(ctx, node)?;
            at_least_one(ctx, node)?;
            Instruction::Expose {
                ports: texts(&node.args),
            }
        }
        "volume" => {
            no_flags(ctx, node)?;
            at_least_one(ctx, node)?;
            if let Some(w) = node.args.iter().find(|w| w.text.trim().is_empty()) {
                return Err(ctx.err(w.pos, "VOLUME specified can not be an empty string"));
            }
            Instruction::Volume {
                paths: node.args.iter().map(|w| w.text.trim().to_owned()).collect(),
            }
        }
        "user" => {
            no_flags(ctx, node)?;
            Instruction::User {
                user: exactly_one(ctx, node)?,
            }
        }
        "workdir" => {
            no_flags(ctx, node)?;
            Instruction::Workdir {
                path: exactly_one(ctx, node)?,
            }
        }
        "stopsignal" => {
            no_flags(ctx, node)?;
            let signal = exactly_one(ctx, node)?;
            if !signal.contains('$') {
                check_signal(&signal).map_err(|m| ctx.err(node.args[0].pos, m.to_string()))?;
            }
            Instruction::StopSignal { signal }
        }
        "maintainer" => {
            no_flags(ctx, node)?;
            Instruction::Maintainer {
                name: exactly_one(ctx, node)?,
            }
        }
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(ctx, node)?),
        "onbuild" => Instruction::Onbuild(parse_onbuild(ctx, node)?),
        other => {
            let mut d = ctx.at_node(node, format!("unknown instruction: {}", node.keyword_raw));
            if let Some(s) = suggest(other, KEYWORDS) {
                d = d.with_hint(format!("did you mean {}?", s.to_uppercase()));
            }
            return Err(d);
        }
    })
}

/// The image config `ExposedPorts` keys for expanded `EXPOSE` words, as BuildKit computes
/// them: `80` → `80/tcp`, protocol lower-cased (tcp, udp or sctp), ranges `8000-8002`
/// expanded, an `ip:hostPort:` prefix ignored, duplicates removed, sorted as strings
/// (`443/tcp` before `80/tcp`).
pub fn expose_ports(words: &[String]) -> Result<Vec<String>, PortError> {
    let mut out = std::collections::BTreeSet::new();
    for w in words {
        let (spec, proto) = match w.rsplit_once('/') {
            Some((s, p)) if !p.is_empty() => (s, p.to_ascii_lowercase()),
            Some((s, _)) => (s, "tcp".to_owned()),
            None => (w.as_str(), "tcp".to_owned()),
        };
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(PortError::Proto(proto));
        }
        let container = spec.rsplit(':').next().unwrap_or(spec);
        if container.is_empty() {
            return Err(PortError::NoPort(w.clone()));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| PortError::ContainerPort(container.to_owned()))
        };
        let (start, end) = match container.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(container)?, port(container)?),
        };
        if end < start {
            return Err(PortError::Range(container.to_owned()));
        }
        for p in start..=end {
            out.insert(format!("{p}/{proto}"));
        }
    }
    Ok(out.into_iter().collect())
}

/// What is wrong with an `EXPOSE` word, in BuildKit's words.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A protocol other than tcp, udp and sctp.
    #[error("invalid proto: {0}")]
    Proto(String),
    /// A word without a container port.
    #[error("no port specified: {0}<empty>")]
    NoPort(String),
    /// A container port that is not a port number.
    #[error("invalid containerPort: {0}")]
    ContainerPort(String),
    /// A range whose end is below its start.
    #[error("invalid range specified for container port: {0}")]
    Range(String),
}

/// A `STOPSIGNAL` that names no signal.
#[derive(Debug, thiserror::Error)]
#[error("invalid signal: {0}")]
pub struct InvalidSignal(pub String);

/// Signal names and numbers accepted by `STOPSIGNAL` (Linux).
const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR",
];

/// `signal.ParseSignal`: `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`.
pub fn check_signal(s: &str) -> Result<(), InvalidSignal> {
    let bad = || InvalidSignal(s.to_owned());
    if let Ok(n) = s.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if SIGNALS.contains(&name) {
        return Ok(());
    }
    let rt = |base: &str, sign: char| {
        name.strip_prefix(base).is_some_and(|r| {
            r.is_empty()
                || r.strip_prefix(sign)
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n <= 15)
        })
    };
    if rt("RTMIN", '+') || rt("RTMAX", '-') {
        return Ok(());
    }
    Err(bad())
}

impl Instruction {
    /// A copy with every word BuildKit expands expanded against `scope` (the environment
    /// *before* this instruction): COPY/ADD sources, dest, `--chown`, `--chmod`,
    /// `--checksum` and expandable heredoc bodies; ENV/LABEL keys and values; ARG defaults;
    /// EXPOSE (may split into several ports); VOLUME, USER, WORKDIR, STOPSIGNAL; RUN
    /// `--mount` options. RUN/CMD/ENTRYPOINT text, SHELL, HEALTHCHECK, MAINTAINER,
    /// ONBUILD, `--from` and `--exclude` stay as written.
    pub fn expand(
        &self,
        scope: &super::args::Scope,
    ) -> Result<Instruction, super::expand::ExpandError> {
        let w = |s: &String| scope.expand_word(s);
        let opt = |s: &Option<String>| s.as_ref().map(|v| scope.expand_word(v)).transpose();
        let kvs = |pairs: &[KeyValue]| {
            pairs
                .iter()
                .map(|p| {
                    Ok(KeyValue {
                        key: w(&p.key)?,
                        value: w(&p.value)?,
                    })
                })
                .collect::<Result<Vec<_>, super::expand::ExpandError>>()
        };
        Ok(match self {
            Instruction::Run(r) => {
                let exp = |v: &str| scope.expand_word(v);
                let mounts = r
                    .mount_specs
                    .iter()
                    .map(|spec| {
                        Mount::parse(spec, Some(&exp)).map_err(|reason| {
                            super::expand::ExpandError {
                                word: spec.clone(),
                                reason: super::expand::Reason::Mount(Box::new(reason)),
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Instruction::Run(Run {
                    mounts,
                    ..r.clone()
                })
            }
            Instruction::Copy(c) | Instruction::Add(c) => {
                let sources = c
                    .sources
                    .iter()
                    .map(|s| {
                        Ok(match s {
                            CopySource::Path(p) => CopySource::Path(w(p)?),
                            CopySource::Heredoc(h) if h.expand => CopySource::Heredoc(Heredoc {
                                content: scope.expand_heredoc(&h.content)?,
                                ..h.clone()
                            }),
                            other => other.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, super::expand::ExpandError>>()?;
                let e = Copy {
                    chown: opt(&c.chown)?,
                    chmod: opt(&c.chmod)?,
                    checksum: opt(&c.checksum)?,
                    dest: w(&c.dest)?,
                    sources,
                    ..c.clone()
                };
                if matches!(self, Instruction::Copy(_)) {
                    Instruction::Copy(e)
                } else {
                    Instruction::Add(e)
                }
            }
            Instruction::Env { pairs } => Instruction::Env { pairs: kvs(pairs)? },
            Instruction::Label { pairs } => Instruction::Label { pairs: kvs(pairs)? },
            Instruction::Arg { args } => Instruction::Arg {
                args: args
                    .iter()
                    .map(|a| {
                        Ok(ArgDecl {
                            name: a.name.clone(),
                            default: opt(&a.default)?,
                        })
                    })
                    .collect::<Result<Vec<_>, super::expand::ExpandError>>()?,
            },
            Instruction::Expose { ports } => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(scope.expand_words(p)?);
                }
                Instruction::Expose { ports: out }
            }
            Instruction::Volume { paths } => Instruction::Volume {
                paths: paths.iter().map(w).collect::<Result<_, _>>()?,
            },
            Instruction::User { user } => Instruction::User { user: w(user)? },
            Instruction::Workdir { path } => Instruction::Workdir { path: w(path)? },
            Instruction::StopSignal { signal } => Instruction::StopSignal { signal: w(signal)? },
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::ast::parse_ast;

    fn one(src: &str) -> Result<Instruction, Diagnostic> {
        let full = format!("FROM a\n{src}\n");
        let ast = parse_ast(&full, Path::new("Dockerfile")).unwrap();
        let ctx = Ctx {
            file: Path::new("Dockerfile"),
            source: &full,
        };
        parse_instruction(&ctx, &ast.nodes[1])
    }

    fn msg(src: &str) -> String {
        one(src).unwrap_err().headline()
    }

    #[test]
    fn copy_flags() {
        let Instruction::Copy(c) = one("COPY --from=builder --chown=nextjs:nodejs --chmod=755 --link --parents --exclude=*.md --exclude=x a b /app/").unwrap() else { panic!() };
        assert_eq!(c.from.as_deref(), Some("builder"));
        assert_eq!((c.link, c.parents), (true, true));
        assert_eq!(c.exclude, ["*.md", "x"]);
        assert_eq!(c.sources.len(), 2);
        assert_eq!(
            msg("COPY --checksum=sha256:x a b"),
            "Dockerfile:2:6: unknown flag: --checksum"
        );
        assert_eq!(
            msg("COPY --chown a b"),
            "Dockerfile:2:6: missing a value on flag: --chown"
        );
        assert_eq!(
            msg("COPY --link=yes a b"),
            "Dockerfile:2:6: expecting boolean value for flag link, not: yes"
        );
        assert_eq!(
            msg("COPY --from=a --from=b a b"),
            "Dockerfile:2:15: duplicate flag specified: --from"
        );
        assert_eq!(msg("COPY a"), "Dockerfile:2:1: COPY requires at least two arguments, but only one was provided. destination could not be determined");
        assert_eq!(
            msg("COPY --from=$X a b"),
            "Dockerfile:2:6: variable expansion is not supported for --from"
        );
        assert_eq!(
            msg("COPY http://x/y /z"),
            "Dockerfile:2:6: source can't be a URL for COPY"
        );
        let e = one("COPY --chwn=1 a b").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean --chown?"));
    }

    #[test]
    fn add_flags() {
        let Instruction::Add(c) =
            one("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false https://x/y.tgz /z")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (c.checksum.as_deref(), c.keep_git_dir, c.unpack),
            (Some("sha256:abc"), Some(true), Some(false))
        );
        assert_eq!(
            msg("ADD --from=x a b"),
            "Dockerfile:2:5: unknown flag: --from"
        );
    }

    #[test]
    fn healthcheck() {
        let Instruction::Healthcheck(h) =
            one("HEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://localhost/ || exit 1")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(h.history(), "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/ || exit 1] Interval:5m0s Timeout:3s StartPeriod:0s StartInterval:0s Retries:0}");
        assert_eq!(
            one("HEALTHCHECK NONE").unwrap(),
            Instruction::Healthcheck(Healthcheck::None)
        );
        assert_eq!(
            msg("HEALTHCHECK --interval=10 CMD x"),
            "Dockerfile:2:13: invalid --interval: time: missing unit in duration \"10\""
        );
        assert_eq!(
            msg("HEALTHCHECK --timeout=10us CMD x"),
            "Dockerfile:2:13: --timeout \"10us\" cannot be less than 1ms"
        );
        assert_eq!(
            msg("HEALTHCHECK --retries=-1 CMD x"),
            "Dockerfile:2:13: --retries cannot be negative (-1)"
        );
        assert_eq!(
            msg("HEALTHCHECK NONE x"),
            "Dockerfile:2:1: HEALTHCHECK NONE takes no arguments"
        );
        assert_eq!(
            msg("HEALTHCHECK RUN x"),
            "Dockerfile:2:13: unknown type \"RUN\" in HEALTHCHECK"
        );
        let Instruction::Healthcheck(h) = one("HEALTHCHECK CMD [\"wget\", \"-q\"]").unwrap() else {
            panic!()
        };
        assert_eq!(h.test(), ["CMD", "wget", "-q"]);
    }

    #[test]
    fn run_flags_and_heredoc_script() {
        let Instruction::Run(r) =
            one("RUN --mount=type=cache,target=/root/.npm --network=none npm ci").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.mounts.len(), 1);
        assert_eq!(r.network, Some(NetworkMode::None));
        assert_eq!(
            msg("RUN --network=bridge x"),
            "Dockerfile:2:5: network mode \"bridge\" not supported"
        );
        assert_eq!(
            msg("RUN --mount=type=foo x"),
            "Dockerfile:2:5: invalid --mount: unsupported mount type \"foo\""
        );
        let full = "FROM a\nRUN <<EOF\necho hi\nEOF\nRUN cat <<A > /x\nbody\nA\n";
        let ast = parse_ast(full, Path::new("D")).unwrap();
        let ctx = Ctx {
            file: Path::new("D"),
            source: full,
        };
        let Instruction::Run(r) = parse_instruction(&ctx, &ast.nodes[1]).unwrap() else {
            panic!()
        };
        assert_eq!(r.script().as_deref(), Some("echo hi\n"));
        let Instruction::Run(r) = parse_instruction(&ctx, &ast.nodes[2]).unwrap() else {
            panic!()
        };
        assert_eq!(r.script().as_deref(), Some("cat <<A > /x\nbody\nA"));
    }

    #[test]
    fn expose_ports_like_buildkit() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            expose_ports(&w(&[
                "80",
                "443/TCP",
                "53/udp",
                "8000-8002",
                "127.0.0.1:8080:9000/tcp",
                "80/"
            ]))
            .unwrap(),
            ["443/tcp", "53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp", "9000/tcp"]
        );
        assert_eq!(
            expose_ports(&w(&["80/icmp"])).unwrap_err().to_string(),
            "invalid proto: icmp"
        );
        assert_eq!(
            expose_ports(&w(&["x"])).unwrap_err().to_string(),
            "invalid containerPort: x"
        );
        assert_eq!(
            expose_ports(&w(&["9-8"])).unwrap_err().to_string(),
            "invalid range specified for container port: 9-8"
        );
        assert_eq!(
            expose_ports(&w(&["70000"])).unwrap_err().to_string(),
            "invalid containerPort: 70000"
        );
    }

    #[test]
    fn misc_instructions() {
        assert_eq!(msg("RUNN x"), "Dockerfile:2:1: unknown instruction: RUNN");
        assert_eq!(
            one("RUNN x").unwrap_err().hint.as_deref(),
            Some("did you mean RUN?")
        );
        assert_eq!(
            msg("SHELL /bin/bash -c"),
            "Dockerfile:2:1: SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(
            msg("ONBUILD ONBUILD RUN x"),
            "Dockerfile:2:9: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            msg("ONBUILD FROM x"),
            "Dockerfile:2:9: FROM isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            msg("STOPSIGNAL SIGFOO"),
            "Dockerfile:2:12: invalid signal: SIGFOO"
        );
        assert!(one("STOPSIGNAL SIGRTMIN+3").is_ok());
        assert_eq!(msg("ARG =x"), "Dockerfile:2:5: ARG names can not be blank");
        assert_eq!(
            msg("USER"),
            "Dockerfile:2:1: USER requires exactly one argument"
        );
        assert_eq!(
            msg("VOLUME [\"\"]"),
            "Dockerfile:2:8: VOLUME specified can not be an empty string"
        );
        let Instruction::Onbuild(o) =
            one("onbuild   run --mount=type=cache,target=/x echo hi").unwrap()
        else {
            panic!()
        };
        assert_eq!(o.trigger, "run --mount=type=cache,target=/x echo hi");
        assert_eq!(stage_name("Builder").unwrap(), "builder");
        assert!(stage_name("1st").is_err());
        assert!(stage_name("a/b").is_err());
    }
}
