//! `Entry`: one normalized member of a layer, the common currency between the
//! context walker, RUN capture and the layer writer.
//!
//! Invariants (checked by [`check_path`]): `path` is relative, `/`-separated,
//! has no empty, `.` or `..` components, no leading `/` or `./` and no
//! trailing `/`. Directories are `EntryKind::Dir` — the tar writer adds the
//! trailing slash itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a regular file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from this host path when the layer is written.
    Path(PathBuf),
    /// Bytes held in memory (heredocs, whiteouts, generated files).
    Bytes(Arc<[u8]>),
    /// The entry's size in bytes from `offset` of the file at `path`: a
    /// member of a plain tar blob, read where it lies instead of unpacked.
    Range {
        /// The host file (a plain tar layer blob).
        path: PathBuf,
        /// Where the member's data starts.
        offset: u64,
    },
}

impl Source {
    /// A reader of the first `size` bytes of this source.
    pub fn open(&self, size: u64) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        use std::io::{Read, Seek, SeekFrom};
        Ok(match self {
            Source::Path(p) => Box::new(std::fs::File::open(p)?.take(size)),
            Source::Bytes(b) => Box::new(std::io::Cursor::new(Arc::clone(b)).take(size)),
            Source::Range { path, offset } => {
                let mut f = std::fs::File::open(path)?;
                f.seek(SeekFrom::Start(*offset))?;
                Box::new(f.take(size))
            }
        })
    }
}

/// What kind of filesystem object an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// Length in bytes; must equal what `source` yields.
        size: u64,
        /// Where the bytes come from.
        source: Source,
    },
    /// A symbolic link, target kept verbatim.
    Symlink {
        /// The link target as stored.
        target: String,
    },
    /// A hard link to an earlier entry of the same layer (layer-relative path).
    Hardlink {
        /// Path of the entry that holds the data.
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// One member of a layer with normalized metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Layer-relative path (see the module docs for the invariants).
    pub path: String,
    /// The object kind and its payload.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask); no type bits.
    pub mode: u32,
    /// Owner uid as it should appear in the image.
    pub uid: u32,
    /// Owner gid as it should appear in the image.
    pub gid: u32,
    /// Modification time in seconds since the Unix epoch (the writer applies its policy).
    pub mtime: u64,
    /// Extended attributes to keep (already filtered through an allowlist).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    /// A directory entry owned by root, mode 0755.
    pub fn dir(path: impl Into<String>) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    /// A regular file with in-memory content, owned by root, mode 0644.
    pub fn file_bytes(path: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes: Arc<[u8]> = bytes.into();
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size: bytes.len() as u64,
                source: Source::Bytes(bytes),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }
}

/// Why a layer path is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// Empty path.
    #[error("empty path")]
    Empty,
    /// Absolute path.
    #[error("path `{0}` is absolute")]
    Absolute(String),
    /// A component is empty, `.` or `..`, or the path ends in `/`.
    #[error("path `{0}` is not normalized (empty, `.` or `..` component)")]
    NotNormalized(String),
    /// A NUL byte.
    #[error("path `{0}` contains a NUL byte")]
    Nul(String),
}

/// Check that `path` satisfies the [`Entry::path`] invariants.
pub fn check_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute(path.to_owned()));
    }
    if path.contains('\0') {
        return Err(PathError::Nul(path.to_owned()));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PathError::NotNormalized(path.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_path_accepts_normal_and_rejects_the_rest() {
        assert!(check_path("a/b.txt").is_ok());
        assert!(check_path(".wh..wh..opq").is_ok());
        for bad in [
            "", "/a", "a//b", "./a", "a/./b", "a/../b", "..", "a/", "a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
