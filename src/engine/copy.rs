//! COPY/ADD semantics as BuildKit: which source paths a step selects and
//! where they land. Produces the layer's entries; the layer writer does the
//! rest. Sources resolve inside their own view (context or stage), so a COPY
//! can never read outside it.

use super::fs::{clean, components, resolve, SourceFs};
use super::pattern::{self, BadPattern};
use super::users::Owner;
use cairn_layers::{Entry, EntryKind};
use std::collections::BTreeMap;
use std::io;

/// What a COPY step asks for, after expansion.
#[derive(Clone, Debug, Default)]
pub struct CopySpec {
    /// Source paths/patterns as written (relative to the source root).
    pub sources: Vec<String>,
    /// Absolute destination (already joined with WORKDIR); a trailing `/` means "a directory".
    pub dest: String,
    /// `--chown`, resolved.
    pub owner: Option<Owner>,
    /// `--chmod` in octal.
    pub chmod: Option<u32>,
    /// `--parents`: keep the source's parent directories.
    pub parents: bool,
    /// `--link`: the destination does not follow symlinks of the previous state.
    pub link: bool,
}

/// Why a COPY cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source does not exist.
    #[error("source `{0}` not found")]
    NotFound(String),
    /// A wildcard matched nothing.
    #[error("no source files were specified: `{0}` matched nothing")]
    NoMatch(String),
    /// Several sources need a directory destination.
    #[error("when using COPY with more than one source file, the destination must be a directory and end with a /")]
    DestNotDir,
    /// A malformed wildcard.
    #[error(transparent)]
    Pattern(#[from] BadPattern),
    /// Reading a source failed.
    #[error("reading source `{path}`")]
    Io {
        /// The source path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &str) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Expand one source (literal or wildcard) to the matching paths, sorted.
fn expand(fs: &dyn SourceFs, source: &str) -> Result<Vec<String>, CopyError> {
    let src = clean(source);
    if !pattern::has_meta(&src) {
        let resolved = resolve(fs, &src, true).map_err(io_at(source))?;
        return match fs.lstat(&resolved).map_err(io_at(source))? {
            Some(_) => Ok(vec![src]),
            None => Err(CopyError::NotFound(source.to_owned())),
        };
    }
    // Glob component by component, following directory symlinks on the way.
    let mut frontier = vec![String::new()];
    for comp in components(&src) {
        let mut next = Vec::new();
        for base in &frontier {
            let dir = resolve(fs, base, true).map_err(io_at(source))?;
            if pattern::has_meta(&comp) {
                for name in fs.read_dir(&dir).map_err(io_at(source))? {
                    if pattern::matches(&comp, &name)? {
                        next.push(join(base, &name));
                    }
                }
            } else {
                let cand = join(base, &comp);
                let r = resolve(fs, &cand, false).map_err(io_at(source))?;
                if fs.lstat(&r).map_err(io_at(source))?.is_some() {
                    next.push(cand);
                }
            }
        }
        frontier = next;
    }
    if frontier.is_empty() {
        return Err(CopyError::NoMatch(source.to_owned()));
    }
    frontier.sort();
    Ok(frontier)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The entries a COPY writes, sorted by path, with destination parents.
/// `dest_fs` is the stage's current filesystem (to tell whether the
/// destination is an existing directory, and to give parents their metadata).
pub fn plan(
    spec: &CopySpec,
    src_fs: &dyn SourceFs,
    dest_fs: &dyn SourceFs,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<Vec<Entry>, CopyError> {
    let dest_is_dir_syntax = spec.dest.ends_with('/') || spec.dest.ends_with("/.");
    if spec.sources.len() > 1 && !dest_is_dir_syntax {
        return Err(CopyError::DestNotDir);
    }
    let mut dest = clean(&spec.dest);
    if !spec.link && !dest.is_empty() {
        // Without --link the destination follows symlinks of the previous state.
        dest = resolve(dest_fs, &dest, true).map_err(io_at(&spec.dest))?;
    }
    let dest_exists_as_dir =
        dest.is_empty() || matches!(dest_fs.lstat(&dest), Ok(Some(ref e)) if e.is_dir());

    let mut out = Out::default();
    let mut matched_total = 0usize;
    let mut matches_per_source = Vec::new();
    let mut first_unmatched = None;
    for s in &spec.sources {
        let m = match expand(src_fs, s) {
            // As in Docker: a wildcard may match nothing when another source matches
            // (`COPY package.json yarn.lock* package-lock.json* ./`).
            Err(CopyError::NoMatch(_)) => {
                first_unmatched.get_or_insert_with(|| s.clone());
                Vec::new()
            }
            r => r?,
        };
        matched_total += m.len();
        matches_per_source.push(m);
    }
    if let (0, Some(s)) = (matched_total, first_unmatched) {
        return Err(CopyError::NoMatch(s));
    }
    let into_dir = dest_is_dir_syntax || dest_exists_as_dir || matched_total > 1;

    for m in matches_per_source {
        for src in m {
            let real = resolve(src_fs, &src, true).map_err(io_at(&src))?;
            let Some(top) = src_fs.lstat(&real).map_err(io_at(&src))? else {
                return Err(CopyError::NotFound(src));
            };
            let rel_parent = if spec.parents {
                src.rsplit_once('/').map(|(p, _)| p.to_owned())
            } else {
                None
            };
            let target_base = match &rel_parent {
                Some(p) => join(&dest, p),
                None => dest.clone(),
            };
            if top.is_dir() {
                let root = if spec.parents {
                    join(&target_base, base_name(&src))
                } else {
                    target_base.clone()
                };
                if !root.is_empty() {
                    add(&mut out, &root, top.clone(), spec);
                }
                walk_into(src_fs, &real, &root, spec, exclude, &mut out)?;
            } else {
                if exclude(&src) {
                    continue;
                }
                let to = if into_dir || spec.parents {
                    join(&target_base, base_name(&src))
                } else {
                    dest.clone()
                };
                add(&mut out, &to, top, spec);
            }
        }
    }
    let Out {
        mut entries,
        copied_from,
    } = out;
    fix_hardlinks(&mut entries, &copied_from, src_fs)?;
    add_parents(&mut entries, dest_fs, spec)?;
    Ok(entries.into_values().collect())
}

fn add(out: &mut Out, to: &str, mut e: Entry, spec: &CopySpec) {
    out.copied_from.insert(e.path.clone(), to.to_owned());
    e.path = to.to_owned();
    if let Some(o) = spec.owner {
        e.uid = o.uid;
        e.gid = o.gid;
    }
    if let Some(m) = spec.chmod {
        if !matches!(e.kind, EntryKind::Symlink { .. }) {
            e.mode = m;
        }
    }
    out.entries.insert(to.to_owned(), e);
}

/// Entries being planned, and which source path each came from.
#[derive(Default)]
struct Out {
    entries: BTreeMap<String, Entry>,
    copied_from: BTreeMap<String, String>,
}

fn walk_into(
    fs: &dyn SourceFs,
    dir: &str,
    to: &str,
    spec: &CopySpec,
    exclude: &dyn Fn(&str) -> bool,
    out: &mut Out,
) -> Result<(), CopyError> {
    for name in fs.read_dir(dir).map_err(io_at(dir))? {
        let from = join(dir, &name);
        if exclude(&from) {
            continue;
        }
        let Some(e) = fs.lstat(&from).map_err(io_at(&from))? else {
            continue;
        };
        let dest = join(to, &name);
        let is_dir = e.is_dir();
        add(out, &dest, e, spec);
        if is_dir {
            walk_into(fs, &from, &dest, spec, exclude, out)?;
        }
    }
    Ok(())
}

/// Hardlink targets name source paths; point them at their copies when the
/// copy sorts earlier in this layer, else make the entry a plain file with the
/// target's content (the layer must stay self-contained).
fn fix_hardlinks(
    out: &mut BTreeMap<String, Entry>,
    copied_from: &BTreeMap<String, String>,
    src_fs: &dyn SourceFs,
) -> Result<(), CopyError> {
    let links: Vec<(String, String)> = out
        .values()
        .filter_map(|e| match &e.kind {
            EntryKind::Hardlink { target } => Some((e.path.clone(), target.clone())),
            _ => None,
        })
        .collect();
    for (path, target) in links {
        let new_kind = match copied_from.get(&target) {
            Some(d)
                if d < &path
                    && matches!(out.get(d).map(|e| &e.kind), Some(EntryKind::File { .. })) =>
            {
                EntryKind::Hardlink { target: d.clone() }
            }
            _ => match src_fs.lstat(&target).map_err(io_at(&target))? {
                Some(t) if matches!(t.kind, EntryKind::File { .. }) => t.kind,
                _ => return Err(CopyError::NotFound(target)),
            },
        };
        if let Some(e) = out.get_mut(&path) {
            e.kind = new_kind;
        }
    }
    Ok(())
}

/// Every parent directory of a copied entry is part of the layer: existing
/// ones with their current metadata, new ones 0755 owned by root.
fn add_parents(
    out: &mut BTreeMap<String, Entry>,
    dest_fs: &dyn SourceFs,
    spec: &CopySpec,
) -> Result<(), CopyError> {
    let mut parents = Vec::new();
    for p in out.keys() {
        let mut acc = String::new();
        let comps = components(p);
        for c in &comps[..comps.len().saturating_sub(1)] {
            acc = join(&acc, c);
            if !out.contains_key(&acc) {
                parents.push(acc.clone());
            }
        }
    }
    parents.sort();
    parents.dedup();
    for p in parents {
        let e = match dest_fs.lstat(&p).map_err(io_at(&p))? {
            Some(e) if e.is_dir() => Entry {
                path: p.clone(),
                ..e
            },
            _ => {
                let mut d = Entry::dir(p.clone());
                if let Some(o) = spec.owner {
                    if spec.dest.trim_end_matches('/').trim_start_matches('/') == p {
                        d.uid = o.uid;
                        d.gid = o.gid;
                    }
                }
                d
            }
        };
        out.insert(p, e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fs::EntryFs;
    use super::*;

    fn ctx() -> EntryFs {
        let mut link = Entry::dir("lib/current");
        link.kind = EntryKind::Symlink {
            target: "v1".into(),
        };
        let mut top_link = Entry::dir("latest.txt");
        top_link.kind = EntryKind::Symlink {
            target: "docs/a.txt".into(),
        };
        let mut hard = Entry::dir("docs/b.txt");
        hard.kind = EntryKind::Hardlink {
            target: "docs/a.txt".into(),
        };
        EntryFs::new(vec![
            Entry::file_bytes("package.json", &b"{}"[..]),
            Entry::dir("docs"),
            Entry::file_bytes("docs/a.txt", &b"A"[..]),
            hard,
            Entry::dir("lib"),
            Entry::dir("lib/v1"),
            Entry::file_bytes("lib/v1/x.js", &b"x"[..]),
            Entry::file_bytes("lib/v1/y.js", &b"y"[..]),
            link,
            top_link,
        ])
    }

    fn paths(v: &[Entry]) -> Vec<&str> {
        v.iter().map(|e| e.path.as_str()).collect()
    }

    fn spec(sources: &[&str], dest: &str) -> CopySpec {
        CopySpec {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            ..Default::default()
        }
    }

    const NO_EXCLUDE: &dyn Fn(&str) -> bool = &|_| false;

    #[test]
    fn file_into_new_workdir_creates_parents() {
        let base = EntryFs::new(vec![]);
        let out = plan(
            &spec(&["package.json"], "/build/"),
            &ctx(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(paths(&out), ["build", "build/package.json"]);
        assert_eq!((out[0].mode, out[0].uid), (0o755, 0));
    }

    #[test]
    fn trailing_slash_and_existing_dir_decide_file_vs_dir() {
        let base = EntryFs::new(vec![Entry::dir("srv")]);
        let as_file = plan(&spec(&["package.json"], "/abs"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(paths(&as_file), ["abs"]);
        let into = plan(&spec(&["package.json"], "/srv"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(paths(&into), ["srv", "srv/package.json"]);
    }

    #[test]
    fn directory_source_copies_contents_and_keeps_inner_symlinks() {
        let base = EntryFs::new(vec![]);
        let out = plan(&spec(&["lib/"], "/app/"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(
            paths(&out),
            ["app", "app/current", "app/v1", "app/v1/x.js", "app/v1/y.js"]
        );
        assert!(matches!(out[1].kind, EntryKind::Symlink { .. }));
    }

    #[test]
    fn top_level_symlink_source_is_followed() {
        let base = EntryFs::new(vec![]);
        let out = plan(&spec(&["latest.txt"], "/x.txt"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert!(matches!(out[0].kind, EntryKind::File { size: 1, .. }));
    }

    #[test]
    fn wildcards_follow_go_match_and_need_a_match() {
        let base = EntryFs::new(vec![]);
        let out = plan(&spec(&["lib/v1/*.js"], "/o/"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(paths(&out), ["o", "o/x.js", "o/y.js"]);
        assert!(matches!(
            plan(&spec(&["*.nope"], "/o/"), &ctx(), &base, NO_EXCLUDE),
            Err(CopyError::NoMatch(_))
        ));
        assert!(matches!(
            plan(&spec(&["missing.txt"], "/o/"), &ctx(), &base, NO_EXCLUDE),
            Err(CopyError::NotFound(_))
        ));
        // A wildcard matching nothing is fine beside a source that matches.
        let out = plan(
            &spec(&["*.nope", "lib/v1/*.js", "none*"], "/o/"),
            &ctx(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(paths(&out), ["o", "o/x.js", "o/y.js"]);
        assert!(matches!(
            plan(&spec(&["*.nope", "none*"], "/o/"), &ctx(), &base, NO_EXCLUDE),
            Err(CopyError::NoMatch(s)) if s == "*.nope"
        ));
        assert!(matches!(
            plan(
                &spec(&["package.json", "docs"], "/o"),
                &ctx(),
                &base,
                NO_EXCLUDE
            ),
            Err(CopyError::DestNotDir)
        ));
    }

    #[test]
    fn chown_chmod_and_existing_parent_metadata() {
        let mut srv = Entry::dir("srv");
        srv.mode = 0o750;
        srv.uid = 7;
        let base = EntryFs::new(vec![srv]);
        let mut s = spec(&["docs/a.txt"], "/srv/app/");
        s.owner = Some(Owner {
            uid: 1001,
            gid: 1001,
        });
        s.chmod = Some(0o600);
        let out = plan(&s, &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(paths(&out), ["srv", "srv/app", "srv/app/a.txt"]);
        assert_eq!(
            (out[0].mode, out[0].uid),
            (0o750, 7),
            "existing parent kept"
        );
        assert_eq!((out[1].uid, out[1].gid), (1001, 1001), "dest dir chowned");
        assert_eq!((out[2].uid, out[2].mode), (1001, 0o600));
    }

    #[test]
    fn hardlinks_point_at_copies_or_become_files() {
        let base = EntryFs::new(vec![]);
        let out = plan(&spec(&["docs"], "/d/"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(
            out[2].kind,
            EntryKind::Hardlink {
                target: "d/a.txt".into()
            }
        );
        let only_link = plan(&spec(&["docs/b.txt"], "/b.txt"), &ctx(), &base, NO_EXCLUDE).unwrap();
        assert!(matches!(only_link[0].kind, EntryKind::File { size: 1, .. }));
    }

    #[test]
    fn sources_never_escape_the_root() {
        let base = EntryFs::new(vec![]);
        let out = plan(
            &spec(&["../../package.json"], "/p"),
            &ctx(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(paths(&out), ["p"]);
    }

    #[test]
    fn excludes_skip_matching_paths() {
        let base = EntryFs::new(vec![]);
        let ex = |p: &str| p.ends_with("y.js");
        let out = plan(&spec(&["lib/v1"], "/o/"), &ctx(), &base, &ex).unwrap();
        assert_eq!(paths(&out), ["o", "o/x.js"]);
    }
}
