//! Read-only filesystem views that COPY sources and destinations resolve in:
//! the filtered build context ([`EntryFs`]) and a stage's stacked layer
//! directories ([`MergedView`]). Paths are relative, `/`-separated, `""` is
//! the root; symlinks resolve with chroot semantics, so nothing ever reaches
//! outside the view.

use crate::sandbox::layer_dirs::OwnerMap;
use cairn_layers::{raw_name, Entry, EntryKind, Source};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A read-only tree of entries.
pub trait SourceFs: Send + Sync {
    /// The entry at `path` without following a final symlink; `None` if absent.
    fn lstat(&self, path: &str) -> io::Result<Option<Entry>>;
    /// Sorted child names of directory `path`.
    fn read_dir(&self, path: &str) -> io::Result<Vec<String>>;
    /// Which inode a regular file returned by [`SourceFs::lstat`] shares with
    /// other paths of this view (its hard-link group), when the view holds it
    /// as a file on disk with more than one link. Views that record hard links
    /// as [`EntryKind::Hardlink`] entries keep the default.
    fn link_key(&self, _entry: &Entry) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }
}

/// How a layer's member changes a path of the view below it (a made-ahead
/// COPY checks a later layer's members against what it copied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// A directory (merged with the one below).
    Dir,
    /// A directory whose lower content is hidden (`.wh..wh..opq` in it).
    Opaque,
    /// Removed (a whiteout).
    Removed,
    /// A file, symlink, or any other non-directory.
    Other,
}

/// Follow symlinks in every component of `path` inside `fs`, as if `fs` were
/// the root (`..` and absolute targets never leave it). Returns the resolved
/// path; the final component is followed too when `follow_last`.
pub fn resolve(fs: &dyn SourceFs, path: &str, follow_last: bool) -> io::Result<String> {
    let mut pending: Vec<String> = components(path).into_iter().rev().collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        let is_last = pending.is_empty();
        if is_last && !follow_last {
            break;
        }
        let cur = done.join("/");
        if let Some(Entry {
            kind: EntryKind::Symlink { target },
            ..
        }) = fs.lstat(&cur)?
        {
            hops += 1;
            if hops > 40 {
                return Err(io::Error::other(format!(
                    "too many levels of symbolic links resolving `{path}`"
                )));
            }
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            for t in components(&target).into_iter().rev() {
                pending.push(t);
            }
        }
    }
    Ok(done.join("/"))
}

/// Split into components, dropping empty and `.` ones (`..` kept for the caller).
pub fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect()
}

/// Clean a path lexically, never above the root: `a/../../b/./c/` → `b/c`.
pub fn clean(path: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in components(path) {
        if c == ".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.join("/")
}

/// An in-memory view over a list of entries (the filtered build context).
pub struct EntryFs {
    entries: BTreeMap<String, Entry>,
    children: BTreeMap<String, Vec<String>>,
}

impl EntryFs {
    /// Index `entries` (paths relative to the root). Missing parents are implied directories.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut map = BTreeMap::new();
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        children.insert(String::new(), Vec::new());
        for e in entries {
            let mut parent = String::new();
            for c in components(&e.path) {
                let full = if parent.is_empty() {
                    c.clone()
                } else {
                    format!("{parent}/{c}")
                };
                let kids = children.entry(parent.clone()).or_default();
                if kids.last() != Some(&c) && !kids.contains(&c) {
                    kids.push(c.clone());
                }
                parent = full;
            }
            if e.is_dir() {
                children.entry(e.path.clone()).or_default();
            }
            map.insert(e.path.clone(), e);
        }
        for kids in children.values_mut() {
            kids.sort();
        }
        EntryFs {
            entries: map,
            children,
        }
    }
}

impl EntryFs {
    /// Every entry given to [`EntryFs::new`] (not the implied directories), by path.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }
}

impl SourceFs for EntryFs {
    fn lstat(&self, path: &str) -> io::Result<Option<Entry>> {
        if path.is_empty() {
            return Ok(Some(Entry::dir("")));
        }
        if let Some(e) = self.entries.get(path) {
            return Ok(Some(e.clone()));
        }
        Ok(self.children.contains_key(path).then(|| Entry::dir(path)))
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        Ok(self.children.get(path).cloned().unwrap_or_default())
    }
}

/// One layer of a [`MergedView`].
#[derive(Clone)]
pub enum ViewLayer {
    /// Unpacked into a directory in overlayfs form.
    Dir(PathBuf),
    /// A layer as entries (no whiteouts, no opaque directories, owners in
    /// image ids): one this build wrote or reused for a COPY/WORKDIR, or a
    /// plain stage layer indexed where it lies in its blob. Read without
    /// unpacking anything.
    Entries(Arc<EntryFs>),
}

/// The merged view of a stage's layers, bottom layer first, each unpacked
/// into its own directory in overlayfs form (whiteout = char device 0/0,
/// opaque directory = xattr `user.overlay.opaque=y` or
/// `trusted.overlay.opaque=y`) or held as entries in memory.
pub struct MergedView {
    layers: Vec<ViewLayer>,
    owners: OwnerMap,
}

enum Found {
    Absent,
    Whiteout,
    Entry(Box<Entry>, bool),
}

impl MergedView {
    /// A view over `layers` (bottom first).
    pub fn new(layers: Vec<PathBuf>) -> Self {
        MergedView {
            layers: layers.into_iter().map(ViewLayer::Dir).collect(),
            owners: OwnerMap::default(),
        }
    }

    /// A view whose directory layers' owners are read through `owners`
    /// (layer directories unpacked in a user namespace hold host ids).
    pub fn with_owners(layers: Vec<ViewLayer>, owners: OwnerMap) -> Self {
        MergedView { layers, owners }
    }

    fn probe(layer: &ViewLayer, path: &str, owners: &OwnerMap) -> io::Result<Found> {
        let layer = match layer {
            ViewLayer::Dir(d) => d,
            ViewLayer::Entries(fs) => {
                return Ok(match fs.lstat(path)? {
                    Some(e) => Found::Entry(Box::new(e), false),
                    None => Found::Absent,
                })
            }
        };
        let host = host_path(layer, path);
        let md = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Found::Absent),
            Err(e) => return Err(e),
        };
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            return Ok(Found::Whiteout);
        }
        let opaque = ft.is_dir() && is_opaque(&host);
        let mut entry = entry_from_metadata(path, &host, &md)?;
        (entry.uid, entry.gid) = owners.container_owner(&host, entry.uid, entry.gid);
        Ok(Found::Entry(Box::new(entry), opaque))
    }

    /// The layers (top first) in which directory `dir` contributes entries.
    fn dir_layers(&self, dir: &str) -> io::Result<Vec<usize>> {
        let mut live: Vec<usize> = (0..self.layers.len()).rev().collect();
        let mut prefix = String::new();
        for c in components(dir) {
            prefix = if prefix.is_empty() {
                c
            } else {
                format!("{prefix}/{c}")
            };
            let mut next = Vec::new();
            for &i in &live {
                match Self::probe(&self.layers[i], &prefix, &self.owners)? {
                    Found::Absent => continue,
                    Found::Whiteout => break,
                    Found::Entry(e, opaque) => {
                        if !e.is_dir() {
                            break;
                        }
                        next.push(i);
                        if opaque {
                            break;
                        }
                    }
                }
            }
            live = next;
            if live.is_empty() {
                break;
            }
        }
        Ok(live)
    }
}

/// `path` (a view path, names maybe not UTF-8: see [`raw_name`]) below `dir` on the host.
fn host_path(dir: &Path, path: &str) -> PathBuf {
    dir.join(raw_name::to_os(path))
}

/// Whether the layer directory `p` is opaque (overlay's xattr, `trusted.`
/// or, unpacked in a user namespace, `user.`).
pub fn is_opaque(p: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| matches!(xattr_get(p, name), Some(v) if v == b"y"))
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cp = CString::new(p.as_os_str().as_bytes()).ok()?;
    let cn = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Build an [`Entry`] from host metadata (ownership and mode as on disk).
pub fn entry_from_metadata(path: &str, host: &Path, md: &std::fs::Metadata) -> io::Result<Entry> {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File {
            size: md.len(),
            source: Source::Path(host.to_owned()),
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(host)?;
        EntryKind::Symlink {
            target: raw_name::from_os(t.as_os_str()).into_owned(),
        }
    } else if ft.is_char_device() || ft.is_block_device() {
        let rdev = md.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        if ft.is_char_device() {
            EntryKind::CharDevice { major, minor }
        } else {
            EntryKind::BlockDevice { major, minor }
        }
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else {
        return Err(io::Error::other(format!(
            "unsupported file type at {}",
            host.display()
        )));
    };
    Ok(Entry {
        path: path.to_owned(),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime().max(0) as u64,
        xattrs: BTreeMap::new(),
    })
}

impl SourceFs for MergedView {
    fn lstat(&self, path: &str) -> io::Result<Option<Entry>> {
        let path = clean(path);
        if path.is_empty() {
            let mut root = Entry::dir("");
            for l in self.layers.iter().rev() {
                // Written layers do not carry the root's metadata.
                let ViewLayer::Dir(l) = l else { continue };
                if let Ok(md) = std::fs::metadata(l) {
                    root = entry_from_metadata("", l, &md)?;
                    (root.uid, root.gid) = self.owners.container_owner(l, root.uid, root.gid);
                    break;
                }
            }
            return Ok(Some(root));
        }
        let (parent, _) = path.rsplit_once('/').unwrap_or(("", &path));
        for i in self.dir_layers(parent)? {
            match Self::probe(&self.layers[i], &path, &self.owners)? {
                Found::Absent => continue,
                Found::Whiteout => return Ok(None),
                Found::Entry(e, _) => return Ok(Some(*e)),
            }
        }
        Ok(None)
    }

    /// Unpacked layer directories hold an image's hard links as real links
    /// (a layer's tar links only inside that layer), so a file of one of them
    /// with several links shares its inode with exactly its group.
    fn link_key(&self, entry: &Entry) -> io::Result<Option<(u64, u64)>> {
        let EntryKind::File {
            source: Source::Path(host),
            ..
        } = &entry.kind
        else {
            return Ok(None);
        };
        // Only a file read from a layer directory at its own path: a written
        // layer's entry may point at some other layer's file.
        let in_layer = self
            .layers
            .iter()
            .any(|l| matches!(l, ViewLayer::Dir(d) if *host == host_path(d, &entry.path)));
        if !in_layer {
            return Ok(None);
        }
        let md = std::fs::symlink_metadata(host)?;
        Ok((md.file_type().is_file() && md.nlink() > 1).then(|| (md.dev(), md.ino())))
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let path = clean(path);
        let mut seen: BTreeMap<String, bool> = BTreeMap::new(); // name → visible
        for i in self.dir_layers(&path)? {
            let dir = match &self.layers[i] {
                ViewLayer::Dir(d) => host_path(d, &path),
                ViewLayer::Entries(fs) => {
                    for name in fs.read_dir(&path)? {
                        seen.entry(name).or_insert(true);
                    }
                    continue;
                }
            };
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for ent in rd {
                let ent = ent?;
                let name = raw_name::from_os(&ent.file_name()).into_owned();
                if seen.contains_key(&name) {
                    continue;
                }
                let md = ent.metadata()?;
                let whiteout = md.file_type().is_char_device() && md.rdev() == 0;
                seen.insert(name, !whiteout);
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|(n, visible)| visible.then_some(n))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mknod_whiteout(p: &Path) -> bool {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path; mknod of a 0/0 char device (needs CAP_MKNOD).
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) == 0 }
    }

    #[test]
    fn clean_never_climbs_above_root() {
        assert_eq!(clean("a/../../b/./c/"), "b/c");
        assert_eq!(clean("/../.."), "");
    }

    #[test]
    fn entry_fs_resolves_symlinks_inside_the_root() {
        let mut link = Entry::dir("x");
        link.kind = EntryKind::Symlink {
            target: "../../../etc".into(),
        };
        let fs = EntryFs::new(vec![
            Entry::dir("etc"),
            Entry::file_bytes("etc/passwd", &b"root"[..]),
            link,
        ]);
        assert_eq!(resolve(&fs, "x/passwd", true).unwrap(), "etc/passwd");
        assert_eq!(resolve(&fs, "x", false).unwrap(), "x");
        assert_eq!(fs.read_dir("").unwrap(), vec!["etc", "x"]);
    }

    #[test]
    fn merged_view_reads_written_layers_from_memory_over_directories() {
        let t = tempfile::tempdir().unwrap();
        let l1 = t.path().join("l1");
        fs::create_dir_all(l1.join("app/lib")).unwrap();
        fs::write(l1.join("app/lib/a.js"), "a").unwrap();
        fs::write(l1.join("app/config"), "old").unwrap();
        let mut cfg = Entry::file_bytes("app/config", &b"new"[..]);
        cfg.uid = 1001;
        let top = ViewLayer::Entries(Arc::new(EntryFs::new(vec![
            cfg,
            Entry::file_bytes("srv/b.js", &b"b"[..]),
        ])));
        let v = MergedView::with_owners(vec![ViewLayer::Dir(l1.clone()), top], OwnerMap::default());
        let e = v.lstat("app/config").unwrap().unwrap();
        assert_eq!(e.uid, 1001, "the upper, in-memory entry wins");
        assert!(
            matches!(e.kind, EntryKind::File { source: Source::Bytes(ref b), .. } if &b[..] == b"new")
        );
        assert_eq!(v.read_dir("").unwrap(), vec!["app", "srv"]);
        assert_eq!(v.read_dir("app").unwrap(), vec!["config", "lib"]);
        assert!(
            v.lstat("app/lib/a.js").unwrap().is_some(),
            "lower dir still visible"
        );
        assert!(v.lstat("srv/b.js").unwrap().is_some());
        assert!(v.lstat("app/config/x").unwrap().is_none());
        // A file in memory hides a lower directory of the same name.
        let over = ViewLayer::Entries(Arc::new(EntryFs::new(vec![Entry::file_bytes(
            "app/lib",
            &b"f"[..],
        )])));
        let v = MergedView::with_owners(vec![ViewLayer::Dir(l1), over], OwnerMap::default());
        assert!(v.lstat("app/lib/a.js").unwrap().is_none());
    }

    #[test]
    fn merged_view_applies_whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
        fs::create_dir_all(l1.join("etc/apk")).unwrap();
        fs::write(l1.join("etc/motd"), "hi").unwrap();
        fs::write(l1.join("etc/apk/world"), "old").unwrap();
        fs::write(l1.join("etc/apk/arch"), "x86_64").unwrap();
        fs::create_dir_all(l2.join("etc/apk")).unwrap();
        fs::write(l2.join("etc/apk/world"), "new").unwrap();
        if !mknod_whiteout(&l2.join("etc/motd")) {
            eprintln!("skipping: cannot mknod a whiteout here (not root)");
            return;
        }
        let opq = std::ffi::CString::new(l2.join("etc/apk").to_str().unwrap()).unwrap();
        let name = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: valid strings and a one-byte value.
        let rc =
            unsafe { libc::lsetxattr(opq.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0);
        let v = MergedView::new(vec![l1, l2]);
        assert!(v.lstat("etc/motd").unwrap().is_none(), "whited out");
        assert!(
            v.lstat("etc/apk/arch").unwrap().is_none(),
            "hidden by opaque dir"
        );
        assert_eq!(v.read_dir("etc").unwrap(), vec!["apk"]);
        assert_eq!(v.read_dir("etc/apk").unwrap(), vec!["world"]);
        match v.lstat("etc/apk/world").unwrap().unwrap().kind {
            EntryKind::File {
                source: Source::Path(p),
                ..
            } => assert_eq!(fs::read_to_string(p).unwrap(), "new"),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn link_keys_only_for_files_read_in_place_from_a_layer_directory() {
        let t = tempfile::tempdir().unwrap();
        let l1 = t.path().join("l1");
        fs::create_dir_all(l1.join("out")).unwrap();
        fs::write(l1.join("out/a"), "a").unwrap();
        fs::hard_link(l1.join("out/a"), l1.join("out/b")).unwrap();
        fs::write(l1.join("out/solo"), "s").unwrap();
        // A written layer whose entry reads its bytes from l1's linked file.
        let copied = Entry {
            kind: EntryKind::File {
                size: 1,
                source: Source::Path(l1.join("out/a")),
            },
            ..Entry::file_bytes("y/a", &b""[..])
        };
        let top = ViewLayer::Entries(Arc::new(EntryFs::new(vec![copied])));
        let v = MergedView::with_owners(vec![ViewLayer::Dir(l1), top], OwnerMap::default());
        let key = |p: &str| v.link_key(&v.lstat(p).unwrap().unwrap()).unwrap();
        assert!(key("out/a").is_some());
        assert_eq!(key("out/a"), key("out/b"), "one inode, one group");
        assert_eq!(key("out/solo"), None, "a single link is no group");
        assert_eq!(key("y/a"), None, "a copy of a linked file is its own file");
        assert_eq!(
            EntryFs::new(vec![]).link_key(&Entry::dir("d")).unwrap(),
            None
        );
    }
}
