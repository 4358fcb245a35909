//! Translation of the Go (RE2) regular expressions that moby/patternmatcher
//! builds into equivalent `regex` crate syntax.
//!
//! patternmatcher hands `\x`, `[`, `]` and `^` of a pattern to Go's regexp
//! parser verbatim, so their meaning is Go's, not glob's: `\d` is a digit,
//! `[[:alpha:]]` a POSIX class, `\Q` starts a quote, a `[` inside a class is a
//! literal. This module parses the Go syntax the way `regexp/syntax` does
//! (flags `Perl`: `ClassNL | OneLine | PerlX | UnicodeGroups`) and emits a
//! Rust pattern where every literal is a `\x{..}` escape and every class is
//! spelled out as ranges, so nothing is left to differences between the two
//! dialects (Rust's nested classes, `&&`/`--`/`~~`, `\<`, Unicode `\d`…).

use super::go_scripts::GO_SCRIPTS;
use std::fmt::Write as _;

/// A Go regexp syntax error, worded like Go's `regexp/syntax` errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoRegexError(pub String);

type Result<T> = std::result::Result<T, GoRegexError>;

fn err<T>(code: &str, expr: &str) -> Result<T> {
    Err(GoRegexError(format!("{code}: `{expr}`")))
}

const MAX_RUNE: u32 = 0x10FFFF;

/// A character class under construction: code point ranges plus Unicode
/// property fragments in Rust syntax (`\p{L}`, `[^\p{L}]`).
#[derive(Default)]
struct Class {
    ranges: Vec<(u32, u32)>,
    fragments: Vec<String>,
}

impl Class {
    fn add(&mut self, lo: u32, hi: u32) {
        self.ranges.push((lo, hi));
    }

    fn add_group(&mut self, ranges: &[(u32, u32)], negated: bool) {
        if negated {
            self.ranges.extend(complement(ranges));
        } else {
            self.ranges.extend_from_slice(ranges);
        }
    }

    /// Rust syntax for this class, negated as a whole when `negated`.
    fn emit(&self, negated: bool) -> String {
        let mut out = String::from(if negated { "[^" } else { "[" });
        let mut any = false;
        for &(lo, hi) in &self.ranges {
            // Surrogates cannot occur in a `str`; Rust rejects them in classes.
            for (lo, hi) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
                if lo <= hi {
                    any = true;
                    let _ = write!(out, "\\x{{{lo:X}}}-\\x{{{hi:X}}}");
                }
            }
        }
        for f in &self.fragments {
            any = true;
            out.push_str(f);
        }
        if !any {
            // An empty class: matches nothing (or everything when negated).
            return if negated {
                "(?s:.)".into()
            } else {
                "[^\\x{0}-\\x{10FFFF}]".into()
            };
        }
        out.push(']');
        out
    }
}

fn complement(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut next = 0u32;
    for (lo, hi) in sorted {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = next.max(hi.saturating_add(1));
    }
    if next <= MAX_RUNE {
        out.push((next, MAX_RUNE));
    }
    out
}

const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const SPACE_PERL: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];

/// Go's `perlGroup`: `\d \s \w` (ASCII only) and their negations.
fn perl_group(c: char) -> Option<(&'static [(u32, u32)], bool)> {
    Some(match c {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        's' => (SPACE_PERL, false),
        'S' => (SPACE_PERL, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        _ => return None,
    })
}

/// Go's `posixGroup` (`[:alpha:]` …), by name without the brackets.
fn posix_group(name: &str) -> Option<&'static [(u32, u32)]> {
    Some(match name {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha" => &[(0x41, 0x5A), (0x61, 0x7A)],
        "ascii" => &[(0x00, 0x7F)],
        "blank" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl" => &[(0x00, 0x1F), (0x7F, 0x7F)],
        "digit" => DIGIT,
        "graph" => &[(0x21, 0x7E)],
        "lower" => &[(0x61, 0x7A)],
        "print" => &[(0x20, 0x7E)],
        "punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space" => &[(0x09, 0x0D), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5A)],
        "word" => WORD,
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    })
}

/// Go's Unicode general categories and scripts, as Rust property fragments. Go's `C` is
/// `Cc|Cf|Co|Cs` (no unassigned code points), unlike Unicode's `Other`.
fn category(name: &str) -> Option<Vec<String>> {
    const CATS: &[&str] = &[
        "Cc", "Cf", "Co", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd",
        "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
        "Z", "Zl", "Zp", "Zs",
    ];
    match name {
        "C" => Some(vec!["\\p{Cc}".into(), "\\p{Cf}".into(), "\\p{Co}".into()]),
        "Cs" => Some(Vec::new()),
        "Any" => Some(vec!["\\x{0}-\\x{D7FF}\\x{E000}-\\x{10FFFF}".into()]),
        n if CATS.contains(&n) => Some(vec![format!("\\p{{{n}}}")]),
        // `sc=`: Go means Script, while Rust's bare `\p{Greek}` is Script_Extensions.
        n if GO_SCRIPTS.binary_search(&n).is_ok() => Some(vec![format!("\\p{{sc={n}}}")]),
        _ => None,
    }
}

fn next_char(t: &str) -> Option<(char, &str)> {
    let c = t.chars().next()?;
    Some((c, &t[c.len_utf8()..]))
}

/// `\p`/`\P` at the start of `t`: Some((fragment class, negated, rest)).
fn unicode_class(t: &str) -> Result<Option<(Vec<String>, bool, &str)>> {
    let mut negated = match t.as_bytes() {
        [b'\\', b'p', ..] => false,
        [b'\\', b'P', ..] => true,
        _ => return Ok(None),
    };
    let after = &t[2..];
    let (seq_len, mut name, rest) = match next_char(after) {
        Some(('{', _)) => match t.find('}') {
            Some(end) => (end + 1, &t[3..end], &t[end + 1..]),
            None => return err("invalid character class range", t),
        },
        Some((c, rest)) => (2 + c.len_utf8(), &after[..c.len_utf8()], rest),
        None => return err("invalid character class range", t),
    };
    if let Some(n) = name.strip_prefix('^') {
        negated = !negated;
        name = n;
    }
    match category(name) {
        Some(frags) => Ok(Some((frags, negated, rest))),
        None => err("invalid character class range", &t[..seq_len]),
    }
}

fn unhex(c: char) -> Option<u32> {
    c.to_digit(16)
}

/// Go's `parseEscape`: one escaped literal char at the start of `t` (which starts with `\`).
fn parse_escape(t: &str) -> Result<(char, &str)> {
    let s = t;
    let Some((c, mut t)) = next_char(&t[1..]) else {
        return err("trailing backslash at end of expression", "");
    };
    let bad = |t: &str| err("invalid escape sequence", &s[..s.len() - t.len()]);
    match c {
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, t)),
        '0'..='7' => {
            // A single non-zero digit would be a backreference (unsupported).
            if c != '0' && !t.starts_with(|d: char| ('0'..='7').contains(&d)) {
                return bad(t);
            }
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                match t.chars().next() {
                    Some(d @ '0'..='7') => {
                        r = r * 8 + (d as u32 - '0' as u32);
                        t = &t[1..];
                    }
                    _ => break,
                }
            }
            Ok((char::from_u32(r).unwrap_or('\0'), t))
        }
        'x' => {
            let Some((c1, t1)) = next_char(t) else {
                return bad(t);
            };
            if c1 == '{' {
                let mut r: u32 = 0;
                let mut n = 0;
                let mut t2 = t1;
                loop {
                    let Some((d, rest)) = next_char(t2) else {
                        return bad(t2);
                    };
                    t2 = rest;
                    if d == '}' {
                        break;
                    }
                    let Some(v) = unhex(d) else { return bad(t2) };
                    r = r * 16 + v;
                    if r > MAX_RUNE {
                        return bad(t2);
                    }
                    n += 1;
                }
                return match char::from_u32(r) {
                    Some(ch) if n > 0 => Ok((ch, t2)),
                    _ => bad(t2),
                };
            }
            let (c2, t2) = next_char(t1).unwrap_or(('\u{fffd}', t1));
            match (unhex(c1), unhex(c2)) {
                (Some(x), Some(y)) => Ok((char::from_u32(x * 16 + y).unwrap_or('\0'), t2)),
                _ => bad(t2),
            }
        }
        'a' => Ok(('\u{7}', t)),
        'f' => Ok(('\u{c}', t)),
        'n' => Ok(('\n', t)),
        'r' => Ok(('\r', t)),
        't' => Ok(('\t', t)),
        'v' => Ok(('\u{b}', t)),
        _ => bad(t),
    }
}

/// Go's `parseClass`: `t` starts with `[`; returns the Rust class and the rest.
fn parse_class(t: &str) -> Result<(String, &str)> {
    let whole = t;
    let mut t = &t[1..];
    let mut negated = false;
    if let Some(rest) = t.strip_prefix('^') {
        negated = true;
        t = rest;
    }
    let mut class = Class::default();
    let mut first = true;
    loop {
        if t.is_empty() {
            return err("missing closing ]", whole);
        }
        if t.starts_with(']') && !first {
            t = &t[1..];
            break;
        }
        first = false;
        if t.len() > 2 && t.starts_with("[:") {
            if let Some(i) = t[2..].find(":]") {
                let name = &t[2..i + 2];
                let (neg, bare) = match name.strip_prefix('^') {
                    Some(b) => (true, b),
                    None => (false, name),
                };
                let Some(group) = posix_group(bare) else {
                    return err("invalid character class range", &t[..i + 4]);
                };
                class.add_group(group, neg);
                t = &t[i + 4..];
                continue;
            }
        }
        if let Some((frags, neg, rest)) = unicode_class(t)? {
            if neg && frags.is_empty() {
                class.fragments.extend(category("Any").unwrap_or_default());
            } else if neg {
                class.fragments.push(format!("[^{}]", frags.concat()));
            } else {
                class.fragments.extend(frags);
            }
            t = rest;
            continue;
        }
        if let Some((group, neg)) = t
            .strip_prefix('\\')
            .and_then(|r| r.chars().next())
            .and_then(perl_group)
        {
            class.add_group(group, neg);
            t = &t[2..];
            continue;
        }
        let range_start = t;
        let (lo, rest) = class_char(t, whole)?;
        t = rest;
        let mut hi = lo;
        if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
            let (h, rest) = class_char(&t[1..], whole)?;
            t = rest;
            hi = h;
            if hi < lo {
                return err(
                    "invalid character class range",
                    &range_start[..range_start.len() - t.len()],
                );
            }
        }
        class.add(lo as u32, hi as u32);
    }
    Ok((class.emit(negated), t))
}

fn class_char<'a>(t: &'a str, whole: &str) -> Result<(char, &'a str)> {
    if t.starts_with('\\') {
        return parse_escape(t);
    }
    match next_char(t) {
        Some(x) => Ok(x),
        None => err("missing closing ]", whole),
    }
}

fn literal(out: &mut String, c: char) {
    if c.is_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// Translate a Go regexp (as produced by patternmatcher) into Rust syntax.
pub(crate) fn translate(go: &str) -> Result<String> {
    let mut tr = Translation::default();
    let mut t = go;
    while let Some(c) = t.chars().next() {
        t = tr.step(go, t, c)?;
    }
    if tr.depth > 0 {
        return err("missing closing )", go);
    }
    Ok(tr.out)
}

/// One translation under way: the Rust pattern so far, and what a
/// repetition operator that follows would apply to.
#[derive(Default)]
struct Translation {
    out: String,
    /// Open groups.
    depth: usize,
    /// Start of the last atom in `out`, if a repetition operator may follow it.
    last: Option<usize>,
    /// Whether the last thing read was a repetition operator.
    after_repeat: bool,
    /// Whether the atom at `last` already carries a repetition operator.
    quantified: bool,
}

impl Translation {
    /// Translate what starts with `c` at `t` (the rest of `go`); the rest after it.
    fn step<'t>(&mut self, go: &str, t: &'t str, c: char) -> Result<&'t str> {
        let start = self.out.len();
        let (rest, atom) = match c {
            '(' => {
                if t.starts_with("(?") {
                    return err("unsupported group syntax", t);
                }
                self.out.push_str("(?:");
                self.depth += 1;
                (&t[1..], false)
            }
            ')' => return self.close_group(go, t),
            '|' => {
                self.out.push('|');
                (&t[1..], false)
            }
            '*' | '+' | '?' | '{' => return self.repeat(t, c, start),
            '^' | '$' | '.' => {
                self.out.push(c);
                (&t[1..], true)
            }
            '[' => {
                let (class, rest) = parse_class(t)?;
                self.out.push_str(&class);
                (rest, true)
            }
            '\\' => return self.escape(t),
            _ => {
                literal(&mut self.out, c);
                (&t[c.len_utf8()..], true)
            }
        };
        self.end(start, atom);
        Ok(rest)
    }

    /// After an atom starting at `start` (or, `atom` false, something no
    /// operator may repeat).
    fn end(&mut self, start: usize, atom: bool) {
        self.last = atom.then_some(start);
        self.after_repeat = false;
        self.quantified = false;
    }

    /// `)`: the group is the atom a following operator repeats.
    fn close_group<'t>(&mut self, go: &str, t: &'t str) -> Result<&'t str> {
        if self.depth == 0 {
            return err("unexpected )", go);
        }
        self.depth -= 1;
        self.out.push(')');
        let open = find_group_start(&self.out);
        self.end(open, true);
        Ok(&t[1..])
    }

    /// `*`, `+`, `?` or `{m,n}` (each maybe non-greedy) after an atom.
    fn repeat<'t>(&mut self, t: &'t str, c: char, start: usize) -> Result<&'t str> {
        let (op, rest) = if c == '{' {
            match parse_repeat(t) {
                None => {
                    // Not a valid repeat: `{` is a literal.
                    literal(&mut self.out, '{');
                    self.end(start, true);
                    return Ok(&t[1..]);
                }
                Some((min, max, rest)) => {
                    let text = &t[..t.len() - rest.len()];
                    if !(0..=1000).contains(&min) || max > 1000 || (max >= 0 && min > max) {
                        return err("invalid repeat count", text);
                    }
                    let op = match max {
                        -1 => format!("{{{min},}}"),
                        m if m == min => format!("{{{min}}}"),
                        m => format!("{{{min},{m}}}"),
                    };
                    (op, rest)
                }
            }
        } else {
            (c.to_string(), &t[1..])
        };
        let (op, rest) = match rest.strip_prefix('?') {
            Some(r) => (format!("{op}?"), r),
            None => (op, rest),
        };
        let Some(at) = self.last else {
            return err("missing argument to repetition operator", &op);
        };
        if self.after_repeat {
            return err("invalid nested repetition operator", &op);
        }
        // Rust refuses to repeat a bare anchor or an already repeated
        // atom (reachable in Go through an empty `\Q\E`); Go allows both.
        let atom_text = self.out[at..].to_owned();
        if self.quantified
            || matches!(atom_text.as_str(), "^" | "$" | "\\A" | "\\z")
            || atom_text.starts_with("(?-u:\\b")
            || atom_text.starts_with("(?-u:\\B")
        {
            self.out.truncate(at);
            let _ = write!(self.out, "(?:{atom_text})");
        }
        self.out.push_str(&op);
        self.after_repeat = true;
        self.quantified = true;
        Ok(rest)
    }

    /// A backslash escape: an anchor, a quote, a class or one character.
    fn escape<'t>(&mut self, t: &'t str) -> Result<&'t str> {
        let start = self.out.len();
        let second = t[1..].chars().next();
        let rest = match second {
            Some('A') => {
                self.out.push_str("\\A");
                &t[2..]
            }
            Some('z') => {
                self.out.push_str("\\z");
                &t[2..]
            }
            Some('b') => {
                self.out.push_str("(?-u:\\b)");
                &t[2..]
            }
            Some('B') => {
                self.out.push_str("(?-u:\\B)");
                &t[2..]
            }
            Some('C') => return err("invalid escape sequence", "\\C"),
            Some('Q') => return Ok(self.quoted(t)),
            _ => {
                if let Some((frags, neg, rest)) = unicode_class(t)? {
                    let class = Class {
                        fragments: frags,
                        ..Class::default()
                    };
                    self.out.push_str(&class.emit(neg));
                    rest
                } else if let Some((group, neg)) = second.and_then(perl_group) {
                    let mut class = Class::default();
                    class.add_group(group, neg);
                    self.out.push_str(&class.emit(false));
                    &t[2..]
                } else {
                    let (ch, rest) = parse_escape(t)?;
                    literal(&mut self.out, ch);
                    rest
                }
            }
        };
        self.end(start, true);
        Ok(rest)
    }

    /// `\Q…\E` (or to the end): literals, the last of which is the atom.
    fn quoted<'t>(&mut self, t: &'t str) -> &'t str {
        let body = &t[2..];
        let (lit, rest) = match body.find("\\E") {
            Some(i) => (&body[..i], &body[i + 2..]),
            None => (body, ""),
        };
        if lit.is_empty() {
            // Go forgets the last repetition but keeps the atom.
            self.after_repeat = false;
            return rest;
        }
        let mut lit_start = self.out.len();
        for ch in lit.chars() {
            lit_start = self.out.len();
            literal(&mut self.out, ch);
        }
        self.end(lit_start, true);
        rest
    }
}

/// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` at the start of `t`
/// (min, max with -1 for "no max", rest); `None` when `{` is a literal.
fn parse_repeat(t: &str) -> Option<(i64, i64, &str)> {
    let s = t.strip_prefix('{')?;
    let (min, s) = parse_int(s)?;
    let (max, s) = match s.strip_prefix(',') {
        None => (min, s),
        Some(s) if s.starts_with('}') => (-1, s),
        Some(s) => {
            let (max, s) = parse_int(s)?;
            // An overflowing max makes the whole repeat invalid, as in Go.
            (max, s)
        }
    };
    let rest = s.strip_prefix('}')?;
    let min = if max < -1 { -1 } else { min };
    Some((min, max.max(-1), rest))
}

/// Go's `parseInt`: decimal digits without leading zeros; -2 when too large.
fn parse_int(s: &str) -> Option<(i64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits >= 2 && s.starts_with('0')) {
        return None;
    }
    let mut n: i64 = 0;
    for b in s[..digits].bytes() {
        if n >= 100_000_000 {
            n = -2;
            break;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some((n, &s[digits..]))
}

/// Index of the `(?:` that opens the group closed by the last char of `out`.
fn find_group_start(out: &str) -> usize {
    // Only `(?:` and `)` emitted by `translate` are unescaped parens: literals
    // are `\x{..}` and classes hold no raw parens, so counting is exact.
    let bytes = out.as_bytes();
    let mut depth = 0usize;
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        match bytes[i] {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx(go: &str) -> regex::Regex {
        let rust = translate(go).unwrap_or_else(|e| panic!("{go:?}: {e:?}"));
        regex::Regex::new(&rust).unwrap_or_else(|e| panic!("{go:?} -> {rust:?}: {e}"))
    }

    #[test]
    fn generated_constructs() {
        let r = rx("^a(.*/)?[^/]*\\.txt$");
        assert!(r.is_match("a/x/y.txt"));
        assert!(r.is_match("ay.txt"));
        assert!(!r.is_match("a/x/y.txtz"));
    }

    #[test]
    fn perl_and_posix_classes_are_ascii() {
        assert!(rx("^\\d$").is_match("5"));
        assert!(!rx("^\\d$").is_match("٣"));
        assert!(!rx("^\\d$").is_match("d"));
        assert!(rx("^\\w$").is_match("_"));
        assert!(rx("^[[:alpha:]]$").is_match("q"));
        assert!(!rx("^[[:alpha:]]$").is_match("é"));
        assert!(rx("^[[:^alpha:]]$").is_match("é"));
        assert!(rx("^[\\D]$").is_match("x"));
    }

    #[test]
    fn go_class_quirks() {
        // `[` is a literal inside a Go class; `&&`, `--`, `~~` are literals.
        let r = rx("^[[^/]*]$");
        assert!(r.is_match("^]") && r.is_match("]") && r.is_match("/]"));
        assert!(rx("^[a&&b]$").is_match("&"));
        assert!(rx("^[+--]$").is_match(","));
        assert!(rx("^[~~]$").is_match("~"));
        assert!(rx("^[]a]$").is_match("]"));
        assert!(rx("^[^b]$").is_match("\n"));
    }

    #[test]
    fn escapes() {
        assert!(rx("^\\x41$").is_match("A"));
        assert!(rx("^\\101$").is_match("A"));
        assert!(rx("^\\0$").is_match("\0"));
        assert!(rx("^\\a$").is_match("\u{7}"));
        assert!(rx("^\\<\\>$").is_match("<>"));
        assert!(rx("^\\Qa.*\\E$").is_match("a.*"));
        assert!(rx("^\\Qa[^/]*$").is_match("a[^/]*$"));
        assert!(rx("^\\pL$").is_match("é"));
        assert!(!rx("^\\PL$").is_match("é"));
        assert!(rx("^a\\b$").is_match("a"));
    }

    #[test]
    fn errors_match_go() {
        for bad in [
            "^[z-a]$",
            "^\\é$",
            "^\\1$",
            "^\\8$",
            "^\\x\\{41\\}$",
            "^\\p\\{Greek\\}$",
            "^\\e$",
            "^[a$",
            "^[[:foo:]]$",
            "^\\C$",
            "^a\\",
            "^*",
            "^(a$",
            "^a)$",
        ] {
            if bad == "^*" {
                // Go allows repeating `^`.
                assert!(translate(bad).is_ok());
                continue;
            }
            assert!(translate(bad).is_err(), "{bad:?} should be an error");
        }
    }

    #[test]
    fn alternation_and_repeats_are_go_syntax() {
        let r = rx("^a|b$");
        assert!(r.is_match("ax") && r.is_match("xb") && !r.is_match("x"));
        assert!(rx("^a{2}$").is_match("aa"));
        assert!(rx("^a{2,}$").is_match("aaa"));
        assert!(rx("^a{1,2}$").is_match("aa"));
        assert!(rx("^{a,b}$").is_match("{a,b}"));
        assert!(rx("^a{,2}$").is_match("a{,2}"));
        assert!(rx("^a{01}$").is_match("a{01}"));
        assert!(rx("^{2}a$").is_match("a"));
        assert!(rx("^a{1,}\\Q\\E{2}$").is_match("aa"));
        for bad in [
            "^a{1001}$",
            "^a{2,1}$",
            "^[^/]*{2}$",
            "^a|*$",
            "^a{1000000000}$",
        ] {
            assert!(translate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_go_script_name_compiles_and_case_matters() {
        for name in GO_SCRIPTS {
            rx(&format!("^\\p{{{name}}}$"));
        }
        assert!(rx("^\\p{Greek}$").is_match("α"));
        assert!(translate("^\\p{greek}$").is_err());
        assert!(translate("^\\p{Latn}$").is_err());
    }

    #[test]
    fn empty_classes_compile() {
        assert!(!rx("^[^\\D\\d]$").is_match("a"));
        assert!(!rx("^\\p{Cs}$").is_match("a"));
    }
}
