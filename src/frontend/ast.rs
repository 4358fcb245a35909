//! Logical lines → syntax nodes: instruction keyword, `--flags`, arguments split the way
//! BuildKit's per-instruction line parsers split them (`parser/line_parsers.go`), and
//! heredoc bodies (`parser/parser.go`).

use super::diagnostic::{Diagnostic, Pos, Span};
use super::directives::Directives;
use super::expand::{Lexer, NoEnv};
use super::lexer::{LexError, LogicalLine, Reader};
use std::path::Path;

/// A piece of text with the position of its first character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text, quotes and escapes as written unless said otherwise.
    pub text: String,
    /// Where it starts.
    pub pos: Pos,
}

/// A here-document attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Heredoc {
    /// The delimiter with shell quoting removed (`<<'EOF'` → `EOF`).
    pub name: String,
    /// The body: every line up to the terminator, each with its newline
    /// (leading tabs removed for `<<-`).
    pub content: String,
    /// Variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs were stripped.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<u32>,
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword in lower case (`run`).
    pub keyword: String,
    /// The keyword as written (`Run`).
    pub keyword_raw: String,
    /// `--flag[=value]` words before the arguments (quotes and escapes removed).
    pub flags: Vec<Word>,
    /// The arguments: JSON items (exec form), whitespace-separated words, or the whole
    /// rest of the line as one word, depending on the instruction. For `ENV`/`LABEL`:
    /// key, value, key, value, … (values raw, expanded later).
    pub args: Vec<Word>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// `ENV key value` / `LABEL key value` (the legacy form without `=`).
    pub legacy_kv: bool,
    /// The text after the flags (the shell-form command).
    pub rest: Word,
    /// Heredocs in order of appearance.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined, comments dropped).
    pub original: String,
    /// Start position and last line (heredoc bodies included).
    pub span: Span,
    /// The trigger of an `ONBUILD`.
    pub sub: Option<Box<Node>>,
}

/// A parsed file: directives, nodes and warnings.
#[derive(Debug, Clone)]
pub struct Ast {
    /// Parser directives from the top of the file.
    pub directives: Directives,
    /// The instructions in file order.
    pub nodes: Vec<Node>,
    /// Accepted but suspicious constructs.
    pub warnings: Vec<Diagnostic>,
}

struct Ctx<'s> {
    file: &'s Path,
    source: &'s str,
    escape: char,
}

impl Ctx<'_> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.file, self.source, pos, msg)
    }
}

/// Parse `source` into nodes. Errors carry `file`, line, column and an excerpt.
pub fn parse_ast(source: &str, file: &Path) -> Result<Ast, Diagnostic> {
    let lex_err = |e: LexError| {
        let d = Diagnostic::error(file, source, e.pos, e.message);
        match e.hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    };
    let mut reader = Reader::new(source).map_err(lex_err)?;
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    while let Some(ll) = reader.next_logical().map_err(lex_err)? {
        let ctx = Ctx {
            file,
            source,
            escape: reader.directives.directives.escape,
        };
        let start = ll.pos(0);
        let mut node = parse_line(&ctx, &ll, 0, &ll.text)?;
        if ll.empty_continuation {
            warnings.push(
                Diagnostic::warning(file, source, start, "empty continuation line found in instruction")
                    .with_hint("remove blank lines inside a continued instruction; BuildKit may reject them in the future"),
            );
        }
        if can_contain_heredoc(&node) && ll.text.contains("<<") {
            for mut h in heredocs_from_line(&ll.text).map_err(|m| ctx.err(start, m))? {
                let body = reader.heredoc_body(&h.name, h.chomp).ok_or_else(|| {
                    ctx.err(start, format!("unterminated heredoc {:?}", h.name))
                        .with_hint(format!(
                            "end the heredoc with a line containing only `{}` (no trailing spaces)",
                            h.name
                        ))
                })?;
                h.content = if h.chomp { chomp(&body) } else { body };
                node.heredocs.push(h);
            }
        }
        node.span = Span {
            start,
            end_line: reader.line().max(ll.end_line),
        };
        nodes.push(node);
    }
    let directives = reader.directives.directives.clone();
    if nodes.is_empty() {
        return Err(Diagnostic::unlocated(
            super::diagnostic::Severity::Error,
            file,
            "file with no instructions",
        )
        .with_hint("a Dockerfile needs at least a FROM instruction"));
    }
    Ok(Ast {
        directives,
        nodes,
        warnings,
    })
}

/// `<<-`: remove leading tabs from every line.
fn chomp(body: &str) -> String {
    body.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Parse one (possibly nested) instruction line; `base` is `line`'s offset in `ll.text`.
fn parse_line(ctx: &Ctx, ll: &LogicalLine, base: usize, line: &str) -> Result<Node, Diagnostic> {
    let (mut node, rest_off) = head(ctx, ll, base, line);
    let rest = node.rest.text.clone();
    let rest = rest.as_str();
    let at = Rest { ll, off: rest_off };
    let keyword = node.keyword.clone();
    match keyword.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => match parse_json(rest) {
            Json::Strings(items) => {
                node.json = true;
                node.args = items.iter().map(|s| at.word(s, 0)).collect();
            }
            Json::NotStrings => return Err(not_strings(ctx, node.rest.pos)),
            Json::Invalid if rest.is_empty() => {}
            Json::Invalid => node.args = vec![at.word(rest, 0)],
        },
        "add" | "copy" | "volume" => match parse_json(rest) {
            Json::Strings(items) => {
                node.json = true;
                node.args = items.iter().map(|s| at.word(s, 0)).collect();
            }
            Json::NotStrings => return Err(not_strings(ctx, node.rest.pos)),
            Json::Invalid => node.args = split_ws(rest).map(|(o, s)| at.word(s, o)).collect(),
        },
        "from" | "expose" => node.args = split_ws(rest).map(|(o, s)| at.word(s, o)).collect(),
        "maintainer" | "user" | "workdir" | "stopsignal" if !rest.is_empty() => {
            node.args = vec![at.word(rest, 0)]
        }
        "env" | "label" => key_values(ctx, &at, &mut node, rest)?,
        "arg" => {
            node.args = parse_words(rest, ctx.escape)
                .into_iter()
                .map(|(o, s)| at.word(&s, o))
                .collect()
        }
        "healthcheck" => healthcheck(ctx, &at, &mut node, rest)?,
        // One level is enough: `ONBUILD ONBUILD …` is rejected by the instruction parser,
        // and not recursing keeps hostile input from nesting deeply.
        "onbuild" if !rest.is_empty() && base == 0 => {
            node.sub = Some(Box::new(parse_line(ctx, ll, rest_off, rest)?))
        }
        _ => {}
    }
    Ok(node)
}

/// The node of `line` with its keyword, flags and the rest of the line
/// (no arguments yet), and the rest's offset in `ll.text`.
fn head(ctx: &Ctx, ll: &LogicalLine, base: usize, line: &str) -> (Node, usize) {
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let kw_len = trimmed.find(is_space).unwrap_or(trimmed.len());
    let keyword_raw = &trimmed[..kw_len];
    let after_kw = &trimmed[kw_len..];
    let args_off =
        base + lead + kw_len + (after_kw.len() - after_kw.trim_start_matches(is_space).len());
    let args = after_kw.trim_start_matches(is_space);
    let (flags, rest_rel) = extract_flags(args, ctx.escape);
    let flags = flags
        .into_iter()
        .map(|(text, off)| Word {
            text,
            pos: ll.pos(args_off + off),
        })
        .collect();
    let rest_off = args_off + rest_rel;
    let rest = args[rest_rel..].trim_start_matches(is_space);
    let rest_off = rest_off + (args.len() - rest_rel - rest.len());
    let node = Node {
        keyword: keyword_raw.to_ascii_lowercase(),
        keyword_raw: keyword_raw.to_owned(),
        flags,
        args: Vec::new(),
        json: false,
        legacy_kv: false,
        rest: Word {
            text: rest.to_owned(),
            pos: ll.pos(rest_off),
        },
        heredocs: Vec::new(),
        original: line.trim_start().to_owned(),
        span: Span {
            start: ll.pos(base + lead),
            end_line: ll.end_line,
        },
        sub: None,
    };
    (node, rest_off)
}

/// Where the rest of a line starts: words in it get their positions from here.
struct Rest<'l> {
    ll: &'l LogicalLine,
    off: usize,
}

impl Rest<'_> {
    /// The word `text` at `off` bytes into the rest.
    fn word(&self, text: &str, off: usize) -> Word {
        Word {
            text: text.to_owned(),
            pos: self.ll.pos(self.off + off),
        }
    }
}

fn not_strings(ctx: &Ctx, pos: Pos) -> Diagnostic {
    ctx.err(
        pos,
        "when using JSON array syntax, arrays must be comprised of strings only",
    )
    .with_hint("quote every item, e.g. [\"node\", \"server.js\"]")
}

/// ENV and LABEL: `K=V …`, or the legacy `K V` (one pair, the value the rest).
fn key_values(ctx: &Ctx, at: &Rest, node: &mut Node, rest: &str) -> Result<(), Diagnostic> {
    let words = parse_words(rest, ctx.escape);
    let Some((_, first)) = words.first() else {
        return Ok(());
    };
    if first.contains('=') {
        for (off, w) in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(ctx.err(
                    at.ll.pos(at.off + off),
                    format!(
                        "syntax error - can't find = in {w:?}. must be of the form: name=value"
                    ),
                ));
            };
            node.args.push(at.word(k, off));
            node.args.push(at.word(v, off + k.len() + 1));
        }
        return Ok(());
    }
    let keyword = node.keyword.to_uppercase();
    let k_end = rest.find(is_space).unwrap_or(rest.len());
    let value = rest[k_end..].trim_start_matches(is_space);
    if value.is_empty() && k_end == rest.len() {
        return Err(ctx
            .err(node.rest.pos, format!("{keyword} must have two arguments"))
            .with_hint(format!("use {keyword} {}=<value>", &rest[..k_end])));
    }
    node.legacy_kv = true;
    node.args = vec![
        at.word(&rest[..k_end], 0),
        at.word(value, rest.len() - value.len()),
    ];
    Ok(())
}

/// HEALTHCHECK: the type (`CMD`, `NONE`), then the command, JSON or shell.
fn healthcheck(ctx: &Ctx, at: &Rest, node: &mut Node, rest: &str) -> Result<(), Diagnostic> {
    let t_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if t_end == 0 {
        return Ok(());
    }
    node.args.push(at.word(&rest[..t_end], 0));
    let cmd = rest[t_end..].trim_start();
    let cmd_off = rest.len() - cmd.len();
    match parse_json(cmd) {
        Json::Strings(items) => {
            node.json = true;
            node.args.extend(items.iter().map(|s| at.word(s, cmd_off)));
        }
        Json::NotStrings => return Err(not_strings(ctx, at.ll.pos(at.off + cmd_off))),
        Json::Invalid if cmd.is_empty() => {}
        Json::Invalid => node.args.push(at.word(cmd, cmd_off)),
    }
    Ok(())
}

enum Json {
    Strings(Vec<String>),
    NotStrings,
    Invalid,
}

/// `parseJSON`: a JSON array of strings, or why not.
fn parse_json(rest: &str) -> Json {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Json::Invalid;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => Json::Invalid,
        Ok(items) => {
            let strings: Option<Vec<String>> = items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect();
            strings.map_or(Json::NotStrings, Json::Strings)
        }
    }
}

/// Words separated by `[\t\v\f\r ]+`, with their byte offsets.
fn split_ws(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (is_space(c), start) {
            (true, Some(b)) => {
                out.push((b, &s[b..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, &s[b..]));
    }
    out.into_iter()
}

/// `extractBuilderFlags`: leading `--flag` words (quotes and escapes removed, with their
/// offsets) and the offset where the arguments start.
fn extract_flags(line: &str, escape: char) -> (Vec<(String, usize)>, usize) {
    let cs: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    loop {
        while i < cs.len() && cs[i].1.is_whitespace() {
            i += 1;
        }
        if i >= cs.len() {
            return (flags, line.len());
        }
        let start = cs[i].0;
        if !line[start..].starts_with("--") {
            return (flags, start);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        while i < cs.len() {
            let c = cs[i].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == escape => {
                    if i + 1 < cs.len() {
                        i += 1;
                        word.push(cs[i].1);
                    } else {
                        quote = None;
                    }
                }
                _ => word.push(c),
            }
            i += 1;
        }
        if word == "--" && i < cs.len() {
            return (flags, cs[i].0);
        }
        if word != "--" && (blank_ok || !word.is_empty()) {
            flags.push((word, start));
        }
    }
}

/// `parseWords`: quote-aware words that keep their quotes and escapes, with offsets.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<(usize, String)> {
    let cs: Vec<(usize, char)> = rest.char_indices().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < cs.len() {
        let (off, ch) = cs[i];
        i += 1;
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
            start = off;
        }
        match quote {
            None if ch.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push((start, std::mem::take(&mut word)));
                }
                in_word = false;
                blank_ok = false;
                continue;
            }
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                blank_ok = true;
            }
            Some(q) if ch == q => quote = None,
            _ => {}
        }
        // The escape character keeps itself and the next character (quotes are removed
        // later by the shell lexer); inside '…' it is literal.
        if ch == escape && quote != Some('\'') {
            if i == cs.len() {
                quote = None;
                continue;
            }
            word.push(ch);
            word.push(cs[i].1);
            i += 1;
            continue;
        }
        word.push(ch);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push((start, word));
    }
    words
}

const HEREDOC_INSTRUCTIONS: [&str; 3] = ["run", "copy", "add"];

fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.keyword[..], &node.sub) {
        ("onbuild", Some(sub)) => sub,
        _ => node,
    };
    HEREDOC_INSTRUCTIONS.contains(&n.keyword.as_str()) && !n.json
}

/// `heredocsFromLine`: every `[n]<<[-]WORD` word of the line, in order (bodies empty).
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let raw = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let words = raw.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// `^(\d*)<<(-?)\s*([^<]*)$` then the delimiter with quotes removed.
fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let lx = Lexer {
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let words = lx.process_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_words = Lexer {
        raw_quotes: true,
        ..lx
    }
    .process_words(rest, &NoEnv)
    .map_err(|e| e.to_string())?;
    if raw_words.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw_words[0]),
        name: words[0].clone(),
        content: String::new(),
        chomp,
        fd: if digits > 0 {
            word[..digits].parse().ok()
        } else {
            None
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Ast {
        parse_ast(src, Path::new("Dockerfile")).unwrap()
    }

    #[test]
    fn heredoc_delimiters_follow_buildkit_tests() {
        let cases = [
            ("<<EOF", "EOF", true),
            ("<<'NOEXPAND'", "NOEXPAND", false),
            ("<<eo'f'", "eof", false),
            ("<<eo\\'f", "eo'f", true),
            ("<<'e'o\\'f", "eo'f", false),
            ("<<$EOF", "$EOF", true),
            ("<<-  EOF", "EOF", true),
        ];
        for (w, name, expand) in cases {
            let h = parse_heredoc(w).unwrap().unwrap();
            assert_eq!((h.name.as_str(), h.expand), (name, expand), "{w}");
        }
        let h = heredocs_from_line("RUN cat > next.config.js << 'NEXTCONFIG'").unwrap();
        assert_eq!((h[0].name.as_str(), h[0].expand), ("NEXTCONFIG", false));
        assert!(heredocs_from_line("RUN cat<<EOF").unwrap().is_empty());
        let h = heredocs_from_line("RUN cat <<'one two' x").unwrap();
        assert_eq!(h[0].name, "one two");
        assert!(!h[0].expand);
        assert_eq!(parse_heredoc("3<<EOF").unwrap().unwrap().fd, Some(3));
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("a<<EOF").unwrap().is_none());
    }

    #[test]
    fn several_heredocs_are_read_in_order() {
        let ast = parse("FROM a\nCOPY <<X <<Y /dest\nY\nX\nX\nY\nRUN x\n");
        let c = &ast.nodes[1];
        assert_eq!(c.heredocs[0].content, "Y\n");
        assert_eq!(c.heredocs[1].content, "X\n");
        assert_eq!(c.span.end_line, 6);
        assert_eq!(ast.nodes[2].span.start.line, 7);
    }

    #[test]
    fn flags_and_json_fallback() {
        let ast = parse("FROM a\nRUN --mount=type=cache,target=/x --network=none [\"a\", ]  \n");
        let err = ast.nodes.len();
        assert_eq!(err, 2);
        let r = &ast.nodes[1];
        assert!(!r.json);
        assert_eq!(r.flags[1].text, "--network=none");
        assert_eq!(r.flags[1].pos, Pos { line: 2, col: 34 });
        let e = parse_ast("FROM a\nRUN [\"a\", 1]\n", Path::new("D")).unwrap_err();
        assert!(e.message.contains("strings only"));
        let ast = parse(
            "FROM a\nCMD [\"c:\\windows\"]\nCMD [\"a\",\"b\"]\nCOPY --from=\"x y\" -- --a b\n",
        );
        assert_eq!(ast.nodes[1].args[0].text, "[\"c:\\windows\"]");
        assert_eq!(ast.nodes[2].args.len(), 2);
        assert_eq!(ast.nodes[3].flags[0].text, "--from=x y");
        assert_eq!(ast.nodes[3].args[0].text, "--a");
    }

    #[test]
    fn env_forms() {
        let ast = parse("FROM a\nENV ONE TWO= THREE=world\nENV a=\"x y\" b='z'\n");
        assert!(ast.nodes[1].legacy_kv);
        assert_eq!(ast.nodes[1].args[1].text, "TWO= THREE=world");
        let t: Vec<_> = ast.nodes[2].args.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(t, ["a", "\"x y\"", "b", "'z'"]);
        let e = parse_ast("FROM a\nENV a=1 b\n", Path::new("D")).unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, col: 9 }));
    }

    #[test]
    fn parse_words_keeps_quotes() {
        let w: Vec<String> = parse_words(r#"a="b c" d\ e 'f\'"#, '\\')
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(w, [r#"a="b c""#, r"d\ e", r"'f\'"]);
    }
}
