//! Go's `path/filepath.Match`, the one port: the wildcard syntax of COPY/ADD
//! sources and of `.dockerignore` patterns. `*` (any run of non-`/`), `?`
//! (one non-`/`), `[…]` classes with `^` negation and ranges, `\` escapes.
//!
//! Two callers want two of Go's behaviours on malformed patterns:
//! [`matches()`] (COPY) rejects a malformed pattern wherever the error is, as
//! current Go does; the `.dockerignore` syntax check uses `go_match` as
//! Go 1.19 (what BuildKit's patternmatcher was verified with) behaves, which
//! stops inspecting at the first chunk that fails to match.

/// The pattern is malformed (Go's `ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern `{0}`")]
pub struct BadPattern(pub String);

/// [`go_match`]'s `ErrBadPattern`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Whether `pattern` contains wildcard syntax at all.
pub fn has_meta(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

/// Whether `name` matches the whole of `pattern`; a malformed pattern is an
/// error even where an earlier mismatch would end matching.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let bad = || BadPattern(pattern.to_owned());
    let p: Vec<char> = pattern.chars().collect();
    validate(&p).map_err(|_| bad())?;
    go_match(pattern, name).map_err(|_| bad())
}

fn validate(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => {
                i = class_end(p, i)?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index just past the `]` closing the class that starts at `p[start] == '['`.
fn class_end(p: &[char], start: usize) -> Result<usize, ()> {
    let mut i = start + 1;
    if p.get(i) == Some(&'^') {
        i += 1;
    }
    let mut first = true;
    loop {
        match p.get(i) {
            None => return Err(()),
            Some(']') if !first => return Ok(i + 1),
            _ => {}
        }
        // one range item: lo or lo-hi, each possibly escaped
        let lo_len = item_len(p, i)?;
        i += lo_len;
        if p.get(i) == Some(&'-') {
            i += 1;
            let hi_len = item_len(p, i)?;
            i += hi_len;
        }
        first = false;
    }
}

fn item_len(p: &[char], i: usize) -> Result<usize, ()> {
    match p.get(i) {
        None | Some('-') | Some(']') => Err(()),
        Some('\\') => {
            if i + 1 < p.len() {
                Ok(2)
            } else {
                Err(())
            }
        }
        Some(_) => Ok(1),
    }
}

/// `filepath.Match(pattern, name)`: whether `name` matches the shell pattern,
/// or [`Malformed`] when the part of the pattern Go 1.19 inspects is malformed
/// (it stops at the first chunk that fails to match, so `a/[` passes).
pub(crate) fn go_match(mut pattern: &str, mut name: &str) -> Result<bool, Malformed> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it holds a `/`.
            return Ok(!name.contains('/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(Malformed);
        }
        if star {
            // Let the star swallow one more byte at a time, never a `/`.
            let bytes = name.as_bytes();
            let mut i = 0;
            while i < bytes.len() && bytes[i] != b'/' {
                // Go slices by byte here; only char boundaries can be valid starts.
                if name.is_char_boundary(i + 1) {
                    let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                    if ok {
                        if pattern.is_empty() && !t.is_empty() {
                            i += 1;
                            continue;
                        }
                        name = t;
                        continue 'pattern;
                    }
                    if err {
                        return Err(Malformed);
                    }
                }
                i += 1;
            }
        }
        // Go 1.19 (the version the reference vectors were verified with)
        // does not check the rest of the pattern once a chunk fails to match.
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Split off leading stars and the chunk up to the next star outside a class.
fn scan_chunk(mut pattern: &str) -> (bool, &str, &str) {
    let mut star = false;
    while let Some(rest) = pattern.strip_prefix('*') {
        pattern = rest;
        star = true;
    }
    let bytes = pattern.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    // `\` only ever skips an ASCII byte or the first byte of a char; step to a boundary.
    while !pattern.is_char_boundary(i) {
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Match `chunk` (no stars) against the start of `s`: (rest, matched, malformed).
/// Like Go, the whole chunk is parsed even after the match has failed.
fn match_chunk<'a>(mut chunk: &str, mut s: &'a str) -> (&'a str, bool, bool) {
    let mut failed = false;
    while let Some(c) = chunk.chars().next() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = '\0';
                if !failed {
                    if let Some(first) = s.chars().next() {
                        r = first;
                        s = &s[first.len_utf8()..];
                    }
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if let Some(rest) = chunk.strip_prefix('^') {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if nrange > 0 {
                        if let Some(rest) = chunk.strip_prefix(']') {
                            chunk = rest;
                            break;
                        }
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return ("", false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        let Some((h, rest)) = get_esc(rest) else {
                            return ("", false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if s.starts_with('/') {
                        failed = true;
                    }
                    if let Some(first) = s.chars().next() {
                        s = &s[first.len_utf8()..];
                    }
                }
                chunk = &chunk[1..];
            }
            _ => {
                let mut lit = c;
                if c == '\\' {
                    chunk = &chunk[1..];
                    match chunk.chars().next() {
                        Some(next) => lit = next,
                        None => return ("", false, true),
                    }
                }
                if !failed {
                    // Go compares byte by byte; for a whole char that is a prefix test.
                    let mut buf = [0u8; 4];
                    let enc: &str = lit.encode_utf8(&mut buf);
                    match s.strip_prefix(enc) {
                        Some(rest) => s = rest,
                        None => failed = true,
                    }
                }
                chunk = &chunk[lit.len_utf8()..];
            }
        }
    }
    if failed {
        return ("", false, false);
    }
    (s, true, false)
}

/// One possibly escaped char of a class; `None` is Go's `ErrBadPattern`.
fn get_esc(chunk: &str) -> Option<(char, &str)> {
    let mut chunk = chunk;
    match chunk.chars().next() {
        None | Some('-') | Some(']') => return None,
        Some('\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return None;
            }
        }
        Some(_) => {}
    }
    let c = chunk.chars().next()?;
    let rest = &chunk[c.len_utf8()..];
    if rest.is_empty() {
        return None;
    }
    Some((c, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Go's path/filepath match_test.go semantics.
    #[test]
    fn go_vectors() {
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[x-]", "-", Err(())),
            ("[x-]", "z", Err(())),
            ("[-x]", "x", Err(())),
            ("[-x]", "-", Err(())),
            ("[-x]", "a", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("a[", "x", Err(())),
            ("a/b[", "x", Err(())),
            ("*x", "xxx", Ok(true)),
            ("arr[[]0].txt", "arr[0].txt", Ok(true)),
        ];
        for (pat, name, want) in cases {
            let got = matches(pat, name).map_err(|_| ());
            assert_eq!(&got, want, "Match({pat:?}, {name:?})");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "[", "a[", "[^", "[^bc", "\\", "a\\", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "*[",
            "a/[", "foo\\", "[a",
        ] {
            assert_eq!(go_match(bad, "."), Err(Malformed), "{bad:?}");
        }
    }

    #[test]
    fn accepts_what_go_accepts() {
        for good in [
            "abc",
            "*",
            "[\\]a]",
            "[\\-]",
            "[x\\-]",
            "[\\-x]",
            "[z-a]",
            "[!a]",
            "a]",
            "**",
            "{a,b}",
            "[*]",
            "[**]",
            ".",
            "..",
            "/",
            "a\\*b",
            "[^a]",
            "[a-ζ]*",
            "\\d",
            "a*[",
            "x\\pL**/\\",
        ] {
            assert!(go_match(good, ".").is_ok(), "{good:?}");
        }
    }

    #[test]
    fn matches_like_go() {
        assert_eq!(go_match("a*/b", "abc/b"), Ok(true));
        assert_eq!(go_match("a*/b", "a/c/b"), Ok(false));
        assert_eq!(go_match("a?b", "a☺b"), Ok(true));
        assert_eq!(go_match("*", "."), Ok(true));
        assert_eq!(go_match("a*b*c", "axxbyyc"), Ok(true));
        assert_eq!(go_match("[a-c]x", "bx"), Ok(true));
    }
}
