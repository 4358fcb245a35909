//! A walk over every stage in file order that tracks what BuildKit's dispatcher tracks
//! — declared ARG/ENV names and values, WORKDIR, SHELL, CMD/ENTRYPOINT/HEALTHCHECK — and
//! the BuildKit rules that need it: UndefinedArgInFrom, InvalidDefaultArgInFrom,
//! RedundantTargetPlatform, FromPlatformFlagConstDisallowed, UndefinedVar,
//! SecretsUsedInArgOrEnv, WorkdirRelativePath, JSONArgsRecommended,
//! MultipleInstructionsDisallowed, ExposeProtoCasing and ExposeInvalidFormat.
//!
//! Nothing is pulled, so a base image's own `Env` is unknown: in a stage that starts from
//! an image, `PATH` counts as set, and UndefinedVar reports a variable only when its name
//! has a lower-case letter (image configs set upper-case names), is a near miss of a
//! declared name, or is declared later in the same stage. BuildKit, which reads the
//! image config, also reports upper-case names the image does not set.

use super::{Ctx, Finding};
use crate::frontend::expand::{Lexer, Lookup};
use crate::frontend::instructions::{suggest, CopySource, Healthcheck, Instruction};
use crate::frontend::{CommandLine, Dockerfile, GlobalArgs, Platform, Pos, Step};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BaseRef {
    Scratch,
    Stage(usize),
    Image(String),
    /// A `--build-context` directory: its files, no config.
    Context,
    /// A `--build-context` image (the reference the flag gave): pinned or not
    /// on the command line, not in the Dockerfile.
    NamedImage(String),
}

/// What the walk learned about one stage.
#[derive(Debug, Clone)]
pub(crate) struct StageModel {
    pub base: BaseRef,
    /// The external image at the root of the `FROM <stage>` chain (`None`: scratch).
    pub root_image: Option<String>,
    /// The FROM image expanded with the global ARGs' defaults only (no `--build-arg`
    /// values, which messages must not show), when it has variables.
    pub default_image: Option<String>,
    /// The working directory before each step (absolute; `/` where the image's is unknown).
    pub workdirs: Vec<String>,
    /// Declared ARG/ENV names and their values (`None`: declared without a value).
    pub vars: BTreeMap<String, Option<String>>,
    env_known: bool,
    shell_set: bool,
    workdir_set: bool,
    workdir: String,
}

/// The walk's result, for the rules that read stages.
pub(crate) struct Model {
    pub stages: Vec<StageModel>,
    pub target: usize,
}

impl Model {
    /// The stages whose files end up in the target image: the target and the stages it
    /// starts `FROM`, nearest first.
    pub fn ships(&self) -> Vec<usize> {
        self.chain(self.target)
    }

    /// Stage `i` and the stages it starts from.
    pub fn chain(&self, i: usize) -> Vec<usize> {
        let mut out = vec![i];
        let mut i = i;
        while let Some(BaseRef::Stage(p)) = self.stages.get(i).map(|s| &s.base) {
            if out.contains(p) {
                break;
            }
            out.push(*p);
            i = *p;
        }
        out
    }
}

/// A lookup that remembers every name it was asked for.
struct Rec<'a> {
    inner: &'a dyn Lookup,
    seen: RefCell<BTreeSet<String>>,
}

impl Lookup for Rec<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.seen.borrow_mut().insert(name.to_owned());
        self.inner.lookup(name)
    }
}

struct Vars<'a>(&'a BTreeMap<String, Option<String>>);

impl Lookup for Vars<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().flatten()
    }
}

/// Expand `word`, returning the result (if it expands) and the names it refers to.
fn expand(lx: &Lexer, word: &str, env: &dyn Lookup) -> (Option<String>, BTreeSet<String>) {
    let rec = Rec {
        inner: env,
        seen: RefCell::new(BTreeSet::new()),
    };
    let out = lx.process_word(word, &rec).ok();
    (out, rec.seen.into_inner())
}

fn is_name(n: &str) -> bool {
    n.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// Build args BuildKit never puts in the environment.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// Whether an ARG/ENV key names sensitive data: one of its `_`-separated words is a
/// secret word and none is an allowed word (BuildKit's two case-insensitive patterns).
pub(crate) fn is_secret_name(key: &str) -> bool {
    const DENY: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let words: Vec<String> = key.split('_').map(str::to_ascii_lowercase).collect();
    words.iter().any(|w| DENY.contains(&w.as_str()))
        && !words.iter().any(|w| ALLOW.contains(&w.as_str()))
}

/// Where `$name` or `${name` is written in the step (for the column), else the keyword.
fn var_pos(ctx: &Ctx, step_start: Pos, end_line: usize, name: &str) -> (Pos, usize) {
    for needle in [format!("${{{name}"), format!("${name}")] {
        if let Some(p) = ctx.find(step_start.line, end_line, &needle) {
            return (
                p,
                needle.chars().count() + usize::from(needle.starts_with("${")),
            );
        }
    }
    (step_start, 1)
}

fn word_pos(ctx: &Ctx, start: Pos, end_line: usize, word: &str) -> (Pos, usize) {
    match ctx.find(start.line, end_line, word) {
        Some(p) if !word.is_empty() => (p, word.chars().count()),
        _ => (start, 1),
    }
}

struct Walker<'c, 'a> {
    ctx: &'c Ctx<'a>,
    lx: Lexer,
    out: &'c mut Vec<Finding>,
}

pub(crate) fn walk(ctx: &Ctx, df: &Dockerfile, target: usize, out: &mut Vec<Finding>) -> Model {
    let lx = Lexer::new(ctx.escape);
    let host = Platform::host();
    let target_name = df
        .stages
        .get(target)
        .map_or_else(|| "default".to_owned(), |s| s.display_name());
    let no_args = BTreeMap::new();
    let mut globals = GlobalArgs::automatic(&host, &host, &target_name, ctx.build_args);
    let mut defaults = GlobalArgs::automatic(&host, &host, &target_name, &no_args);
    let mut known: BTreeSet<String> = [
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETOSVERSION",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDOSVERSION",
        "BUILDARCH",
        "BUILDVARIANT",
        "TARGETSTAGE",
    ]
    .map(str::to_owned)
    .into();
    for step in &df.global_args {
        if let Instruction::Arg { args } = &step.instruction {
            for a in args {
                let d = a
                    .default
                    .as_ref()
                    .and_then(|d| lx.process_word(d, &globals).ok());
                globals.declare(&a.name, d, ctx.build_args);
                let d = a
                    .default
                    .as_ref()
                    .and_then(|d| lx.process_word(d, &defaults).ok());
                defaults.declare(&a.name, d, &no_args);
                known.insert(a.name.clone());
            }
        }
    }
    let mut w = Walker { ctx, lx, out };
    let mut stages: Vec<StageModel> = Vec::new();
    for (i, stage) in df.stages.iter().enumerate() {
        let from_node = df
            .nodes
            .iter()
            .find(|n| n.keyword == "from" && n.span.start == stage.pos);
        let end_line = from_node.map_or(stage.pos.line, |n| n.span.end_line);
        // UndefinedArgInFrom and InvalidDefaultArgInFrom on the image word.
        let (image, refs) = expand(&w.lx, &stage.from.image, &globals);
        w.undefined_in_from(&refs, &known, stage.pos, end_line);
        let mut default_image = None;
        if stage.from.image.contains('$') {
            let (dflt, _) = expand(&w.lx, &stage.from.image, &defaults);
            default_image.clone_from(&dflt);
            let valid = dflt
                .as_deref()
                .is_some_and(|s| !s.is_empty() && s.parse::<crate::registry::Reference>().is_ok());
            if !valid {
                let (p, l) = word_pos(ctx, stage.pos, end_line, &stage.from.image);
                w.out.push(
                    Finding::new(
                        "InvalidDefaultArgInFrom",
                        p,
                        format!(
                            "Default value for ARG {} results in empty or invalid base image name",
                            stage.from.image
                        ),
                    )
                    .len(l)
                    .hint("give the global ARG a default that names a valid image, or use ${VAR:-default}"),
                );
            }
        }
        if let Some(plat) = &stage.from.platform {
            w.platform(stage, plat, &globals, &known, end_line);
        }
        let image = image.unwrap_or_else(|| stage.from.image.clone());
        let lower = image.to_ascii_lowercase();
        use crate::frontend::graph::Named;
        let base = if let Some(n) = ctx.named.get(&image) {
            match n {
                Named::Local => BaseRef::Context,
                Named::Image(r) => BaseRef::NamedImage(r.clone()),
            }
        } else if lower == "scratch" {
            BaseRef::Scratch
        } else if let Some(j) = df.stages[..i]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            BaseRef::Stage(j)
        } else {
            BaseRef::Image(image)
        };
        let mut m = match &base {
            BaseRef::Stage(j) => {
                let p = &stages[*j];
                StageModel {
                    base: base.clone(),
                    root_image: p.root_image.clone(),
                    default_image,
                    workdirs: Vec::new(),
                    ..p.clone()
                }
            }
            _ => StageModel {
                base: base.clone(),
                root_image: match &base {
                    BaseRef::Image(s) | BaseRef::NamedImage(s) => Some(s.clone()),
                    _ => None,
                },
                default_image,
                workdirs: Vec::new(),
                // Every image config sets PATH (BuildKit adds a default one).
                vars: match &base {
                    BaseRef::Image(_) | BaseRef::NamedImage(_) => {
                        [("PATH".to_owned(), None)].into()
                    }
                    _ => BTreeMap::new(),
                },
                env_known: matches!(base, BaseRef::Scratch | BaseRef::Context),
                shell_set: false,
                workdir_set: false,
                workdir: "/".into(),
            },
        };
        w.stage(stage.steps.as_slice(), &mut m, &globals);
        stages.push(m);
    }
    Model { stages, target }
}

impl Walker<'_, '_> {
    fn undefined_in_from(
        &mut self,
        refs: &BTreeSet<String>,
        known: &BTreeSet<String>,
        at: Pos,
        end_line: usize,
    ) {
        for name in refs.iter().filter(|n| is_name(n) && !known.contains(*n)) {
            let mut msg = format!("FROM argument '{name}' is not declared");
            if let Some(s) = suggest(name, known.iter().map(String::as_str)) {
                msg.push_str(&format!(" (did you mean {s}?)"));
            }
            let (p, l) = var_pos(self.ctx, at, end_line, name);
            self.out.push(
                Finding::new("UndefinedArgInFrom", p, msg)
                    .len(l)
                    .hint(format!(
                        "declare it before the first FROM: ARG {name}=<default>"
                    )),
            );
        }
    }

    fn platform(
        &mut self,
        stage: &crate::frontend::Stage,
        plat: &str,
        globals: &GlobalArgs,
        known: &BTreeSet<String>,
        end_line: usize,
    ) {
        let (result, refs) = expand(&self.lx, plat, globals);
        self.undefined_in_from(&refs, known, stage.pos, end_line);
        let at = stage.platform_pos.unwrap_or(stage.pos);
        let len = plat.chars().count() + "--platform=".len();
        if refs.len() == 1
            && refs.contains("TARGETPLATFORM")
            && result.as_deref() == globals.get("TARGETPLATFORM")
        {
            self.out.push(
                Finding::new(
                    "RedundantTargetPlatform",
                    at,
                    format!("Setting platform to predefined {plat} in FROM is redundant as this is the default behavior"),
                )
                .len(len)
                .hint("remove --platform: the target platform is the default"),
            );
        }
        if refs.is_empty() {
            if let Some(p) = result.as_deref().and_then(|r| Platform::parse(r).ok()) {
                let name = stage.name.clone().unwrap_or_default();
                if !name.contains(&p.os) && !name.contains(&p.architecture) {
                    self.out.push(
                        Finding::new(
                            "FromPlatformFlagConstDisallowed",
                            at,
                            format!("FROM --platform flag should not use constant value {:?}", result.unwrap_or_default()),
                        )
                        .len(len)
                        .hint("omit --platform (pass --platform to cairn build) or use $BUILDPLATFORM; a stage meant for one platform should say so in its name"),
                    );
                }
            }
        }
    }

    /// Expand `words` of a step with the stage's variables and report undefined ones.
    fn words<'w>(
        &mut self,
        step: &Step,
        m: &StageModel,
        later: &BTreeSet<&str>,
        words: impl IntoIterator<Item = (&'w str, bool)>,
    ) -> Vec<Option<String>> {
        let vars = Vars(&m.vars);
        let mut refs = BTreeSet::new();
        let mut out = Vec::new();
        for (word, raw) in words {
            let lx = if raw {
                Lexer {
                    skip_process_quotes: true,
                    ..self.lx
                }
            } else {
                self.lx
            };
            let (r, seen) = expand(&lx, word, &vars);
            refs.extend(seen);
            out.push(r);
        }
        for name in refs {
            if !is_name(&name)
                || m.vars.contains_key(&name)
                || NON_ENV_ARGS.contains(&name.as_str())
            {
                continue;
            }
            let hint = suggest(&name, m.vars.keys().map(String::as_str));
            let image_may_set = !name.chars().any(|c| c.is_ascii_lowercase());
            if !(m.env_known || !image_may_set || hint.is_some() || later.contains(name.as_str())) {
                continue;
            }
            let mut msg = format!("Usage of undefined variable '${name}'");
            if let Some(h) = hint {
                msg.push_str(&format!(" (did you mean ${h}?)"));
            }
            let (p, l) = var_pos(self.ctx, step.span.start, step.span.end_line, &name);
            self.out.push(
                Finding::new("UndefinedVar", p, msg)
                    .len(l)
                    .hint(match hint {
                        _ if later.contains(name.as_str()) => format!(
                            "{name} is declared further down: move its ARG/ENV above this line"
                        ),
                        Some(h) => format!("write ${h}"),
                        None => format!("declare it first (ARG {name} or ENV {name}=…)"),
                    }),
            );
        }
        out
    }

    fn secret_key(&mut self, step: &Step, kind: &str, key: &str) {
        if is_secret_name(key) {
            let (p, l) = word_pos(self.ctx, step.span.start, step.span.end_line, key);
            self.out.push(
                Finding::new(
                    "SecretsUsedInArgOrEnv",
                    p,
                    format!(
                        "Do not use ARG or ENV instructions for sensitive data ({kind} {key:?})"
                    ),
                )
                .len(l)
                .hint(format!(
                    "pass it with RUN --mount=type=secret,id={},env={key} and --secret",
                    key.to_ascii_lowercase()
                )),
            );
        }
    }

    fn stage(&mut self, steps: &[Step], m: &mut StageModel, globals: &GlobalArgs) {
        let mut once: BTreeMap<&str, &Step> = BTreeMap::new();
        for (idx, step) in steps.iter().enumerate() {
            m.workdirs.push(m.workdir.clone());
            let later: BTreeSet<&str> = steps[idx + 1..]
                .iter()
                .flat_map(|s| match &s.instruction {
                    Instruction::Arg { args } => args.iter().map(|a| a.name.as_str()).collect(),
                    Instruction::Env { pairs } => pairs.iter().map(|p| p.key.as_str()).collect(),
                    _ => Vec::new(),
                })
                .collect();
            match &step.instruction {
                Instruction::Arg { args } => {
                    for a in args {
                        self.secret_key(step, "ARG", &a.name);
                        let value = match (self.ctx.build_args.get(&a.name), &a.default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(d)) => self
                                .words(step, m, &later, [(d.as_str(), false)])
                                .pop()
                                .flatten(),
                            (None, None) => globals.get(&a.name).map(str::to_owned),
                        };
                        m.vars.insert(a.name.clone(), value);
                    }
                }
                Instruction::Env { pairs } => {
                    for p in pairs {
                        self.secret_key(step, "ENV", &p.key);
                    }
                    let values = self.words(
                        step,
                        m,
                        &later,
                        pairs.iter().map(|p| (p.value.as_str(), false)),
                    );
                    for (p, v) in pairs.iter().zip(values) {
                        m.vars.insert(p.key.clone(), Some(v.unwrap_or_default()));
                    }
                }
                Instruction::Copy(c) | Instruction::Add(c) => {
                    let mut ws: Vec<(&str, bool)> = Vec::new();
                    for s in &c.sources {
                        match s {
                            CopySource::Path(p) => ws.push((p, false)),
                            CopySource::Heredoc(h) if h.expand => ws.push((&h.content, true)),
                            CopySource::Heredoc(_) => {}
                        }
                    }
                    ws.push((&c.dest, false));
                    ws.extend(c.chown.as_deref().map(|s| (s, false)));
                    ws.extend(c.chmod.as_deref().map(|s| (s, false)));
                    self.words(step, m, &later, ws);
                }
                Instruction::Label { pairs } => {
                    self.words(
                        step,
                        m,
                        &later,
                        pairs
                            .iter()
                            .flat_map(|p| [(p.key.as_str(), false), (p.value.as_str(), false)]),
                    );
                }
                Instruction::Expose { ports } => {
                    let expanded =
                        self.words(step, m, &later, ports.iter().map(|p| (p.as_str(), false)));
                    for (raw, e) in ports.iter().zip(expanded) {
                        self.expose(step, raw, &e.unwrap_or_else(|| raw.clone()));
                    }
                }
                Instruction::Volume { paths } => {
                    self.words(step, m, &later, paths.iter().map(|p| (p.as_str(), false)));
                }
                Instruction::User { user } => {
                    self.words(step, m, &later, [(user.as_str(), false)]);
                }
                Instruction::StopSignal { signal } => {
                    self.words(step, m, &later, [(signal.as_str(), false)]);
                }
                Instruction::Workdir { path } => {
                    let p = self
                        .words(step, m, &later, [(path.as_str(), false)])
                        .pop()
                        .flatten()
                        .unwrap_or_else(|| path.clone());
                    if !m.workdir_set && !p.starts_with('/') {
                        let (pos, l) =
                            word_pos(self.ctx, step.span.start, step.span.end_line, path);
                        self.out.push(
                            Finding::new(
                                "WorkdirRelativePath",
                                pos,
                                format!("Relative workdir {:?} can have unexpected results if the base image changes", if path.contains('$') { path } else { &p }),
                            )
                            .len(l)
                            .hint(format!(
                                "write WORKDIR /{}",
                                if path.contains('$') { path } else { &p }.trim_start_matches("./")
                            )),
                        );
                    }
                    m.workdir_set = true;
                    m.workdir = join(&m.workdir, &p);
                }
                Instruction::Shell { .. } => m.shell_set = true,
                Instruction::Cmd { command } | Instruction::Entrypoint { command } => {
                    let kw = if matches!(step.instruction, Instruction::Cmd { .. }) {
                        "CMD"
                    } else {
                        "ENTRYPOINT"
                    };
                    self.used_once(&mut once, kw, step);
                    if matches!(command, CommandLine::Shell(_)) && !m.shell_set {
                        self.out.push(
                            Finding::new(
                                "JSONArgsRecommended",
                                step.span.start,
                                format!("JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"),
                            )
                            .len(kw.len())
                            .hint(format!("write the exec form, e.g. {kw} [\"node\", \"server.js\"], so the program gets SIGTERM as PID 1")),
                        );
                    }
                }
                Instruction::Healthcheck(h) => {
                    let _: &Healthcheck = h;
                    self.used_once(&mut once, "HEALTHCHECK", step);
                }
                _ => {}
            }
        }
    }

    /// MultipleInstructionsDisallowed: reported at the earlier one, which is ignored.
    fn used_once<'s>(
        &mut self,
        once: &mut BTreeMap<&'static str, &'s Step>,
        kw: &'static str,
        step: &'s Step,
    ) {
        if let Some(prev) = once.insert(kw, step) {
            self.out.push(
                Finding::new(
                    "MultipleInstructionsDisallowed",
                    prev.span.start,
                    format!("Multiple {kw} instructions should not be used in the same stage because only the last one will be used"),
                )
                .len(kw.len())
                .hint(format!("delete this {kw}: the one at line {} replaces it", step.span.start.line)),
            );
        }
    }

    /// ExposeProtoCasing and ExposeInvalidFormat on one expanded port spec
    /// (`[ip:][hostPort:]containerPort[/proto]`).
    fn expose(&mut self, step: &Step, raw: &str, port: &str) {
        let (spec, proto) = port.rsplit_once('/').unwrap_or((port, ""));
        // Messages show the word as written when it has variables (build-arg values
        // stay out of messages).
        let shown = if raw.contains('$') { raw } else { port };
        let (pos, l) = word_pos(self.ctx, step.span.start, step.span.end_line, raw);
        if proto != proto.to_lowercase() {
            self.out.push(
                Finding::new(
                    "ExposeProtoCasing",
                    pos,
                    format!("Defined protocol '{shown}' in EXPOSE instruction should be lowercase"),
                )
                .len(l)
                .hint(if shown == port {
                    format!("write {spec}/{}", proto.to_lowercase())
                } else {
                    "write the protocol in lower case (tcp, udp)".to_owned()
                }),
            );
        }
        let container = spec.rsplit(':').next().unwrap_or(spec);
        if spec.contains(':') {
            self.out.push(
                Finding::new(
                    "ExposeInvalidFormat",
                    pos,
                    format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{shown}'"),
                )
                .len(l)
                .hint(if shown == port {
                    let proto = if proto.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", proto.to_lowercase())
                    };
                    format!("write EXPOSE {container}{proto}; map host ports when running the container")
                } else {
                    "expose the container port only; map host ports when running the container"
                        .to_owned()
                }),
            );
        }
    }
}

/// `cwd` joined with `p` (`p` absolute replaces it), lexically cleaned.
pub(crate) fn join(cwd: &str, p: &str) -> String {
    let full = if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("{cwd}/{p}")
    };
    let c = cairn_layers::dockerignore::clean(&full);
    if c.is_empty() {
        "/".into()
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_buildkits_word_patterns() {
        for k in [
            "SECRET_PASSPHRASE",
            "SUPER_Secret",
            "password",
            "auth",
            "super_duper_secret_token",
            "apikey",
            "git_key",
            "NPM_TOKEN",
        ] {
            assert!(is_secret_name(k), "{k}");
        }
        for k in [
            "sunflower",
            "PUBLIC_KEY",
            "public_token",
            "SECRET_PASSPHRASE_FILE",
            "password_file",
            "AUTH_MODULE_VERSION",
            "KEYS",
            "MONKEY",
        ] {
            assert!(!is_secret_name(k), "{k}");
        }
    }

    #[test]
    fn workdir_join() {
        assert_eq!(join("/", "app"), "/app");
        assert_eq!(join("/app", "../srv/"), "/srv");
        assert_eq!(join("/app", "/x"), "/x");
    }
}
