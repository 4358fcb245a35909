//! The two outputs of `cairn check`.
//!
//! Text: one block per violation, shaped like cairn's parse errors, then a summary:
//!
//! ```text
//! Dockerfile:2:20: FromAsCasing: 'as' and 'FROM' keywords' casing do not match
//!   |
//! 2 | FROM debian:latest as builder
//!   |                    ^^
//! hint: write `AS`
//! docs: docs/checks/FromAsCasing.md (BuildKit: https://docs.docker.com/go/dockerfile/rule/from-as-casing/)
//! ```
//!
//! JSON: one document, described field by field in `docs/check-json.md`.

use super::{Origin, Report, Violation};
use crate::frontend::{Diagnostic, Severity};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn diagnostic(r: &Report, v: &Violation) -> Diagnostic {
    let msg = format!("{}: {}", v.rule.name, v.message);
    let d = match v.severity {
        Severity::Error => Diagnostic::error(&r.file, &r.source, v.pos, msg),
        Severity::Warning => Diagnostic::warning(&r.file, &r.source, v.pos, msg),
    }
    .with_len(v.len);
    match &v.hint {
        Some(h) => d.with_hint(h.clone()),
        None => d,
    }
}

fn docs_line(v: &Violation) -> String {
    match v.rule.buildkit_url() {
        Some(u) => format!("docs: {} (BuildKit: {u})", v.rule.doc()),
        None => format!("docs: {}", v.rule.doc()),
    }
}

fn rule_names(r: &Report) -> Vec<&'static str> {
    let set: BTreeSet<&str> = r.violations.iter().map(|v| v.rule.name).collect();
    set.into_iter().collect()
}

/// The text output (ends with a newline).
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    for v in &r.violations {
        out.push_str(&format!("{}\n{}\n\n", diagnostic(r, v), docs_line(v)));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("{e}\n"));
    }
    let n = r.violations.len();
    let names = rule_names(r).join(", ");
    let errors = r.violations.iter().any(|v| v.severity == Severity::Error);
    let mut summary = match (n, errors) {
        (0, _) if r.error.is_none() => "check: no problems found".to_owned(),
        (0, _) => "check: the Dockerfile cannot be built as it is".to_owned(),
        (_, true) => format!("check: lint violation found for rules: {names} (error=true)"),
        (1, false) => format!("check: 1 warning ({names})"),
        (_, false) => format!("check: {n} warnings ({names})"),
    };
    if n > 0 && r.error.is_some() {
        summary.push_str("; and the Dockerfile cannot be built as it is");
    }
    out.push_str(&summary);
    out.push('\n');
    out
}

/// The JSON document (`docs/check-json.md`).
pub fn json(r: &Report) -> Value {
    let violations: Vec<Value> = r
        .violations
        .iter()
        .map(|v| {
            json!({
                "rule": v.rule.name,
                "origin": match v.rule.origin { Origin::BuildKit => "buildkit", Origin::Cairn => "cairn" },
                "severity": match v.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "file": r.file.display().to_string(),
                "line": v.pos.line,
                "column": v.pos.col,
                "message": v.message,
                "hint": v.hint,
                "description": v.rule.description,
                "doc": v.rule.doc(),
                "buildkit_url": v.rule.buildkit_url(),
            })
        })
        .collect();
    let error = r.error.as_ref().map(|e| {
        json!({
            "file": e.file.display().to_string(),
            "line": e.pos.map(|p| p.line),
            "column": e.pos.map(|p| p.col),
            "message": e.message,
            "hint": e.hint,
        })
    });
    let c = &r.config;
    json!({
        "file": r.file.display().to_string(),
        "config": {
            "from": r.config_from,
            "skip_all": c.skip_all,
            "skip": c.skip,
            "experimental_all": c.experimental_all,
            "experimental": c.experimental,
            "error": c.error,
        },
        "violations": violations,
        "rules": rule_names(r),
        "error": error,
        "notes": r.notes,
        "failed": r.failed(),
    })
}
