//! Word expansion: BuildKit's shell lexer (`shell/lex.go` `ProcessWord`/`ProcessWords`).
//!
//! It expands `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?m}`, `${v?m}`,
//! `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}` and `${v//p/r}`, removes quotes
//! (`'…'` literal, `"…"` expands `$` and lets the escape character escape `"`, `$` and
//! itself) and escapes (outside quotes the escape character escapes any character). Names
//! starting with a digit and the special parameters `@ * # ? - $ ! 0` are always unset.

use std::collections::BTreeMap;
use std::fmt;

/// Where variable values come from.
pub trait Lookup {
    /// The value of `name`, `None` when unset.
    fn lookup(&self, name: &str) -> Option<String>;
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// An environment where nothing is set.
pub struct NoEnv;

impl Lookup for NoEnv {
    fn lookup(&self, _: &str) -> Option<String> {
        None
    }
}

/// A word that cannot be expanded: `failed to process "WORD": REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// The word as written.
    pub word: String,
    /// Why, e.g. `syntax error: missing '}'` or `v: is not allowed to be unset`.
    pub reason: Reason,
}

/// Why a word cannot be expanded, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// A quote opened and never closed (`single-quote`, `double-quote`).
    #[error("unexpected end of statement while looking for matching {0}")]
    UnclosedQuote(&'static str),
    /// The end came before a `}` or `/` the word needed.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unclosed(char),
    /// `${…` without its `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:…}`, `${{…}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${NAME/PATTERN` without the second `/`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// A modifier the shell does not have.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// Deeper than [`MAX_NESTING`].
    #[error(
        "`${{…}}` nested more than {MAX_NESTING} levels deep; un-nest it (use an ARG or ENV for the inner part)"
    )]
    TooDeep,
    /// Larger than [`MAX_EXPANSION`].
    #[error("expansion result exceeds {} MiB", MAX_EXPANSION >> 20)]
    TooLarge,
    /// `${NAME?WORD}` of an unset (or, with `:`, empty) variable.
    #[error("{name}: {why}")]
    Required {
        /// The variable.
        name: String,
        /// WORD, or the shell's default message.
        why: String,
    },
    /// A `RUN --mount` value that does not parse once expanded.
    #[error("{0}")]
    Mount(Box<super::mount::MountError>),
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to process {:?}: {}", self.word, self.reason)
    }
}

impl std::error::Error for ExpandError {}

/// The shell lexer and its options (BuildKit's `shell.Lex`).
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    /// The escape character: `\` or `` ` `` (the `escape` directive).
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
}

impl Lexer {
    /// A lexer with BuildKit's defaults for `escape`.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            skip_process_quotes: false,
        }
    }

    /// Expand `word` into one string (`ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Lookup) -> Result<String, ExpandError> {
        self.run(word, env).map(|(s, _)| s)
    }

    /// Expand `word` and split the result into words at unquoted whitespace (`ProcessWords`).
    pub fn process_words(&self, word: &str, env: &dyn Lookup) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, w)| w)
    }

    fn run(&self, word: &str, env: &dyn Lookup) -> Result<(String, Vec<String>), ExpandError> {
        let mut sw = ShellWord {
            lx: self,
            env,
            chars: word.chars().collect(),
            pos: 0,
            depth: 0,
        };
        sw.process_stop_on(None, self.raw_escapes)
            .map_err(|reason| ExpandError {
                word: word.to_owned(),
                reason,
            })
    }
}

/// Word splitting as BuildKit's `wordsStruct` does it.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct ShellWord<'a> {
    lx: &'a Lexer,
    env: &'a dyn Lookup,
    chars: Vec<char>,
    pos: usize,
    /// `${…}` open around the current position (see [`MAX_NESTING`]).
    depth: usize,
}

type Res<T> = Result<T, Reason>;

/// Deepest `${…}` nesting expanded. The lexer recurses once per level (as
/// BuildKit's does), so an unbounded depth is a stack overflow (an abort, not
/// an error); real Dockerfiles nest two or three levels.
pub const MAX_NESTING: usize = 64;

/// Largest result of one expansion. Nested `${v//p/r}` can grow a word exponentially;
/// no real Dockerfile word comes near this, so larger results are an error, not an OOM.
pub const MAX_EXPANSION: usize = 1 << 20;

fn guard(len: usize) -> Res<()> {
    if len > MAX_EXPANSION {
        return Err(Reason::TooLarge);
    }
    Ok(())
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let quote = !self.lx.skip_process_quotes && (ch == '\'' || ch == '"');
            if quote || ch == '$' {
                let tmp = match ch {
                    '\'' => self.single_quote()?,
                    '"' => self.double_quote()?,
                    _ => self.dollar()?,
                };
                result.push_str(&tmp);
                guard(result.len())?;
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            if ch == '<' && self.chars.get(self.pos + 1) == Some(&'<') {
                // A possible heredoc: `<<` and any blanks after it stay in the word, so
                // `<< EOF` is one word (BuildKit `processPossibleHeredoc`).
                self.pos += 2;
                let mut tmp = String::from("<<");
                while let Some(c) = self
                    .peek()
                    .filter(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
                {
                    tmp.push(c);
                    self.pos += 1;
                }
                result.push_str(&tmp);
                guard(result.len())?;
                words.add_raw_string(&tmp);
                continue;
            }
            self.pos += 1;
            let mut ch = ch;
            if ch == self.lx.escape {
                if raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(s) = stop {
            return Err(Reason::Unclosed(s));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        let open = self.next();
        if self.lx.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(Reason::UnclosedQuote("single-quote")),
                Some('\'') => {
                    if self.lx.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        let open = self.next();
        if self.lx.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(Reason::UnclosedQuote("double-quote")),
                Some('"') => {
                    self.pos += 1;
                    if self.lx.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    out.push_str(&self.dollar()?);
                    guard(out.len())?;
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lx.escape {
                        if self.lx.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lx.escape => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    /// Special parameters and names starting with a digit are never set.
    fn get(&self, name: &str) -> Option<String> {
        let first = name.chars().next()?;
        if first.is_ascii_digit() || !(first.is_alphanumeric() || first == '_') {
            return None;
        }
        self.env.lookup(name)
    }

    fn dollar(&mut self) -> Res<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        if self.depth >= MAX_NESTING {
            return Err(Reason::TooDeep);
        }
        self.depth += 1;
        let expanded = self.braced();
        self.depth -= 1;
        expanded
    }

    /// The rest of `${…}` after the brace.
    fn braced(&mut self) -> Res<String> {
        match self.peek() {
            None => return Err(Reason::MissingBrace),
            Some('{' | '}' | ':') => return Err(Reason::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let Some(ch) = self.next() else {
            return Err(Reason::MissingBrace);
        };
        match ch {
            '}' => Ok(match self.get(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.modified(&name, ch),
            '/' => self.substituted(&name),
            _ => Err(Reason::UnsupportedModifier(ch.to_string())),
        }
    }

    /// `${NAME` then a modifier starting with `first` (`:-`, `-`, `:+`, `+`,
    /// `:?`, `?`, `#`, `##`, `%`, `%%`), its word and the `}`.
    fn modified(&mut self, name: &str, first: char) -> Res<String> {
        let mut ch = first;
        let mut chs = ch.to_string();
        let null_is_unset = ch == ':';
        if null_is_unset {
            let Some(c) = self.next() else {
                return Err(Reason::MissingBrace);
            };
            ch = c;
            chs.push(c);
        }
        let raw = ch == '#' || ch == '%';
        if null_is_unset && raw {
            return Err(Reason::UnsupportedModifier(chs));
        }
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => return Err(Reason::MissingBrace),
            Err(e) => return Err(e),
        };
        let value = self.get(name);
        if self.lx.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let empty = value.as_deref() == Some("");
        match ch {
            '-' => Ok(match value {
                Some(v) if !(null_is_unset && empty) => v,
                _ => word,
            }),
            '+' => Ok(if value.is_none() || (null_is_unset && empty) {
                String::new()
            } else {
                word
            }),
            '?' => required(name, value, null_is_unset, &word),
            '#' | '%' => Ok(self.trimmed(ch, value.unwrap_or_default(), word)),
            _ => Err(Reason::UnsupportedModifier(chs)),
        }
    }

    /// `${NAME#WORD}` (`##`: greedy) and `${NAME%WORD}` (`%%`): `value` with
    /// the shortest (longest) prefix or suffix matching the glob `word` cut.
    fn trimmed(&self, ch: char, value: String, mut word: String) -> String {
        let greedy = word.starts_with(ch);
        if greedy {
            word.remove(0);
        }
        let pat = Glob::parse(&word, self.lx.escape);
        if ch == '#' {
            pat.trim_prefix(&value, greedy)
        } else {
            pat.trim_suffix(&value, greedy)
        }
    }

    /// `${NAME/PATTERN/REPLACEMENT}` (`//`: every match), after the first `/`.
    fn substituted(&mut self, name: &str) -> Res<String> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => return Err(Reason::MissingSlash),
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err(Reason::MissingBrace),
            Err(e) => return Err(e),
        };
        let Some(value) = self.get(name) else {
            if self.lx.skip_unset {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        Glob::parse(&pattern, self.lx.escape)
            .replace(&value, &replacement, all)
            .ok_or(Reason::TooLarge)
    }
}

/// `${NAME?WORD}` / `${NAME:?WORD}`: the value, or the error the shell
/// gives (WORD, else a default message) when it is unset (or empty).
fn required(name: &str, value: Option<String>, null_is_unset: bool, word: &str) -> Res<String> {
    let said = |default: &str| Reason::Required {
        name: name.to_owned(),
        why: if word.is_empty() { default } else { word }.to_owned(),
    };
    match value {
        None => Err(said("is not allowed to be unset")),
        Some(v) if null_is_unset && v.is_empty() => Err(said("is not allowed to be empty")),
        Some(v) => Ok(v),
    }
}

/// A shell glob (`*`, `?`, `[…]`, escaped characters) used by `#`, `%` and `/`.
#[derive(Debug)]
struct Glob(Vec<Tok>);

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    fn parse(pattern: &str, escape: char) -> Glob {
        let cs: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i];
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                c if c == escape => {
                    if let Some(&n) = cs.get(i) {
                        toks.push(Tok::Lit(n));
                        i += 1;
                    } else {
                        toks.push(Tok::Lit(c));
                    }
                }
                '[' => match Self::class(&cs[i..]) {
                    Some((tok, used)) => {
                        toks.push(tok);
                        i += used;
                    }
                    None => toks.push(Tok::Lit('[')),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Glob(toks)
    }

    /// A bracket expression after `[`; `None` if unterminated (then `[` is literal).
    fn class(cs: &[char]) -> Option<(Tok, usize)> {
        let mut i = 0;
        let negated = matches!(cs.first(), Some('!' | '^'));
        if negated {
            i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        while i < cs.len() {
            let c = cs[i];
            if c == ']' && !first {
                return Some((Tok::Class { negated, ranges }, i + 1));
            }
            first = false;
            if cs.get(i + 1) == Some(&'-') && cs.get(i + 2).is_some_and(|&e| e != ']') {
                ranges.push((c, cs[i + 2]));
                i += 3;
            } else {
                ranges.push((c, c));
                i += 1;
            }
        }
        None
    }

    /// Whether `tok` accepts `c` (`*` is handled by the callers).
    fn accepts(tok: &Tok, c: char) -> bool {
        match tok {
            Tok::Star => true,
            Tok::Any => true,
            Tok::Lit(l) => *l == c,
            Tok::Class { negated, ranges } => {
                ranges.iter().any(|&(a, b)| a <= c && c <= b) != *negated
            }
        }
    }

    /// `out[k]`: the pattern matches `s[..k]` (one pass, O(len(s) × len(pattern))).
    fn prefix_matches(toks: &[Tok], s: &[char]) -> Vec<bool> {
        let n = toks.len();
        let close = |dp: &mut Vec<bool>| {
            for j in 0..n {
                if dp[j] && matches!(toks[j], Tok::Star) {
                    dp[j + 1] = true;
                }
            }
        };
        let mut dp = vec![false; n + 1];
        dp[0] = true;
        close(&mut dp);
        let mut out = Vec::with_capacity(s.len() + 1);
        out.push(dp[n]);
        for &c in s {
            let mut next = vec![false; n + 1];
            for j in 0..n {
                if !dp[j] {
                    continue;
                }
                match &toks[j] {
                    Tok::Star => next[j] = true,
                    t if Self::accepts(t, c) => next[j + 1] = true,
                    _ => {}
                }
            }
            close(&mut next);
            dp = next;
            out.push(dp[n]);
        }
        out
    }

    fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let cs: Vec<char> = value.chars().collect();
        let m = Self::prefix_matches(&self.0, &cs);
        let cut = if longest {
            m.iter().rposition(|&b| b)
        } else {
            m.iter().position(|&b| b)
        };
        cut.map_or_else(|| value.to_owned(), |k| cs[k..].iter().collect())
    }

    fn trim_suffix(&self, value: &str, longest: bool) -> String {
        // A suffix matches the pattern iff its reverse matches the reversed pattern.
        let rev: Vec<char> = value.chars().rev().collect();
        let toks: Vec<Tok> = self.0.iter().rev().cloned().collect();
        let m = Self::prefix_matches(&toks, &rev);
        let len = if longest {
            m.iter().rposition(|&b| b)
        } else {
            m.iter().position(|&b| b)
        };
        len.map_or_else(|| value.to_owned(), |k| rev[k..].iter().rev().collect())
    }

    /// The leftmost-longest match at or after `from`, simulating the pattern as an NFA whose
    /// threads remember their start (earliest start wins a state): O(len × pattern).
    fn find(&self, cs: &[char], from: usize) -> Option<(usize, usize)> {
        let toks = &self.0;
        let n = toks.len();
        let merge = |slot: &mut Option<usize>, start: usize| {
            if slot.is_none_or(|s| start < s) {
                *slot = Some(start);
            }
        };
        let close = |cur: &mut Vec<Option<usize>>| {
            for j in 0..n {
                if let (Some(s), Tok::Star) = (cur[j], &toks[j]) {
                    merge(&mut cur[j + 1], s);
                }
            }
        };
        let mut cur: Vec<Option<usize>> = vec![None; n + 1];
        let mut best: Option<(usize, usize)> = None;
        for i in from..=cs.len() {
            if best.is_none() {
                merge(&mut cur[0], i);
            }
            close(&mut cur);
            if let Some(s) = cur[n] {
                if best.is_none_or(|(bs, be)| s < bs || (s == bs && i > be)) {
                    best = Some((s, i));
                }
            }
            if let Some((bs, _)) = best {
                cur.iter_mut()
                    .filter(|t| t.is_some_and(|s| s > bs))
                    .for_each(|t| *t = None);
                if cur.iter().all(Option::is_none) {
                    break;
                }
            }
            let Some(&c) = cs.get(i) else { break };
            let mut next: Vec<Option<usize>> = vec![None; n + 1];
            for j in 0..n {
                let Some(s) = cur[j] else { continue };
                match &toks[j] {
                    Tok::Star => merge(&mut next[j], s),
                    t if Self::accepts(t, c) => merge(&mut next[j + 1], s),
                    _ => {}
                }
            }
            cur = next;
        }
        best
    }

    /// Replace the first (or every) leftmost-longest match.
    fn replace(&self, value: &str, replacement: &str, all: bool) -> Option<String> {
        let cs: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        let mut prev_end = None;
        while pos <= cs.len() {
            let Some((s, e)) = self.find(&cs, pos) else {
                break;
            };
            if e == s && prev_end == Some(s) {
                // Go ignores an empty match right after the previous match.
                out.extend(cs.get(s));
                pos = s + 1;
                continue;
            }
            prev_end = Some(e);
            out.extend(&cs[pos..s]);
            out.push_str(replacement);
            if out.len() > MAX_EXPANSION {
                return None;
            }
            if e > s {
                pos = e;
            } else {
                out.extend(cs.get(s));
                pos = s + 1;
            }
            if !all {
                break;
            }
        }
        if pos < cs.len() {
            out.extend(&cs[pos..]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("NULL", ""),
            ("F", "foo.tar.gz"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn w(s: &str) -> Result<String, String> {
        Lexer::new('\\')
            .process_word(s, &env())
            .map_err(|e| e.reason.to_string())
    }

    #[test]
    fn buildkit_env_var_vectors() {
        let ok = [
            ("he${XXX:-000}xx", "he000xx"),
            ("he${PWD:-000}xx", "he/homexx"),
            ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
            ("he${XXX:+000}xx", "hexx"),
            ("he${PWD:+${SHELL}}xx", "hebashxx"),
            ("he\\$PWD", "he$PWD"),
            ("he\\\\$PWD", "he\\/home"),
            ("\"he'$PWD'\"", "he'/home'"),
            ("he'll'o", "hello"),
            ("'hello\\there'", "hello\\there"),
            ("${aaa:-bbb}}", "bbb}"),
            ("he$pwd.", "he."),
            ("$@@@", "@@"),
            ("$.", "$."),
            ("$1x", "x"),
            ("${NULL-d}|${NULL:-d}", "|d"),
            ("${NULL+s}|${NULL:+s}", "s|"),
            ("${F#*.}", "tar.gz"),
            ("${F##*.}", "gz"),
            ("${F%.*}", "foo.tar"),
            ("${F%%.*}", "foo"),
            ("${F/o/0}", "f0o.tar.gz"),
            ("${F//o/0}", "f00.tar.gz"),
            ("${F/[a-f]*./X}", "Xgz"),
            ("${F//?/_}", "__________"),
            ("${F/#/x}", "foo.tar.gz"),
            ("${F//*/x}", "x"),
            ("${F%o*}", "fo"),
            ("${F%%o*}", "f"),
            ("${F#*o}", "o.tar.gz"),
            ("${F/q/y}", "foo.tar.gz"),
            ("${F/z/y}", "foo.tar.gy"),
            ("${F//a/\\\\}", "foo.t\\\\r.gz"),
            ("\"a\\b\\\"c\"", "a\\b\"c"),
            ("trail\\", "trail"),
        ];
        for (input, want) in ok {
            assert_eq!(w(input).as_deref(), Ok(want), "input {input}");
        }
    }

    #[test]
    fn errors_match_buildkit() {
        let bad = [
            (
                "he'llo",
                "unexpected end of statement while looking for matching single-quote",
            ),
            ("${aaa:-bbb", "syntax error: missing '}'"),
            ("${}", "syntax error: bad substitution"),
            ("${:x}", "syntax error: bad substitution"),
            ("${", "syntax error: missing '}'"),
            ("${XX?}", "XX: is not allowed to be unset"),
            ("${NULL:?}", "NULL: is not allowed to be empty"),
            ("${NULL:?must be set}", "NULL: must be set"),
            ("${F:#x}", "unsupported modifier (:#) in substitution"),
            ("${F.x}", "unsupported modifier (.) in substitution"),
        ];
        for (input, want) in bad {
            assert_eq!(w(input), Err(want.to_owned()), "input {input}");
        }
        let e = Lexer::new('\\').process_word("${", &NoEnv).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${\": syntax error: missing '}'"
        );
    }

    #[test]
    fn runaway_growth_is_an_error() {
        let mut e = env();
        e.insert("A".into(), "x".repeat(1000));
        let nested = "${A//?/${A//?/$A}}";
        let err = Lexer::new('\\').process_word(nested, &e).unwrap_err();
        assert_eq!(err.reason.to_string(), "expansion result exceeds 1 MiB");
        let err = Lexer::new('\\')
            .process_word("${A///$A$A$A}", &e)
            .unwrap_err();
        assert_eq!(err.reason.to_string(), "expansion result exceeds 1 MiB");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let e = env();
        let nest = |n: usize| format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
        let lx = Lexer::new('\\');
        assert_eq!(lx.process_word(&nest(MAX_NESTING), &e).unwrap(), "x");
        for n in [MAX_NESTING + 1, 100_000] {
            let err = lx.process_word(&nest(n), &e).unwrap_err();
            assert!(
                err.reason
                    .to_string()
                    .contains("nested more than 64 levels"),
                "{err}"
            );
        }
        // Quotes inside the default word recurse through `dollar` too.
        let quoted = format!("{}x{}", "${a:-\"".repeat(5_000), "\"}".repeat(5_000));
        assert!(lx.process_word(&quoted, &e).is_err());
    }

    #[test]
    fn words_split_on_unquoted_whitespace_only() {
        let mut e = env();
        e.insert("P".into(), "80 443".into());
        let lx = Lexer::new('\\');
        assert_eq!(
            lx.process_words("$P 8080", &e).unwrap(),
            ["80", "443", "8080"]
        );
        assert_eq!(
            lx.process_words("\"$P\" 'a b'", &e).unwrap(),
            ["80 443", "a b"]
        );
        assert_eq!(
            lx.process_words("cat > f << 'X' <y", &e).unwrap(),
            ["cat", ">", "f", "<< X", "<y"]
        );
    }

    #[test]
    fn backtick_escape_and_raw_modes() {
        let lx = Lexer::new('`');
        assert_eq!(lx.process_word("a`$PWD\\x", &env()).unwrap(), "a$PWD\\x");
        let raw = Lexer {
            raw_quotes: true,
            skip_unset: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            raw.process_word("'a'$NOPE${NOPE:-x}", &NoEnv).unwrap(),
            "'a'$NOPE${NOPE:-x}"
        );
        let heredoc = Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            heredoc.process_word("'$PWD' \"x\"", &env()).unwrap(),
            "'/home' \"x\""
        );
    }
}
