//! The deterministic layer tar writer: [`LayerWriter`] turns sorted
//! [`Entry`]s into tar bytes on any `Write`.
//!
//! Rules (frozen: changing any of them changes every diff_id):
//! - **Order**: entries must arrive sorted byte-wise by their full `path`
//!   (the `Entry::path`, without the directory's trailing `/`), each path once.
//!   A parent is a prefix of its children and therefore sorts first. Note
//!   this is a full-string sort, so `a-c` comes before `a/b` (BuildKit's walk
//!   would emit `a/b` first); we chose the simpler total order that any
//!   caller can reproduce with [`sort_entries`]. Out-of-order or duplicate
//!   entries are rejected, never silently reordered.
//! - **Headers**: Go `archive/tar` PAX-as-needed bytes (see `tar_header`):
//!   uname/gname empty, no atime/ctime, mode = permission bits only with the
//!   type in the type flag, directories named with a trailing `/`,
//!   devmajor/devminor always written.
//! - **mtime**: [`MtimePolicy::Set`] or [`MtimePolicy::Clamp`] (SOURCE_DATE_EPOCH
//!   clamping as BuildKit's `rewrite-timestamp` does).
//! - **xattrs**: only those [`crate::xattr::keep`] keeps for a layer (`security.capability`), as PAX
//!   `SCHILY.xattr.*` records; anything else is dropped.
//! - **Hardlinks**: type `1`, size 0; the target must be an earlier
//!   non-directory entry of the same layer.
//! - **End**: two zero blocks, no padding to a 10 KiB record.

use crate::entry::{check_path, Entry, EntryKind, Source};
use crate::layer::LayerError;
use crate::raw_name;
use crate::tar_header::{self, Header, BLOCK};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// How entry modification times are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtimePolicy {
    /// Every entry gets this time (ko, cargo, go-containerregistry).
    Set(u64),
    /// `min(entry.mtime, epoch)`: older times are kept (SOURCE_DATE_EPOCH
    /// clamping, BuildKit `rewrite-timestamp`).
    Clamp(u64),
}

impl MtimePolicy {
    /// The time written for an entry whose own mtime is `mtime`.
    pub fn apply(self, mtime: u64) -> u64 {
        match self {
            MtimePolicy::Set(t) => t,
            MtimePolicy::Clamp(t) => mtime.min(t),
        }
    }
}

/// Sort entries into the one order [`LayerWriter`] accepts: byte-wise by path.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
}

/// Streams sorted entries as a deterministic tar into `W`.
pub struct LayerWriter<W: Write> {
    out: W,
    mtime: MtimePolicy,
    last: Option<String>,
    /// Earlier non-directory paths: the valid hardlink targets.
    linkable: HashSet<String>,
    entries: u64,
    header: Vec<u8>,
    buf: Vec<u8>,
}

const READ_BUF: usize = 256 * 1024;
static ZEROS: [u8; BLOCK] = [0; BLOCK];

impl<W: Write> LayerWriter<W> {
    /// A writer producing tar bytes into `out`.
    pub fn new(out: W, mtime: MtimePolicy) -> Self {
        LayerWriter {
            out,
            mtime,
            last: None,
            linkable: HashSet::new(),
            entries: 0,
            header: Vec::with_capacity(4 * BLOCK),
            buf: Vec::new(),
        }
    }

    /// Entries appended so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Append one entry. It must sort strictly after the previous one.
    pub fn append(&mut self, e: &Entry) -> Result<(), LayerError> {
        self.check(e)?;
        // Paths may carry names that are not UTF-8: the header gets their bytes.
        let mut name = raw_name::to_bytes(&e.path);
        let (typeflag, linkname, size, (devmajor, devminor)) = match &e.kind {
            EntryKind::Dir => {
                name.to_mut().push(b'/');
                (b'5', "", 0, (0, 0))
            }
            EntryKind::File { size, .. } => (b'0', "", *size, (0, 0)),
            EntryKind::Symlink { target } => (b'2', target.as_str(), 0, (0, 0)),
            EntryKind::Hardlink { target } => (b'1', target.as_str(), 0, (0, 0)),
            EntryKind::CharDevice { major, minor } => (b'3', "", 0, (*major, *minor)),
            EntryKind::BlockDevice { major, minor } => (b'4', "", 0, (*major, *minor)),
            EntryKind::Fifo => (b'6', "", 0, (0, 0)),
        };
        let linkname = raw_name::to_bytes(linkname);
        let xattrs: Vec<(&str, &[u8])> = e
            .xattrs
            .iter()
            .filter(|(k, _)| crate::xattr::keep(k, crate::xattr::XattrUse::Layer))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let h = Header {
            name: &name,
            linkname: &linkname,
            typeflag,
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            size,
            mtime: self.mtime.apply(e.mtime),
            devmajor,
            devminor,
            xattrs: &xattrs,
        };
        self.header.clear();
        tar_header::encode(&h, &mut self.header).map_err(|u| LayerError::Unencodable {
            path: e.path.clone(),
            field: u.field,
            value: u.value,
        })?;
        let werr = |source| LayerError::Write {
            path: e.path.clone(),
            source,
        };
        // The source is opened before its header goes out: a reader of the
        // stream may move the file away once it has seen the header (an
        // unpack taking donors from a pipe, see `unpack::UnpackOptions::donors`).
        let data = match &e.kind {
            EntryKind::File { size, source } => Some((*size, Data::open(&e.path, source)?)),
            _ => None,
        };
        self.out.write_all(&self.header).map_err(werr)?;
        if let Some((size, data)) = data {
            match data {
                Data::Bytes(b) => self.out.write_all(b).map_err(werr)?,
                Data::File(f, p) => self.pump(&e.path, p, f, size)?,
                Data::Range(f, p, offset) => self.copy_range(&e.path, p, f, offset, size)?,
            }
            let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
            self.out.write_all(&ZEROS[..pad]).map_err(werr)?;
        }
        if !e.is_dir() {
            self.linkable.insert(e.path.clone());
        }
        self.last = Some(e.path.clone());
        self.entries += 1;
        Ok(())
    }

    /// Everything that can be checked before a byte of the entry is written.
    fn check(&self, e: &Entry) -> Result<(), LayerError> {
        check_path(&e.path).map_err(|source| LayerError::InvalidPath {
            path: e.path.clone(),
            source,
        })?;
        if let Some(prev) = &self.last {
            match prev.as_bytes().cmp(e.path.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(LayerError::Duplicate {
                        path: e.path.clone(),
                    })
                }
                std::cmp::Ordering::Greater => {
                    return Err(LayerError::OutOfOrder {
                        previous: prev.clone(),
                        path: e.path.clone(),
                    })
                }
            }
        }
        match &e.kind {
            EntryKind::Hardlink { target } if !self.linkable.contains(target) => {
                Err(LayerError::HardlinkTarget {
                    path: e.path.clone(),
                    target: target.clone(),
                })
            }
            EntryKind::Hardlink { target } | EntryKind::Symlink { target }
                if target.contains('\0') =>
            {
                Err(LayerError::LinkTargetNul {
                    path: e.path.clone(),
                })
            }
            EntryKind::File {
                size,
                source: Source::Bytes(b),
            } if b.len() as u64 != *size => Err(LayerError::BytesSize {
                path: e.path.clone(),
                declared: *size,
                actual: b.len() as u64,
            }),
            _ => Ok(()),
        }
    }

    /// Copy `size` bytes at `offset` of the host file `src`, opened as `f`
    /// (a member of a plain tar blob, which never changes: a short read
    /// means damage).
    fn copy_range(
        &mut self,
        entry: &str,
        src: &Path,
        mut f: File,
        offset: u64,
        size: u64,
    ) -> Result<(), LayerError> {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(offset))
            .map_err(read_error(entry, src))?;
        self.pump(entry, src, f.take(size), size)
    }

    /// Copy exactly `size` bytes of `r` (read from `src`) into the archive.
    fn pump(
        &mut self,
        entry: &str,
        src: &Path,
        mut r: impl Read,
        size: u64,
    ) -> Result<(), LayerError> {
        if self.buf.len() < READ_BUF {
            self.buf.resize(READ_BUF, 0);
        }
        let mut done = 0u64;
        loop {
            // Ask for one byte more than remains so growth is noticed.
            let want = (size - done).saturating_add(1).min(READ_BUF as u64) as usize;
            let n = match r.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(entry, src)(e)),
            };
            if done + n as u64 > size {
                return Err(self.changed(entry, src, size, done + n as u64));
            }
            self.out
                .write_all(&self.buf[..n])
                .map_err(|source| LayerError::Write {
                    path: entry.to_owned(),
                    source,
                })?;
            done += n as u64;
        }
        if done != size {
            return Err(self.changed(entry, src, size, done));
        }
        Ok(())
    }

    fn changed(&self, entry: &str, src: &Path, expected: u64, read: u64) -> LayerError {
        LayerError::FileChanged {
            path: src.to_owned(),
            entry: entry.to_owned(),
            expected,
            read,
        }
    }

    /// Write the end-of-archive marker (two zero blocks) and return the sink.
    pub fn finish(mut self) -> Result<W, LayerError> {
        let werr = |source| LayerError::Write {
            path: "end of archive".to_owned(),
            source,
        };
        self.out.write_all(&ZEROS).map_err(werr)?;
        self.out.write_all(&ZEROS).map_err(werr)?;
        self.out.flush().map_err(werr)?;
        Ok(self.out)
    }
}

/// A file entry's data source, opened.
enum Data<'e> {
    Bytes(&'e [u8]),
    File(File, &'e Path),
    Range(File, &'e Path, u64),
}

impl<'e> Data<'e> {
    fn open(entry: &str, source: &'e Source) -> Result<Self, LayerError> {
        Ok(match source {
            Source::Bytes(b) => Data::Bytes(b),
            Source::Path(p) => Data::File(open_regular(p).map_err(read_error(entry, p))?, p),
            Source::Range { path, offset } => Data::Range(
                open_regular(path).map_err(read_error(entry, path))?,
                path,
                *offset,
            ),
        })
    }
}

/// The error of reading host file `src` for layer entry `entry`.
fn read_error<'a>(entry: &'a str, src: &'a Path) -> impl Fn(io::Error) -> LayerError + 'a {
    move |source| LayerError::Read {
        path: src.to_owned(),
        entry: entry.to_owned(),
        source,
    }
}

/// Open a file that must be a regular file: never follow a symlink swapped in
/// after the walk (that could read outside the context) and never block on a FIFO.
fn open_regular(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tar_of(entries: &[Entry], mtime: MtimePolicy) -> Result<Vec<u8>, LayerError> {
        let mut w = LayerWriter::new(Vec::new(), mtime);
        for e in entries {
            w.append(e)?;
        }
        w.finish()
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, ::tar::Header, Vec<u8>)> {
        let mut a = ::tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, h, data)
            })
            .collect()
    }

    #[test]
    fn header_fields_read_back_with_the_tar_crate() {
        let mut f = Entry::file_bytes("app/run.sh", &b"#!/bin/sh\n"[..]);
        f.mode = 0o4755;
        f.uid = 1000;
        f.gid = 1001;
        f.mtime = 5;
        let entries = vec![
            Entry::dir("app"),
            Entry {
                kind: EntryKind::CharDevice { major: 1, minor: 3 },
                ..Entry::dir("app/null")
            },
            f,
            Entry {
                kind: EntryKind::Symlink {
                    target: "../etc/passwd".into(),
                },
                ..Entry::dir("app/sym")
            },
        ];
        let bytes = tar_of(&entries, MtimePolicy::Clamp(100)).unwrap();
        let got = read_back(&bytes);
        assert_eq!(got.len(), 4);
        let (p, h, _) = &got[0];
        assert_eq!(p, "app/");
        assert_eq!(h.entry_type(), ::tar::EntryType::Directory);
        assert_eq!(h.mode().unwrap(), 0o755, "no type bits in mode");
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let (_, h, _) = &got[1];
        assert_eq!(h.entry_type(), ::tar::EntryType::Char);
        assert_eq!(h.device_major().unwrap(), Some(1));
        assert_eq!(h.device_minor().unwrap(), Some(3));
        let (p, h, data) = &got[2];
        assert_eq!(p, "app/run.sh");
        assert_eq!(h.mode().unwrap(), 0o4755);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1000, 1001));
        assert_eq!(h.mtime().unwrap(), 5, "older than the epoch: kept");
        assert_eq!(data, b"#!/bin/sh\n");
        let (_, h, _) = &got[3];
        assert_eq!(h.link_name_bytes().unwrap().as_ref(), b"../etc/passwd");
        assert!(bytes.ends_with(&[0u8; 1024]));
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(
            bytes.len(),
            7 * BLOCK,
            "4 headers + 1 data block + 2 end blocks"
        );
    }

    #[test]
    fn mtime_set_versus_clamp() {
        let mut old = Entry::dir("old");
        old.mtime = 10;
        let mut new = Entry::dir("young");
        new.mtime = 2_000_000_000;
        let entries = [old, new];
        let mtimes = |p| -> Vec<u64> {
            read_back(&tar_of(&entries, p).unwrap())
                .iter()
                .map(|(_, h, _)| h.mtime().unwrap())
                .collect()
        };
        assert_eq!(mtimes(MtimePolicy::Clamp(1_000)), [10, 1_000]);
        assert_eq!(mtimes(MtimePolicy::Set(1_000)), [1_000, 1_000]);
    }

    #[test]
    fn out_of_order_and_duplicates_are_rejected_naming_both() {
        let err = tar_of(&[Entry::dir("b"), Entry::dir("a")], MtimePolicy::Set(0)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LayerError::OutOfOrder { .. }), "{msg}");
        assert!(msg.contains("`a`") && msg.contains("`b`"), "{msg}");
        // Full-string byte order: `a-c` sorts before `a/b`.
        let mut v = vec![Entry::dir("a/b"), Entry::dir("a-c"), Entry::dir("a")];
        sort_entries(&mut v);
        let paths: Vec<_> = v.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "a-c", "a/b"]);
        assert!(tar_of(&v, MtimePolicy::Set(0)).is_ok());
        let err = tar_of(&[Entry::dir("a"), Entry::dir("a")], MtimePolicy::Set(0)).unwrap_err();
        assert!(matches!(err, LayerError::Duplicate { .. }), "{err}");
        let err = tar_of(&[Entry::dir("a/")], MtimePolicy::Set(0)).unwrap_err();
        assert!(matches!(err, LayerError::InvalidPath { .. }), "{err}");
    }

    #[test]
    fn hardlink_needs_an_earlier_target() {
        let link = |p: &str, t: &str| Entry {
            kind: EntryKind::Hardlink { target: t.into() },
            ..Entry::dir(p)
        };
        let err = tar_of(
            &[link("a", "b"), Entry::file_bytes("b", &b"x"[..])],
            MtimePolicy::Set(0),
        )
        .unwrap_err();
        assert!(matches!(err, LayerError::HardlinkTarget { .. }), "{err}");
        assert!(err.to_string().contains("`b`"), "{err}");
        let err = tar_of(&[Entry::dir("d"), link("e", "d")], MtimePolicy::Set(0)).unwrap_err();
        assert!(
            matches!(err, LayerError::HardlinkTarget { .. }),
            "directory target: {err}"
        );
        let ok = tar_of(
            &[Entry::file_bytes("a", &b"x"[..]), link("b", "a")],
            MtimePolicy::Set(0),
        )
        .unwrap();
        let got = read_back(&ok);
        assert_eq!(got[1].1.entry_type(), ::tar::EntryType::Link);
        assert_eq!(got[1].1.size().unwrap(), 0);
        assert_eq!(got[1].1.link_name_bytes().unwrap().as_ref(), b"a");
    }

    #[test]
    fn a_link_target_with_nul_is_rejected_before_anything_is_written() {
        let e = Entry {
            kind: EntryKind::Symlink {
                target: "a\0b".into(),
            },
            ..Entry::dir("l")
        };
        let mut w = LayerWriter::new(Vec::new(), MtimePolicy::Set(0));
        let err = w.append(&e).unwrap_err();
        assert!(matches!(err, LayerError::LinkTargetNul { .. }), "{err}");
        assert_eq!(w.entries(), 0);
        assert_eq!(
            w.finish().unwrap().len(),
            2 * BLOCK,
            "nothing but the end marker"
        );
    }

    #[test]
    fn long_and_unicode_names_and_link_targets_round_trip() {
        let long_dir = "d".repeat(80);
        let long_file = format!("{long_dir}/{}", "f".repeat(60));
        let very_long = format!("{long_dir}/{}", "g".repeat(200));
        let unicode = "ünïcødé/日本語.txt".to_string();
        let long_target = format!("/{}", "t".repeat(300));
        let mut v = vec![
            Entry::dir(long_dir.clone()),
            Entry::file_bytes(long_file.clone(), &b"1"[..]),
            Entry::file_bytes(very_long.clone(), &b"2"[..]),
            Entry::dir("ünïcødé"),
            Entry::file_bytes(unicode.clone(), &b"3"[..]),
            Entry {
                kind: EntryKind::Symlink {
                    target: long_target.clone(),
                },
                ..Entry::dir("zlink")
            },
        ];
        sort_entries(&mut v);
        let bytes = tar_of(&v, MtimePolicy::Set(0)).unwrap();
        assert!(
            !bytes.windows(13).any(|w| w == b"././@LongLink"),
            "never GNU long-name entries"
        );
        let got = read_back(&bytes);
        let names: Vec<_> = got.iter().map(|(p, _, _)| p.clone()).collect();
        assert_eq!(
            names,
            [
                format!("{long_dir}/"),
                long_file,
                very_long,
                "zlink".into(),
                "ünïcødé/".into(),
                unicode
            ]
        );
        let link = got.iter().find(|(p, _, _)| p == "zlink").unwrap();
        let mut a = ::tar::Archive::new(&bytes[..]);
        let target = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path_bytes().as_ref() == b"zlink")
            .unwrap()
            .link_name_bytes()
            .unwrap()
            .into_owned();
        assert_eq!(target, long_target.as_bytes());
        assert_eq!(link.1.entry_type(), ::tar::EntryType::Symlink);
    }

    #[test]
    fn only_allowlisted_xattrs_are_written_as_pax_records() {
        let mut e = Entry::file_bytes("bin/ping", &b"elf"[..]);
        e.xattrs = BTreeMap::from([
            ("security.capability".to_string(), vec![1, 0, 0, 2, 0x20]),
            ("security.selinux".to_string(), b"host_t".to_vec()),
            ("user.origin".to_string(), b"laptop".to_vec()),
        ]);
        let bytes = tar_of(&[e], MtimePolicy::Set(0)).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"host_t"));
        assert!(!bytes.windows(6).any(|w| w == b"laptop"));
        let mut a = ::tar::Archive::new(&bytes[..]);
        let mut entries = a.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_owned(), x.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            exts,
            [(
                "SCHILY.xattr.security.capability".to_string(),
                vec![1, 0, 0, 2, 0x20]
            )]
        );
        assert_eq!(e.path_bytes().as_ref(), b"bin/ping");
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"elf");
    }

    #[test]
    fn a_file_that_changes_size_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("grows.txt");
        std::fs::write(&p, b"0123456789").unwrap();
        let mk = |size| Entry {
            kind: EntryKind::File {
                size,
                source: Source::Path(p.clone()),
            },
            ..Entry::dir("grows.txt")
        };
        assert!(tar_of(&[mk(10)], MtimePolicy::Set(0)).is_ok());
        for declared in [4, 20] {
            let err = tar_of(&[mk(declared)], MtimePolicy::Set(0)).unwrap_err();
            assert!(matches!(err, LayerError::FileChanged { .. }), "{err}");
            assert!(err.to_string().contains("grows.txt"), "{err}");
        }
        let err = tar_of(
            &[Entry {
                kind: EntryKind::File {
                    size: 3,
                    source: Source::Bytes(b"ab"[..].into()),
                },
                ..Entry::dir("b")
            }],
            MtimePolicy::Set(0),
        )
        .unwrap_err();
        assert!(matches!(err, LayerError::BytesSize { .. }), "{err}");
    }

    #[test]
    fn symlinked_source_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), t.path().join("link")).unwrap();
        let e = Entry {
            kind: EntryKind::File {
                size: 1,
                source: Source::Path(t.path().join("link")),
            },
            ..Entry::dir("x")
        };
        let err = tar_of(&[e], MtimePolicy::Set(0)).unwrap_err();
        assert!(matches!(err, LayerError::Read { .. }), "{err}");
    }
}
