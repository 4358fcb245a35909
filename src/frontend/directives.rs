//! Parser directives (`# syntax=…`, `# escape=…`, `# check=…`), read only at the very top
//! of the file, as BuildKit's `parser/directives.go` does: the first line that is not a
//! known directive (an instruction, a blank line, any other comment or an unknown key)
//! ends directive processing for the rest of the file.

use serde::Serialize;

/// The directives found at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `# syntax=<image> [args]`: the frontend image as written (the bundled grammar is used).
    pub syntax: Option<String>,
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=…` as written (e.g. `skip=JSONArgsRecommended;error=true`).
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// Reads directives line by line until the first non-directive line.
#[derive(Debug, Default)]
pub(crate) struct DirectiveReader {
    done: bool,
    escape_seen: bool,
    pub(crate) directives: Directives,
}

/// Why a directive line is rejected (the caller adds the location).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DirectiveError {
    pub message: String,
    pub hint: Option<String>,
}

impl DirectiveReader {
    /// Look at one physical line (newline and leading whitespace removed).
    pub(crate) fn feed(&mut self, line: &str) -> Result<(), DirectiveError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = split_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        let seen = match key.as_str() {
            "syntax" => self.directives.syntax.is_some(),
            "escape" => self.escape_seen,
            "check" => self.directives.check.is_some(),
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if seen {
            return Err(DirectiveError {
                message: format!("only one {key} parser directive can be used"),
                hint: Some(
                    "parser directives must appear once, at the very top of the file".into(),
                ),
            });
        }
        match key.as_str() {
            "syntax" => self.directives.syntax = Some(value.to_owned()),
            "escape" => {
                self.directives.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(DirectiveError {
                            message: format!(
                                "invalid escape token '{other}' does not match ` or \\"
                            ),
                            hint: Some("use `# escape=\\` or `# escape=``".into()),
                        })
                    }
                };
                self.escape_seen = true;
            }
            _ => {
                check_check(value)?;
                self.directives.check = Some(value.to_owned());
            }
        }
        Ok(())
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` without a regex.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// `skip=<Rule,…|all>`, `experimental=<Rule,…|all>` and `error=<bool>` joined by `;`
/// (BuildKit's `linter.ParseLintOptions`; `cairn check` applies them).
fn check_check(value: &str) -> Result<(), DirectiveError> {
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let ok = match k.trim().to_ascii_lowercase().as_str() {
            "skip" | "experimental" => true,
            "error" => matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "false" | "1" | "0" | "t" | "f"
            ),
            _ => false,
        };
        if !ok {
            return Err(DirectiveError {
                message: format!("invalid check directive: {part:?}"),
                hint: Some(
                    "use `# check=skip=<Rule1,Rule2|all>`, `experimental=<Rule|all>` and/or `error=true`, joined by `;`"
                        .into(),
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_reference_whitespace_forms() {
        for l in [
            "#directive=value",
            "# directive =value",
            "#\tdirective= value",
            "# directive = value",
            "#\t  dIrEcTiVe=value",
        ] {
            assert_eq!(split_directive(l).map(|(_, v)| v), Some("value"), "{l}");
        }
        assert_eq!(split_directive("# 1x=y"), None);
        assert_eq!(split_directive("# key="), None);
        assert_eq!(split_directive("#!/bin/sh"), None);
    }

    #[test]
    fn reads_until_first_non_directive() {
        let mut r = DirectiveReader::default();
        r.feed("# syntax=docker/dockerfile:1").unwrap();
        r.feed("# ESCAPE=`").unwrap();
        assert!(!r.done);
        r.feed("# unknown=x").unwrap();
        assert!(r.done);
        r.feed("# escape=\\").unwrap();
        assert_eq!(r.directives.escape, '`');
        assert_eq!(r.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    }

    #[test]
    fn rejects_duplicates_and_bad_values() {
        let mut r = DirectiveReader::default();
        r.feed("# escape=\\").unwrap();
        assert_eq!(
            r.feed("# escape=`").unwrap_err().message,
            "only one escape parser directive can be used"
        );
        let mut r = DirectiveReader::default();
        assert!(r
            .feed("# escape=x")
            .unwrap_err()
            .message
            .starts_with("invalid escape token 'x'"));
        let mut r = DirectiveReader::default();
        r.feed("# check=skip=JSONArgsRecommended;error=true")
            .unwrap();
        DirectiveReader::default()
            .feed("# check=experimental=all;error=T")
            .unwrap();
        assert!(r.feed("# check=x").is_err());
        assert!(DirectiveReader::default()
            .feed("# check=error=maybe")
            .is_err());
    }
}
