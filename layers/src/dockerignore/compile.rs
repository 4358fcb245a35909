//! One pattern compiled the way `Pattern.compile` of moby/patternmatcher does:
//! an exact, prefix or suffix string test when the pattern allows it,
//! otherwise an anchored regular expression.

use super::goregex::{self, GoRegexError};

/// How a pattern is tested against a path.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// `path == pattern`.
    Exact,
    /// `path` starts with the pattern minus its trailing `**`.
    Prefix,
    /// `path` ends with the pattern minus its leading `**` (or equals it minus `**/`).
    Suffix,
    /// The translated regular expression matches.
    Regex(regex::Regex),
}

/// Room for what Go accepts, such as `\pL{1000}`.
const REGEX_SIZE_LIMIT: usize = 256 << 20;

/// Compile a cleaned pattern (no `!`).
pub(crate) fn compile(pattern: &str) -> Result<Kind, GoRegexError> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    // Go's text/scanner skips a BOM at the very start of its input.
    let body = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut chars = body.chars().peekable();
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            // patternmatcher means to escape `.+()|{}$`, but its bitmap drops
            // every byte >= 64, so `|`, `{` and `}` reach the regexp raw.
            '.' | '+' | '(' | ')' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    re.push('\\');
                    re.push(next);
                    detected = Detected::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(ch);
                detected = Detected::Regex;
            }
            _ => re.push(ch),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix,
        Detected::Suffix => Kind::Suffix,
        Detected::Regex => {
            re.push('$');
            let rust = goregex::translate(&re)?;
            let compiled = regex::RegexBuilder::new(&rust)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| GoRegexError(format!("cannot compile translated expression: {e}")))?;
            Kind::Regex(compiled)
        }
    })
}

/// Whether `path` matches `pattern` compiled as `kind` (`Pattern.match`).
pub(crate) fn matches(kind: &Kind, pattern: &str, path: &str) -> bool {
    let (pat, path) = (pattern.as_bytes(), path.as_bytes());
    match kind {
        Kind::Exact => path == pat,
        Kind::Prefix => path.starts_with(&pat[..pat.len().saturating_sub(2)]),
        Kind::Suffix => {
            let suffix = pat.get(2..).unwrap_or_default();
            path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
        }
        Kind::Regex(re) => re.is_match(std::str::from_utf8(path).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &str) -> &'static str {
        match compile(p).unwrap() {
            Kind::Exact => "exact",
            Kind::Prefix => "prefix",
            Kind::Suffix => "suffix",
            Kind::Regex(_) => "regex",
        }
    }

    fn m(p: &str, path: &str) -> bool {
        matches(&compile(p).unwrap(), p, path)
    }

    #[test]
    fn fast_paths_are_chosen_like_patternmatcher() {
        assert_eq!(kind("a.b"), "exact");
        assert_eq!(kind("a^b"), "exact");
        assert_eq!(kind("dir/**"), "prefix");
        assert_eq!(kind("abc**"), "prefix");
        assert_eq!(kind("**"), "suffix");
        assert_eq!(kind("**/foo"), "suffix");
        assert_eq!(kind("**foo.bar"), "suffix");
        assert_eq!(kind("**/foo/**"), "regex");
        assert_eq!(kind("**/*.go"), "regex");
        assert_eq!(kind("a*"), "regex");
        assert_eq!(kind("a\\b"), "regex");
    }

    #[test]
    fn quirks() {
        // `**` between text crosses `/` only as whole directories.
        assert!(m("a**b", "ab"));
        assert!(m("a**b", "ax/b"));
        assert!(!m("a**b", "axb"));
        // `^` outside a class is an anchor once the pattern is a regexp.
        assert!(!m("a^b*", "a^bc"));
        assert!(m("a^b", "a^b"));
        // `[*]` becomes the Go class `[[^/]` followed by `*]`.
        assert!(m("[*]", "]"));
        assert!(!m("[*]", "*"));
        assert!(m("**foo", "x_foo"));
        assert!(m("**/foo", "foo"));
        assert!(!m("**/foo", "afoo"));
        assert!(m("**", "anything/at/all"));
    }

    #[test]
    fn lazy_go_errors_are_reported_at_compile_time() {
        assert!(compile("[z-a]").is_err());
        assert!(compile("[Local-Only]").is_err());
        assert!(compile("\\é").is_err());
        assert!(compile("\\x{110000}").is_err());
        assert!(m("\\x{41}", "A"));
    }
}
