//! The build context: a walk of a directory confined to its root, filtered by
//! `.dockerignore` exactly as BuildKit filters what it sends.
//!
//! # Ignore file precedence
//!
//! [`BuildContext::open`] uses `<Dockerfile>.dockerignore` next to the
//! Dockerfile if it exists, else `.dockerignore` at the context root, else no
//! patterns (see [`crate::dockerignore`]). The files are never merged. The
//! Dockerfile and the ignore file get no special treatment: they are in the
//! context unless a pattern excludes them, as with BuildKit.
//!
//! # What a walk returns
//!
//! [`BuildContext::walk`] returns one [`Entry`] per path a build would see,
//! sorted byte-wise by the full relative path (so `a-b` < `a/b` < `a0`;
//! parents always precede their children). Excluded directories are entered
//! only when an exception could re-include something inside; an excluded
//! directory is still returned when it is the parent of a kept path.
//!
//! * Symlinks are never followed: they are entries with their verbatim target.
//!   The root itself may be a symlink to a directory; it is resolved once.
//! * Sockets are skipped; FIFOs and devices are kept as their kinds.
//! * Regular files carry `Source::Path` (the host path); content is not read.
//!   Files are checked for readability so an unreadable file fails the walk.
//! * Hard links: among kept regular files with the same (device, inode), the
//!   first in sort order holds the data and later ones become
//!   [`EntryKind::Hardlink`] to it.
//! * Names (and symlink targets) that are not UTF-8 are kept with their
//!   exact bytes, held as [`crate::raw_name`] strings; `.dockerignore`
//!   patterns match them with one character per stray byte, as Go does.
//! * Confinement is by construction: only real directories found by the walk
//!   are entered, by path under the resolved root. A directory swapped for a
//!   symlink *while* the walk runs is not guarded against (that would need
//!   `openat(O_NOFOLLOW)` all the way down, and the layer writer opening
//!   `Source::Path` files with `O_NOFOLLOW` too).
//!
//! # Metadata normalization
//!
//! Nothing from the host's umask, owner or special bits reaches an entry:
//!
//! * mode, git's rule: a regular file (and a FIFO or device) is `0755` when
//!   its owner-execute bit is set, else `0644`; directories are `0755`;
//!   symlinks `0777`. Setuid, setgid and sticky bits are dropped.
//! * uid and gid are 0; no xattrs are kept.
//! * mtime is the file's own mtime in whole seconds (0 for times before
//!   1970); the layer writer applies the `SOURCE_DATE_EPOCH` policy.

use crate::dockerignore::{self, DockerignoreError, Explanation, MatchInfo, Matcher};
use crate::entry::{Entry, EntryKind, Source};
use crate::raw_name;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Deepest directory nesting walked. The walk recurses once per level, so a
/// hostile context 2,000 levels deep (still within PATH_MAX) overflowed the
/// stack; real projects (node_modules included) stay far below.
pub const MAX_DEPTH: usize = 256;

/// Why a context could not be opened or walked.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory does not exist.
    #[error("build context `{}` does not exist; pass an existing directory", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The context path is not a directory.
    #[error("build context `{}` is not a directory; pass the directory that holds your sources", path.display())]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("cannot read `{}` in the build context; fix its permissions or exclude it in .dockerignore", path.display())]
    Unreadable {
        /// The host path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Directories nested deeper than [`MAX_DEPTH`] (the walk recurses per level).
    #[error("`{}` is nested more than {MAX_DEPTH} directories deep in the build context; exclude it in .dockerignore", path.display())]
    TooDeep {
        /// The host path of the directory past the limit.
        path: PathBuf,
    },
    /// A path given to [`BuildContext::walk_under`] is not inside the context.
    #[error("`{path}` is not a path inside the build context")]
    OutsideContext {
        /// The path as given.
        path: String,
    },
    /// The ignore file is invalid.
    #[error(transparent)]
    Ignore(#[from] DockerignoreError),
}

/// An opened build context: its resolved root and its ignore patterns.
#[derive(Clone, Debug)]
pub struct BuildContext {
    root: PathBuf,
    matcher: Matcher,
}

impl BuildContext {
    /// Open the context at `root` with the ignore file that applies to
    /// `dockerfile` (default `<root>/Dockerfile`); see the module docs.
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<Self, ContextError> {
        let resolved = resolve_root(root)?;
        let matcher = match dockerignore::ignore_file_for(root, dockerfile) {
            None => Matcher::empty(),
            Some(file) if file == root.join(dockerignore::DOCKERIGNORE) => {
                // The root ignore file is part of the context: resolve it inside the root.
                match resolve_inside(&resolved, dockerignore::DOCKERIGNORE) {
                    Some(real) => {
                        let bytes = fs::read(&real).map_err(|source| DockerignoreError::Read {
                            path: file.clone(),
                            source,
                        })?;
                        Matcher::parse(&bytes, Some(&file))?
                    }
                    None => Matcher::empty(),
                }
            }
            Some(file) => Matcher::from_file(&file)?,
        };
        Ok(BuildContext {
            root: resolved,
            matcher,
        })
    }

    /// Open the context at `root` with explicit patterns instead of an ignore file.
    pub fn with_matcher(root: &Path, matcher: Matcher) -> Result<Self, ContextError> {
        Ok(BuildContext {
            root: resolve_root(root)?,
            matcher,
        })
    }

    /// The context root, with symlinks resolved.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore patterns in force.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Which pattern decides whether `path` (context-relative) is sent.
    pub fn explain(&self, path: &str) -> Explanation {
        self.matcher.explain(path)
    }

    /// Every path a build sees, sorted, with normalized metadata (module docs).
    pub fn walk(&self) -> Result<Vec<Entry>, ContextError> {
        let mut walker = Walker::new(self);
        walker.dir(&self.root, "", &MatchInfo::default(), false)?;
        Ok(walker.finish())
    }

    /// The kept paths at and below `rel` (context-relative, e.g. `src` for
    /// `COPY src/ …`), with context-relative paths, filtered as in [`walk`](Self::walk).
    /// Returns nothing when `rel` is excluded or absent. Ancestors of `rel`
    /// are not returned, and `rel` must not pass through a symlink.
    pub fn walk_under(&self, rel: &str) -> Result<Vec<Entry>, ContextError> {
        let clean = dockerignore::clean(rel);
        if clean == "." {
            return self.walk();
        }
        if clean == ".." || clean.starts_with("../") || clean.starts_with('/') {
            return Err(ContextError::OutsideContext {
                path: rel.to_owned(),
            });
        }
        let mut info = MatchInfo::default();
        let mut abs = self.root.clone();
        let mut verdict = None;
        let parts: Vec<&str> = clean.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            abs.push(raw_name::to_os(part));
            let meta = match fs::symlink_metadata(&abs) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => return Err(ContextError::Unreadable { path: abs, source }),
            };
            let prefix = parts[..=i].join("/");
            let v = self.matcher.matches(&prefix, &info);
            let last = i + 1 == parts.len();
            if !last && !meta.is_dir() {
                // Through a symlink or a file: nothing below it in this context.
                return Ok(Vec::new());
            }
            if v.excluded && (!meta.is_dir() || !self.matcher.must_walk_excluded_dir(&prefix)) {
                return Ok(Vec::new());
            }
            info = v.info.clone();
            verdict = Some((v.excluded, meta));
        }
        let mut walker = Walker::new(self);
        if let Some((excluded, meta)) = verdict {
            if meta.is_dir() {
                if excluded {
                    walker.pending.push(Pending {
                        rel: clean.clone(),
                        abs: abs.clone(),
                        emitted: false,
                    });
                } else {
                    walker.emit(&clean, &abs, &meta)?;
                }
                walker.dir(&abs, &clean, &info, excluded)?;
            } else {
                walker.emit(&clean, &abs, &meta)?;
            }
        }
        Ok(walker.finish())
    }
}

fn resolve_root(root: &Path) -> Result<PathBuf, ContextError> {
    let resolved = fs::canonicalize(root).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ContextError::NotFound {
            path: root.to_path_buf(),
        },
        _ => ContextError::Unreadable {
            path: root.to_path_buf(),
            source,
        },
    })?;
    if !resolved.is_dir() {
        return Err(ContextError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    Ok(resolved)
}

/// Resolve `rel` inside `root`, following symlinks but never leaving the
/// root (absolute targets and `..` are taken relative to the root, as
/// BuildKit does for files it reads from a context). `None` if it does not exist.
fn resolve_inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = rel.split('/').rev().map(str::to_owned).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&done);
        candidate.push(&part);
        let meta = fs::symlink_metadata(&candidate).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(&candidate).ok()?;
            let target = target.to_str()?.to_owned();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(target.split('/').rev().map(str::to_owned));
        } else {
            done.push(part);
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Some(out)
}

/// An excluded directory walked for exceptions, emitted only if something below is kept.
struct Pending {
    rel: String,
    abs: PathBuf,
    emitted: bool,
}

struct Walker<'a> {
    matcher: &'a Matcher,
    pending: Vec<Pending>,
    out: Vec<Entry>,
    /// (device, inode) of `out[i]` when it is a multiply-linked regular file.
    links: Vec<Option<(u64, u64)>>,
}

impl<'a> Walker<'a> {
    fn new(ctx: &'a BuildContext) -> Self {
        Walker {
            matcher: &ctx.matcher,
            pending: Vec::new(),
            out: Vec::new(),
            links: Vec::new(),
        }
    }

    /// Walk the children of directory `abs` (context path `rel`, "" for the root).
    fn dir(
        &mut self,
        abs: &Path,
        rel: &str,
        info: &MatchInfo,
        excluded: bool,
    ) -> Result<(), ContextError> {
        if !rel.is_empty() && rel.split('/').count() > MAX_DEPTH {
            return Err(ContextError::TooDeep {
                path: abs.to_path_buf(),
            });
        }
        let read = match fs::read_dir(abs) {
            Ok(r) => r,
            // fsutil ignores permission errors inside excluded directories.
            Err(e) if excluded && e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
            // Vanished while walking: as if it had not been there.
            Err(e) if !rel.is_empty() && e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ContextError::Unreadable {
                    path: abs.to_path_buf(),
                    source,
                })
            }
        };
        for child in read {
            let child = child.map_err(|source| ContextError::Unreadable {
                path: abs.to_path_buf(),
                source,
            })?;
            let child_abs = child.path();
            let name = child.file_name();
            let name = raw_name::from_os(&name);
            let child_rel = if rel.is_empty() {
                name.into_owned()
            } else {
                format!("{rel}/{name}")
            };
            let file_type = match child.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ContextError::Unreadable {
                        path: child_abs,
                        source,
                    })
                }
            };
            let verdict = self.matcher.matches(&child_rel, info);
            if file_type.is_dir() {
                if verdict.excluded {
                    if !self.matcher.must_walk_excluded_dir(&child_rel) {
                        continue;
                    }
                    self.pending.push(Pending {
                        rel: child_rel.clone(),
                        abs: child_abs.clone(),
                        emitted: false,
                    });
                    let res = self.dir(&child_abs, &child_rel, &verdict.info, true);
                    self.pending.pop();
                    res?;
                } else {
                    let Some(meta) = stat_entry(&child)? else {
                        continue;
                    };
                    if !meta.is_dir() {
                        // Replaced while walking: treat it as what it is now.
                        self.emit(&child_rel, &child_abs, &meta)?;
                        continue;
                    }
                    self.emit(&child_rel, &child_abs, &meta)?;
                    self.dir(&child_abs, &child_rel, &verdict.info, false)?;
                }
            } else if !verdict.excluded && !file_type.is_socket() {
                if let Some(meta) = stat_entry(&child)? {
                    self.emit(&child_rel, &child_abs, &meta)?;
                }
            }
        }
        Ok(())
    }

    /// lstat; `None` if the path vanished meanwhile.
    fn stat(&self, abs: &Path) -> Result<Option<Metadata>, ContextError> {
        match fs::symlink_metadata(abs) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ContextError::Unreadable {
                path: abs.to_path_buf(),
                source,
            }),
        }
    }

    /// Add a kept path, after any excluded ancestors not yet added.
    fn emit(&mut self, rel: &str, abs: &Path, meta: &Metadata) -> Result<(), ContextError> {
        for i in 0..self.pending.len() {
            if self.pending[i].emitted {
                continue;
            }
            self.pending[i].emitted = true;
            let (prel, pabs) = (self.pending[i].rel.clone(), self.pending[i].abs.clone());
            if let Some(pmeta) = self.stat(&pabs)? {
                self.push(&prel, &pabs, &pmeta)?;
            }
        }
        self.push(rel, abs, meta)
    }

    fn push(&mut self, rel: &str, abs: &Path, meta: &Metadata) -> Result<(), ContextError> {
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            check_readable(abs)?;
            EntryKind::File {
                size: meta.len(),
                source: Source::Path(abs.to_path_buf()),
            }
        } else if file_type.is_symlink() {
            let target = fs::read_link(abs).map_err(|source| ContextError::Unreadable {
                path: abs.to_path_buf(),
                source,
            })?;
            let target = raw_name::from_os(target.as_os_str()).into_owned();
            EntryKind::Symlink { target }
        } else if file_type.is_char_device() {
            let (major, minor) = dev_numbers(meta.rdev());
            EntryKind::CharDevice { major, minor }
        } else if file_type.is_block_device() {
            let (major, minor) = dev_numbers(meta.rdev());
            EntryKind::BlockDevice { major, minor }
        } else if file_type.is_fifo() {
            EntryKind::Fifo
        } else {
            return Ok(()); // sockets
        };
        let link = (matches!(kind, EntryKind::File { .. }) && meta.nlink() > 1)
            .then(|| (meta.dev(), meta.ino()));
        self.links.push(link);
        self.out.push(Entry {
            path: rel.to_owned(),
            mode: normalized_mode(&kind, meta.mode()),
            kind,
            uid: 0,
            gid: 0,
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
            xattrs: BTreeMap::new(),
        });
        Ok(())
    }

    /// Sort byte-wise by path and turn later hard links into `Hardlink` entries.
    fn finish(self) -> Vec<Entry> {
        let mut all: Vec<(Entry, Option<(u64, u64)>)> =
            self.out.into_iter().zip(self.links).collect();
        all.sort_unstable_by(|a, b| a.0.path.as_bytes().cmp(b.0.path.as_bytes()));
        // Only lookups, never iteration: the map's order cannot leak into the output.
        let mut first: HashMap<(u64, u64), String> = HashMap::new();
        all.into_iter()
            .map(|(mut e, link)| {
                if let Some(key) = link {
                    match first.get(&key) {
                        Some(target) => {
                            e.kind = EntryKind::Hardlink {
                                target: target.clone(),
                            }
                        }
                        None => {
                            first.insert(key, e.path.clone());
                        }
                    }
                }
                e
            })
            .collect()
    }
}

/// lstat through the directory handle (cheaper than resolving the full path);
/// `None` if the entry vanished meanwhile.
fn stat_entry(entry: &fs::DirEntry) -> Result<Option<Metadata>, ContextError> {
    match entry.metadata() {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ContextError::Unreadable {
            path: entry.path(),
            source,
        }),
    }
}

/// The mode rule of the module docs.
pub fn normalized_mode(kind: &EntryKind, host_mode: u32) -> u32 {
    match kind {
        EntryKind::Dir => 0o755,
        EntryKind::Symlink { .. } => 0o777,
        _ if host_mode & 0o100 != 0 => 0o755,
        _ => 0o644,
    }
}

fn dev_numbers(rdev: u64) -> (u32, u32) {
    // glibc's encoding of dev_t (also what the kernel's new_encode_dev yields).
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Fail early, naming the file, when the build could not read it.
fn check_readable(abs: &Path) -> Result<(), ContextError> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(abs.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::R_OK, libc::AT_EACCESS) };
    if rc != 0 {
        return Err(ContextError::Unreadable {
            path: abs.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
