//! Named build contexts (`cairn build --build-context NAME=…`, as buildx):
//! a name that `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME`
//! read instead of the stage or image of that name.
//!
//! An image (`docker-image://REF`) or an OCI layout (`oci-layout://DIR[:TAG|@DIGEST]`)
//! becomes an image reference the planner puts in place of the name, fetched
//! like any base. A directory is a second build context: walked with its own
//! `.dockerignore`, never read outside itself (symlinks resolve inside it), and
//! keyed by the content of what a step reads, exactly like the main context.

use super::copy::{plan, CopySpec};
use super::fs::EntryFs;
use super::Error;
use cairn_layers::context::BuildContext;
use cairn_layers::{raw_name, Entry, EntryKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// What a `--build-context` name stands for.
#[derive(Clone, Debug)]
pub enum NamedContext {
    /// A directory on this machine.
    Dir(Arc<LocalContext>),
    /// An image reference as [`super::bases::ImageSource`] takes it
    /// (`REF`, or `oci:DIR[:TAG|@DIGEST]` for a layout).
    Image(String),
}

/// `--build-context` values by name.
pub type NamedContexts = BTreeMap<String, NamedContext>;

/// The planner's view: which names are directories, which images.
pub fn for_planning(named: &NamedContexts) -> BTreeMap<String, crate::frontend::graph::Named> {
    use crate::frontend::graph::Named;
    named
        .iter()
        .map(|(k, v)| {
            let n = match v {
                NamedContext::Dir(_) => Named::Local,
                NamedContext::Image(r) => Named::Image(r.clone()),
            };
            (k.clone(), n)
        })
        .collect()
}

/// A directory context, walked once per build on first use.
pub struct LocalContext {
    /// The directory (absolute).
    pub root: PathBuf,
    walk: OnceLock<Result<Vec<Entry>, crate::error::Shared>>,
    fs: OnceLock<EntryFs>,
    /// The filtered tree as a directory, for `RUN --mount=from=NAME`.
    tree: OnceLock<Result<tempfile::TempDir, crate::error::Shared>>,
}

impl std::fmt::Debug for LocalContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalContext")
            .field("root", &self.root)
            .finish()
    }
}

impl LocalContext {
    /// A context at `root` (not read yet).
    pub fn new(root: PathBuf) -> Self {
        LocalContext {
            root,
            walk: OnceLock::new(),
            fs: OnceLock::new(),
            tree: OnceLock::new(),
        }
    }

    /// The kept entries (its own `.dockerignore` applied; names that are
    /// not UTF-8 kept exactly, see `cairn_layers::raw_name`).
    pub fn walk(&self) -> Result<&Vec<Entry>, Error> {
        let r = self.walk.get_or_init(|| {
            BuildContext::open(&self.root, None)
                .and_then(|c| c.walk())
                .map_err(crate::error::Shared::new)
        });
        r.as_ref().map_err(|e| Error::Context(e.error()))
    }

    /// The kept entries as a source filesystem.
    pub fn fs(&self) -> Result<&EntryFs, Error> {
        let entries = self.walk()?;
        Ok(self
            .fs
            .get_or_init(|| EntryFs::new(entries.iter().cloned())))
    }

    /// Everything the context holds, as `(path, description)` cache inputs:
    /// what a step that sees the whole context is keyed by.
    pub fn content_inputs(
        &self,
        hashes: &super::hash_cache::HashCache,
    ) -> Result<Vec<(String, String)>, Error> {
        let entries = self.walk()?;
        entries
            .iter()
            .map(|e| Ok((e.path.clone(), describe_entry(e, hashes)?)))
            .collect()
    }

    /// The whole context planned as `COPY . /` would (root-owned, modes kept).
    pub fn as_root_fs(&self) -> Result<Vec<Entry>, Error> {
        let spec = CopySpec {
            sources: vec![".".into()],
            dest: "/".into(),
            owner: None,
            chmod: None,
            parents: false,
            link: false,
        };
        let empty = EntryFs::new(Vec::new());
        Ok(plan(&spec, self.fs()?, &empty, &|_| false)?)
    }

    /// The kept entries copied into a private directory under `scratch_root`
    /// (once per build), so a bind mount shows what `.dockerignore` keeps and
    /// nothing else. Files are hard-linked where possible: the mount is
    /// read-only, and a writable one writes to a throwaway upper directory.
    pub fn tree(&self, scratch_root: &Path) -> Result<&Path, Error> {
        let r = self.tree.get_or_init(|| {
            self.materialize(scratch_root)
                .map_err(crate::error::Shared::new)
        });
        r.as_ref()
            .map(tempfile::TempDir::path)
            .map_err(|e| Error::Context(e.error()))
    }

    fn materialize(&self, scratch_root: &Path) -> Result<tempfile::TempDir, Error> {
        let dir = tempfile::Builder::new()
            .prefix("named-context-")
            .tempdir_in(scratch_root)
            .map_err(Error::NamedContextDir)?;
        write_tree(self.walk()?, dir.path())?;
        Ok(dir)
    }
}

/// Write context `entries` below `dir` for a bind mount: files hard-linked
/// where possible (the mount is read-only, and a writable one writes to a
/// throwaway upper directory), links as links, directories with their modes.
pub(crate) fn write_tree(entries: &[Entry], dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|source| Error::MountDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut dirs = Vec::new();
    for e in entries {
        cairn_layers::entry::check_path(&e.path)?;
        // Names that are not UTF-8 are back to their exact bytes on disk.
        let dst = dir.join(raw_name::to_os(&e.path));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(Error::MountTree)?;
        }
        match &e.kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&dst).map_err(Error::MountTree)?;
                dirs.push((dst, e.mode));
            }
            EntryKind::File {
                source: cairn_layers::Source::Path(src),
                ..
            } if std::fs::hard_link(src, &dst).is_err() => {
                std::fs::copy(src, &dst).map_err(|source| Error::MountCopy {
                    path: src.clone(),
                    source,
                })?;
            }
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(raw_name::to_os(target), &dst)
                    .map_err(Error::MountTree)?
            }
            _ => {}
        }
    }
    // Modes last, children first: a read-only directory must be filled before.
    for (d, mode) in dirs.iter().rev() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(*mode))
            .map_err(Error::MountTree)?;
    }
    // The mount's root: readable by every USER of the step, like a context directory.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(Error::MountTree)?;
    Ok(())
}

/// How a context entry enters a cache key: kind, mode, content digest, link target.
pub(crate) fn describe_entry(
    e: &Entry,
    hashes: &super::hash_cache::HashCache,
) -> Result<String, Error> {
    Ok(match &e.kind {
        EntryKind::File {
            source: cairn_layers::Source::Path(p),
            ..
        } => format!(
            "file {:o} {}",
            e.mode,
            hashes.digest(p).map_err(|source| Error::ReadContextFile {
                path: p.clone(),
                source,
            })?
        ),
        EntryKind::Dir => format!("dir {:o}", e.mode),
        EntryKind::Symlink { target } => format!("symlink -> {target}"),
        other => format!("{other:?} {:o}", e.mode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_context_keeps_what_its_own_dockerignore_keeps() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("lib");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.js"), "a").unwrap();
        std::fs::write(root.join("secret.env"), "x").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.env\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("src/out")).unwrap();
        let c = LocalContext::new(root);
        let paths: Vec<&str> = c.walk().unwrap().iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"src/a.js"), "{paths:?}");
        assert!(!paths.contains(&"secret.env"), "{paths:?}");
        let scratch = t.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let tree = c.tree(&scratch).unwrap();
        assert_eq!(std::fs::read_to_string(tree.join("src/a.js")).unwrap(), "a");
        assert!(!tree.join("secret.env").exists());
        // A link stays a link: the mount resolves it inside the rootfs, never on the host.
        assert!(std::fs::symlink_metadata(tree.join("src/out"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
