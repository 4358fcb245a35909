//! `.dockerignore` reading and matching exactly as Docker/BuildKit do it
//! (moby/patternmatcher v0.6.1 and BuildKit's context walker, fsutil).
//!
//! # Which file
//!
//! [`ignore_file_for`] picks the file: `<Dockerfile>.dockerignore` next to the
//! Dockerfile when it exists (e.g. `docker/build.Dockerfile.dockerignore`),
//! otherwise `.dockerignore` at the context root. The two are never merged; a
//! missing file means no patterns. No other file (per-directory, global) is read.
//!
//! # Reading ([`Matcher::parse`])
//!
//! Lines are split on `\n` (one trailing `\r` dropped); a UTF-8 BOM is removed
//! from the first line; a line whose *first byte* is `#` is a comment (so
//! `  # x` is the pattern `# x`); lines are trimmed (Unicode whitespace) and
//! empty ones skipped; a leading `!` marks an exception and the rest is
//! trimmed again; the pattern is cleaned like Go's `filepath.Clean` and one
//! leading `/` is dropped (`/` alone stays). A line of 64 KiB or more, a line
//! that is not UTF-8, `!` alone and a malformed pattern are errors naming
//! `file:line`. Patterns Go only rejects when first used (`[z-a]`, `\é`) are
//! rejected up front.
//!
//! # Matching ([`Matcher::matches`])
//!
//! Every pattern is anchored at the context root. `*` and `?` never match
//! `/`; `**` matches any number of directories; `[...]`, `[^...]` and `\x`
//! keep the meaning Go's regexp gives them (`[!a]` is the set `{!, a}`,
//! `\d` a digit). The last pattern that matches decides; a pattern matching
//! a directory matches everything below it, for exceptions too. Results for
//! a path are computed from its parent directory's [`MatchInfo`], exactly
//! like BuildKit's walker (which differs from `MatchesOrParentMatches` in rare
//! orders such as `a/b`, `!a` → `a/b` stays excluded).
//!
//! # Fidelity
//!
//! The reference is moby/patternmatcher v0.6.1 built with Go 1.19, the setup
//! the shared test vectors were verified with; `layers/tests/dockerignore_vectors.rs`
//! can also compare against such a Go build directly. Quirks kept on purpose:
//! patternmatcher's escape table only covers bytes below 64, so `|`, `{` and
//! `}` reach Go's regexp unescaped (`a*|b` is an alternation, `a{2}*` a
//! repeat, `{a,b}` a literal); `\Q…` quotes the rest of the generated
//! expression; `^` outside a class is an anchor once a pattern has a wildcard;
//! `[*]` becomes the class `[[^/]` followed by `*]`. Go 1.19's
//! `filepath.Match` only checks the first chunk that fails to match, so
//! `a*[` is accepted (and then matches like the regexp it produces).

mod compile;
mod go_scripts;
mod goregex;
mod read;

use std::fmt;
use std::path::{Path, PathBuf};

/// Name of the context-root ignore file.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The ignore file that applies to a build, in BuildKit's precedence:
/// `<dockerfile>.dockerignore` if that file exists, else `<context>/.dockerignore`
/// if it exists, else none. `dockerfile` is the Dockerfile path as given
/// (default `<context>/Dockerfile`).
pub fn ignore_file_for(context: &Path, dockerfile: Option<&Path>) -> Option<PathBuf> {
    let dockerfile = dockerfile
        .map(Path::to_path_buf)
        .unwrap_or_else(|| context.join("Dockerfile"));
    let mut specific = dockerfile.into_os_string();
    specific.push(".dockerignore");
    let specific = PathBuf::from(specific);
    if specific.is_file() {
        return Some(specific);
    }
    let root = context.join(DOCKERIGNORE);
    // symlink_metadata: a root `.dockerignore` that is a symlink is resolved
    // by the context (inside the root), not here.
    root.symlink_metadata().is_ok().then_some(root)
}

/// Go's `filepath.Clean` (Unix): collapse `//`, drop `.`, resolve `..`
/// lexically (kept when it climbs above a relative start), drop a trailing `/`.
pub fn clean(path: &str) -> String {
    read::go_clean(path)
}

/// Where a pattern came from: a file and line, or a position in a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The ignore file, if the pattern was read from one.
    pub file: Option<PathBuf>,
    /// 1-based line in `file`, or 1-based index in the pattern list.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}", file.display(), self.line),
            None => write!(f, "pattern {}", self.line),
        }
    }
}

/// What is wrong with a pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternProblem {
    /// `!` with nothing after it.
    #[error("`!` alone is not a pattern: write `!path` to re-include a path")]
    LoneExclamation,
    /// Go's `filepath.Match` rejects it (`ErrBadPattern`).
    #[error("syntax error in pattern: check `[...]` classes (`]` first or a reversed or dangling `-`) and trailing `\\`")]
    Syntax,
    /// The regular expression patternmatcher derives from it does not compile.
    #[error("its regular expression is invalid: {0} (Docker rejects it too; put `\\` before a `[`, `{{` or `\\` meant literally)")]
    Regex(String),
}

/// Errors reading or compiling ignore patterns.
#[derive(Debug, thiserror::Error)]
pub enum DockerignoreError {
    /// The ignore file could not be read.
    #[error("cannot read ignore file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line too long for Docker's reader (64 KiB).
    #[error("{at}: line is 64 KiB or longer, which Docker cannot read; shorten it")]
    LineTooLong {
        /// The offending line.
        at: Location,
    },
    /// A line that is not UTF-8.
    #[error("{at}: line is not valid UTF-8; save the file as UTF-8")]
    NotUtf8 {
        /// The offending line.
        at: Location,
    },
    /// A pattern Docker would reject.
    #[error("{at}: invalid pattern `{pattern}`")]
    Pattern {
        /// The offending line.
        at: Location,
        /// The line as written.
        pattern: String,
        /// What is wrong.
        #[source]
        problem: PatternProblem,
    },
}

/// One compiled pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    text: String,
    exception: bool,
    raw: String,
    at: Location,
    kind: compile::Kind,
}

impl Pattern {
    /// The cleaned pattern without its `!` (what patternmatcher's `String()` returns).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), which re-includes paths.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// The line as written in the file (or the pattern as given).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Where the pattern came from.
    pub fn location(&self) -> &Location {
        &self.at
    }

    /// Whether this pattern alone matches `path` itself (no parent logic).
    pub fn matches_path(&self, path: &str) -> bool {
        compile::matches(&self.kind, &self.text, path)
    }

    /// `text` without a trailing `/**` or `/*` (fsutil's `patternWithoutTrailingGlob`).
    fn without_trailing_glob(&self) -> &str {
        let t = self.text.strip_suffix("/**").unwrap_or(&self.text);
        t.strip_suffix("/*").unwrap_or(t)
    }
}

/// Per-pattern results of a directory, handed to its children (patternmatcher's `MatchInfo`).
/// The default value means "no information", as for top-level paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// The outcome of matching one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the path is excluded from the context.
    pub excluded: bool,
    /// Index (into [`Matcher::patterns`]) of the last pattern that matched, which decided.
    pub decided_by: Option<usize>,
    /// What to pass when matching this path's children.
    pub info: MatchInfo,
}

/// Why a path is in or out, for `cairn context ls --explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The path as matched (cleaned, `/`-separated).
    pub path: String,
    /// Whether it is excluded.
    pub excluded: bool,
    /// The deciding pattern's index, if any matched.
    pub decided_by: Option<usize>,
    /// The ancestor (or the path itself) the deciding pattern matched.
    pub matched: Option<String>,
}

/// A compiled list of ignore patterns, in file order.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    source: Option<PathBuf>,
    has_exceptions: bool,
    only_prefix_exceptions: bool,
}

impl Matcher {
    /// A matcher that excludes nothing.
    pub fn empty() -> Self {
        Matcher {
            only_prefix_exceptions: true,
            ..Matcher::default()
        }
    }

    /// Read and compile the ignore file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, DockerignoreError> {
        let bytes = std::fs::read(path).map_err(|source| DockerignoreError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, Some(path))
    }

    /// Compile the contents of an ignore file; `source` names it in errors.
    pub fn parse(bytes: &[u8], source: Option<&Path>) -> Result<Self, DockerignoreError> {
        let at = |line| Location {
            file: source.map(Path::to_path_buf),
            line,
        };
        let lines = read::read_all(bytes).map_err(|e| match e {
            read::ReadError::TooLong { line } => DockerignoreError::LineTooLong { at: at(line) },
            read::ReadError::NotUtf8 { line } => DockerignoreError::NotUtf8 { at: at(line) },
        })?;
        let mut m = Matcher::empty();
        m.source = source.map(Path::to_path_buf);
        for l in lines {
            m.push(&l.pattern, l.raw.trim().to_owned(), at(l.line))?;
        }
        Ok(m)
    }

    /// Compile patterns given as a list (as `COPY --exclude` does): no comment
    /// or `/` handling, only patternmatcher's own trimming and cleaning.
    pub fn from_patterns<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, DockerignoreError> {
        let mut m = Matcher::empty();
        for (i, p) in patterns.into_iter().enumerate() {
            let p = p.as_ref();
            let at = Location {
                file: None,
                line: i + 1,
            };
            m.push(p, p.trim().to_owned(), at)?;
        }
        Ok(m)
    }

    /// patternmatcher's `New` for one pattern.
    fn push(&mut self, pattern: &str, raw: String, at: Location) -> Result<(), DockerignoreError> {
        let trimmed = pattern.trim();
        if trimmed.is_empty() {
            return Ok(());
        }
        let fail = |problem| DockerignoreError::Pattern {
            at: at.clone(),
            pattern: raw.clone(),
            problem,
        };
        let cleaned = read::go_clean(trimmed);
        let (exception, text) = match cleaned.strip_prefix('!') {
            Some("") => return Err(fail(PatternProblem::LoneExclamation)),
            Some(rest) => (true, rest.to_owned()),
            None => (false, cleaned),
        };
        if crate::pattern::go_match(&text, ".").is_err() {
            return Err(fail(PatternProblem::Syntax));
        }
        let kind = compile::compile(&text).map_err(|e| fail(PatternProblem::Regex(e.0)))?;
        if exception {
            self.has_exceptions = true;
            if self
                .only_prefix_exceptions
                .then(|| Pattern::without_trailing_glob_str(&text))
                .is_some_and(|t| t.contains(['*', '[', ']', '?', '^', '\\']))
            {
                self.only_prefix_exceptions = false;
            }
        }
        self.patterns.push(Pattern {
            text,
            exception,
            raw,
            at,
            kind,
        });
        Ok(())
    }

    /// The patterns in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// The ignore file these patterns came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether there are no patterns (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Match `path` (context-relative, cleaned, `/`-separated) given its
    /// parent's [`MatchInfo`] (patternmatcher's `MatchesUsingParentResults`).
    pub fn matches(&self, path: &str, parent: &MatchInfo) -> Verdict {
        let parent = &parent.parent_matched;
        let mut excluded = false;
        let mut decided_by = None;
        let mut info = Vec::with_capacity(self.patterns.len());
        for (i, p) in self.patterns.iter().enumerate() {
            let mut matched = parent.get(i).copied().unwrap_or(false);
            if !matched {
                // Only an exception can un-exclude and only a plain pattern can
                // exclude; skipped patterns count as "not matched" for children.
                if p.exception != excluded {
                    info.push(false);
                    continue;
                }
                matched = p.matches_path(path);
                if !matched && parent.is_empty() {
                    matched = ancestors(path).any(|a| p.matches_path(a));
                }
            }
            info.push(matched);
            if matched {
                excluded = !p.exception;
                decided_by = Some(i);
            }
        }
        Verdict {
            excluded,
            decided_by,
            info: MatchInfo {
                parent_matched: info,
            },
        }
    }

    /// Whether BuildKit's walker excludes `path`, evaluating each ancestor
    /// directory in turn. The context root (`.` or empty) is never excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.explain(path).excluded
    }

    /// Which pattern decides `path`, evaluated as BuildKit's walker does.
    pub fn explain(&self, path: &str) -> Explanation {
        let path = read::go_clean(path.trim_start_matches('/'));
        if path == "." || self.patterns.is_empty() {
            return Explanation {
                path,
                excluded: false,
                decided_by: None,
                matched: None,
            };
        }
        let mut info = MatchInfo::default();
        // For each pattern, the first ancestor at which it matched.
        let mut first_match: Vec<Option<String>> = vec![None; self.patterns.len()];
        let mut end = 0;
        let verdict = loop {
            let next = path[end..].find('/').map(|i| end + i);
            let prefix = &path[..next.unwrap_or(path.len())];
            let v = self.matches(prefix, &info);
            for (i, m) in v.info.parent_matched.iter().enumerate() {
                if *m && first_match[i].is_none() {
                    first_match[i] = Some(prefix.to_owned());
                }
            }
            match next {
                Some(n) => {
                    end = n + 1;
                    info = v.info;
                }
                None => break v,
            }
        };
        Explanation {
            matched: verdict.decided_by.and_then(|i| first_match[i].clone()),
            path,
            excluded: verdict.excluded,
            decided_by: verdict.decided_by,
        }
    }

    /// Whether a walk must enter the excluded directory `dir` because an
    /// exception might re-include something inside it (fsutil's pruning rule:
    /// any exception with a glob forces the walk; otherwise only an exception
    /// naming a path below `dir` does).
    pub fn must_walk_excluded_dir(&self, dir: &str) -> bool {
        if !self.has_exceptions {
            return false;
        }
        if !self.only_prefix_exceptions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }
}

impl Pattern {
    fn without_trailing_glob_str(text: &str) -> &str {
        let t = text.strip_suffix("/**").unwrap_or(text);
        t.strip_suffix("/*").unwrap_or(t)
    }
}

/// The proper ancestors of `path`, shortest first: `a`, `a/b` for `a/b/c`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(text: &str) -> Matcher {
        Matcher::parse(text.as_bytes(), Some(Path::new(".dockerignore"))).unwrap()
    }

    fn error(text: &str) -> String {
        Matcher::parse(text.as_bytes(), Some(Path::new(".dockerignore")))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(error("ok\n!\n"), ".dockerignore:2: invalid pattern `!`");
        assert_eq!(
            error("# c\n\n  [\n"),
            ".dockerignore:3: invalid pattern `[`"
        );
        assert!(error("a\n!/").starts_with(".dockerignore:2:"));
        for bad in [
            "[",
            "a[",
            "[^",
            "\\",
            "[]a]",
            "[-]",
            "[x-]",
            "[-x]",
            "[a-b-c]",
            "foo\\ ",
            "[z-a]",
            "[Local-Only]/",
            "\\é",
        ] {
            assert!(
                Matcher::parse(bad.as_bytes(), None).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn walker_semantics_differ_from_matches_or_parent_matches() {
        let m = matcher("a/b\n!a");
        assert!(m.is_excluded("a/b"));
        assert!(!m.is_excluded("a"));
    }

    #[test]
    fn root_is_never_excluded() {
        let m = matcher("*\n**\n.");
        assert!(!m.is_excluded("."));
        assert!(!m.is_excluded(""));
    }

    #[test]
    fn explain_names_the_deciding_pattern_and_where_it_matched() {
        let m = matcher("# c\nbuild\n!build/keep.txt\n");
        let e = m.explain("build/other.txt");
        assert!(e.excluded);
        assert_eq!(e.decided_by, Some(0));
        assert_eq!(e.matched.as_deref(), Some("build"));
        assert_eq!(m.patterns()[0].location().line, 2);
        let e = m.explain("build/keep.txt");
        assert!(!e.excluded);
        assert_eq!(e.decided_by, Some(1));
        assert_eq!(m.explain("src/x").decided_by, None);
    }

    #[test]
    fn pruning_follows_fsutil() {
        assert!(!matcher("node_modules").must_walk_excluded_dir("node_modules"));
        let m = matcher("build\n!build/keep.txt");
        assert!(m.must_walk_excluded_dir("build"));
        assert!(!m.must_walk_excluded_dir("other"));
        let m = matcher("build\n!build/sub/**");
        assert!(m.must_walk_excluded_dir("build/sub"));
        assert!(matcher("*\n!**/*.go").must_walk_excluded_dir("anything"));
    }

    #[test]
    fn from_patterns_skips_read_all_rules() {
        // No comment handling for list patterns: `#x` is a literal name.
        let m = Matcher::from_patterns(["#x", "  /abs  "]).unwrap();
        assert!(m.is_excluded("#x"));
        // Clean keeps the leading `/`, which no context path has.
        assert!(!m.is_excluded("abs"));
        assert!(Matcher::from_patterns(["!"]).is_err());
    }

    #[test]
    fn slash_bang_quirk_becomes_an_exception() {
        let m = matcher("*\n/!foo");
        assert!(m.patterns()[1].is_exception());
        assert!(!m.is_excluded("foo"));
    }
}
