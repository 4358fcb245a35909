//! Build-record comparison: which input of which Dockerfile step changed.
//!
//! Steps are matched by (stage, step index). A step whose key differs either
//! changed itself (an input other than `parent` differs: a context file, an
//! arg, the instruction…) — a *root cause* — or only because an earlier step
//! did (only `parent` differs) — *downstream*. When the first recorded step of
//! a stage differs only in `parent` and that parent is not another step's key,
//! the stage's base image changed.

use crate::engine::cache::{Input, Inputs};
use crate::engine::record::{BuildRecord, StepEntry};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One step that changed for a reason of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepChange {
    /// Stage name.
    pub stage: String,
    /// 1-based step number in the stage.
    pub index: usize,
    /// The instruction (B's, or A's when the step is only in A).
    pub instruction: String,
    /// `changed`, `base`, `only-in-a`, `only-in-b`.
    pub kind: &'static str,
    /// Each differing input, phrased for people (`context file src/app.ts changed`).
    pub inputs: Vec<String>,
}

/// The comparison of two build records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecordDiff {
    /// Steps that changed for a reason of their own, in stage and step order.
    pub changes: Vec<StepChange>,
    /// Steps whose key changed only because an earlier step changed.
    pub downstream: usize,
}

fn short(v: &str) -> String {
    crate::progress::short_digest(v)
}

/// Every differing input except `parent`, phrased by [`Inputs::explain_change`].
fn own_changes(a: &Inputs, b: &Inputs) -> Vec<String> {
    let old: BTreeMap<&str, &Input> = a.0.iter().map(|i| (i.name.as_str(), i)).collect();
    let new: BTreeMap<&str, &Input> = b.0.iter().map(|i| (i.name.as_str(), i)).collect();
    let mut out = Vec::new();
    // B's order first (the order the key was built in), then inputs A had alone.
    let names = b.0.iter().map(|i| i.name.as_str()).chain(
        a.0.iter()
            .map(|i| i.name.as_str())
            .filter(|n| !new.contains_key(n)),
    );
    let mut seen = BTreeSet::new();
    for name in names {
        if name == "parent" || !seen.insert(name) {
            continue;
        }
        let one = |i: Option<&&Input>| Inputs(i.map(|i| (*i).clone()).into_iter().collect());
        let (x, y) = (old.get(name), new.get(name));
        if x.map(|i| &i.value) != y.map(|i| &i.value) {
            if let Some(e) = one(y).explain_change(&one(x)) {
                out.push(e);
            }
        }
    }
    out
}

fn parent(s: &StepEntry) -> Option<&str> {
    s.inputs
        .0
        .iter()
        .find(|i| i.name == "parent")
        .map(|i| i.value.as_str())
}

/// Compare two build records step by step.
pub fn compare_records(a: &BuildRecord, b: &BuildRecord) -> RecordDiff {
    let by_pos = |r: &BuildRecord| -> BTreeMap<(String, usize), StepEntry> {
        r.steps
            .iter()
            .map(|s| ((s.stage.clone(), s.index), s.clone()))
            .collect()
    };
    let (ma, mb) = (by_pos(a), by_pos(b));
    // Stage order: first appearance in B, then A.
    let mut stages: Vec<String> = Vec::new();
    for s in b.steps.iter().chain(&a.steps) {
        if !stages.contains(&s.stage) {
            stages.push(s.stage.clone());
        }
    }
    let keys: BTreeSet<String> = a
        .steps
        .iter()
        .chain(&b.steps)
        .filter_map(|s| s.key.clone())
        .collect();
    let mut out = RecordDiff::default();
    for stage in &stages {
        let mut idx: Vec<usize> = ma
            .keys()
            .chain(mb.keys())
            .filter(|(s, _)| s == stage)
            .map(|(_, i)| *i)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let first = idx.first().copied();
        for i in idx {
            let k = (stage.clone(), i);
            let change = |kind, s: &StepEntry, inputs| StepChange {
                stage: stage.clone(),
                index: i,
                instruction: s.instruction.clone(),
                kind,
                inputs,
            };
            match (ma.get(&k), mb.get(&k)) {
                (Some(x), Some(y)) if x.key == y.key && x.inputs == y.inputs => {}
                (Some(x), Some(y)) => {
                    let own = own_changes(&x.inputs, &y.inputs);
                    let (px, py) = (parent(x), parent(y));
                    let base_changed = Some(i) == first
                        && px != py
                        && !px.is_some_and(|p| keys.contains(p))
                        && !py.is_some_and(|p| keys.contains(p));
                    if base_changed {
                        let line = format!(
                            "base {}→{}",
                            short(px.unwrap_or("-")),
                            short(py.unwrap_or("-"))
                        );
                        out.changes.push(change("base", y, vec![line]));
                    }
                    if !own.is_empty() {
                        out.changes.push(change("changed", y, own));
                    } else if !base_changed {
                        out.downstream += 1;
                    }
                }
                (Some(x), None) => out.changes.push(change("only-in-a", x, Vec::new())),
                (None, Some(y)) => out.changes.push(change("only-in-b", y, Vec::new())),
                (None, None) => {}
            }
        }
    }
    out
}

impl StepChange {
    /// One line: `runner 6 COPY src/ ./src/: context file src/app.ts changed`.
    pub fn line(&self) -> String {
        let what = match self.kind {
            "only-in-a" => "only in A".to_owned(),
            "only-in-b" => "only in B".to_owned(),
            _ => self.inputs.join("; "),
        };
        format!("{} {} {}: {what}", self.stage, self.index, self.instruction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(stage: &str, index: usize, inputs: &[(&str, &str)]) -> StepEntry {
        let mut i = Inputs::default();
        for (k, v) in inputs {
            i.push(*k, *v);
        }
        StepEntry {
            stage: stage.into(),
            index,
            instruction: format!("STEP {index}"),
            key: Some(i.key().to_string()),
            inputs: i,
        }
    }

    #[test]
    fn names_the_changed_input_and_counts_downstream_steps() {
        let s1a = step(
            "builder",
            2,
            &[("parent", "sha256:base"), ("context file src/app.ts", "1")],
        );
        let s1b = step(
            "builder",
            2,
            &[("parent", "sha256:base"), ("context file src/app.ts", "2")],
        );
        let s2a = step(
            "builder",
            3,
            &[
                ("parent", s1a.key.as_deref().unwrap()),
                ("arg NODE_ENV", "production"),
            ],
        );
        let s2b = step(
            "builder",
            3,
            &[
                ("parent", s1b.key.as_deref().unwrap()),
                ("arg NODE_ENV", "production"),
            ],
        );
        let s3a = step("builder", 4, &[("parent", s2a.key.as_deref().unwrap())]);
        let s3b = step("builder", 4, &[("parent", s2b.key.as_deref().unwrap())]);
        let a = BuildRecord {
            steps: vec![s1a, s2a, s3a],
        };
        let b = BuildRecord {
            steps: vec![s1b, s2b, s3b],
        };
        let d = compare_records(&a, &b);
        assert_eq!(d.changes.len(), 1, "{d:?}");
        assert_eq!(
            d.changes[0].line(),
            "builder 2 STEP 2: context file src/app.ts changed"
        );
        assert_eq!(d.downstream, 2);
    }

    #[test]
    fn base_and_arg_changes() {
        let a = BuildRecord {
            steps: vec![step(
                "runner",
                1,
                &[
                    ("parent", "sha256:aaaaaaaaaaaaaaaaaaaaaaaa"),
                    ("arg NODE_ENV", "production"),
                ],
            )],
        };
        let b = BuildRecord {
            steps: vec![step(
                "runner",
                1,
                &[
                    ("parent", "sha256:bbbbbbbbbbbbbbbbbbbbbbbb"),
                    ("arg NODE_ENV", "development"),
                ],
            )],
        };
        let d = compare_records(&a, &b);
        let lines: Vec<String> = d.changes.iter().map(StepChange::line).collect();
        assert_eq!(
            lines,
            [
                "runner 1 STEP 1: base sha256:aaaaaaaaaaaa…→sha256:bbbbbbbbbbbb…",
                "runner 1 STEP 1: arg NODE_ENV changed"
            ]
        );
        assert_eq!(compare_records(&a, &a), RecordDiff::default());
    }
}
