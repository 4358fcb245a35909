//! `cairn check`: lint a Dockerfile, its `.dockerignore` and its context before building.
//!
//! Two families of rules, one table ([`RULES`]):
//!
//! * BuildKit's 21 build checks (`docker build --check`), by BuildKit's names and with
//!   BuildKit's meaning (`frontend/dockerfile/docs/rules/` of moby/buildkit); the
//!   comparison, rule by rule, is in `docs/checks/buildkit-comparison.md`.
//! * cairn's own rules, which predict a cache miss or an image that is not reproducible
//!   (what `cairn diff` would explain only after two builds).
//!
//! Modules: [`config`] (`# check=skip=…;error=true;experimental=…`, the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg, per-instruction `# check=` comments), `syntax`
//! (rules that need only the syntax tree), `walk` (a stage-by-stage walk that tracks
//! ARG/ENV, WORKDIR and SHELL, and the rules that need it), `context` (rules that read
//! `.dockerignore` and the context: CopyIgnoredFile, UnignoredContextCopy,
//! NpmInstallWithLockfile, Next.js rules), `repro` (base pinning, BusyBox `adduser`,
//! secrets as build args, install order) and `render` (text and JSON output,
//! `docs/check-json.md`).
//!
//! Everything is found from the files alone: nothing is pulled or run.

pub mod config;
mod context;
pub mod render;
mod repro;
mod syntax;
mod walk;

/// BuildKit's SecretsUsedInArgOrEnv word test, also used by `cairn build`'s warning.
pub(crate) use walk::is_secret_name;

use crate::frontend::ast::{parse_ast, Ast};
use crate::frontend::{self, BuildOptions, Diagnostic, Pos, Severity};
use cairn_layers::dockerignore::Matcher;
pub use config::Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// One of BuildKit's build checks, same name and meaning.
    BuildKit,
    /// cairn's own: predicts a cache miss or an irreproducible image.
    Cairn,
}

/// One rule of the table.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// The name used in output and in `# check=skip=`.
    pub name: &'static str,
    /// Whose rule it is.
    pub origin: Origin,
    /// One line: what the rule asks for.
    pub description: &'static str,
    /// Off unless enabled with `experimental=` (as in BuildKit).
    pub experimental: bool,
    /// BuildKit's page name (`https://docs.docker.com/go/dockerfile/rule/<slug>/`).
    pub buildkit_slug: Option<&'static str>,
}

impl Rule {
    /// cairn's documentation page for the rule (relative to the repository).
    pub fn doc(&self) -> String {
        format!("docs/checks/{}.md", self.name)
    }

    /// BuildKit's page for the rule, for BuildKit's rules.
    pub fn buildkit_url(&self) -> Option<String> {
        self.buildkit_slug
            .map(|s| format!("https://docs.docker.com/go/dockerfile/rule/{s}/"))
    }
}

const fn bk(
    name: &'static str,
    slug: &'static str,
    description: &'static str,
    experimental: bool,
) -> Rule {
    Rule {
        name,
        origin: Origin::BuildKit,
        description,
        experimental,
        buildkit_slug: Some(slug),
    }
}

const fn cairn(name: &'static str, description: &'static str) -> Rule {
    Rule {
        name,
        origin: Origin::Cairn,
        description,
        experimental: false,
        buildkit_slug: None,
    }
}

/// Every rule. BuildKit's descriptions are BuildKit's own (its rule index).
pub const RULES: [Rule; 30] = [
    bk("ConsistentInstructionCasing", "consistent-instruction-casing", "All commands within the Dockerfile should use the same casing (either upper or lower)", false),
    bk("CopyIgnoredFile", "copy-ignored-file", "Attempting to Copy file that is excluded by .dockerignore", false),
    bk("DuplicateStageName", "duplicate-stage-name", "Stage names should be unique", false),
    bk("ExposeInvalidFormat", "expose-invalid-format", "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release", false),
    bk("ExposeProtoCasing", "expose-proto-casing", "Protocol in EXPOSE instruction should be lowercase", false),
    bk("FromAsCasing", "from-as-casing", "The 'as' keyword should match the case of the 'from' keyword", false),
    bk("FromPlatformFlagConstDisallowed", "from-platform-flag-const-disallowed", "FROM --platform flag should not use a constant value", false),
    bk("InvalidDefaultArgInFrom", "invalid-default-arg-in-from", "Default value for global ARG results in an empty or invalid base image name", false),
    bk("InvalidDefinitionDescription", "invalid-definition-description", "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.", true),
    bk("JSONArgsRecommended", "json-args-recommended", "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals", false),
    bk("LegacyKeyValueFormat", "legacy-key-value-format", "Legacy key/value format with whitespace separator should not be used", false),
    bk("MaintainerDeprecated", "maintainer-deprecated", "The MAINTAINER instruction is deprecated, use a label instead to define an image author", false),
    bk("MultipleInstructionsDisallowed", "multiple-instructions-disallowed", "Multiple instructions of the same type should not be used in the same stage", false),
    bk("NoEmptyContinuation", "no-empty-continuation", "Empty continuation lines will become errors in a future release", false),
    bk("RedundantTargetPlatform", "redundant-target-platform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior", false),
    bk("ReservedStageName", "reserved-stage-name", "Reserved words should not be used as stage names", false),
    bk("SecretsUsedInArgOrEnv", "secrets-used-in-arg-or-env", "Sensitive data should not be used in the ARG or ENV commands", false),
    bk("StageNameCasing", "stage-name-casing", "Stage names should be lowercase", false),
    bk("UndefinedArgInFrom", "undefined-arg-in-from", "FROM command must use declared ARGs", false),
    bk("UndefinedVar", "undefined-var", "Variables should be defined before their use", false),
    bk("WorkdirRelativePath", "workdir-relative-path", "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes", false),
    cairn("SourceCopiedBeforeInstall", "Copy only the dependency manifests before installing dependencies; copy the sources after"),
    cairn("NpmInstallWithLockfile", "Use `npm ci`, not `npm install`, when a lockfile is committed"),
    cairn("UnignoredContextCopy", "A copy of the whole context needs a .dockerignore that keeps node_modules, .git, .env and .next out"),
    cairn("NextRandomBuildId", "A Next.js build needs a fixed `generateBuildId`"),
    cairn("NextRandomServerActionsKey", "A Next.js build needs a fixed Server Actions key (NEXT_SERVER_ACTIONS_ENCRYPTION_KEY, from a secret)"),
    cairn("NextCacheShipped", "The final stage should not copy .next/cache or .next/trace"),
    cairn("BusyboxAdduser", "BusyBox `adduser` in a stage that ships writes the day into /etc/shadow"),
    cairn("BaseImageNotPinned", "Base images should be pinned by digest"),
    cairn("SecretAsBuildArg", "Pass secrets with RUN --mount=type=secret, not as an ARG a RUN sees"),
];

/// The rule called `name`.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// A rule broken at a place in the Dockerfile.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The rule.
    pub rule: &'static Rule,
    /// Warning, or error when `error=true` is in effect.
    pub severity: Severity,
    /// Where (line, column).
    pub pos: Pos,
    /// How many characters to underline.
    pub len: usize,
    /// One line: what is wrong here.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// What a rule module reports before the configuration is applied.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub rule: &'static str,
    pub pos: Pos,
    pub len: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Finding {
    pub(crate) fn new(rule: &'static str, pos: Pos, message: impl Into<String>) -> Self {
        Finding {
            rule,
            pos,
            len: 1,
            message: message.into(),
            hint: None,
        }
    }
    pub(crate) fn len(mut self, len: usize) -> Self {
        self.len = len.max(1);
        self
    }
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The build context directory (`None`: rules that read the context are not run).
    pub context: Option<PathBuf>,
    /// The Dockerfile's path on disk, for `<Dockerfile>.dockerignore` (`None` for stdin).
    pub dockerfile_path: Option<PathBuf>,
    /// `--build-arg` values (`BUILDKIT_DOCKERFILE_CHECK` among them).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-context` names: `FROM NAME` and `--from=NAME` read these, not a stage or an image.
    pub named_contexts: BTreeMap<String, crate::frontend::graph::Named>,
}

/// The outcome of a check.
#[derive(Debug)]
pub struct Report {
    /// The Dockerfile as named in messages.
    pub file: PathBuf,
    /// The source (for excerpts).
    pub source: String,
    /// The configuration in effect (from the build arg, else the directive).
    pub config: Config,
    /// Where it came from: `build-arg`, `directive` or `default`.
    pub config_from: &'static str,
    /// Violations in file order.
    pub violations: Vec<Violation>,
    /// A parse or plan error: the Dockerfile cannot be built as it is.
    pub error: Option<Diagnostic>,
    /// Remarks about the configuration (e.g. an unknown rule name in `skip=`).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the check fails: an error, or a violation while `error=true`.
    pub fn failed(&self) -> bool {
        self.error.is_some()
            || self
                .violations
                .iter()
                .any(|v| v.severity == Severity::Error)
    }
}

/// A problem with the inputs themselves (not with the Dockerfile's content).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// `--build-arg BUILDKIT_DOCKERFILE_CHECK=…` cannot be parsed.
    #[error("invalid --build-arg {}={value:?}: {reason}", config::BUILD_ARG)]
    BadBuildArg {
        /// The value given.
        value: String,
        /// Why it is rejected (shown in the message, as the flag's value error).
        reason: config::ConfigError,
    },
    /// The ignore file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Ignore {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The inputs every rule module sees.
pub(crate) struct Ctx<'a> {
    pub lines: Vec<&'a str>,
    pub ast: &'a Ast,
    pub escape: char,
    pub context: Option<&'a Path>,
    pub ignore: Option<&'a Matcher>,
    pub build_args: &'a BTreeMap<String, String>,
    pub named: &'a BTreeMap<String, crate::frontend::graph::Named>,
}

impl Ctx<'_> {
    /// Line `n` (1-based) of the source, without its terminator.
    pub fn line(&self, n: usize) -> &str {
        self.lines
            .get(n.wrapping_sub(1))
            .map_or("", |l| l.strip_suffix('\r').unwrap_or(l))
    }

    /// The first place `needle` occurs on lines `from..=to` (for precise columns).
    pub fn find(&self, from: usize, to: usize, needle: &str) -> Option<Pos> {
        (from..=to).find_map(|n| {
            self.line(n).find(needle).map(|b| Pos {
                line: n,
                col: self.line(n)[..b].chars().count() + 1,
            })
        })
    }
}

/// Run every enabled rule over `source` (named `file` in messages).
pub fn run(source: &str, file: &Path, opts: &Options) -> Result<Report, CheckError> {
    let mut report = Report {
        file: file.to_path_buf(),
        source: source.to_owned(),
        config: Config::default(),
        config_from: "default",
        violations: Vec::new(),
        error: None,
        notes: Vec::new(),
    };
    let ast = match parse_ast(source, file) {
        Ok(a) => a,
        Err(d) => {
            report.error = Some(d);
            return Ok(report);
        }
    };
    report.config = match opts.build_args.get(config::BUILD_ARG) {
        Some(v) => Config::parse(v).map_err(|reason| CheckError::BadBuildArg {
            value: v.clone(),
            reason,
        })?,
        None => ast
            .directives
            .check
            .as_deref()
            .map(Config::parse)
            .transpose()
            // The parser already accepted the directive; a value it lets through that
            // the stricter reading rejects counts as no configuration.
            .unwrap_or_default()
            .unwrap_or_default(),
    };
    report.config_from = if opts.build_args.contains_key(config::BUILD_ARG) {
        "build-arg"
    } else if ast.directives.check.is_some() {
        "directive"
    } else {
        "default"
    };
    report.notes = report.config.unknown_rules();
    let ignore = match &opts.context {
        Some(ctx) => load_ignore(ctx, opts.dockerfile_path.as_deref())?,
        None => None,
    };
    let ctx = Ctx {
        lines: source
            .strip_prefix('\u{feff}')
            .unwrap_or(source)
            .split('\n')
            .collect(),
        ast: &ast,
        escape: ast.directives.escape,
        context: opts.context.as_deref(),
        ignore: ignore.as_ref(),
        build_args: &opts.build_args,
        named: &opts.named_contexts,
    };
    let mut findings = syntax::check(&ctx);
    match frontend::parse(source, file) {
        Err(d) => report.error = Some(d),
        Ok(df) => {
            let plan_opts = BuildOptions {
                target: opts.target.clone(),
                build_args: opts.build_args.clone(),
                named_contexts: opts.named_contexts.clone(),
                ..BuildOptions::default()
            };
            // The rules run even when planning fails (as BuildKit lints before it
            // resolves bases); the target is then the last stage.
            let target = match frontend::plan(&df, &plan_opts) {
                Ok(plan) => plan.target,
                Err(d) => {
                    report.error = Some(d);
                    df.stages.len() - 1
                }
            };
            let model = walk::walk(&ctx, &df, target, &mut findings);
            context::check(&ctx, &df, &model, &mut findings);
            repro::check(&ctx, &df, &model, &mut findings);
        }
    }
    let comments = config::InstructionComments::new(&ctx);
    findings.sort_by_key(|f| (f.pos, f.rule));
    findings.dedup_by(|a, b| a.rule == b.rule && a.pos == b.pos && a.message == b.message);
    for f in findings {
        let Some(rule) = rule(f.rule) else { continue };
        let cfg = comments.config_at(&report.config, f.pos.line);
        if !cfg.enabled(rule) {
            continue;
        }
        report.violations.push(Violation {
            rule,
            severity: if cfg.error {
                Severity::Error
            } else {
                Severity::Warning
            },
            pos: f.pos,
            len: f.len,
            message: f.message,
            hint: f.hint,
        });
    }
    Ok(report)
}

fn load_ignore(context: &Path, dockerfile: Option<&Path>) -> Result<Option<Matcher>, CheckError> {
    let Some(path) = cairn_layers::dockerignore::ignore_file_for(context, dockerfile) else {
        return Ok(None);
    };
    Matcher::from_file(&path)
        .map(Some)
        .map_err(|e| CheckError::Ignore {
            path,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_buildkits_21_rules_and_unique_names() {
        let bk = RULES
            .iter()
            .filter(|r| r.origin == Origin::BuildKit)
            .count();
        assert_eq!(bk, 21);
        let mut names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
        assert_eq!(
            rule("FromAsCasing").and_then(Rule::buildkit_url).as_deref(),
            Some("https://docs.docker.com/go/dockerfile/rule/from-as-casing/")
        );
    }

    fn rules_hit(src: &str) -> Vec<(usize, &'static str)> {
        let r = run(src, Path::new("Dockerfile"), &Options::default()).unwrap();
        r.violations
            .iter()
            .filter(|v| v.rule.name != "BaseImageNotPinned")
            .map(|v| (v.pos.line, v.rule.name))
            .collect()
    }

    /// Cases from BuildKit's own check tests (`dockerfile_check_test.go`): what it reports.
    #[test]
    fn buildkits_test_cases() {
        let casing = "ConsistentInstructionCasing";
        assert_eq!(
            rules_hit("FROM scratch\ncopy a /foo\nCOPY a /bar\n"),
            [(2, casing)]
        );
        assert_eq!(
            rules_hit("from scratch\nCOPY a /foo\ncopy a /bar\n"),
            [(2, casing)]
        );
        assert_eq!(
            rules_hit("from scratch\nCOPY a /foo\nCOPY a /bar\nCOPY a /baz\n"),
            [(1, casing)]
        );
        // `From` is mixed case: ConsistentInstructionCasing, and no FromAsCasing.
        assert_eq!(
            rules_hit("From scratch as base\nFROM scratch AS base2\n"),
            [(1, casing)]
        );
        assert_eq!(rules_hit("FROM scratch\nRUN <<'EOT'\nenv\nEOT\n"), []);
        // Per stage, not inherited; reported at the ignored (earlier) one.
        let multi = "FROM scratch AS a\nCMD [\"a\"]\nFROM a AS b\nCMD [\"b\"]\n";
        assert_eq!(rules_hit(multi), []);
        let multi = "FROM scratch\nENTRYPOINT [\"a\"]\nCMD [\"a\"]\nHEALTHCHECK CMD [\"a\"]\nENTRYPOINT [\"b\"]\nCMD [\"b\"]\nHEALTHCHECK CMD [\"b\"]\n";
        let m = "MultipleInstructionsDisallowed";
        assert_eq!(rules_hit(multi), [(2, m), (3, m), (4, m)]);
        // SHELL in a parent stage counts.
        assert_eq!(
            rules_hit("FROM scratch AS base\nSHELL [\"/x\"]\nFROM base\nCMD c\n"),
            []
        );
        // WORKDIR set absolutely in a parent stage.
        assert_eq!(
            rules_hit("FROM scratch AS a\nWORKDIR /app\nFROM a AS b\nWORKDIR subdir/\n"),
            []
        );
        // FROM args.
        assert_eq!(rules_hit("ARG base=scratch\nFROM $base\n"), []);
        assert_eq!(rules_hit("FROM --platform=$BUILDPLATFORM scratch\n"), []);
        assert_eq!(rules_hit("ARG DEBUG\nFROM scra${DEBUG:-tch}\n"), []);
        assert_eq!(
            rules_hit("ARG tag=latest\nFROM busybox:${tag}${version} AS b\n"),
            [(2, "UndefinedArgInFrom")]
        );
        // UndefinedVar: declared later; declared in the parent stage; shell-form RUN.
        assert_eq!(
            rules_hit("FROM scratch\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n"),
            [(2, "UndefinedVar")]
        );
        assert_eq!(
            rules_hit("FROM scratch AS base\nARG foo=x\nFROM base\nCOPY $foo .\n"),
            []
        );
        assert_eq!(rules_hit("FROM alpine\nRUN echo $PATH $undefined\n"), []);
    }

    /// BuildKit's `testSecretsUsedInArgOrEnv`: eight warnings on lines 4 to 9; the
    /// `# check=` comments silence only the instruction below them.
    #[test]
    fn buildkits_secrets_test() {
        let src = "# check=skip=InvalidDefinitionDescription\n\nFROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\nENV password=bar secret=baz\nARG super_duper_secret_token=foo auth=bar\nENV apikey=bar sunflower=foo\nENV git_key=\nENV PUBLIC_KEY=\nARG public_token\nARG SECRET_PASSPHRASE_FILE\nENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n# check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n# check=skip=SecretsUsedInArgOrEnv // allow secret in arg\nARG password\n# check=skip=all // is local to only this instruction\nENV alternate_password=bar\n# check=skip=all // is local to only this instruction\nARG alternate_password\n";
        let r = run(src, Path::new("D"), &Options::default()).unwrap();
        let got: Vec<(usize, String)> = r
            .violations
            .iter()
            .map(|v| (v.pos.line, v.message.clone()))
            .collect();
        let want: Vec<(usize, String)> = [
            (4, "ARG \"SECRET_PASSPHRASE\""),
            (5, "ENV \"SUPER_Secret\""),
            (6, "ENV \"password\""),
            (6, "ENV \"secret\""),
            (7, "ARG \"super_duper_secret_token\""),
            (7, "ARG \"auth\""),
            (8, "ENV \"apikey\""),
            (9, "ENV \"git_key\""),
        ]
        .iter()
        .map(|(l, k)| {
            let m = format!("Do not use ARG or ENV instructions for sensitive data ({k})");
            (*l, m)
        })
        .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted = want;
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "{got:?}");
    }

    #[test]
    fn a_check_comment_above_an_instruction_applies_to_it_only() {
        let src = "FROM scratch\n# check=skip=JSONArgsRecommended // shell on purpose\nCMD a\nENTRYPOINT b\n";
        assert_eq!(rules_hit(src), [(4, "JSONArgsRecommended")]);
        let r = run(
            "FROM scratch\n# check=error=true\nMAINTAINER me\nCMD a\n",
            Path::new("D"),
            &Options::default(),
        )
        .unwrap();
        let sev: Vec<_> = r.violations.iter().map(|v| v.severity).collect();
        assert_eq!(sev, [Severity::Error, Severity::Warning]);
        assert!(r.failed());
    }

    #[test]
    fn the_build_arg_replaces_the_directive() {
        let mut opts = Options::default();
        let src = "# check=skip=all;error=true\nFROM scratch\nMAINTAINER me\n";
        assert!(run(src, Path::new("D"), &opts)
            .unwrap()
            .violations
            .is_empty());
        opts.build_args
            .insert(config::BUILD_ARG.into(), "skip=JSONArgsRecommended".into());
        let r = run(src, Path::new("D"), &opts).unwrap();
        assert_eq!(r.violations.len(), 1);
        assert!(!r.failed());
        opts.build_args
            .insert(config::BUILD_ARG.into(), "nope".into());
        assert!(run(src, Path::new("D"), &opts).is_err());
    }

    #[test]
    fn a_parse_error_is_reported_after_the_warnings_before_it() {
        let r = run(
            "FROM a AS BadName\nMAINTAINER me\nBADCMD\n",
            Path::new("Dockerfile"),
            &Options::default(),
        )
        .unwrap();
        let names: Vec<_> = r.violations.iter().map(|v| v.rule.name).collect();
        assert_eq!(names, ["StageNameCasing", "MaintainerDeprecated"]);
        assert!(r.error.unwrap().message.contains("unknown instruction"));
    }
}
