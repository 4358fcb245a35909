//! COPY/ADD semantics as BuildKit: which source paths a step selects and
//! where they land. Produces the layer's entries; the layer writer does the
//! rest. Sources resolve inside their own view (context or stage), so a COPY
//! can never read outside it.

use super::chmod::Chmod;
use super::fs::{clean, components, resolve, SourceFs};
use super::users::Owner;
use cairn_layers::pattern::{self, BadPattern};
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

/// Per source: its `--parents` pivot and its matches.
type SourceMatches = Vec<(Option<String>, Vec<String>)>;

/// Each source's matches with its `--parents` pivot, and how many in all;
/// no match at all is an error naming the first source without one.
fn matches(src_fs: &dyn SourceFs, spec: &CopySpec) -> Result<(SourceMatches, usize), CopyError> {
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
    Ok((matches_per_source, matched_total))
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
    let (matches_per_source, matched_total) = matches(src_fs, spec)?;
    let into_dir = dest_is_dir_syntax || dest_exists_as_dir || matched_total > 1;

    for (pivot, m) in matches_per_source {
        for src in m {
            // BuildKit copies each match on its own: hard links are kept
            // inside one match, never across two.
            out.scope += 1;
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
                if kept.is_some() {
                    // --parents recreates the source directory itself.
                    out.add(src_fs, &root, top.clone(), spec)?;
                } else if !root.is_empty() && !dest_exists_as_dir {
                    // BuildKit copies a directory's contents, never its own
                    // owner or mode: a new destination is made like any new
                    // parent, an existing one keeps its metadata.
                    out.entries.insert(root.clone(), new_dir(&root, spec));
                }
                walk_into(src_fs, &real, &root, spec, exclude, &mut out)?;
                continue;
            }
            if exclude(&src) {
                continue;
            }
            if let Some(entries) = unpack(&top)? {
                // An archive merges into the destination directory like `tar -x`,
                // its members keeping their own owners and modes (BuildKit
                // applies --chown/--chmod to the directories it creates only).
                let as_is = CopySpec {
                    owner: None,
                    chmod: None,
                    ..spec.clone()
                };
                for e in entries {
                    let to = join(&dest, &e.path);
                    out.add(src_fs, &to, e, &as_is)?;
                }
                continue;
            }
            let to = match &kept {
                Some(k) => join(&dest, k),
                None if into_dir => join(&dest, base_name(&src)),
                None => dest.clone(),
            };
            out.add(src_fs, &to, top, spec)?;
        }
    }
    let Out {
        mut entries, links, ..
    } = out;
    keep_hardlinks(&mut entries, links, src_fs)?;
    add_parents(&mut entries, dest_fs, spec)?;
    Ok(entries.into_values().collect())
}

/// A directory COPY creates: 0755, owned by `--chown`'s owner or root
/// (BuildKit applies `--chown` to every directory it creates, `--chmod` to none).
fn new_dir(path: &str, spec: &CopySpec) -> Entry {
    let mut d = Entry::dir(path);
    if let Some(o) = spec.owner {
        (d.uid, d.gid) = (o.uid, o.gid);
    }
    d
}

/// What makes two copied files one inode: the same inode in the source view,
/// or the same source path (a file, and the `Hardlink` entries naming it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LinkKey {
    Inode(u64, u64),
    Path(String),
}

/// Entries being planned, and the hard-link group of each copied file.
#[derive(Default)]
struct Out {
    entries: BTreeMap<String, Entry>,
    /// Destination path → (match number, link key); a later copy to the same
    /// path replaces the earlier one here too.
    links: BTreeMap<String, (usize, LinkKey)>,
    /// The match being copied (hard links never join two matches).
    scope: usize,
}

impl Out {
    fn add(
        &mut self,
        src_fs: &dyn SourceFs,
        to: &str,
        mut e: Entry,
        spec: &CopySpec,
    ) -> Result<(), CopyError> {
        let key = match &e.kind {
            EntryKind::Hardlink { target } => Some(LinkKey::Path(target.clone())),
            EntryKind::File { .. } => Some(match src_fs.link_key(&e).map_err(io_at(&e.path))? {
                Some((dev, ino)) => LinkKey::Inode(dev, ino),
                None => LinkKey::Path(e.path.clone()),
            }),
            _ => None,
        };
        match key {
            Some(k) => self.links.insert(to.to_owned(), (self.scope, k)),
            None => self.links.remove(to),
        };
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
        self.entries.insert(to.to_owned(), e);
        Ok(())
    }
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
        out.add(fs, &dest, e, spec)?;
        if is_dir {
            walk_into(fs, &from, &dest, spec, exclude, out)?;
        }
    }
    Ok(())
}

/// Files copied from one hard-link group (within one match) stay one inode,
/// as BuildKit keeps them: the first path in layer order holds the content,
/// the others link to it (a tar link must follow its target). A group whose
/// file was not copied takes its content from the source.
fn keep_hardlinks(
    out: &mut BTreeMap<String, Entry>,
    links: BTreeMap<String, (usize, LinkKey)>,
    src_fs: &dyn SourceFs,
) -> Result<(), CopyError> {
    let mut groups: BTreeMap<(usize, LinkKey), Vec<String>> = BTreeMap::new();
    for (path, key) in links {
        groups.entry(key).or_default().push(path); // paths come sorted
    }
    for ((_, key), members) in groups {
        let Some(first) = members.first() else {
            continue;
        };
        let content = members
            .iter()
            .filter_map(|m| out.get(m))
            .find(|e| matches!(e.kind, EntryKind::File { .. }))
            .map(|e| e.kind.clone());
        let content = match (content, &key) {
            (Some(k), _) => k,
            (None, LinkKey::Path(target)) => match src_fs.lstat(target).map_err(io_at(target))? {
                Some(t) if matches!(t.kind, EntryKind::File { .. }) => t.kind,
                _ => return Err(CopyError::NotFound(target.clone())),
            },
            (None, LinkKey::Inode(..)) => continue, // every member is a file
        };
        if let Some(e) = out.get_mut(first) {
            e.kind = content;
        }
        for m in &members[1..] {
            if let Some(e) = out.get_mut(m) {
                e.kind = EntryKind::Hardlink {
                    target: first.clone(),
                };
            }
        }
    }
    Ok(())
}

/// Every parent directory of a copied entry is part of the layer: existing
/// ones with their current metadata, new ones as [`new_dir`].
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
            _ => new_dir(&p, spec),
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

    /// A source directory `out/d` (4321:4321 0700) holding `a`, `inner/`, and
    /// a link to `a` as `b` and `inner/c`, as the `src` stage of issue #21.
    fn stage_src() -> EntryFs {
        let mut d = Entry::dir("out/d");
        (d.uid, d.gid, d.mode) = (4321, 4321, 0o700);
        let link = |p: &str| Entry {
            kind: EntryKind::Hardlink {
                target: "out/d/a".into(),
            },
            ..Entry::file_bytes(p, &b""[..])
        };
        EntryFs::new(vec![
            d,
            Entry::file_bytes("out/d/a", &b"a"[..]),
            link("out/d/b"),
            Entry::dir("out/d/inner"),
            link("out/d/inner/c"),
        ])
    }

    fn meta(out: &[Entry], p: &str) -> (u32, u32, u32) {
        let e = out
            .iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("{p} not planned"));
        (e.uid, e.gid, e.mode)
    }

    fn chowned(sources: &[&str], dest: &str, uid: u32) -> CopySpec {
        CopySpec {
            owner: Some(Owner { uid, gid: uid }),
            ..spec(sources, dest)
        }
    }

    #[test]
    fn directory_source_never_gives_its_metadata_to_an_existing_destination() {
        let mut app = Entry::dir("app");
        app.mode = 0o751;
        let mut ctx_dir = Entry::dir("ctx");
        (ctx_dir.uid, ctx_dir.gid) = (55, 55);
        let base = EntryFs::new(vec![app, Entry::dir("plain"), ctx_dir]);
        // WORKDIR /app + COPY --from=src --chown=1234:1234 /out/d ./
        let out = plan(
            &chowned(&["out/d"], "/app/", 1234),
            &stage_src(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(meta(&out, "app"), (0, 0, 0o751), "existing dest kept");
        assert_eq!(
            meta(&out, "app/inner"),
            (1234, 1234, 0o755),
            "contents chowned"
        );
        for dest in ["/plain/", "/plain"] {
            let out = plan(&spec(&["out/d"], dest), &stage_src(), &base, NO_EXCLUDE).unwrap();
            assert_eq!(meta(&out, "plain"), (0, 0, 0o755), "{dest}");
        }
        let out = plan(&spec(&["out/d"], "/ctx/"), &stage_src(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(meta(&out, "ctx"), (55, 55, 0o755));
    }

    #[test]
    fn directory_source_to_a_new_destination_makes_a_fresh_directory() {
        let base = EntryFs::new(vec![]);
        for dest in ["/new", "/new/"] {
            let out = plan(&spec(&["out/d"], dest), &stage_src(), &base, NO_EXCLUDE).unwrap();
            assert_eq!(meta(&out, "new"), (0, 0, 0o755), "{dest}");
            assert_eq!(
                meta(&out, "new/a").0,
                0,
                "contents keep their owner (root in EntryFs)"
            );
        }
        let out = plan(
            &chowned(&["out/d"], "/new3", 1234),
            &stage_src(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(
            meta(&out, "new3"),
            (1234, 1234, 0o755),
            "--chown owns the new dest"
        );
        let mut s = spec(&["out/d"], "/new4");
        s.chmod = Some(Chmod::Octal(0o600));
        let out = plan(&s, &stage_src(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(
            meta(&out, "new4"),
            (0, 0, 0o755),
            "--chmod leaves the new dest"
        );
        assert_eq!(
            meta(&out, "new4/inner").2,
            0o600,
            "but applies to what is copied"
        );
        // An empty source directory still creates its destination.
        let empty = EntryFs::new(vec![Entry::dir("e")]);
        let out = plan(&spec(&["e"], "/made"), &empty, &base, NO_EXCLUDE).unwrap();
        assert_eq!(paths(&out), ["made"]);
    }

    #[test]
    fn an_existing_destination_behind_a_symlink_keeps_its_metadata() {
        let mut exist = Entry::dir("exist");
        (exist.uid, exist.gid, exist.mode) = (9, 9, 0o700);
        let mut lnk = Entry::dir("lnk");
        lnk.kind = EntryKind::Symlink {
            target: "/exist".into(),
        };
        let base = EntryFs::new(vec![exist, lnk]);
        let out = plan(&spec(&["out/d/"], "/lnk/"), &stage_src(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(meta(&out, "exist"), (9, 9, 0o700));
        assert!(out.iter().any(|e| e.path == "exist/inner/c"));
    }

    #[test]
    fn every_created_parent_takes_the_chown_owner_never_the_chmod() {
        let base = EntryFs::new(vec![Entry::dir("exist")]);
        let out = plan(
            &chowned(&["package.json"], "/q3/q4/name", 1234),
            &ctx(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(paths(&out), ["q3", "q3/q4", "q3/q4/name"]);
        assert_eq!(meta(&out, "q3"), (1234, 1234, 0o755));
        assert_eq!(meta(&out, "q3/q4"), (1234, 1234, 0o755));
        let out = plan(
            &chowned(&["docs"], "/exist/p1/p2/", 1234),
            &ctx(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert_eq!(meta(&out, "exist"), (0, 0, 0o755), "existing parent kept");
        assert_eq!(meta(&out, "exist/p1"), (1234, 1234, 0o755));
        let mut s = spec(&["package.json"], "/r1/r2/");
        s.chmod = Some(Chmod::Octal(0o640));
        let out = plan(&s, &ctx(), &base, NO_EXCLUDE).unwrap();
        assert_eq!(meta(&out, "r1"), (0, 0, 0o755));
        assert_eq!(meta(&out, "r1/r2/package.json"), (0, 0, 0o640));
    }

    fn kind_of<'a>(out: &'a [Entry], p: &str) -> &'a EntryKind {
        &out.iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("{p}"))
            .kind
    }

    /// `first` holds `size` bytes and every path of `links` links to it.
    fn assert_group(out: &[Entry], first: &str, size: u64, links: &[&str]) {
        assert!(
            matches!(kind_of(out, first), EntryKind::File { size: s, .. } if *s == size),
            "{first}: {:?}",
            kind_of(out, first)
        );
        for p in links {
            let want = EntryKind::Hardlink {
                target: first.into(),
            };
            assert_eq!(kind_of(out, p), &want, "{p}");
        }
    }

    #[test]
    fn hard_link_groups_stay_whole_within_one_match_only() {
        let base = EntryFs::new(vec![]);
        let out = plan(&spec(&["out/d"], "/new"), &stage_src(), &base, NO_EXCLUDE).unwrap();
        assert_group(&out, "new/a", 1, &["new/b", "new/inner/c"]);
        // Separate sources and wildcard matches are separate copies.
        for sources in [&["out/d/a", "out/d/b"][..], &["out/d/*"][..]] {
            let out = plan(&spec(sources, "/hl/"), &stage_src(), &base, NO_EXCLUDE).unwrap();
            for p in ["hl/a", "hl/b"] {
                assert!(
                    matches!(kind_of(&out, p), EntryKind::File { size: 1, .. }),
                    "{sources:?} {p}"
                );
            }
        }
        // Links whose file is not copied (or excluded) still make one group,
        // the first path holding the content.
        let out = plan(
            &spec(&["out/d/inner"], "/i/"),
            &stage_src(),
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert!(matches!(
            kind_of(&out, "i/c"),
            EntryKind::File { size: 1, .. }
        ));
        let ex = |p: &str| p.ends_with("/a");
        let out = plan(&spec(&["out/d"], "/x/"), &stage_src(), &base, &ex).unwrap();
        assert!(matches!(
            kind_of(&out, "x/b"),
            EntryKind::File { size: 1, .. }
        ));
        assert_eq!(
            kind_of(&out, "x/inner/c"),
            &EntryKind::Hardlink {
                target: "x/b".into()
            }
        );
    }

    #[test]
    fn hard_links_on_disk_in_a_stage_layer_stay_links() {
        use super::super::fs::MergedView;
        let t = tempfile::tempdir().unwrap();
        let l = t.path().join("l1");
        std::fs::create_dir_all(l.join("out/d/inner")).unwrap();
        std::fs::write(l.join("out/d/z"), "esbuild").unwrap();
        std::fs::hard_link(l.join("out/d/z"), l.join("out/d/inner/bin")).unwrap();
        std::fs::hard_link(l.join("out/d/z"), l.join("out/d/a")).unwrap();
        std::fs::write(l.join("out/d/solo"), "s").unwrap();
        let view = MergedView::new(vec![l]);
        let base = EntryFs::new(vec![]);
        let out = plan(&spec(&["out/d"], "/app/"), &view, &base, NO_EXCLUDE).unwrap();
        assert_group(&out, "app/a", 7, &["app/inner/bin", "app/z"]);
        assert!(matches!(kind_of(&out, "app/solo"), EntryKind::File { .. }));
        let out = plan(
            &spec(&["out/d/a", "out/d/z"], "/two/"),
            &view,
            &base,
            NO_EXCLUDE,
        )
        .unwrap();
        assert!(matches!(kind_of(&out, "two/z"), EntryKind::File { .. }));
    }

    #[test]
    fn archive_members_keep_their_owners_under_chown() {
        let base = EntryFs::new(vec![]);
        let unpack = |e: &Entry| {
            Ok((e.path == "package.json").then(|| {
                let mut f = Entry::file_bytes("pkg/index.js", &b"x"[..]);
                (f.uid, f.gid, f.mode) = (4321, 4321, 0o600);
                vec![f]
            }))
        };
        let mut s = chowned(&["package.json"], "/ac/", 1234);
        s.chmod = Some(Chmod::Octal(0o755));
        let out = plan_with(&s, &ctx(), &base, NO_EXCLUDE, &unpack).unwrap();
        assert_eq!(meta(&out, "ac/pkg/index.js"), (4321, 4321, 0o600));
        assert_eq!(
            meta(&out, "ac"),
            (1234, 1234, 0o755),
            "created dirs chowned"
        );
        assert_eq!(meta(&out, "ac/pkg"), (1234, 1234, 0o755));
    }

    #[test]
    fn archive_links_sorting_before_their_file_are_reordered() {
        let base = EntryFs::new(vec![]);
        let unpack = |e: &Entry| {
            Ok((e.path == "package.json").then(|| {
                vec![
                    Entry::file_bytes("z", &b"zz"[..]),
                    Entry {
                        kind: EntryKind::Hardlink { target: "z".into() },
                        ..Entry::file_bytes("a", &b""[..])
                    },
                ]
            }))
        };
        let out = plan_with(
            &spec(&["package.json"], "/u/"),
            &ctx(),
            &base,
            NO_EXCLUDE,
            &unpack,
        )
        .unwrap();
        assert!(matches!(
            kind_of(&out, "u/a"),
            EntryKind::File { size: 2, .. }
        ));
        assert_eq!(
            kind_of(&out, "u/z"),
            &EntryKind::Hardlink {
                target: "u/a".into()
            }
        );
    }
}
