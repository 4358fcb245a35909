//! BuildKit's rules that need only the syntax tree: keyword casing, stage names, empty
//! continuation lines, MAINTAINER, the legacy `ENV key value` form and description
//! comments.

use super::config::comments_above;
use super::{Ctx, Finding};
use crate::frontend::ast::{parse_words, Node};
use crate::frontend::Pos;

pub(crate) fn check(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    casing(ctx, &mut out);
    stage_names(ctx, &mut out);
    empty_continuations(ctx, &mut out);
    for node in &ctx.ast.nodes {
        let kw = node.keyword_raw.as_str();
        let len = kw.chars().count();
        match node.keyword.as_str() {
            "maintainer" => out.push(
                Finding::new(
                    "MaintainerDeprecated",
                    node.span.start,
                    "MAINTAINER instruction is deprecated in favor of using label",
                )
                .len(len)
                .hint(format!(
                    "write LABEL org.opencontainers.image.authors={:?}",
                    node.rest.text
                )),
            ),
            "env" | "label" if node.legacy_kv => out.push(
                Finding::new(
                    "LegacyKeyValueFormat",
                    node.span.start,
                    format!(
                        "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
                    ),
                )
                .len(len)
                .hint(format!(
                    "write {kw} {}=\"…\" (quote the value if it has spaces)",
                    node.args.first().map_or("", |w| w.text.as_str())
                )),
            ),
            _ => {}
        }
        definition_description(ctx, node, &mut out);
    }
    out
}

fn self_consistent(s: &str) -> bool {
    s == s.to_lowercase() || s == s.to_uppercase()
}

/// ConsistentInstructionCasing: every keyword from the first FROM on is compared with the
/// majority casing (global ARGs before the first FROM do not count, as in BuildKit).
fn casing(ctx: &Ctx, out: &mut Vec<Finding>) {
    let nodes: Vec<&Node> = ctx
        .ast
        .nodes
        .iter()
        .skip_while(|n| n.keyword != "from")
        .collect();
    let (mut lower, mut upper) = (0, 0);
    for n in &nodes {
        let k = &n.keyword_raw;
        if self_consistent(k) {
            if *k == k.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for n in nodes {
        let k = &n.keyword_raw;
        let wrong = if majority_lower {
            *k != k.to_lowercase()
        } else {
            *k != k.to_uppercase()
        };
        if wrong {
            let want = if majority_lower {
                "lowercase"
            } else {
                "uppercase"
            };
            out.push(
                Finding::new(
                    "ConsistentInstructionCasing",
                    n.span.start,
                    format!("Command '{k}' should match the case of the command majority ({want})"),
                )
                .len(k.chars().count())
                .hint(format!(
                    "write {}",
                    if majority_lower {
                        k.to_lowercase()
                    } else {
                        k.to_uppercase()
                    }
                )),
            );
        }
    }
}

/// FromAsCasing, StageNameCasing, ReservedStageName, DuplicateStageName.
fn stage_names(ctx: &Ctx, out: &mut Vec<Finding>) {
    let mut seen: Vec<String> = Vec::new();
    for n in ctx.ast.nodes.iter().filter(|n| n.keyword == "from") {
        let [_, as_word, name] = n.args.as_slice() else {
            continue;
        };
        let from = &n.keyword_raw;
        if self_consistent(from) {
            let from_lower = *from == from.to_lowercase();
            let ok = if from_lower {
                as_word.text == as_word.text.to_lowercase()
            } else {
                as_word.text == as_word.text.to_uppercase()
            };
            if !ok {
                out.push(
                    Finding::new(
                        "FromAsCasing",
                        as_word.pos,
                        format!(
                            "'{}' and '{from}' keywords' casing do not match",
                            as_word.text
                        ),
                    )
                    .len(as_word.text.chars().count())
                    .hint(format!("write `{}`", if from_lower { "as" } else { "AS" })),
                );
            }
        }
        let lower = name.text.to_lowercase();
        let nlen = name.text.chars().count();
        if name.text != lower {
            out.push(
                Finding::new(
                    "StageNameCasing",
                    name.pos,
                    format!("Stage name '{}' should be lowercase", name.text),
                )
                .len(nlen)
                .hint(format!("write `{lower}`")),
            );
        }
        if lower == "scratch" || lower == "context" {
            out.push(
                Finding::new(
                    "ReservedStageName",
                    name.pos,
                    format!("Stage name should not use the same name as reserved stage {lower:?}"),
                )
                .len(nlen)
                .hint("choose another name: `scratch` is the empty image and `context` the build context"),
            );
        }
        if seen.contains(&lower) {
            out.push(
                Finding::new(
                    "DuplicateStageName",
                    name.pos,
                    format!("Duplicate stage name {lower:?}, stage names should be unique"),
                )
                .len(nlen)
                .hint(
                    "rename one of the stages; `--from` and `--target` could not tell them apart",
                ),
            );
        }
        seen.push(lower);
    }
}

/// NoEmptyContinuation: a blank line inside a continued instruction, reported at the blank
/// line itself (BuildKit reports the instruction).
fn empty_continuations(ctx: &Ctx, out: &mut Vec<Finding>) {
    for n in &ctx.ast.nodes {
        let mut line = n.span.start.line;
        let mut continued = ends_continued(ctx.line(line), ctx.escape);
        while continued && line < ctx.lines.len() {
            line += 1;
            let l = ctx.line(line);
            let t = l.trim();
            if t.is_empty() {
                out.push(
                    Finding::new(
                        "NoEmptyContinuation",
                        Pos { line, col: 1 },
                        "Empty continuation line",
                    )
                    .hint(format!(
                        "delete the blank line in this {} (or put a comment on it)",
                        n.keyword.to_uppercase()
                    )),
                );
                continue;
            }
            if t.starts_with('#') {
                continue;
            }
            continued = ends_continued(l, ctx.escape);
        }
    }
}

/// Whether a physical line ends with the escape character (a continuation).
fn ends_continued(line: &str, escape: char) -> bool {
    let t = line.trim_end_matches([' ', '\t', '\r']);
    t.strip_suffix(escape)
        .is_some_and(|before| !before.ends_with(escape))
}

/// InvalidDefinitionDescription (experimental): the comment directly above `FROM … AS name`
/// or `ARG name` must start with the name.
fn definition_description(ctx: &Ctx, n: &Node, out: &mut Vec<Finding>) {
    let (what, keys): (&str, Vec<String>) = match n.keyword.as_str() {
        "from" => match n.args.as_slice() {
            [_, _, name] => ("FROM", vec![name.text.to_lowercase()]),
            _ => return,
        },
        "arg" => (
            "ARG",
            parse_words(&n.rest.text, ctx.escape)
                .into_iter()
                .map(|(_, w)| w.split('=').next().unwrap_or("").to_owned())
                .collect(),
        ),
        _ => return,
    };
    let comments = comments_above(ctx, n.span.start.line);
    let (Some(last), Some(first_key)) = (comments.last(), keys.first()) else {
        return;
    };
    let first_word = last.split(' ').next().unwrap_or("");
    if keys.iter().any(|k| k == first_word) {
        return;
    }
    let example = if keys.len() > 1 {
        "<arg_key>"
    } else {
        first_key
    };
    out.push(
        Finding::new(
            "InvalidDefinitionDescription",
            n.span.start,
            format!("Comment for {what} should follow the format: `# {example} <description>`"),
        )
        .len(n.keyword_raw.chars().count())
        .hint("start the comment with the name, or separate it from the instruction with a blank line"),
    );
}
