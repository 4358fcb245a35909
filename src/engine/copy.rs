//! COPY/ADD semantics as BuildKit: which source paths a step selects and
//! where they land. Produces the layer's entries; the layer writer does the
//! rest. Sources resolve inside their own view (context or stage), so a COPY
//! can never read outside it.

use super::chmod::Chmod;
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
    /// `--chmod`, octal or symbolic.
    pub chmod: Option<Chmod>,
    /// `--parents`: keep the source's parent directories (those after a `/./` pivot when present).
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
    /// A source archive could not be read (ADD).
    #[error("extracting archive `{path}`: {reason}")]
    Archive {
        /// The source path.
        path: String,
        /// What went wrong.
        reason: String,
    },
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
/// With `globstar` (`--parents`), a `**` component matches any number of
/// directories (and, last, everything below).
fn expand(fs: &dyn SourceFs, source: &str, globstar: bool) -> Result<Vec<String>, CopyError> {
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
    let comps = components(&src);
    for (i, comp) in comps.iter().enumerate() {
        let mut next = Vec::new();
        for base in &frontier {
            let dir = resolve(fs, base, true).map_err(io_at(source))?;
            if globstar && comp == "**" {
                next.push(base.clone());
                descendants(fs, &dir, base, i + 1 == comps.len(), &mut next)
                    .map_err(io_at(source))?;
            } else if pattern::has_meta(comp) {
                for name in fs.read_dir(&dir).map_err(io_at(source))? {
                    if pattern::matches(comp, &name)? {
                        next.push(join(base, &name));
                    }
                }
            } else {
                let cand = join(base, comp);
                let r = resolve(fs, &cand, false).map_err(io_at(source))?;
                if fs.lstat(&r).map_err(io_at(source))?.is_some() {
                    next.push(cand);
                }
            }
        }
        next.sort();
        next.dedup();
        frontier = next;
    }
    frontier.retain(|p| !p.is_empty());
    if frontier.is_empty() {
        return Err(CopyError::NoMatch(source.to_owned()));
    }
    frontier.sort();
    Ok(frontier)
}

/// Every directory below `dir` (named under `shown`), and every entry when
/// `all`; symlinked directories are not entered (no loops, as BuildKit).
fn descendants(
    fs: &dyn SourceFs,
    dir: &str,
    shown: &str,
    all: bool,
    out: &mut Vec<String>,
) -> io::Result<()> {
    for name in fs.read_dir(dir)? {
        let (real, named) = (join(dir, &name), join(shown, &name));
        let is_dir = fs.lstat(&real)?.is_some_and(|e| e.is_dir());
        if is_dir || all {
            out.push(named.clone());
        }
        if is_dir {
            descendants(fs, &real, &named, all, out)?;
        }
    }
    Ok(())
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

/// Extracts a top-level file source as an archive (ADD): `Some(entries)`
/// with paths relative to the destination directory, or `None` to copy the
/// file as it is.
pub type Unpacker<'u> = dyn Fn(&Entry) -> Result<Option<Vec<Entry>>, CopyError> + 'u;

/// The entries a COPY writes, sorted by path, with destination parents.
/// `dest_fs` is the stage's current filesystem (to tell whether the
/// destination is an existing directory, and to give parents their metadata).
pub fn plan(
    spec: &CopySpec,
    src_fs: &dyn SourceFs,
    dest_fs: &dyn SourceFs,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<Vec<Entry>, CopyError> {
    plan_with(spec, src_fs, dest_fs, exclude, &|_| Ok(None))
}

/// With `--parents`, the part of a source path kept under the destination:
/// what follows a `/./` pivot, else the whole cleaned path.
fn pivot_prefix(source: &str) -> Option<String> {
    let s = source.trim_start_matches("./");
    s.find("/./").map(|i| clean(&s[..i]))
}

/// [`plan`], letting `unpack` turn top-level file sources into archive contents.
pub fn plan_with(
    spec: &CopySpec,
    src_fs: &dyn SourceFs,
    dest_fs: &dyn SourceFs,
    exclude: &dyn Fn(&str) -> bool,
    unpack: &Unpacker,
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
        let m = match expand(src_fs, s, spec.parents) {
            // As in Docker: a wildcard may match nothing when another source matches
            // (`COPY package.json yarn.lock* package-lock.json* ./`).
            Err(CopyError::NoMatch(_)) => {
                first_unmatched.get_or_insert_with(|| s.clone());
                Vec::new()
            }
            r => r?,
        };
        matched_total += m.len();
        matches_per_source.push((pivot_prefix(s), m));
    }
    if let (0, Some(s)) = (matched_total, first_unmatched) {
        return Err(CopyError::NoMatch(s));
    }
    let into_dir = dest_is_dir_syntax || dest_exists_as_dir || matched_total > 1;

    for (pivot, m) in matches_per_source {
        for src in m {
            let real = resolve(src_fs, &src, true).map_err(io_at(&src))?;
            let Some(top) = src_fs.lstat(&real).map_err(io_at(&src))? else {
                return Err(CopyError::NotFound(src));
            };
            // --parents keeps the path below the pivot (or all of it).
            let kept = spec.parents.then(|| match &pivot {
                Some(p) if !p.is_empty() => src
                    .strip_prefix(&format!("{p}/"))
                    .map(str::to_owned)
                    .unwrap_or_else(|| src.clone()),
                _ => src.clone(),
            });
            if top.is_dir() {
                let root = match &kept {
                    Some(k) => join(&dest, k),
                    None => dest.clone(),
                };
                if !root.is_empty() {
                    add(&mut out, &root, top.clone(), spec);
                }
                walk_into(src_fs, &real, &root, spec, exclude, &mut out)?;
                continue;
            }
            if exclude(&src) {
                continue;
            }
            if let Some(entries) = unpack(&top)? {
                // An archive merges into the destination directory like `tar -x`.
                for e in entries {
                    let to = join(&dest, &e.path);
                    add(&mut out, &to, e, spec);
                }
                continue;
            }
            let to = match &kept {
                Some(k) => join(&dest, k),
                None if into_dir => join(&dest, base_name(&src)),
                None => dest.clone(),
            };
            add(&mut out, &to, top, spec);
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
    if let Some(m) = &spec.chmod {
        if !matches!(e.kind, EntryKind::Symlink { .. }) {
            e.mode = m.apply(e.mode, e.is_dir());
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
        s.chmod = Some(Chmod::Octal(0o600));
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

    #[test]
    fn parents_keep_paths_below_the_pivot() {
        let base = EntryFs::new(vec![]);
        let mut s = spec(&["lib/v1/*.js"], "/p/");
        s.parents = true;
        let out = plan(&s, &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(
            paths(&out),
            ["p", "p/lib", "p/lib/v1", "p/lib/v1/x.js", "p/lib/v1/y.js"]
        );
        let mut s = spec(&["./lib/./v1/*.js", "docs/./a.txt"], "/p/");
        s.parents = true;
        let out = plan(&s, &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(
            paths(&out),
            ["p", "p/a.txt", "p/v1", "p/v1/x.js", "p/v1/y.js"]
        );
        let mut s = spec(&["lib/v1"], "/p/");
        s.parents = true;
        let out = plan(&s, &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(
            paths(&out),
            ["p", "p/lib", "p/lib/v1", "p/lib/v1/x.js", "p/lib/v1/y.js"]
        );
    }

    #[test]
    fn symbolic_chmod_applies_per_entry() {
        let base = EntryFs::new(vec![]);
        let mut s = spec(&["lib/v1"], "/o/");
        s.chmod = Some(Chmod::parse("u=rwX,go=rX").unwrap());
        let out = plan(&s, &ctx(), &base, NO_EXCLUDE).unwrap();
        let mode = |p: &str| out.iter().find(|e| e.path == p).unwrap().mode;
        assert_eq!((mode("o"), mode("o/x.js")), (0o755, 0o644));
    }

    #[test]
    fn the_unpack_hook_merges_archive_members_into_the_destination() {
        let base = EntryFs::new(vec![]);
        let unpack = |e: &Entry| {
            Ok((e.path == "package.json").then(|| {
                vec![
                    Entry::dir("pkg"),
                    Entry::file_bytes("pkg/index.js", &b"x"[..]),
                ]
            }))
        };
        let out = plan_with(
            &spec(&["package.json", "docs/a.txt"], "/srv/"),
            &ctx(),
            &base,
            NO_EXCLUDE,
            &unpack,
        )
        .unwrap();
        assert_eq!(
            paths(&out),
            ["srv", "srv/a.txt", "srv/pkg", "srv/pkg/index.js"]
        );
    }

    #[test]
    fn parents_globstar_matches_any_depth() {
        let base = EntryFs::new(vec![]);
        let fs = EntryFs::new(vec![
            Entry::file_bytes("package.json", &b"{}"[..]),
            Entry::file_bytes("apps/web/package.json", &b"{}"[..]),
            Entry::file_bytes("apps/web/src/index.js", &b"x"[..]),
            Entry::file_bytes("libs/ui/package.json", &b"{}"[..]),
        ]);
        let mut s = spec(&["**/package.json"], "/w/");
        s.parents = true;
        let out = plan(&s, &fs, &base, NO_EXCLUDE).unwrap();
        let files: Vec<&str> = out
            .iter()
            .filter(|e| !e.is_dir())
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(
            files,
            [
                "w/apps/web/package.json",
                "w/libs/ui/package.json",
                "w/package.json"
            ]
        );
        // Without --parents, `**` is Go's `*` twice: one level only.
        let out = plan(&spec(&["**/package.json"], "/w/"), &fs, &base, NO_EXCLUDE);
        assert!(matches!(out, Err(CopyError::NoMatch(_))));
    }
}
