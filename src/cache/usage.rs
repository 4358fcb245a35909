//! What the cache directory holds, bucket by bucket: the items prune can
//! remove, each with its size and last use.
//!
//! Sizes are apparent sizes (`st_size`) of every inode under the cache —
//! files, directories, symlinks, device nodes — each hard-linked inode
//! counted once: the measure of `du -sb`, so the buckets add up to what it
//! reports for the cache directory. The walk is iterative (a layer's tree
//! may be deep) and never follows symlinks.

use super::layout::{Bucket, CacheLayout, LayerForm};
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One thing prune can remove.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its bucket.
    pub bucket: Bucket,
    /// Its path (a file or a tree).
    pub path: PathBuf,
    /// Apparent bytes of everything under it (inodes seen elsewhere first not counted).
    pub bytes: u64,
    /// Last use: mtime, or for an unpacked layer its use stamp or its
    /// publication (ctime), whichever is later; raised by prune for blobs
    /// that records use.
    pub used: SystemTime,
}

/// The whole cache.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Removable items.
    pub items: Vec<Item>,
    /// Bytes of the directories that hold items (the root, bucket
    /// directories, `blobs/sha256`, form directories, `sandbox/runs`) and
    /// of the lock file, by bucket.
    pub skeleton: Vec<(Bucket, PathBuf, u64)>,
    /// Directories this user could not read (their content is not counted).
    pub unreadable: Vec<PathBuf>,
}

impl Usage {
    /// Bytes of bucket `b`.
    pub fn bucket_bytes(&self, b: Bucket) -> u64 {
        let items: u64 = self
            .items
            .iter()
            .filter(|i| i.bucket == b)
            .map(|i| i.bytes)
            .sum();
        let skeleton: u64 = self
            .skeleton
            .iter()
            .filter(|(s, _, _)| *s == b)
            .map(|(_, _, n)| n)
            .sum();
        items + skeleton
    }

    /// Items of bucket `b`.
    pub fn bucket_items(&self, b: Bucket) -> usize {
        self.items.iter().filter(|i| i.bucket == b).count()
    }

    /// Bytes of the whole cache directory.
    pub fn total(&self) -> u64 {
        self.items.iter().map(|i| i.bytes).sum::<u64>()
            + self.skeleton.iter().map(|(_, _, n)| n).sum::<u64>()
    }
}

/// Set `path`'s mtime to now (its last use); best effort: a stamp only
/// orders what prune removes first.
pub fn touch(path: &Path) {
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    let omit = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    };
    let times = rustix::fs::Timestamps {
        last_access: omit,
        last_modification: now,
    };
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
}

/// Mark the unpacked layer `diff_id` used now (creating its stamp).
pub fn touch_layer(layout: &CacheLayout, diff_id: &cairn_layers::Digest) {
    let stamp = layout.layer_use(diff_id);
    if fs::symlink_metadata(&stamp).is_ok() {
        touch(&stamp);
        return;
    }
    let _ = fs::create_dir_all(layout.dir(Bucket::LayerUse));
    let _ = fs::File::create(&stamp);
}

struct Walker {
    seen: HashSet<(u64, u64)>,
    unreadable: Vec<PathBuf>,
}

impl Walker {
    /// Apparent bytes of `md`'s inode unless counted already.
    fn inode(&mut self, md: &fs::Metadata) -> u64 {
        if !md.is_dir() && md.nlink() > 1 && !self.seen.insert((md.dev(), md.ino())) {
            return 0;
        }
        md.size()
    }

    /// Apparent bytes of the tree at `path` (whose metadata is `md`).
    fn tree(&mut self, path: &Path, md: &fs::Metadata) -> u64 {
        let mut total = self.inode(md);
        if !md.is_dir() {
            return total;
        }
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else {
                self.unreadable.push(dir);
                continue;
            };
            for e in rd.flatten() {
                let Ok(md) = e.metadata() else { continue };
                total += self.inode(&md);
                if md.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        total
    }
}

/// Whether the children of `path` (in `bucket`, at `depth` below the root)
/// are items of their own, the directory itself counted as skeleton.
fn expands(layout: &CacheLayout, bucket: Bucket, path: &Path, depth: usize) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match (bucket, depth) {
        (_, 0) => true,
        (Bucket::Images | Bucket::Memos | Bucket::Other | Bucket::Root, _) => false,
        (_, 1) => true,
        (Bucket::Blobs, 2) => path == layout.blob_dir(),
        (Bucket::Layers, 2) => LayerForm::of(&name) == LayerForm::Current,
        (Bucket::Sandbox, 2) => name == "runs",
        _ => false,
    }
}

fn ctime(md: &fs::Metadata) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::new(md.ctime().max(0) as u64, 0)
}

/// Walk the cache at `layout`.
pub fn scan(layout: &CacheLayout) -> Usage {
    let mut w = Walker {
        seen: HashSet::new(),
        unreadable: Vec::new(),
    };
    let mut usage = Usage::default();
    let root = layout.root();
    let Ok(md) = fs::symlink_metadata(root) else {
        return usage;
    };
    usage
        .skeleton
        .push((Bucket::Root, root.to_path_buf(), w.inode(&md)));
    // (path, bucket, depth) of directories whose children are items.
    let mut stack = vec![(root.to_path_buf(), Bucket::Root, 0usize)];
    while let Some((dir, bucket, depth)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else {
            w.unreadable.push(dir);
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(md) = e.metadata() else { continue };
            let b = if depth == 0 {
                Bucket::of_top(&e.file_name().to_string_lossy())
            } else {
                bucket
            };
            if b == Bucket::Root {
                usage.skeleton.push((b, path, w.inode(&md)));
                continue;
            }
            if md.is_dir() && expands(layout, b, &path, depth + 1) {
                usage.skeleton.push((b, path.clone(), w.inode(&md)));
                stack.push((path, b, depth + 1));
                continue;
            }
            let mut used = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if b == Bucket::Layers && depth == 2 {
                // Published by a rename (ctime); used when its stamp says.
                used = used.max(ctime(&md));
                if let Ok(d) = cairn_layers::Digest::from_hex(&e.file_name().to_string_lossy()) {
                    if let Ok(t) = fs::metadata(layout.layer_use(&d)).and_then(|m| m.modified()) {
                        used = t;
                    }
                }
            }
            if b == Bucket::Images {
                if let Ok(t) = fs::metadata(path.join("index.json")).and_then(|m| m.modified()) {
                    used = t;
                }
            }
            let bytes = w.tree(&path, &md);
            usage.items.push(Item {
                bucket: b,
                path,
                bytes,
                used,
            });
        }
    }
    usage.unreadable = w.unreadable;
    usage
}

/// Parse `512MB`, `2g`, `1.5GiB`, `1024` (bytes); units are binary, as docker's.
pub fn parse_size(s: &str) -> Result<u64, super::Error> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| super::Error::InvalidSize { text: s.into() })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(super::Error::InvalidSizeUnit {
                unit: u.into(),
                text: s.into(),
            })
        }
    };
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up_to_a_plain_walk_with_hard_links_once() {
        let t = tempfile::tempdir().unwrap();
        let l = CacheLayout::new(t.path().join("c"));
        let host = l.host_layers().join("ab");
        fs::create_dir_all(host.join("etc")).unwrap();
        fs::write(host.join("etc/a"), vec![1u8; 5000]).unwrap();
        fs::hard_link(host.join("etc/a"), host.join("etc/b")).unwrap();
        fs::create_dir_all(l.blob_dir()).unwrap();
        fs::write(l.blob_dir().join("00"), b"blob").unwrap();
        fs::write(l.lock_file(), b"").unwrap();
        fs::write(l.root().join("stray"), b"xyz").unwrap();
        fs::create_dir_all(l.dir(Bucket::Images).join("blobs")).unwrap();
        let u = scan(&l);
        // Every inode once, as `du -sb` counts.
        let mut w = Walker {
            seen: HashSet::new(),
            unreadable: Vec::new(),
        };
        let whole = w.tree(l.root(), &fs::symlink_metadata(l.root()).unwrap());
        assert_eq!(u.total(), whole);
        assert_eq!(
            Bucket::ALL.iter().map(|b| u.bucket_bytes(*b)).sum::<u64>(),
            whole
        );
        let dirs: u64 = [
            l.dir(Bucket::Layers),
            l.host_layers(),
            host.clone(),
            host.join("etc"),
        ]
        .iter()
        .map(|d| fs::metadata(d).unwrap().len())
        .sum();
        assert_eq!(
            u.bucket_bytes(Bucket::Layers),
            dirs + 5000,
            "a hard link counted twice"
        );
        assert_eq!(u.bucket_items(Bucket::Layers), 1);
        assert_eq!(u.bucket_items(Bucket::Blobs), 1);
        assert_eq!(u.bucket_items(Bucket::Other), 1);
        assert_eq!(u.bucket_items(Bucket::Images), 1);
    }
}
