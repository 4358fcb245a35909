//! Safe extraction of layer tars into a directory: nothing is ever written,
//! linked, chmod'ed or deleted outside `dest` (but for donor files the caller
//! hands over, which are moved in: see Policy).
//!
//! # How confinement works
//! Every path is split into components and walked from an `O_PATH` handle
//! on `dest` with `openat(…, O_DIRECTORY | O_NOFOLLOW)` per component, so a
//! symlink anywhere in the parent chain — one from earlier in the same tar or
//! one already in `dest` — stops the walk with an error instead of being
//! followed. The final component is always created with a `*at` call on that
//! parent handle: files with `O_CREAT | O_EXCL | O_NOFOLLOW` after whatever was
//! there has been removed, so writing to a name that is a symlink or a hard
//! link to something else never touches the old target. Symlinks are created
//! verbatim and never followed while writing. A small stack of open parent
//! handles makes consecutive entries in the same directory cheap.
//!
//! # Policy
//! * Names: leading `./`, `.` components, doubled and trailing `/` are
//!   tolerated; absolute names and `..` components are refused (GNU tar
//!   strips a leading `/`; a layer never needs one, so we reject it). The
//!   root entry (`./`) is skipped: `dest` keeps its own metadata.
//! * Hard links must name an earlier path inside the layer root (same rules,
//!   no symlinks on the way, not a directory, not the link itself).
//! * Replacing: a directory entry merges into an existing directory; any other
//!   combination removes what is there first (recursively for directories),
//!   as `tar` and container runtimes do for layers. A parent that exists as a
//!   non-directory is an error, as in GNU tar.
//! * Metadata: mode bits including setuid/setgid/sticky are applied with
//!   `fchmod` after `fchown`, so ownership changes cannot clear them;
//!   ownership only with [`UnpackOptions::preserve_ownership`] (`lchown` for
//!   symlinks); mtimes (nanoseconds from PAX `mtime` when present) are applied
//!   to atime and mtime; directories get their metadata after everything else,
//!   deepest first, so children do not disturb their parents' mtimes and a
//!   read-only directory can still be filled.
//! * xattrs (PAX `SCHILY.xattr.*`): those [`crate::xattr::keep`] keeps for a
//!   rootfs (`security.capability` and `user.*`); `user.overlay.*` is dropped
//!   because on a `userxattr` overlay mount a layer could otherwise fake
//!   opaque directories (see sandbox notes §3), and `trusted.*`,
//!   `security.selinux`, ACLs and the rest are dropped as host policy. Dropped and failed ones are listed in
//!   [`UnpackStats::skipped_xattrs`].
//! * Devices: created with `mknod`; when that fails with `EPERM` (rootless, or
//!   root inside a user namespace) they are skipped and listed in
//!   [`UnpackStats::skipped_devices`].
//! * The stream must end with tar's end-of-archive block: a stream that stops
//!   at an entry boundary is reported as truncated.
//! * Donors ([`UnpackOptions::donors`]): a regular file may get its data by
//!   *moving* a file the caller names into place instead of writing it (a
//!   finished RUN step's upper dir, which cairn made and deletes anyway). The
//!   donor is taken only if it is a regular file of the entry's size with a
//!   single link, is renamed without replacing anything and re-checked to be
//!   the inode that was checked, and then *becomes* the entry: owner, mode,
//!   xattrs (others removed) and times are set on it. Moved, not linked, so
//!   the result is the file an unpack writes down to its link count (a RUN
//!   reading `stat` must not see 2 in a cold build and 1 later). This is the
//!   one case where an inode from outside `dest` is changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::digest::HashingReader;
use crate::tar_read;
use crate::whiteout::{self, Whiteout, WhiteoutError};
use crate::DiffId;

/// What to do with whiteout entries (`.wh.<name>`, `.wh..wh..opq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Delete the named path / the directory's lower content in `dest`:
    /// used to flatten layers one after another into a single rootfs.
    /// Whiteouts only hide what lower layers put there: content this same
    /// tar wrote earlier is kept (image-spec rule).
    #[default]
    Apply,
    /// Write whiteouts as the plain (empty) files they are in the tar.
    Keep,
    /// Convert into overlayfs form for a lower directory mounted with
    /// `userxattr`: whiteout = character device 0/0, opaque directory =
    /// xattr `user.overlay.opaque=y`.
    Overlay,
}

/// Options for [`unpack`].
#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// How whiteouts are materialised.
    pub whiteouts: WhiteoutMode,
    /// `chown` every entry to the tar's uid/gid (`lchown` for symlinks).
    /// Without it, everything is owned by the current user.
    pub preserve_ownership: bool,
    /// With `preserve_ownership`: instead of `chown`, record every owner
    /// other than `0:0` as `"UID:GID"` in this extended attribute (and drop
    /// any value the layer itself carries under that name). For a user
    /// namespace that maps only the caller's id, where a chown to any other
    /// id fails; the sandbox reads the record back when it captures.
    /// Symlinks cannot carry user xattrs: theirs are listed in
    /// [`UnpackStats::skipped_xattrs`].
    pub owner_xattr: Option<String>,
    /// Files whose data may be moved in instead of written: the entry's path
    /// in the layer (components joined by `/`, no leading `./` or `/`) → a
    /// file holding exactly that entry's data. See the module's Policy.
    pub donors: Option<Arc<Donors>>,
    /// The diff_id the stream must hash to: anything else fails the unpack
    /// with [`UnpackError::DiffIdMismatch`] (the caller discards `dest`).
    pub expect_diff_id: Option<DiffId>,
    /// Who hashes the stream: see [`HashedBy`].
    pub hashed_by: HashedBy,
}

/// Who hashes a layer's bytes for its diff_id: each byte is hashed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HashedBy {
    /// This unpack, while it reads ([`UnpackStats::diff_id`], checked
    /// against [`UnpackOptions::expect_diff_id`]).
    #[default]
    Unpack,
    /// The caller, over the raw bytes it feeds in (a download verified at
    /// its end, a blob verified as this process wrote it, a tar it writes),
    /// and it discards `dest` unless they hash to what it wants. A plain
    /// stream is not hashed again here: its diff_id is `digest`, which
    /// `expect_diff_id` (if given) must name — refused before anything is
    /// written otherwise. `None`: the digest is known only at the end (a
    /// snapshot's writer), so an expected diff_id is hashed here all the
    /// same. A compressed stream's diff_id is of other bytes: hashed here.
    Caller {
        /// What the caller checks the raw bytes against.
        digest: Option<crate::Digest>,
    },
}

/// Layer path → donor file (see [`UnpackOptions::donors`]).
pub type Donors = HashMap<String, PathBuf>;

/// An extended attribute that was not restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedXattr {
    /// Entry path.
    pub path: String,
    /// Attribute name.
    pub name: String,
    /// Why: `"not allowlisted"`, `"not supported on this file type"` or the OS error.
    pub reason: String,
}

/// What [`unpack`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries processed (extension headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directory entries (created or merged).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Device nodes and FIFOs created.
    pub special: u64,
    /// Whiteouts and opaque markers handled (applied, kept or converted).
    pub whiteouts: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Regular files (counted in `files`) whose data came by moving a donor in.
    pub donated: u64,
    /// Device nodes not created because `mknod` was not permitted.
    pub skipped_devices: Vec<String>,
    /// Extended attributes not restored.
    pub skipped_xattrs: Vec<SkippedXattr>,
    /// The sha256 of the uncompressed tar stream (the layer's diff_id),
    /// hashed while unpacking: everything read, up to the stream's end
    /// (the caller's digest, or none, when [`HashedBy::Caller`] hashes a
    /// plain stream).
    pub diff_id: Option<DiffId>,
}

/// Why an entry was refused as unsafe or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Absolute member name.
    #[error("absolute paths are not allowed in layers")]
    Absolute,
    /// A `..` component.
    #[error("`..` components are not allowed in layers")]
    ParentComponent,
    /// A parent component is a symlink.
    #[error("parent `{0}` is a symlink; writing through symlinks is not allowed")]
    ThroughSymlink(String),
    /// A parent component exists but is not a directory.
    #[error("parent `{0}` is not a directory")]
    NotADirectory(String),
    /// A non-directory entry names the extraction root.
    #[error("only a directory may name the extraction root")]
    RootNotDir,
    /// Hard link with an absolute target.
    #[error("hard link target `{0}` is absolute")]
    HardlinkAbsolute(String),
    /// Hard link with a `..` target.
    #[error("hard link target `{0}` leaves the layer root")]
    HardlinkEscape(String),
    /// Hard link without a target.
    #[error("hard link has no target")]
    HardlinkEmpty,
    /// Hard link to itself.
    #[error("hard link points to itself")]
    HardlinkSelf,
    /// Hard link target missing.
    #[error("hard link target `{0}` does not exist (hard links must point to an earlier entry)")]
    HardlinkMissing(String),
    /// Hard link to a directory.
    #[error("hard link target `{0}` is a directory")]
    HardlinkToDir(String),
    /// Symlink with an empty target.
    #[error("symlink has an empty target")]
    SymlinkEmpty,
    /// Regular file shorter than its header says.
    #[error("file data is truncated: header says {expected} bytes, stream had {got}")]
    TruncatedData {
        /// Size from the header.
        expected: u64,
        /// Bytes actually read.
        got: u64,
    },
    /// A numeric header field is not valid octal/base-256.
    #[error("header field `{0}` is malformed")]
    BadHeader(&'static str),
    /// More components than [`MAX_DEPTH`].
    #[error("path is deeper than {0} components")]
    TooDeep(usize),
    /// Entry type we do not extract.
    #[error("unsupported tar entry type {0:?}")]
    UnsupportedType(char),
}

/// Errors from [`unpack`].
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// `dest` could not be opened as a directory.
    #[error("cannot open extraction root `{path}`")]
    Root {
        /// The extraction root.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The tar stream itself is unreadable (corrupt header, I/O error).
    #[error("cannot read layer tar after entry `{after}`")]
    Read {
        /// Last entry read successfully (`<start>` before the first).
        after: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The stream ended at an entry boundary without the end-of-archive block.
    #[error("layer tar is truncated: stream ended after entry `{after}` without an end-of-archive block")]
    Truncated {
        /// Last entry read.
        after: String,
    },
    /// An entry was refused.
    #[error("tar entry `{path}`: {reason}")]
    Refused {
        /// Entry path as stored (lossy UTF-8).
        path: String,
        /// Why.
        reason: Refusal,
    },
    /// A malformed whiteout name.
    #[error("tar entry `{path}`: invalid whiteout")]
    Whiteout {
        /// Entry path.
        path: String,
        /// Cause.
        #[source]
        source: WhiteoutError,
    },
    /// Overlay whiteouts need `mknod` of a 0/0 character device.
    #[error("tar entry `{path}`: cannot create an overlay whiteout (0/0 character device): mknod is not permitted here; run as root or on Linux >= 5.8 inside a user namespace, or use whiteout mode `apply`")]
    OverlayWhiteoutDenied {
        /// Entry path.
        path: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation failed.
    #[error("tar entry `{path}`: cannot {action}")]
    Io {
        /// Entry path.
        path: String,
        /// What was attempted.
        action: &'static str,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The uncompressed stream does not hash to the expected diff_id.
    #[error(
        "layer content does not match its diff_id: expected {expected}, the tar hashes to {actual}"
    )]
    DiffIdMismatch {
        /// What the caller (the image config) claimed.
        expected: DiffId,
        /// What the bytes hash to.
        actual: DiffId,
    },
}

/// Extract an **uncompressed** tar stream into `dest` (which must exist).
pub fn unpack(
    tar_reader: impl Read,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    // The diff_id a caller hashing this plain stream vouches for; `None`:
    // hash it here (only when someone wants it).
    let vouched = match &opts.hashed_by {
        HashedBy::Unpack => None,
        HashedBy::Caller { digest: Some(d) } => Some(Some(DiffId(d.clone()))),
        HashedBy::Caller { digest: None } if opts.expect_diff_id.is_some() => None,
        HashedBy::Caller { digest: None } => Some(None),
    };
    if let (Some(Some(actual)), Some(expected)) = (&vouched, &opts.expect_diff_id) {
        if actual != expected {
            return Err(UnpackError::DiffIdMismatch {
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Root {
        path: dest.to_owned(),
        source: e.into(),
    })?;
    let mut un = Unpacker {
        opts,
        dirs: Resolver {
            root,
            stack: Vec::new(),
        },
        stats: UnpackStats::default(),
        written: HashSet::new(),
        deferred: BTreeMap::new(),
    };
    let mut archive = tar::Archive::new(EofProbe {
        inner: if vouched.is_none() {
            HashingReader::new(tar_reader)
        } else {
            HashingReader::counting(tar_reader)
        },
        eof: false,
    });
    let mut after = String::from("<start>");
    for entry in archive.entries().map_err(|source| UnpackError::Read {
        after: after.clone(),
        source,
    })? {
        let entry = entry.map_err(|source| UnpackError::Read {
            after: after.clone(),
            source,
        })?;
        after = lossy(&entry.path_bytes());
        un.entry(entry)?;
    }
    let mut rest = archive.into_inner();
    if rest.eof {
        return Err(UnpackError::Truncated { after });
    }
    // The diff_id covers the whole stream: tar stops at the first zero
    // block, so the second one and any padding are still to be hashed (and
    // read anyway: a writer feeding a pipe must not see it closed early).
    io::copy(&mut rest.inner, &mut io::sink()).map_err(|source| UnpackError::Read {
        after: after.clone(),
        source,
    })?;
    let actual = match (rest.inner.finish().0, vouched) {
        (Some(d), _) => Some(DiffId(d)),
        (None, v) => v.flatten(),
    };
    if let (Some(expected), Some(actual)) = (&opts.expect_diff_id, &actual) {
        if expected != actual {
            return Err(UnpackError::DiffIdMismatch {
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    un.finish()?;
    un.stats.diff_id = actual;
    Ok(un.stats)
}

/// Like [`unpack`], for a stream in any compression [`tar_read::decompress`]
/// recognises (gzip of any number of members, zstd, bzip2, xz, plain).
///
/// A compressed stream is decoded on a second thread ([`decode_ahead`]) while
/// this one hashes the tar and writes its files: inflating a 50 MB gzip layer
/// takes longer than creating its 157 MB of files, and the two overlap.
pub fn unpack_auto(
    reader: impl Read + Send,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let (codec, stream) = tar_read::sniff(reader).map_err(|source| UnpackError::Read {
        after: "<start>".into(),
        source,
    })?;
    if codec == tar_read::Codec::Plain {
        return unpack(stream, dest, opts);
    }
    // The caller hashed the compressed bytes: the diff_id is hashed here.
    let opts = UnpackOptions {
        hashed_by: HashedBy::Unpack,
        ..opts.clone()
    };
    std::thread::scope(|s| {
        let (plain, decoding) = decode_ahead(s, codec, stream);
        let unpacked = unpack(plain, dest, &opts);
        // Joined also after a failed unpack: the decoder stops at its next
        // chunk, as the reader is gone.
        match decoding.join() {
            Ok(()) => unpacked,
            Err(_) => Err(UnpackError::Read {
                after: "<decoder>".into(),
                source: io::Error::other("the thread decompressing the layer panicked"),
            }),
        }
    })
}

/// Bytes per chunk [`decode_ahead`] hands over, and chunks in flight.
const CHUNK: usize = 256 << 10;
const CHUNKS_AHEAD: usize = 8;

/// Decode `stream` (compressed with `codec`) on a thread of `s`: the
/// returned reader yields the decoded bytes, then a decoding error or EOF;
/// the thread ends with the stream, or at its next chunk once the reader is
/// dropped.
fn decode_ahead<'scope, R: Read + Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    codec: tar_read::Codec,
    stream: R,
) -> (ChunkReader, std::thread::ScopedJoinHandle<'scope, ()>) {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_AHEAD);
    let (back, spare) = mpsc::channel::<Vec<u8>>();
    let decoding = s.spawn(move || {
        let mut plain = match tar_read::decoder(codec, stream) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        loop {
            let mut chunk = spare.try_recv().unwrap_or_default();
            chunk.resize(CHUNK, 0);
            let mut have = 0;
            while have < CHUNK {
                match plain.read(&mut chunk[have..]) {
                    Ok(0) => break,
                    Ok(n) => have += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            chunk.truncate(have);
            // Done at the end, or when the unpack stopped reading.
            if have == 0 || tx.send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    let reader = ChunkReader {
        rx,
        back,
        chunk: Vec::new(),
        at: 0,
    };
    (reader, decoding)
}

/// The reading end of [`decode_ahead`]: its chunks in order, then EOF when
/// the decoder is through; empty chunks go back to it for reuse.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    back: mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(next) => {
                    let used = std::mem::replace(&mut self.chunk, next?);
                    let _ = self.back.send(used);
                    self.at = 0;
                }
                // The decoder is done (a failure came as an error first).
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Records whether the underlying stream reached EOF, to tell a clean
/// end-of-archive block from a stream cut at an entry boundary.
struct EofProbe<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for EofProbe<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// Metadata of one tar entry (for directories: applied at the end).
struct Meta {
    mode: u32,
    owner: Option<(u32, u32)>,
    /// `None` for implicitly created parents: their mtime is left alone.
    mtime: Option<Timespec>,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker<'o> {
    opts: &'o UnpackOptions,
    dirs: Resolver,
    stats: UnpackStats,
    /// Paths written by this tar (only tracked for `WhiteoutMode::Apply`).
    written: HashSet<Vec<u8>>,
    /// Directory metadata, applied deepest-first by `finish`.
    deferred: BTreeMap<Vec<u8>, Meta>,
}

const DIR_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const READ_DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let path = lossy(&raw);
        let refused = |reason| UnpackError::Refused {
            path: path.clone(),
            reason,
        };
        let etype = entry.header().entry_type();
        if etype.is_pax_global_extensions() {
            return Ok(());
        }
        self.stats.entries += 1;
        let comps = components(&raw).map_err(&refused)?;
        let meta = self.meta(&mut entry, &path)?;
        let is_dir = etype.is_dir() || (etype.is_file() && raw.ends_with(b"/"));
        let Some((&name, parents)) = comps.split_last() else {
            return if is_dir {
                Ok(())
            } else {
                Err(refused(Refusal::RootNotDir))
            };
        };
        let rel = comps.join(&b'/');

        let wh = whiteout::parse_name(name).map_err(|source| UnpackError::Whiteout {
            path: path.clone(),
            source,
        })?;
        if let Some(wh) = wh {
            self.stats.whiteouts += 1;
            if self.opts.whiteouts != WhiteoutMode::Keep {
                return self.whiteout(&path, parents, wh);
            }
        }
        if self.opts.whiteouts == WhiteoutMode::Apply {
            self.written.insert(rel.clone());
        }

        if etype.is_hard_link() {
            return self.hardlink(&entry, &path, &comps);
        }
        let parent =
            self.dirs
                .resolve(parents, Some(&mut self.deferred), &mut self.written, &path)?;
        let parent = parent.as_fd();
        let at = Place {
            parent,
            name,
            path: &path,
        };

        if is_dir {
            match stat_nofollow(parent, name).map_err(io_err(&path, "inspect existing path"))? {
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                existing => {
                    if existing.is_some() {
                        remove_all(parent, name).map_err(io_err(&path, "remove existing path"))?;
                    }
                    rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                        .map_err(io_err(&path, "create directory"))?;
                }
            }
            self.stats.dirs += 1;
            self.deferred.insert(rel, meta);
            return Ok(());
        }

        clear_slot(parent, name).map_err(io_err(&path, "remove existing path"))?;
        if etype.is_file() || etype.is_contiguous() || etype.is_gnu_sparse() {
            return write_file(self.opts, &mut self.stats, &mut entry, &at, &rel, &meta);
        }
        if etype.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            if target.is_empty() {
                return Err(refused(Refusal::SymlinkEmpty));
            }
            rfs::symlinkat(target.as_slice(), parent, name)
                .map_err(io_err(&path, "create symlink"))?;
            self.stats.symlinks += 1;
        } else if etype.is_character_special() || etype.is_block_special() || etype.is_fifo() {
            if !make_node(&mut self.stats, entry.header(), &at, &meta)? {
                return Ok(());
            }
        } else {
            let c = char::from(etype.as_byte());
            return Err(refused(Refusal::UnsupportedType(c)));
        }
        link_meta(&mut self.stats, &at, &meta)
    }

    fn meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &str,
    ) -> Result<Meta, UnpackError> {
        let header = entry.header();
        let old = header.as_old();
        let num = |parsed: io::Result<u64>, raw: &[u8], field| {
            tar_read::numeric(parsed, raw).ok_or_else(|| UnpackError::Refused {
                path: path.to_owned(),
                reason: Refusal::BadHeader(field),
            })
        };
        let mode = num(header.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
        let owner = if self.opts.preserve_ownership {
            let uid = num(header.uid(), &old.uid, "uid")?;
            let gid = num(header.gid(), &old.gid, "gid")?;
            Some((clamp_id(uid), clamp_id(gid)))
        } else {
            None
        };
        let secs = num(header.mtime(), &old.mtime, "mtime")?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        let pax = entry.pax_extensions().map_err(|source| UnpackError::Read {
            after: path.to_owned(),
            source,
        })?;
        let mut skipped = Vec::new();
        if let Some(pax) = pax {
            for ext in pax.flatten() {
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    let name = lossy(name);
                    if crate::xattr::keep(&name, crate::xattr::XattrUse::Rootfs) {
                        xattrs.push((name, ext.value_bytes().to_vec()));
                    } else {
                        skipped.push(name);
                    }
                }
            }
        }
        for name in skipped {
            skip_xattr(&mut self.stats, path, &name, "not allowlisted".into());
        }
        let owner = match (&self.opts.owner_xattr, owner) {
            (Some(name), Some((uid, gid))) => {
                xattrs.retain(|(k, _)| k != name);
                if (uid, gid) != (0, 0) {
                    xattrs.push((name.clone(), format!("{uid}:{gid}").into_bytes()));
                }
                None
            }
            (_, owner) => owner,
        };
        Ok(Meta {
            mode,
            owner,
            mtime: Some(mtime),
            xattrs,
        })
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: &str,
        comps: &[&[u8]],
    ) -> Result<(), UnpackError> {
        let refused = |reason| UnpackError::Refused {
            path: path.to_owned(),
            reason,
        };
        let raw_target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let shown = lossy(&raw_target);
        let tcomps = components(&raw_target).map_err(|r| {
            refused(match r {
                Refusal::Absolute => Refusal::HardlinkAbsolute(shown.clone()),
                Refusal::ParentComponent => Refusal::HardlinkEscape(shown.clone()),
                other => other,
            })
        })?;
        let Some((&tname, tparents)) = tcomps.split_last() else {
            return Err(refused(Refusal::HardlinkEmpty));
        };
        if tcomps == comps {
            return Err(refused(Refusal::HardlinkSelf));
        }
        let tparent = self
            .dirs
            .resolve(tparents, None, &mut self.written, path)
            .map_err(|e| match e {
                UnpackError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    refused(Refusal::HardlinkMissing(shown.clone()))
                }
                other => other,
            })?;
        let tparent = tparent.try_clone().map_err(|source| UnpackError::Io {
            path: path.to_owned(),
            action: "duplicate a directory handle",
            source,
        })?;
        match stat_nofollow(tparent.as_fd(), tname)
            .map_err(io_err(path, "inspect hard link target"))?
        {
            None => return Err(refused(Refusal::HardlinkMissing(shown))),
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(refused(Refusal::HardlinkToDir(shown)))
            }
            Some(_) => {}
        }
        let (&name, parents) = comps
            .split_last()
            .ok_or_else(|| refused(Refusal::RootNotDir))?;
        let parent =
            self.dirs
                .resolve(parents, Some(&mut self.deferred), &mut self.written, path)?;
        clear_slot(parent.as_fd(), name).map_err(io_err(path, "remove existing path"))?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        rfs::linkat(
            tparent.as_fd(),
            tname,
            parent.as_fd(),
            name,
            AtFlags::empty(),
        )
        .map_err(io_err(path, "create hard link"))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn whiteout(
        &mut self,
        path: &str,
        parents: &[&[u8]],
        wh: Whiteout<'_>,
    ) -> Result<(), UnpackError> {
        match self.opts.whiteouts {
            WhiteoutMode::Keep => Ok(()),
            WhiteoutMode::Apply => {
                let dir = match self.dirs.resolve(parents, None, &mut self.written, path) {
                    Ok(fd) => fd,
                    // Nothing below to hide.
                    Err(UnpackError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e),
                };
                let dir = dir.as_fd();
                let dir_rel = parents.join(&b'/');
                match wh {
                    Whiteout::Remove(name) => {
                        let rel = join(&dir_rel, name);
                        remove_lower(dir, name, &rel, &self.written)
                            .map_err(io_err(path, "apply whiteout"))
                    }
                    Whiteout::Opaque => {
                        let fd = rfs::openat(dir, c".", READ_DIR_FLAGS, Mode::empty())
                            .map_err(io_err(path, "open opaque directory"))?;
                        clear_lower(fd, &dir_rel, &self.written)
                            .map_err(io_err(path, "apply opaque whiteout"))
                    }
                }
            }
            WhiteoutMode::Overlay => {
                let dir = self.dirs.resolve(
                    parents,
                    Some(&mut self.deferred),
                    &mut self.written,
                    path,
                )?;
                let dir = dir.as_fd();
                match wh {
                    Whiteout::Remove(name) => {
                        clear_slot(dir, name).map_err(io_err(path, "remove existing path"))?;
                        rfs::mknodat(
                            dir,
                            name,
                            FileType::CharacterDevice,
                            Mode::empty(),
                            rfs::makedev(0, 0),
                        )
                        .map_err(|e| {
                            if e == Errno::PERM {
                                UnpackError::OverlayWhiteoutDenied {
                                    path: path.to_owned(),
                                    source: e.into(),
                                }
                            } else {
                                io_err(path, "create overlay whiteout")(e)
                            }
                        })
                    }
                    Whiteout::Opaque => {
                        let fd = rfs::openat(dir, c".", READ_DIR_FLAGS, Mode::empty())
                            .map_err(io_err(path, "open opaque directory"))?;
                        rfs::fsetxattr(&fd, "user.overlay.opaque", b"y", XattrFlags::empty())
                            .map_err(io_err(path, "set `user.overlay.opaque`"))
                    }
                }
            }
        }
    }

    /// Apply deferred directory metadata, deepest paths first.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let deferred = std::mem::take(&mut self.deferred);
        for (rel, meta) in deferred.into_iter().rev() {
            let path = lossy(&rel);
            let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
            let Some((&name, parents)) = comps.split_last() else {
                continue;
            };
            // A later entry may have replaced or removed the directory.
            let Ok(parent) = self.dirs.resolve(parents, None, &mut self.written, &path) else {
                continue;
            };
            let fd = match rfs::openat(parent.as_fd(), name, READ_DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => {
                    return Err(UnpackError::Io {
                        path,
                        action: "open directory",
                        source: e.into(),
                    })
                }
            };
            set_fd_meta(fd.as_fd(), &path, &meta, &mut self.stats)?;
        }
        Ok(())
    }
}

/// Move the donor of `rel` (if any, and if it qualifies) to `name` in
/// `parent` and return it opened; `None` leaves `name` free for writing.
fn take_donor(
    opts: &UnpackOptions,
    rel: &[u8],
    parent: BorrowedFd<'_>,
    name: &[u8],
    size: u64,
    meta: &Meta,
) -> Option<File> {
    let donors = opts.donors.as_ref()?;
    let donor = donors.get(std::str::from_utf8(rel).ok()?)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let held = rfs::open(donor, flags, Mode::empty()).ok()?;
    let st = rfs::fstat(&held).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_nlink != 1
        || u64::try_from(st.st_size).ok() != Some(size)
    {
        return None;
    }
    rfs::renameat_with(rfs::CWD, donor, parent, name, rfs::RenameFlags::NOREPLACE).ok()?;
    // The name may have been swapped between the check and the move: keep
    // what arrived only if it is the inode that was checked.
    let moved = rfs::openat(parent, name, flags, Mode::empty())
        .ok()
        .filter(|fd| rfs::fstat(fd).is_ok_and(|l| (l.st_dev, l.st_ino) == (st.st_dev, st.st_ino)))
        .filter(|fd| drop_other_xattrs(fd.as_fd(), meta));
    if moved.is_none() {
        let _ = rfs::unlinkat(parent, name, AtFlags::empty());
    }
    moved.map(File::from)
}

/// Apply owner, then mode (so `chown` cannot clear setuid bits), xattrs and
/// times through an open handle.
fn set_fd_meta(
    fd: BorrowedFd<'_>,
    path: &str,
    meta: &Meta,
    stats: &mut UnpackStats,
) -> Result<(), UnpackError> {
    if let Some((uid, gid)) = meta.owner {
        rfs::fchown(fd, Some(uid_of(uid)), Some(gid_of(gid))).map_err(io_err(path, CHOWN))?;
    }
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(io_err(path, "set mode"))?;
    for (k, v) in &meta.xattrs {
        if let Err(e) = rfs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
            skip_xattr(stats, path, k, e.to_string());
        }
    }
    if let Some(mtime) = meta.mtime {
        rfs::futimens(fd, &times(mtime)).map_err(io_err(path, "set mtime"))?;
    }
    Ok(())
}

/// Remove the xattrs a donor carries that the entry does not, so it ends as
/// a written file would (which gets the host's SELinux label too, so that
/// one stays); `false` if one could not be listed or removed.
fn drop_other_xattrs(fd: BorrowedFd<'_>, meta: &Meta) -> bool {
    let mut small = [0u8; 1024];
    let mut large = Vec::new();
    let names: &[u8] = match rfs::flistxattr(fd, &mut small[..]) {
        Ok(n) => &small[..n],
        Err(Errno::RANGE) => {
            large.resize(64 * 1024, 0);
            match rfs::flistxattr(fd, &mut large[..]) {
                Ok(n) => &large[..n],
                Err(_) => return false,
            }
        }
        Err(Errno::NOTSUP) => return true,
        Err(_) => return false,
    };
    names
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty() && *name != b"security.selinux")
        .filter(|name| !meta.xattrs.iter().any(|(k, _)| k.as_bytes() == *name))
        .all(|name| rfs::fremovexattr(fd, std::ffi::OsStr::from_bytes(name)).is_ok())
}

fn skip_xattr(stats: &mut UnpackStats, path: &str, name: &str, reason: String) {
    stats.skipped_xattrs.push(SkippedXattr {
        path: path.to_owned(),
        name: name.to_owned(),
        reason,
    });
}

/// Deepest path accepted (components). Linux sets no limit for `*at`
/// calls, but no image needs more, and it bounds open handles and the
/// recursion of directory removal.
pub const MAX_DEPTH: usize = 1024;

const CHOWN: &str = "change owner (is the id mapped in this user namespace?)";

/// Walks parent chains one component at a time, keeping the handles of the
/// last chain open.
struct Resolver {
    root: OwnedFd,
    /// `stack[i]` is the directory named by the first `i + 1` components.
    stack: Vec<(Vec<u8>, OwnedFd)>,
}

impl Resolver {
    /// Open the directory named by `comps` (the root for `[]`). With
    /// `create`, missing directories are made (mode 0755, recorded in
    /// `create` so `finish` gives them a umask-independent mode).
    fn resolve(
        &mut self,
        comps: &[&[u8]],
        mut create: Option<&mut BTreeMap<Vec<u8>, Meta>>,
        written: &mut HashSet<Vec<u8>>,
        entry: &str,
    ) -> Result<&OwnedFd, UnpackError> {
        let keep = self
            .stack
            .iter()
            .zip(comps)
            .take_while(|((name, _), comp)| name.as_slice() == **comp)
            .count();
        self.stack.truncate(keep);
        for i in keep..comps.len() {
            let comp = comps[i];
            let at = match self.stack.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            let prefix = || lossy(&comps[..=i].join(&b'/'));
            let fd = match rfs::openat(at, comp, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create.is_some() => {
                    match rfs::mkdirat(at, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io_err(entry, "create parent directory")(e)),
                    }
                    let rel = comps[..=i].join(&b'/');
                    written.insert(rel.clone());
                    if let Some(deferred) = create.as_deref_mut() {
                        deferred.entry(rel).or_insert(Meta {
                            mode: 0o755,
                            owner: None,
                            mtime: None,
                            xattrs: Vec::new(),
                        });
                    }
                    rfs::openat(at, comp, DIR_FLAGS, Mode::empty())
                        .map_err(|e| io_err(entry, "open parent directory")(e))?
                }
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let st =
                        stat_nofollow(at, comp).map_err(|e| io_err(entry, "inspect parent")(e))?;
                    let reason = match st {
                        Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                            Refusal::ThroughSymlink(prefix())
                        }
                        _ => Refusal::NotADirectory(prefix()),
                    };
                    return Err(UnpackError::Refused {
                        path: entry.to_owned(),
                        reason,
                    });
                }
                Err(e) => return Err(io_err(entry, "open parent directory")(e)),
            };
            self.stack.push((comp.to_vec(), fd));
        }
        Ok(match self.stack.last() {
            Some((_, fd)) => fd,
            None => &self.root,
        })
    }
}

/// Error constructor for a failed `*at` call; allocates only on error.
fn io_err<'a>(path: &'a str, action: &'static str) -> impl FnOnce(Errno) -> UnpackError + 'a {
    move |e| UnpackError::Io {
        path: path.to_owned(),
        action,
        source: e.into(),
    }
}

/// Split a member name into components, tolerating `./`, `//` and a trailing
/// `/`, refusing absolute names and `..`.
fn components(raw: &[u8]) -> Result<Vec<&[u8]>, Refusal> {
    if raw.first() == Some(&b'/') {
        return Err(Refusal::Absolute);
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(Refusal::ParentComponent),
            c => out.push(c),
        }
    }
    if out.len() > MAX_DEPTH {
        return Err(Refusal::TooDeep(MAX_DEPTH));
    }
    Ok(out)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// Where an entry goes: its parent directory, its name there, and its
/// path in the tar (for messages).
struct Place<'a> {
    parent: BorrowedFd<'a>,
    name: &'a [u8],
    path: &'a str,
}

/// A regular (or contiguous, or GNU sparse) file: moved in from a donor
/// when one is offered, else written from the tar.
fn write_file<R: Read>(
    opts: &UnpackOptions,
    stats: &mut UnpackStats,
    entry: &mut tar::Entry<'_, R>,
    at: &Place<'_>,
    rel: &[u8],
    meta: &Meta,
) -> Result<(), UnpackError> {
    let (parent, name, path) = (at.parent, at.name, at.path);
    let refused = |reason| UnpackError::Refused {
        path: path.to_owned(),
        reason,
    };
    let etype = entry.header().entry_type();
    if etype.is_file() || etype.is_contiguous() {
        let expected = entry.size();
        if let Some(file) = take_donor(opts, rel, parent, name, expected, meta) {
            let got = io::copy(entry, &mut io::sink()).map_err(|source| UnpackError::Read {
                after: path.to_owned(),
                source,
            })?;
            if got != expected {
                return Err(refused(Refusal::TruncatedData { expected, got }));
            }
            stats.files += 1;
            stats.donated += 1;
            stats.bytes += got;
            set_fd_meta(file.as_fd(), path, meta, stats)?;
            return Ok(());
        }
    }
    {
        let fd = rfs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io_err(path, "create file"))?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let got = io::copy(entry, &mut file).map_err(|source| UnpackError::Io {
            path: path.to_owned(),
            action: "write file data",
            source,
        })?;
        if got != expected && !etype.is_gnu_sparse() {
            return Err(refused(Refusal::TruncatedData { expected, got }));
        }
        stats.files += 1;
        stats.bytes += got;
        set_fd_meta(file.as_fd(), path, meta, stats)?;
        Ok(())
    }
}

/// A device node or FIFO; false when an unprivileged caller cannot make
/// the device (recorded as skipped).
fn make_node(
    stats: &mut UnpackStats,
    h: &tar::Header,
    at: &Place<'_>,
    meta: &Meta,
) -> Result<bool, UnpackError> {
    let (parent, name, path) = (at.parent, at.name, at.path);
    let refused = |reason| UnpackError::Refused {
        path: path.to_owned(),
        reason,
    };
    let etype = h.entry_type();
    let (ftype, dev) = if etype.is_fifo() {
        (FileType::Fifo, 0)
    } else {
        let major = h
            .device_major()
            .map_err(|_| refused(Refusal::BadHeader("devmajor")))?;
        let minor = h
            .device_minor()
            .map_err(|_| refused(Refusal::BadHeader("devminor")))?;
        // Old V7 headers have no device fields: 0/0.
        let (major, minor) = (major.unwrap_or(0), minor.unwrap_or(0));
        let ftype = if etype.is_character_special() {
            FileType::CharacterDevice
        } else {
            FileType::BlockDevice
        };
        (ftype, rfs::makedev(major, minor))
    };
    match rfs::mknodat(parent, name, ftype, Mode::from_raw_mode(0o600), dev) {
        Ok(()) => stats.special += 1,
        Err(Errno::PERM) if ftype != FileType::Fifo => {
            stats.skipped_devices.push(path.to_owned());
            return Ok(false);
        }
        Err(e) => return Err(io_err(path, "create device node")(e)),
    }
    // The node was just created by this call, so naming it again
    // cannot reach anything else; fchmodat has no NOFOLLOW on Linux.
    rfs::chmodat(
        parent,
        name,
        Mode::from_raw_mode(meta.mode),
        AtFlags::empty(),
    )
    .map_err(io_err(path, "set mode"))?;
    Ok(true)
}

/// A symlink's or a node's metadata (xattrs cannot be set on them):
/// owner and mtime, never following the link.
fn link_meta(stats: &mut UnpackStats, at: &Place<'_>, meta: &Meta) -> Result<(), UnpackError> {
    let (parent, name, path) = (at.parent, at.name, at.path);
    for (k, _) in &meta.xattrs {
        skip_xattr(stats, path, k, "not supported on this file type".into());
    }
    if let Some((uid, gid)) = meta.owner {
        rfs::chownat(
            parent,
            name,
            Some(uid_of(uid)),
            Some(gid_of(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(path, CHOWN))?;
    }
    if let Some(mtime) = meta.mtime {
        rfs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err(path, "set mtime"))?;
    }
    Ok(())
}

fn stat_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<rfs::Stat>, Errno> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Make `name` absent, whatever it is.
fn clear_slot(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => remove_all(dir, name),
        Err(e) => Err(e),
    }
}

/// Remove `name` under `dir` recursively without following symlinks.
fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    remove_all_at(dir, name, 0)
}

fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8], depth: usize) -> Result<(), Errno> {
    if depth > MAX_DEPTH {
        return Err(Errno::NAMETOOLONG);
    }
    let Some(st) = stat_nofollow(dir, name)? else {
        return Ok(());
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e),
        };
    }
    let fd = open_dir_for_listing(dir, name)?;
    for child in list_names(&fd)? {
        remove_all_at(fd.as_fd(), child.as_slice(), depth + 1)?;
    }
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Open a directory for `getdents`; an unreadable one (mode 0 when not
/// root) is made readable first since it is about to be removed anyway.
fn open_dir_for_listing(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    match rfs::openat(dir, name, READ_DIR_FLAGS, Mode::empty()) {
        Err(Errno::ACCESS) => {
            rfs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rfs::openat(dir, name, READ_DIR_FLAGS, Mode::empty())
        }
        other => other,
    }
}

fn list_names(fd: &OwnedFd) -> Result<Vec<Vec<u8>>, Errno> {
    let mut names = Vec::new();
    for item in rfs::Dir::read_from(fd)? {
        let item = item?;
        let n = item.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Whiteout `name` under `dir` (layer path `rel`): remove it unless this tar
/// wrote it; if this tar wrote into it, remove only the lower content below.
fn remove_lower(
    dir: BorrowedFd<'_>,
    name: &[u8],
    rel: &[u8],
    written: &HashSet<Vec<u8>>,
) -> Result<(), Errno> {
    if !written.contains(rel) {
        return remove_all(dir, name);
    }
    match stat_nofollow(dir, name)? {
        Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            let fd = open_dir_for_listing(dir, name)?;
            clear_lower(fd, rel, written)
        }
        _ => Ok(()),
    }
}

/// Remove everything in directory `fd` (layer path `rel`) not written by this tar.
fn clear_lower(fd: OwnedFd, rel: &[u8], written: &HashSet<Vec<u8>>) -> Result<(), Errno> {
    for child in list_names(&fd)? {
        remove_lower(fd.as_fd(), child.as_slice(), &join(rel, &child), written)?;
    }
    Ok(())
}

/// A PAX time as a timespec (see [`tar_read::pax_time`]).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let t = tar_read::pax_time(v)?;
    Some(Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos.into(),
    })
}

fn times(t: Timespec) -> Timestamps {
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn clamp_id(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

fn uid_of(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

fn gid_of(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_normalise_and_refuse() {
        let c = |s: &str| {
            components(s.as_bytes()).map(|v| {
                v.iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(c("./a//b/./c/").unwrap(), ["a", "b", "c"]);
        assert_eq!(c("./").unwrap(), Vec::<String>::new());
        assert_eq!(c("..a/b..").unwrap(), ["..a", "b.."]);
        assert_eq!(c("/etc/passwd"), Err(Refusal::Absolute));
        assert_eq!(c("a/../b"), Err(Refusal::ParentComponent));
        assert_eq!(c(".."), Err(Refusal::ParentComponent));
    }

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.2e3"), None);
    }
}
