//! Physical lines → logical instruction lines, as BuildKit's `parser.Parse` reads them:
//! BOM and `\r\n` handling, comments (dropped, also inside continuations), the escape
//! character as line continuation (it and trailing blanks are deleted, nothing inserted),
//! blank lines inside continuations (skipped with a warning), and raw heredoc bodies.

use super::diagnostic::Pos;
use super::directives::{DirectiveError, DirectiveReader};

/// Longest physical line BuildKit accepts (`bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE: usize = 65535;

/// One instruction's text after joining its continuation lines.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    /// The joined text (first line left-trimmed; continuation lines kept as written).
    pub text: String,
    /// Where each piece of `text` came from: (byte offset in `text`, line, column).
    segs: Vec<(usize, usize, usize)>,
    /// First physical line.
    pub start_line: usize,
    /// Last physical line read so far.
    pub end_line: usize,
    /// A whitespace-only line was skipped inside the continuation.
    pub empty_continuation: bool,
}

impl LogicalLine {
    /// The source position of byte `offset` of `text`.
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let seg = self
            .segs
            .iter()
            .rev()
            .find(|s| s.0 <= offset)
            .copied()
            .unwrap_or((0, self.start_line, 1));
        let chars = self
            .text
            .get(seg.0..offset)
            .map_or(0, |s| s.chars().count());
        Pos {
            line: seg.1,
            col: seg.2 + chars,
        }
    }
}

/// A problem found while reading lines.
#[derive(Debug)]
pub(crate) struct LexError {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// Reads a Dockerfile's physical lines.
pub(crate) struct Reader<'a> {
    lines: Vec<&'a str>,
    next: usize,
    pub directives: DirectiveReader,
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// `([^\\])\\[ \t]*$|^\\[ \t]*$`: the line without its continuation, and whether it ends
/// the instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

impl<'a> Reader<'a> {
    /// Split `source` into lines; fails on a line longer than [`MAX_LINE`].
    pub fn new(source: &'a str) -> Result<Self, LexError> {
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        let lines: Vec<&str> = source.split_inclusive('\n').collect();
        if let Some(i) = lines.iter().position(|l| trim_newline(l).len() > MAX_LINE) {
            return Err(LexError {
                pos: Pos {
                    line: i + 1,
                    col: 1,
                },
                message: format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
                hint: None,
            });
        }
        Ok(Reader {
            lines,
            next: 0,
            directives: DirectiveReader::default(),
        })
    }

    /// The number of the last line read.
    pub fn line(&self) -> usize {
        self.next
    }

    fn escape(&self) -> char {
        self.directives.directives.escape
    }

    /// The next instruction's logical line, `None` at the end of the file.
    pub fn next_logical(&mut self) -> Result<Option<LogicalLine>, LexError> {
        while self.next < self.lines.len() {
            let raw = trim_newline(self.lines[self.next]);
            self.next += 1;
            let line_no = self.next;
            let stripped = raw.trim_start();
            let col = raw[..raw.len() - stripped.len()].chars().count() + 1;
            self.directives
                .feed(stripped)
                .map_err(|DirectiveError { message, hint }| LexError {
                    pos: Pos { line: line_no, col },
                    message,
                    hint,
                })?;
            if is_comment(stripped) {
                continue;
            }
            let (first, mut end) = trim_continuation(stripped, self.escape());
            if end && first.is_empty() {
                continue;
            }
            let mut ll = LogicalLine {
                text: first.to_owned(),
                segs: vec![(0, line_no, col)],
                start_line: line_no,
                end_line: line_no,
                empty_continuation: false,
            };
            while !end && self.next < self.lines.len() {
                let raw = trim_newline(self.lines[self.next]);
                self.next += 1;
                ll.end_line = self.next;
                if is_comment(raw) {
                    continue;
                }
                if raw.trim_start().is_empty() {
                    ll.empty_continuation = true;
                    continue;
                }
                let (piece, e) = trim_continuation(raw, self.escape());
                ll.segs.push((ll.text.len(), self.next, 1));
                ll.text.push_str(piece);
                end = e;
            }
            return Ok(Some(ll));
        }
        Ok(None)
    }

    /// The raw body of a heredoc up to its terminator line; `None` if the file ends first.
    pub fn heredoc_body(&mut self, name: &str, chomp: bool) -> Option<String> {
        let mut body = String::new();
        while self.next < self.lines.len() {
            let raw = self.lines[self.next];
            self.next += 1;
            let mut t = trim_newline(raw);
            if chomp {
                t = t.trim_start_matches('\t');
            }
            if t == name {
                return Some(body);
            }
            body.push_str(raw);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logical(src: &str) -> Vec<String> {
        let mut r = Reader::new(src).unwrap();
        let mut out = Vec::new();
        while let Some(l) = r.next_logical().unwrap() {
            out.push(l.text);
        }
        out
    }

    #[test]
    fn continuation_rules_follow_buildkit() {
        assert_eq!(
            logical("RUN echo hello \\\nworld\n"),
            ["RUN echo hello world"]
        );
        assert_eq!(logical("RUN a\\\nb"), ["RUN ab"]);
        assert_eq!(logical("RUN a \\  \t\n  b\n"), ["RUN a   b"]);
        assert_eq!(logical("RUN foo \\\\\nRUN b"), ["RUN foo \\\\", "RUN b"]);
        assert_eq!(logical("RUN a \\\n# c\n\n   \nb"), ["RUN a b"]);
        assert_eq!(logical("\u{feff}  # c\r\n\r\n  FROM x\r\n"), ["FROM x"]);
        assert_eq!(logical("RUN x \\"), ["RUN x "]);
    }

    #[test]
    fn positions_map_back_to_physical_lines() {
        let mut r = Reader::new("# x\n  RUN a \\\n    bc\n").unwrap();
        let l = r.next_logical().unwrap().unwrap();
        assert_eq!(l.text, "RUN a     bc");
        assert_eq!(l.pos(0), Pos { line: 2, col: 3 });
        assert_eq!(l.pos(10), Pos { line: 3, col: 5 });
        assert_eq!((l.start_line, l.end_line), (2, 3));
    }

    #[test]
    fn backtick_escape_after_directive() {
        assert_eq!(logical("# escape=`\nRUN a `\nb \\\n"), ["RUN a b \\"]);
    }

    #[test]
    fn heredoc_bodies_are_raw() {
        let mut r = Reader::new("RUN <<E\n# keep \\\n\tE\nE\n").unwrap();
        r.next_logical().unwrap();
        assert_eq!(
            r.heredoc_body("E", false).as_deref(),
            Some("# keep \\\n\tE\n")
        );
        let mut r = Reader::new("x\n\tE\n").unwrap();
        r.next_logical().unwrap();
        assert_eq!(r.heredoc_body("E", true).as_deref(), Some(""));
        assert!(Reader::new(&"x".repeat(MAX_LINE + 1)).is_err());
    }
}
