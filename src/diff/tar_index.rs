//! An index of one layer tar: every entry's attributes and content digest,
//! read in one streaming pass (memory bounded: only small files' bytes are
//! kept, for text diffs and nested archives).

use cairn_layers::digest::HashingWriter;
use cairn_layers::tar_read::{Member, MemberKind};
use std::collections::BTreeMap;
use std::io::{self, Read};

/// Files up to this size keep their bytes (text diffs, nested archives).
pub const KEEP_BYTES_MAX: u64 = 1 << 20;

/// At most this many bytes are kept per layer, so memory stays bounded on
/// layers of many small files (beyond it, files are only hashed).
pub const KEEP_TOTAL_MAX: u64 = 16 << 20;

/// Attributes of one tar entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Normalized path (no leading `./` or `/`, no trailing `/`).
    pub path: String,
    /// Entry type: `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`, `other`.
    pub kind: &'static str,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Owner name recorded in the header.
    pub uname: String,
    /// Group name recorded in the header.
    pub gname: String,
    /// Content size.
    pub size: u64,
    /// Modification time (seconds).
    pub mtime: u64,
    /// Symlink target.
    pub link_target: Option<String>,
    /// Hardlink target.
    pub hardlink: Option<String>,
    /// Device numbers.
    pub device: Option<(u32, u32)>,
    /// Extended attributes (PAX `SCHILY.xattr.*`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// sha256 of the content (files only).
    pub content: Option<String>,
    /// Position in the archive.
    pub index: usize,
    /// Header format: `ustar`, `gnu`, `pax` (ustar with PAX records) or `v7`.
    pub format: &'static str,
    /// The bytes, for small files only.
    pub bytes: Option<Vec<u8>>,
}

/// All entries of one layer, by path.
#[derive(Clone, Debug, Default)]
pub struct LayerIndex {
    /// Entries by normalized path (the last one wins when a path repeats).
    pub files: BTreeMap<String, FileMeta>,
    /// Paths in archive order.
    pub order: Vec<String>,
    /// Bytes of uncompressed tar read.
    pub bytes_read: u64,
}

/// Normalize a tar path: strip `./` and `/` prefixes and trailing `/`.
pub fn normalize(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(r) = p.strip_prefix("./") {
            p = r;
        } else if let Some(r) = p.strip_prefix('/') {
            p = r;
        } else {
            break;
        }
    }
    p.trim_end_matches('/').to_owned()
}

/// Read a layer tar, in any compression [`cairn_layers::tar_read`] reads, into an index.
pub fn index_layer(reader: impl Read) -> io::Result<LayerIndex> {
    let buf = io::BufReader::with_capacity(256 * 1024, reader);
    let (_, plain) = cairn_layers::tar_read::decompress(buf)?;
    index_tar(plain)
}

fn index_tar(reader: impl Read) -> io::Result<LayerIndex> {
    let mut counter = CountingReader {
        inner: reader,
        n: 0,
    };
    let mut out = LayerIndex::default();
    let mut kept = 0u64;
    {
        let mut ar = tar::Archive::new(&mut counter);
        for (index, entry) in ar.entries()?.enumerate() {
            let mut entry = entry?;
            let header = entry.header().clone();
            // The header as unpack reads it (exact name bytes, the same kinds).
            let member = Member::read(&mut entry)?;
            let path = normalize(&member.path);
            let kind = match &member.kind {
                MemberKind::File => "file",
                MemberKind::Dir => "dir",
                MemberKind::Symlink(_) => "symlink",
                MemberKind::Hardlink(_) => "hardlink",
                MemberKind::Char(..) => "char",
                MemberKind::Block(..) => "block",
                MemberKind::Fifo => "fifo",
                MemberKind::Other(_) => "other",
            };
            let mut has_pax = false;
            let mut xattrs = BTreeMap::new();
            if let Some(exts) = entry.pax_extensions()? {
                has_pax = true;
                for ext in exts {
                    let ext = ext?;
                    if let Ok(k) = ext.key() {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.insert(name.to_owned(), ext.value_bytes().to_vec());
                        }
                    }
                }
            }
            let format = if header.as_gnu().is_some() {
                "gnu"
            } else if has_pax {
                "pax"
            } else if header.as_ustar().is_some() {
                "ustar"
            } else {
                "v7"
            };
            let size = member.size;
            let (content, bytes) = if kind == "file" {
                let keep = size <= KEEP_BYTES_MAX && kept + size <= KEEP_TOTAL_MAX;
                if keep {
                    kept += size;
                }
                let mut h = HashingWriter::new(if keep {
                    Vec::with_capacity(size as usize)
                } else {
                    Vec::new()
                });
                if keep {
                    io::copy(&mut entry, &mut h)?;
                    let (d, _, v) = h.finish();
                    (Some(d.to_string()), Some(v))
                } else {
                    let mut hs = HashingWriter::new(io::sink());
                    io::copy(&mut entry, &mut hs)?;
                    (Some(hs.finish().0.to_string()), None)
                }
            } else {
                (None, None)
            };
            let meta = FileMeta {
                path: path.clone(),
                kind,
                mode: member.mode,
                uid: member.uid,
                gid: member.gid,
                uname: header
                    .username()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
                gname: header
                    .groupname()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned(),
                size,
                mtime: u64::try_from(member.mtime.secs).unwrap_or(0),
                link_target: match &member.kind {
                    MemberKind::Symlink(t) => Some(t.clone()),
                    _ => None,
                },
                hardlink: match &member.kind {
                    MemberKind::Hardlink(t) => Some(normalize(t)),
                    _ => None,
                },
                device: match member.kind {
                    MemberKind::Char(a, b) | MemberKind::Block(a, b) => Some((a, b)),
                    _ => None,
                },
                xattrs,
                content,
                index,
                format,
                bytes,
            };
            out.order.push(path.clone());
            out.files.insert(path, meta);
        }
    }
    // Drain the end-of-archive padding so the byte count covers the stream.
    io::copy(&mut counter, &mut io::sink())?;
    out.bytes_read = counter.n;
    Ok(out)
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small tar made with the tar crate: (path, content, mode, uid, mtime).
    pub fn make_tar(files: &[(&str, &[u8], u32, u64, u64)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, c, mode, uid, mtime) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(c.len() as u64);
            h.set_mode(*mode);
            h.set_uid(*uid);
            h.set_gid(*uid);
            h.set_mtime(*mtime);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, *c).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn indexes_plain_and_gzip_alike() {
        let t = make_tar(&[
            ("./a.txt", b"hello", 0o644, 0, 5),
            ("b/c", b"x", 0o755, 1000, 6),
        ]);
        let plain = index_layer(&t[..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &t).unwrap();
        let zipped = index_layer(&gz.finish().unwrap()[..]).unwrap();
        assert_eq!(plain.order, vec!["a.txt", "b/c"]);
        assert_eq!(plain.files, zipped.files);
        let a = &plain.files["a.txt"];
        assert_eq!(
            (a.kind, a.mode, a.size, a.mtime, a.format),
            ("file", 0o644, 5, 5, "ustar")
        );
        assert_eq!(a.bytes.as_deref(), Some(&b"hello"[..]));
        assert_eq!(plain.bytes_read, t.len() as u64);
    }

    #[test]
    fn names_that_are_not_utf8_stay_apart() {
        use std::os::unix::ffi::OsStrExt;
        let mut b = tar::Builder::new(Vec::new());
        for name in [&b"caf\xe9"[..], b"caf\xe8"] {
            let mut h = tar::Header::new_ustar();
            h.set_size(1);
            h.set_mode(0o644);
            b.append_data(&mut h, std::ffi::OsStr::from_bytes(name), &b"x"[..])
                .unwrap();
        }
        let t = b.into_inner().unwrap();
        // Read lossily, both were one path and one file was lost.
        assert_eq!(index_layer(&t[..]).unwrap().files.len(), 2);
    }

    #[test]
    fn kept_bytes_stay_within_the_layer_budget() {
        let big = vec![7u8; KEEP_BYTES_MAX as usize];
        let names: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
        let files: Vec<(&str, &[u8], u32, u64, u64)> = names
            .iter()
            .map(|n| (n.as_str(), &big[..], 0o644, 0, 0))
            .collect();
        let idx = index_layer(&make_tar(&files)[..]).unwrap();
        let kept: u64 = idx
            .files
            .values()
            .filter_map(|f| f.bytes.as_ref())
            .map(|b| b.len() as u64)
            .sum();
        assert_eq!(kept, KEEP_TOTAL_MAX);
        assert!(
            idx.files.values().all(|f| f.content.is_some()),
            "every file is still hashed"
        );
    }
}
