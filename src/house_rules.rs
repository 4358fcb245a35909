//! The house's import rules, checked by reading the source files (so they
//! stay true after a move): nothing below `src/cli/` imports from it, the
//! engine's modules import each other without a circle (a step file never
//! imports the stage that dispatches to it), neither do the top-level rooms
//! ([`ROOMS`]: a room that needs a lower one's type may name it, the lower
//! one never names the room back), and only the CLI uses `anyhow` (the
//! library's rooms return typed errors that keep their causes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.expect("reading the source tree");
        if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "rs") {
            out.push(e.into_path());
        }
    }
    out
}

/// A file's code: its unit tests (a trailing `#[cfg(test)]` module) and
/// comment lines left out, so a doc link or a test import is no arrow.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("reading a source file");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of an engine file below `root`: `step/run/mounts.rs`
/// is `["step", "run", "mounts"]`, `step/mod.rs` is `["step"]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).expect("a file below the root");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The names a path continues with after `prefix` (`a::b` or a `{a, b::c}` group).
fn paths_after<'s>(code: &'s str, prefix: &str) -> Vec<Vec<&'s str>> {
    let mut out = Vec::new();
    let ident = |s: &'s str| -> Vec<&'s str> {
        s.split("::")
            .map(|w| {
                let end = w
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(w.len());
                &w[..end]
            })
            .take_while(|w| !w.is_empty())
            .collect()
    };
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|item| ident(item.trim())));
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// The arrows between the engine's modules: module -> the modules it names.
fn engine_arrows(root: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files = rust_files(root);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(root, f)).collect();
    // The longest module that `path` (from the engine's root) names.
    let resolve = |path: Vec<String>| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains(p))
    };
    let mut arrows = BTreeMap::new();
    for f in &files {
        let me = module_of(root, f);
        let code = code(f);
        let mut to = BTreeSet::new();
        let mut named = Vec::new();
        for p in paths_after(&code, "crate::engine::") {
            named.push(p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        // `super::` from a file is its parent module (`mod.rs`: its own parent).
        let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
        for p in paths_after(&code, "super::") {
            let mut full = parent.clone();
            full.extend(p.iter().map(|s| s.to_string()));
            named.push(full);
        }
        // A module's own children, named bare (`copy::copy(…)` in `step/mod.rs`).
        for child in modules
            .iter()
            .filter(|m| m.len() == me.len() + 1 && m.starts_with(&me))
        {
            let name = child.last().map(String::as_str).unwrap_or_default();
            if !paths_after(&code, &format!("{name}::")).is_empty() {
                named.push(child.clone());
            }
        }
        for n in named {
            if let Some(m) = resolve(n) {
                if m != me {
                    to.insert(m);
                }
            }
        }
        arrows.insert(me, to);
    }
    arrows
}

/// A circle among `arrows`, if there is one (as the modules along it).
fn find_circle(arrows: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        at: &Vec<String>,
        arrows: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, bool>,
        path: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match state.get(at) {
            Some(true) => return None,
            Some(false) => {
                let from = path.iter().position(|p| p == at).unwrap_or(0);
                let mut circle: Vec<String> = path[from..].iter().map(|m| m.join("::")).collect();
                circle.push(at.join("::"));
                return Some(circle);
            }
            None => {}
        }
        state.insert(at.clone(), false);
        path.push(at.clone());
        for next in arrows.get(at).into_iter().flatten() {
            if let Some(c) = visit(next, arrows, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(at.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    arrows
        .keys()
        .find_map(|m| visit(m, arrows, &mut state, &mut Vec::new()))
}

/// The top-level rooms whose imports must form no circle.
const ROOMS: [&str; 9] = [
    "engine", "attest", "cache", "publish", "image", "sandbox", "registry", "diff", "frontend",
];

/// The arrows between `rooms` below `src`: room -> the rooms its files name
/// (`crate::room::…`, or `crate::{room::…}`).
fn room_arrows(src: &Path, rooms: &[&str]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut arrows = BTreeMap::new();
    for &room in rooms {
        let dir = src.join(room);
        let mut files = if dir.is_dir() {
            rust_files(&dir)
        } else {
            Vec::new()
        };
        let single = src.join(format!("{room}.rs"));
        if single.is_file() {
            files.push(single);
        }
        let mut to = BTreeSet::new();
        for f in &files {
            for p in paths_after(&code(f), "crate::") {
                if let Some(&first) = p.first() {
                    if first != room && rooms.contains(&first) {
                        to.insert(vec![first.to_owned()]);
                    }
                }
            }
        }
        arrows.insert(vec![room.to_owned()], to);
    }
    arrows
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn nothing_below_cli_imports_from_cli() {
    let src = src();
    let offenders: Vec<String> = rust_files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(src.join("cli")) && *f != src.join("main.rs"))
        .filter(|f| code(f).contains("crate::cli"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "import from src/cli: {offenders:?}");
}

/// Every room below the CLI returns its own typed error (thiserror), which
/// keeps its causes and hint; `anyhow` is the CLI's glue only.
#[test]
fn only_the_cli_uses_anyhow() {
    let src = src();
    let uses_anyhow = |f: &Path| {
        std::fs::read_to_string(f)
            .expect("reading a source file")
            .lines()
            .any(|l| !l.trim_start().starts_with("//") && l.contains("anyhow"))
    };
    let offenders: Vec<String> = rust_files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(src.join("cli")) && *f != src.join("main.rs"))
        // This file names the word it looks for.
        .filter(|f| *f != src.join("house_rules.rs"))
        .filter(|f| uses_anyhow(f))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "anyhow below src/cli: {offenders:?}");
}

/// Every environment variable cairn reads is a constant of `crate::env`
/// (one list to document and to grep); no other file's code reads one by
/// its literal name.
#[test]
fn environment_variables_are_named_in_env_rs() {
    let src = src();
    // Unit tests may set variables by name (`set_var("PATH", …)`).
    let reads_a_literal = |f: &Path| {
        let code = code(f);
        ["env::var_os(\"", "env::var(\""]
            .iter()
            .any(|p| code.contains(p))
    };
    let offenders: Vec<String> = rust_files(&src)
        .into_iter()
        .filter(|f| *f != src.join("env.rs") && *f != src.join("house_rules.rs"))
        .filter(|f| reads_a_literal(f))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "environment variables read by a literal name instead of a crate::env constant: {offenders:?}"
    );
}

#[test]
fn the_engine_modules_import_each_other_without_a_circle() {
    let arrows = engine_arrows(&src().join("engine"));
    assert_eq!(find_circle(&arrows), None);
}

#[test]
fn the_rooms_import_each_other_without_a_circle() {
    let arrows = room_arrows(&src(), &ROOMS);
    assert_eq!(find_circle(&arrows), None, "rooms: {arrows:?}");
}

#[test]
fn the_room_check_sees_a_circle() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("engine")).unwrap();
    std::fs::write(
        t.path().join("engine/build.rs"),
        "pub struct R { pub a: Option<crate::attest::Plan> }\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("attest.rs"),
        "use crate::{engine::build::R, image::Layer};\n",
    )
    .unwrap();
    let arrows = room_arrows(t.path(), &["engine", "attest", "image"]);
    assert_eq!(
        find_circle(&arrows),
        Some(vec!["attest".into(), "engine".into(), "attest".into()])
    );
}

#[test]
fn the_circle_check_sees_a_circle() {
    // The check itself: a step file importing the stage that dispatches to it.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("step")).unwrap();
    std::fs::write(t.path().join("stage.rs"), "use super::step::dispatch;\n").unwrap();
    std::fs::write(
        t.path().join("step/mod.rs"),
        "pub mod copy;\nfn d() { copy::copy() }\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("step/copy.rs"),
        "use crate::engine::{stage::X};\n",
    )
    .unwrap();
    let arrows = engine_arrows(t.path());
    assert_eq!(
        find_circle(&arrows),
        Some(vec![
            "stage".into(),
            "step".into(),
            "step::copy".into(),
            "stage".into()
        ])
    );
}
