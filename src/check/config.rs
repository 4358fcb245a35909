//! Which rules run and whether a violation fails the check, as BuildKit decides it:
//!
//! * `--build-arg BUILDKIT_DOCKERFILE_CHECK=<options>` replaces the `# check=<options>`
//!   directive entirely when given;
//! * `<options>` is `skip=<Rule,…|all>`, `experimental=<Rule,…|all>` and `error=<bool>`
//!   joined by `;`. `skip` does not turn off an experimental rule that `experimental`
//!   turned on; experimental rules are off unless named (or `all`);
//! * `error=true` turns every violation into an error (the check then fails);
//! * a `# check=…` comment directly above an instruction adds to the configuration for
//!   that instruction only (BuildKit's `WithMergedConfigFromComments`); text after the
//!   first space of its value is a free remark (`# check=skip=X // why`).

use super::{Ctx, Rule, RULES};
use std::collections::BTreeSet;

/// The build argument that overrides the directive.
pub const BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// The check configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=A,B`.
    pub skip: BTreeSet<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=A,B`.
    pub experimental: BTreeSet<String>,
    /// `error=true`: violations are errors.
    pub error: bool,
}

/// What is wrong with a check configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A part without `=`, or with a key that is not an option.
    #[error("invalid check option {0:?}: expected skip=, experimental= or error=")]
    Option(String),
    /// `error=` that is not a boolean.
    #[error("error={0:?} is not a boolean (use true or false)")]
    NotBool(String),
}

/// Go's `strconv.ParseBool` spellings, in any case (as cairn's directive parser accepts them).
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Some(true),
        "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

fn names(v: &str) -> BTreeSet<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// Parse `skip=…;error=…;experimental=…`.
    pub fn parse(s: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for part in s.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(ConfigError::Option(part.to_owned()));
            };
            let v = v.trim();
            match k.trim() {
                "skip" if v == "all" => c.skip_all = true,
                "skip" => c.skip = names(v),
                "experimental" if v == "all" => c.experimental_all = true,
                "experimental" => c.experimental = names(v),
                "error" => {
                    c.error = parse_bool(v).ok_or_else(|| ConfigError::NotBool(v.to_owned()))?
                }
                other => return Err(ConfigError::Option(other.to_owned())),
            }
        }
        Ok(c)
    }

    /// `self` with `other` added (BuildKit's `WithMergedConfig`).
    pub fn merged(&self, other: &Config) -> Config {
        Config {
            skip_all: self.skip_all || other.skip_all,
            skip: self.skip.union(&other.skip).cloned().collect(),
            experimental_all: self.experimental_all || other.experimental_all,
            experimental: self
                .experimental
                .union(&other.experimental)
                .cloned()
                .collect(),
            error: self.error || other.error,
        }
    }

    /// Whether `rule` runs.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.contains(rule.name)
        } else {
            !(self.skip_all || self.skip.contains(rule.name))
        }
    }

    /// Names in `skip=`/`experimental=` that are no rule (BuildKit ignores them silently;
    /// a typo would then skip nothing).
    pub fn unknown_rules(&self) -> Vec<String> {
        self.skip
            .iter()
            .chain(&self.experimental)
            .filter(|n| !RULES.iter().any(|r| r.name == n.as_str()))
            .map(|n| format!("{BUILD_ARG}/check: no rule is called {n:?}; it skips nothing"))
            .collect()
    }
}

/// `# check=` comments directly above instructions, by the line of the instruction.
pub(crate) struct InstructionComments {
    /// (first line, last line, configuration) of each instruction with such a comment.
    spans: Vec<(usize, usize, Config)>,
}

/// The comment block directly above line `line` (no blank line in between, reset by a
/// bare `#`), without the parser directives at the top of the file.
pub(crate) fn comments_above(ctx: &Ctx, line: usize) -> Vec<String> {
    let first_code = directive_lines(ctx) + 1;
    let mut out = Vec::new();
    let mut n = line;
    while n > first_code {
        n -= 1;
        let t = ctx.line(n).trim();
        let Some(c) = t.strip_prefix('#') else { break };
        let c = c.trim();
        if c.is_empty() {
            break;
        }
        out.push(c.to_owned());
    }
    out.reverse();
    out
}

/// How many lines at the top are parser directives.
fn directive_lines(ctx: &Ctx) -> usize {
    let mut n = 0;
    while n < ctx.lines.len() {
        let t = ctx.line(n + 1).trim_start();
        let Some(rest) = t.strip_prefix('#') else {
            break;
        };
        let key: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let after = rest.trim_start()[key.len()..].trim_start();
        if !(matches!(
            key.to_ascii_lowercase().as_str(),
            "syntax" | "escape" | "check"
        ) && after.starts_with('='))
        {
            break;
        }
        n += 1;
    }
    n
}

impl InstructionComments {
    pub(crate) fn new(ctx: &Ctx) -> Self {
        let mut spans = Vec::new();
        for node in &ctx.ast.nodes {
            let cfg = comments_above(ctx, node.span.start.line)
                .iter()
                .filter_map(|c| {
                    let (k, v) = c.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case("check")).then_some(v)
                })
                .find_map(|v| Config::parse(v.trim().split(' ').next().unwrap_or("")).ok());
            if let Some(cfg) = cfg {
                spans.push((node.span.start.line, node.span.end_line, cfg));
            }
        }
        InstructionComments { spans }
    }

    /// The configuration for a violation on `line`.
    pub(crate) fn config_at(&self, base: &Config, line: usize) -> Config {
        match self
            .spans
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&line))
        {
            Some((_, _, c)) => base.merged(c),
            None => base.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::rule;

    #[test]
    fn parses_buildkits_options() {
        let c = Config::parse("skip=JSONArgsRecommended, FromAsCasing;error=true").unwrap();
        assert!(c.error && c.skip.contains("FromAsCasing"));
        assert!(!c.enabled(rule("FromAsCasing").unwrap()));
        assert!(c.enabled(rule("StageNameCasing").unwrap()));
        let all = Config::parse("skip=all").unwrap();
        assert!(!all.enabled(rule("UndefinedVar").unwrap()));
        let exp = rule("InvalidDefinitionDescription").unwrap();
        assert!(!Config::default().enabled(exp));
        assert!(
            Config::parse("skip=all;experimental=InvalidDefinitionDescription")
                .unwrap()
                .enabled(exp)
        );
        assert!(Config::parse("error=maybe").is_err());
        assert!(Config::parse("loud=yes").is_err());
        assert!(Config::parse("skip").is_err());
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(
            Config::parse("skip=NoSuchRule")
                .unwrap()
                .unknown_rules()
                .len(),
            1
        );
    }
}
