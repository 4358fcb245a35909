//! The one tar reader: every layer or archive cairn reads (unpack, the plain
//! tar index, ADD, `cairn diff`) is decompressed by [`decompress`], which
//! sniffs the first bytes once, and each member's header is read by
//! [`Member::read`] once. [`for_each_member`] walks a whole archive that
//! way (ADD's, the `type=tar` output's): decompressed, each header read
//! once, each member's data checked to be all there.
//!
//! Compression is recognised by content, never by name or media type (a
//! registry may mislabel; ADD looks at bytes, as BuildKit does): gzip
//! (every member of a multi-member stream, as `pigz` or `cat a.gz b.gz`
//! make), zstd, bzip2 (multi-stream), xz (dictionary capped at
//! [`XZ_MEM_LIMIT_KB`]) or plain tar.

use crate::raw_name;
use std::io::{self, BufReader, Read};

/// Largest xz dictionary accepted (KiB): `xz -9` needs 64 MiB; more is hostile.
pub const XZ_MEM_LIMIT_KB: u32 = 256 * 1024;

/// How a stream is compressed, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Not compressed (or not a format we know: the tar reader decides).
    Plain,
    /// gzip, one member or several.
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
}

/// Bytes [`Codec::sniff`] needs to see.
pub const SNIFF_LEN: usize = 6;

impl Codec {
    /// The codec whose magic `head` starts with.
    pub fn sniff(head: &[u8]) -> Codec {
        const MAGIC: [(&[u8], Codec); 4] = [
            (&[0x1f, 0x8b], Codec::Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd], Codec::Zstd),
            (b"BZh", Codec::Bzip2),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0], Codec::Xz),
        ];
        MAGIC
            .iter()
            .find(|(m, _)| head.starts_with(m))
            .map_or(Codec::Plain, |(_, c)| *c)
    }

    /// Its name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Plain => "plain",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
        }
    }
}

/// The uncompressed bytes of `reader`, and how it was compressed.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<(Codec, Box<dyn Read + 'a>)> {
    let (codec, stream) = sniff(reader)?;
    Ok((codec, decoder(codec, stream)?))
}

/// A stream whose first bytes [`sniff`] read, put back in front.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// How `reader` is compressed, from its first bytes, and the whole stream
/// again (those bytes put back). With [`decoder`], [`decompress`] in two
/// halves: a caller decoding on another thread sniffs here, where it decides.
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(Codec, Sniffed<R>)> {
    let mut head = [0u8; SNIFF_LEN];
    let mut have = 0;
    while have < head.len() {
        match reader.read(&mut head[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let codec = Codec::sniff(&head[..have]);
    Ok((codec, io::Cursor::new(head[..have].to_vec()).chain(reader)))
}

/// The uncompressed bytes of `stream`, compressed with `codec`.
pub fn decoder<'a>(codec: Codec, stream: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        Codec::Plain => Box::new(stream),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(stream))),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(stream)?),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Codec::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
            BufReader::new(stream),
            true,
            XZ_MEM_LIMIT_KB,
        )),
    })
}

/// What a member is, with what its kind carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file (`0`, NUL, or contiguous `7`).
    File,
    /// A directory.
    Dir,
    /// A symbolic link to this target ([`raw_name`] string).
    Symlink(String),
    /// A hard link to this earlier member ([`raw_name`] string, as stored).
    Hardlink(String),
    /// A character device.
    Char(u32, u32),
    /// A block device.
    Block(u32, u32),
    /// A named pipe.
    Fifo,
    /// Anything else (GNU sparse, volume labels…): the type flag.
    Other(u8),
}

/// A modification time: seconds (maybe negative) and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mtime {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: u32,
}

/// One member's header, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The name as stored (PAX `path` or GNU long name included), as a
    /// [`raw_name`] string; not normalised.
    pub path: String,
    /// The kind.
    pub kind: MemberKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// From PAX `mtime` when present (nanoseconds kept), else the header.
    pub mtime: Mtime,
    /// Data length.
    pub size: u64,
    /// Its `SCHILY.xattr.` PAX records, in order: (name after the prefix, value).
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The 512-byte header block as stored (its name fields may be cut or
    /// overridden by PAX/GNU records: use `path` and `kind`), for a writer
    /// that copies a member unchanged.
    pub header: [u8; 512],
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A numeric header field (`parsed` from its `raw` bytes): blank (all NUL
/// or space) is 0, as Go reads it; `None` when it is not a number.
pub fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> Option<u64> {
    match parsed {
        Ok(v) => Some(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Some(0),
        Err(_) => None,
    }
}

impl Member {
    /// Read the header of `entry` (and its PAX records).
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Member> {
        let path = raw_name::from_bytes(&entry.path_bytes()).into_owned();
        let link = || -> io::Result<String> {
            let l = entry
                .link_name_bytes()
                .ok_or_else(|| invalid(format!("tar member `{path}` has no link target")))?;
            Ok(raw_name::from_bytes(&l).into_owned())
        };
        let h = entry.header();
        let header = *h.as_bytes();
        let old = h.as_old();
        let num = |parsed, raw, field| {
            numeric(parsed, raw).ok_or_else(|| {
                invalid(format!(
                    "tar member `{path}`: the {field} field is not a number"
                ))
            })
        };
        let mode = num(h.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
        let uid = num(h.uid(), &old.uid, "uid")?;
        let gid = num(h.gid(), &old.gid, "gid")?;
        let secs = num(h.mtime(), &old.mtime, "mtime")?;
        let device = || -> io::Result<(u32, u32)> {
            let bad = || invalid(format!("tar member `{path}` has no device numbers"));
            let major = h.device_major().map_err(|_| bad())?.ok_or_else(bad)?;
            let minor = h.device_minor().map_err(|_| bad())?.ok_or_else(bad)?;
            Ok((major, minor))
        };
        let t = h.entry_type();
        let kind = match t {
            // Old tars mark directories as regular files named `…/`; the unpacker agrees.
            t if t.is_file() && path.ends_with('/') => MemberKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => MemberKind::File,
            tar::EntryType::Directory => MemberKind::Dir,
            tar::EntryType::Symlink => MemberKind::Symlink(link()?),
            tar::EntryType::Link => MemberKind::Hardlink(link()?),
            tar::EntryType::Char => {
                let (a, b) = device()?;
                MemberKind::Char(a, b)
            }
            tar::EntryType::Block => {
                let (a, b) = device()?;
                MemberKind::Block(a, b)
            }
            tar::EntryType::Fifo => MemberKind::Fifo,
            other => MemberKind::Other(other.as_byte()),
        };
        let mut mtime = Mtime {
            secs: i64::try_from(secs).unwrap_or(i64::MAX),
            nanos: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                // A bad PAX time leaves the header's, as the unpacker does.
                if let (b"mtime", Some(t)) = (ext.key_bytes(), pax_time(ext.value_bytes())) {
                    mtime = t;
                }
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
        Ok(Member {
            size: entry.size(),
            xattrs,
            header,
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
        })
    }
}

/// Why [`for_each_member`] stopped.
#[derive(Debug)]
pub enum WalkError<E> {
    /// The archive cannot be read: its compression, a header, or a member's
    /// data (cut short included).
    Read(io::Error),
    /// The visitor refused a member.
    Visit(E),
}

/// Walk the tar in `reader` (any compression [`decompress`] knows): each
/// member's header read once ([`Member::read`]), then `visit` with the
/// member and a reader of its data. What the visitor leaves unread is
/// skipped; data that ends before the member's size is an error (as Go's
/// `archive/tar` says `unexpected EOF`), so a cut archive never yields a
/// short file. Returns the compression.
pub fn for_each_member<E>(
    reader: impl Read,
    mut visit: impl FnMut(Member, &mut dyn Read) -> Result<(), E>,
) -> Result<Codec, WalkError<E>> {
    let (codec, plain) = decompress(reader).map_err(WalkError::Read)?;
    let mut archive = tar::Archive::new(plain);
    for entry in archive.entries().map_err(WalkError::Read)? {
        let mut entry = entry.map_err(WalkError::Read)?;
        let member = Member::read(&mut entry).map_err(WalkError::Read)?;
        let (path, size) = (member.path.clone(), member.size);
        let mut data = Counted {
            inner: &mut entry,
            read: 0,
        };
        visit(member, &mut data).map_err(WalkError::Visit)?;
        io::copy(&mut data, &mut io::sink()).map_err(WalkError::Read)?;
        if data.read != size {
            return Err(WalkError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "tar member `{path}` is cut short: {} of {size} bytes",
                    data.read
                ),
            )));
        }
    }
    Ok(codec)
}

/// A reader that counts what passes through it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Parse a PAX time (`"1700000000.5"`, possibly negative).
pub fn pax_time(v: &[u8]) -> Option<Mtime> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: u32 = digits.parse().ok()?;
    Some(if neg && nanos > 0 {
        Mtime {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    } else {
        Mtime {
            secs: if neg { -secs } else { secs },
            nanos,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names(r: impl Read) -> (Codec, Vec<String>) {
        let (codec, inner) = decompress(r).unwrap();
        let mut ar = tar::Archive::new(inner);
        let names = ar
            .entries()
            .unwrap()
            .map(|e| Member::read(&mut e.unwrap()).unwrap().path)
            .collect();
        (codec, names)
    }

    #[test]
    fn every_codec_is_sniffed_and_read_to_the_end() {
        let raw = tar_of(&[("a", b"first"), ("b", b"second")]);
        let want = vec!["a".to_owned(), "b".to_owned()];
        // gzip in two members, cut between the two files.
        let mut gz = Vec::new();
        for part in [&raw[..1024], &raw[1024..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let zst = zstd::stream::encode_all(&raw[..], 3).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&raw).unwrap();
        let bz = bz.finish().unwrap();
        let mut xz =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        xz.write_all(&raw).unwrap();
        let xz = xz.finish().unwrap();
        for (bytes, codec) in [
            (&raw, Codec::Plain),
            (&gz, Codec::Gzip),
            (&zst, Codec::Zstd),
            (&bz, Codec::Bzip2),
            (&xz, Codec::Xz),
        ] {
            assert_eq!(names(&bytes[..]), (codec, want.clone()), "{codec:?}");
        }
    }

    #[test]
    fn a_member_is_read_once_with_its_exact_name_and_pax_time() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_uid(7);
        h.set_mtime(5);
        b.append_pax_extensions([("mtime", &b"1700000000.25"[..])])
            .unwrap();
        b.append_link(&mut h, std::ffi::OsStr::new("l"), "caf")
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        h.as_gnu_mut().unwrap().name[..5].copy_from_slice(b"x\xe9y\0\0");
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        h.set_size(0);
        h.as_ustar_mut().unwrap().name[..3].copy_from_slice(b"old");
        h.as_ustar_mut().unwrap().name[3] = b'/';
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let raw = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(&raw[..]);
        let all: Vec<Member> = ar
            .entries()
            .unwrap()
            .map(|e| Member::read(&mut e.unwrap()).unwrap())
            .collect();
        assert_eq!(all[0].kind, MemberKind::Symlink("caf".into()));
        assert_eq!((all[0].uid, all[0].mode), (7, 0o777));
        assert_eq!(
            all[0].mtime,
            Mtime {
                secs: 1_700_000_000,
                nanos: 250_000_000
            }
        );
        assert_eq!(&*raw_name::to_bytes(&all[1].path), b"x\xe9y");
        assert_eq!(
            all[2].kind,
            MemberKind::Dir,
            "a regular member named `old/`"
        );
    }

    #[test]
    fn for_each_member_reads_every_member_and_refuses_a_cut_one() {
        let raw = tar_of(&[("a", b"first"), ("b", &[7u8; 2000])]);
        let mut gz = Vec::new();
        for part in [&raw[..1024], &raw[1024..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let mut seen = Vec::new();
        let codec = for_each_member(&gz[..], |m, data| {
            // The visitor reads a only; b's data is skipped for it.
            if m.path == "a" {
                let mut s = String::new();
                data.read_to_string(&mut s)?;
                seen.push(s);
            }
            seen.push(m.path);
            Ok::<_, io::Error>(())
        })
        .unwrap();
        assert_eq!(
            (codec, seen),
            (Codec::Gzip, vec!["first".into(), "a".into(), "b".into()])
        );
        // Cut inside b's data: an error, not a short file.
        let cut = &raw[..512 * 3 + 100];
        match for_each_member(cut, |_, _| Ok::<_, io::Error>(())) {
            Err(WalkError::Read(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                assert!(e.to_string().contains("tar member `b` is cut short"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // A visitor's error stops the walk.
        let r = for_each_member(
            &raw[..],
            |m, _| if m.path == "a" { Err("no") } else { Ok(()) },
        );
        assert!(matches!(r, Err(WalkError::Visit("no"))));
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            pax_time(b"-1.5"),
            Some(Mtime {
                secs: -2,
                nanos: 500_000_000
            })
        );
        assert_eq!(pax_time(b"12"), Some(Mtime { secs: 12, nanos: 0 }));
        assert_eq!(pax_time(b"1.x"), None);
    }

    #[test]
    fn blank_numeric_fields_are_zero_garbage_is_refused() {
        let err = || Err(io::Error::other("bad"));
        assert_eq!(numeric(Ok(7), b"0000007\0"), Some(7));
        assert_eq!(numeric(err(), b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(numeric(err(), b"        "), Some(0));
        assert_eq!(numeric(err(), b"zzzzzzz\0"), None);
    }
}
