//! Reading an ignore file into pattern lines, as `ignorefile.ReadAll` of
//! moby/patternmatcher does, plus Go's `filepath.Clean`.

/// Longest line Go's `bufio.Scanner` accepts (its default `MaxScanTokenSize`);
/// a longer line fails the whole file, as it fails a BuildKit build.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// One pattern line after reading: the text handed to the matcher and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The line as written (newline, `\r` and the first line's BOM removed).
    pub raw: String,
    /// The normalized pattern (`!` re-attached), as `ReadAll` returns it.
    pub pattern: String,
}

/// Why a file could not be split into lines.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A line is at least [`MAX_LINE`] bytes long.
    TooLong { line: usize },
    /// A line is not valid UTF-8.
    NotUtf8 { line: usize },
}

/// Split `bytes` into normalized pattern lines (see the module docs of
/// `dockerignore` for the rules).
pub(crate) fn read_all(bytes: &[u8]) -> Result<Vec<ReadLine>, ReadError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut number = 0;
    while !rest.is_empty() {
        let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        number += 1;
        // bufio.Scanner's buffer must hold the whole line including a `\r`.
        if line.len() >= MAX_LINE {
            return Err(ReadError::TooLong { line: number });
        }
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if number == 1 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        let text = std::str::from_utf8(line).map_err(|_| ReadError::NotUtf8 { line: number })?;
        // Comments only in column 1: the test runs before trimming.
        if text.starts_with('#') {
            continue;
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (invert, body) = match trimmed.strip_prefix('!') {
            Some(body) => (true, body.trim()),
            None => (false, trimmed),
        };
        let mut pattern = String::new();
        if !body.is_empty() {
            let cleaned = go_clean(body);
            pattern = match cleaned.strip_prefix('/') {
                Some(rel) if cleaned.len() > 1 => rel.to_owned(),
                _ => cleaned,
            };
        }
        if invert {
            pattern.insert(0, '!');
        }
        out.push(ReadLine {
            line: number,
            raw: text.to_owned(),
            pattern,
        });
    }
    Ok(out)
}

/// Go's `path/filepath.Clean` on Unix: the shortest lexically equivalent path.
pub(crate) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    // How many leading `..` of a relative path cannot be backed over.
    let mut dotdot = 0;
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.len() > dotdot {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                    dotdot += 1;
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(text: &str) -> Vec<String> {
        read_all(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|l| l.pattern)
            .collect()
    }

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("/", "/"),
            ("//", "/"),
            ("a//b/", "a/b"),
            ("./foo", "foo"),
            ("foo/../bar", "bar"),
            ("../foo", "../foo"),
            ("../../a/..", "../.."),
            ("/../foo", "/foo"),
            ("a/b/../..", "."),
            ("a/../../b", "../b"),
            ("**/", "**"),
            ("!/", "!"),
            ("!a/..", "."),
            ("/..", "/"),
        ] {
            assert_eq!(go_clean(input), want, "Clean({input:?})");
        }
    }

    #[test]
    fn reading_normalizes_like_read_all() {
        let text = "\u{feff}# comment\n  # not a comment\n\n/foo/bar/\r\n! /inv/x\n!\n! \n/!foo\n\\#lit\nfoo   \n./a\n/\n.\nlast";
        assert_eq!(
            patterns(text),
            [
                "# not a comment",
                "foo/bar",
                "!inv/x",
                "!",
                "!",
                "!foo",
                "\\#lit",
                "foo",
                "a",
                "/",
                ".",
                "last"
            ]
        );
    }

    #[test]
    fn line_numbers_count_every_line() {
        let lines = read_all(b"# c\n\nfoo\n\n  bar").unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.line, l.raw.as_str())).collect();
        assert_eq!(got, [(3, "foo"), (5, "  bar")]);
    }

    #[test]
    fn bom_only_on_the_first_line() {
        let got = patterns("\u{feff}a\n\u{feff}b");
        assert_eq!(got, ["a", "\u{feff}b"]);
    }

    #[test]
    fn too_long_and_non_utf8_lines_are_errors() {
        let mut long = vec![b'a'; MAX_LINE - 1];
        long.push(b'\n');
        assert!(read_all(&long).is_ok());
        long.insert(0, b'a');
        assert_eq!(read_all(&long), Err(ReadError::TooLong { line: 1 }));
        assert_eq!(read_all(b"ok\n\xff\n"), Err(ReadError::NotUtf8 { line: 2 }));
    }
}
