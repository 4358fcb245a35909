//! What ADD does beyond COPY, as BuildKit: local tar archives (plain, gzip,
//! zstd, bzip2 or xz, walked by [`tar_read::for_each_member`]; recognised by their content,
//! never their name) are extracted into the destination like
//! `tar -x`, and `http(s)://` sources are downloaded (with `--checksum`
//! verified). Archive members become [`Entry`]s: nothing is ever extracted to
//! a path chosen by the archive, so a hostile member cannot escape.

use super::copy::CopyError;
use super::fs::components;
use super::step::error::{Error, Result};
use cairn_layers::tar_read::{self, Codec, MemberKind, WalkError};
use cairn_layers::{Digest, Entry, EntryKind, Source};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// True when a 512-byte block is a tar header (ustar magic or a valid v7 checksum).
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block.iter().all(|b| *b == 0) {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    sum == want
}

fn read_up_to(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Whether `path` holds a tar archive ADD should extract, and how it is
/// compressed: compressed data counts only when what it holds is a tar.
pub fn sniff(path: &Path) -> io::Result<Option<Codec>> {
    let (codec, mut inner) = tar_read::decompress(BufReader::new(File::open(path)?))?;
    // Data that does not decompress is not an archive: it is copied as is.
    let head = read_up_to(&mut inner, 512).unwrap_or_default();
    Ok(is_tar_header(&head).then_some(codec))
}

/// Clean an archive member name as `tar -x` into a root would: a leading `/`
/// is dropped; a name that climbs above the root is refused.
fn member_path(name: &str) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for c in components(name) {
        if c == ".." {
            out.pop()?;
        } else {
            out.push(c);
        }
    }
    Some(out.join("/"))
}

/// Read the archive at `host` into entries relative to the extraction root.
/// Regular files' contents are written to `scratch` (which must outlive the
/// entries). Members through a symlink of the archive, or climbing out of
/// the root, are refused.
pub fn archive_entries(host: &Path, scratch: &Path, shown: &str) -> Result<Vec<Entry>, CopyError> {
    let err = |reason: String| CopyError::Archive {
        path: shown.to_owned(),
        reason,
    };
    let file = File::open(host).map_err(|e| err(e.to_string()))?;
    let mut out: Vec<Entry> = Vec::new();
    let mut symlinks = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut n = 0;
    let walk = tar_read::for_each_member(BufReader::new(file), |member, data| {
        n += 1;
        let raw = member.path;
        let path = member_path(&raw)
            .ok_or_else(|| err(format!("member `{raw}` points outside the archive root")))?;
        if path.is_empty() {
            return Ok(());
        }
        let comps = components(&path);
        for i in 1..comps.len() {
            let parent = comps[..i].join("/");
            if symlinks.contains(&parent) {
                return Err(err(format!(
                    "member `{raw}` is below the symlink `{parent}` of the same archive"
                )));
            }
        }
        let (mode, uid, gid) = (member.mode, member.uid as u32, member.gid as u32);
        let mtime = u64::try_from(member.mtime.secs).unwrap_or(0);
        let kind = match member.kind {
            MemberKind::Dir => EntryKind::Dir,
            MemberKind::Symlink(target) => {
                symlinks.insert(path.clone());
                EntryKind::Symlink { target }
            }
            MemberKind::Hardlink(to) => {
                let target = member_path(&to)
                    .filter(|p| seen.contains(p))
                    .ok_or_else(|| {
                        err(format!(
                            "hard link `{raw}` must point at an earlier member of the archive"
                        ))
                    })?;
                EntryKind::Hardlink { target }
            }
            MemberKind::File => {
                let dest = scratch.join(format!("f{}", n - 1));
                let mut f = File::create(&dest).map_err(|e| err(e.to_string()))?;
                let size = io::copy(data, &mut f).map_err(|e| err(e.to_string()))?;
                f.flush().map_err(|e| err(e.to_string()))?;
                EntryKind::File {
                    size,
                    source: Source::Path(dest),
                }
            }
            MemberKind::Fifo => EntryKind::Fifo,
            MemberKind::Char(major, minor) => EntryKind::CharDevice { major, minor },
            MemberKind::Block(major, minor) => EntryKind::BlockDevice { major, minor },
            // PAX/GNU metadata records are consumed by the tar reader; skip the rest.
            MemberKind::Other(_) => return Ok(()),
        };
        if !matches!(kind, EntryKind::Symlink { .. }) {
            symlinks.remove(&path);
        }
        seen.insert(path.clone());
        out.push(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            xattrs: Default::default(),
        });
        Ok(())
    });
    match walk {
        Ok(_) => {}
        Err(WalkError::Read(e)) => return Err(err(e.to_string())),
        Err(WalkError::Visit(e)) => return Err(e),
    }
    // A link sorting before its target is reordered by the COPY planner,
    // which keeps each link group one inode.
    Ok(out)
}

/// Whether an ADD source is a URL to download.
pub fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// Whether an ADD source names a git repository.
pub fn is_git(src: &str) -> bool {
    if src.starts_with("git://") || src.starts_with("git@") {
        return true;
    }
    is_url(src) && {
        let base = src.split('#').next().unwrap_or(src);
        base.ends_with(".git") || src.contains(".git#")
    }
}

/// A URL for messages: credentials and query never shown.
pub fn display_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) => {
            let _ = p.set_password(None);
            let _ = p.set_username("");
            p.set_query(None);
            p.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

/// The file name BuildKit gives a download: the URL path's last element,
/// or `__unnamed__`.
pub fn url_file_name(u: &str) -> String {
    let path = url::Url::parse(u)
        .map(|p| p.path().to_owned())
        .unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or("");
    let decoded = percent_decode(last);
    if decoded.is_empty() || decoded == "." || decoded == ".." || decoded.contains('/') {
        "__unnamed__".into()
    } else {
        decoded
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `--checksum=sha256:<hex>`.
pub fn parse_checksum(s: &str) -> Result<Digest> {
    s.parse::<Digest>().map_err(|reason| Error::BadChecksum {
        text: s.to_owned(),
        reason,
    })
}

/// A downloaded ADD source.
pub struct Download {
    /// Where its bytes are (inside the caller's scratch directory).
    pub path: PathBuf,
    /// The file name in the image.
    pub name: String,
    /// sha256 of the bytes.
    pub digest: Digest,
}

/// Download `url` into `dir`, verifying `checksum` when given.
pub fn download(url: &str, dir: &Path, checksum: Option<&Digest>) -> Result<Download> {
    let shown = display_url(url);
    let name = url_file_name(url);
    let path = dir.join(format!("download-{}", Digest::of(url.as_bytes()).hex()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let digest = rt
        .block_on(fetch_to(url, &path))
        .map_err(|source| Error::Download {
            url: shown.clone(),
            source: Box::new(source),
        })?;
    if let Some(want) = checksum {
        if &digest != want {
            return Err(Error::ChecksumMismatch {
                url: shown,
                want: want.clone(),
                got: digest,
            });
        }
    }
    Ok(Download { path, name, digest })
}

async fn fetch_to(url: &str, path: &Path) -> Result<Digest> {
    use futures_util::StreamExt as _;
    let client = reqwest::Client::builder()
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()?;
    // reqwest errors print their URL: drop it, it may carry credentials.
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(reqwest::Error::without_url)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::HttpStatus(status));
    }
    let mut f = File::create(path).map_err(|source| Error::Create {
        path: path.to_owned(),
        source,
    })?;
    let mut hasher = cairn_layers::digest::HashingWriter::new(&mut f);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        hasher.write_all(&chunk.map_err(reqwest::Error::without_url)?)?;
    }
    let digest = hasher.finish().0;
    f.sync_all()?;
    Ok(digest)
}

/// The entry of a download: mode 0600, root-owned.
pub fn download_entry(d: &Download) -> Result<Entry> {
    let size = std::fs::metadata(&d.path)?.len();
    Ok(Entry {
        path: d.name.clone(),
        kind: EntryKind::File {
            size,
            source: Source::Path(d.path.clone()),
        },
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, t, body, link) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_mode(0o640);
            h.set_uid(5);
            h.set_gid(6);
            h.set_size(body.len() as u64);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            // `append_data` refuses `..`; write the raw name to test hostile archives.
            let raw = name.as_bytes();
            h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
            h.set_cksum();
            b.append(&h, *body).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn sniffing_looks_at_content_not_names() {
        let t = tempfile::tempdir().unwrap();
        let tarball = tar_of(&[("a.txt", tar::EntryType::Regular, b"A", "")]);
        let plain = t.path().join("x.tar.gz");
        std::fs::write(&plain, b"not an archive at all").unwrap();
        assert_eq!(sniff(&plain).unwrap(), None);
        let raw = t.path().join("data.bin");
        std::fs::write(&raw, &tarball).unwrap();
        assert_eq!(sniff(&raw).unwrap(), Some(Codec::Plain));
        let gz = t.path().join("noext");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tarball).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        assert_eq!(sniff(&gz).unwrap(), Some(Codec::Gzip));
        let gz_text = t.path().join("notes.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"hello").unwrap();
        std::fs::write(&gz_text, e.finish().unwrap()).unwrap();
        assert_eq!(
            sniff(&gz_text).unwrap(),
            None,
            "gzip of a non-tar is copied"
        );
        let bz = t.path().join("b");
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&tarball).unwrap();
        std::fs::write(&bz, e.finish().unwrap()).unwrap();
        assert_eq!(sniff(&bz).unwrap(), Some(Codec::Bzip2));
        let xz = t.path().join("x");
        let mut e =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        e.write_all(&tarball).unwrap();
        std::fs::write(&xz, e.finish().unwrap()).unwrap();
        assert_eq!(sniff(&xz).unwrap(), Some(Codec::Xz));
        let scratch = tempfile::tempdir().unwrap();
        let zst = t.path().join("z");
        std::fs::write(&zst, zstd::stream::encode_all(&tarball[..], 3).unwrap()).unwrap();
        assert_eq!(sniff(&zst).unwrap(), Some(Codec::Zstd));
        for p in [&bz, &xz, &zst] {
            let es = archive_entries(p, scratch.path(), "x").unwrap();
            assert_eq!(es[0].path, "a.txt", "{}", p.display());
        }
        let bad_zst = t.path().join("bad");
        std::fs::write(&bad_zst, [0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap();
        assert_eq!(sniff(&bad_zst).unwrap(), None, "not a tar inside: copied");
    }

    #[test]
    fn members_become_entries_with_their_metadata() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.tar");
        std::fs::write(
            &p,
            tar_of(&[
                ("d/", tar::EntryType::Directory, b"", ""),
                ("/d/a.txt", tar::EntryType::Regular, b"hello", ""),
                ("d/l", tar::EntryType::Symlink, b"", "/etc/passwd"),
                ("d/h", tar::EntryType::Link, b"", "d/a.txt"),
            ]),
        )
        .unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let es = archive_entries(&p, scratch.path(), "a.tar").unwrap();
        let paths: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["d", "d/a.txt", "d/l", "d/h"]);
        assert_eq!((es[1].mode, es[1].uid, es[1].gid), (0o640, 5, 6));
        match &es[1].kind {
            EntryKind::File {
                size: 5,
                source: Source::Path(h),
            } => assert_eq!(std::fs::read(h).unwrap(), b"hello"),
            k => panic!("{k:?}"),
        }
        assert_eq!(
            es[2].kind,
            EntryKind::Symlink {
                target: "/etc/passwd".into()
            }
        );
        assert_eq!(
            es[3].kind,
            EntryKind::Hardlink {
                target: "d/a.txt".into()
            }
        );
    }

    #[test]
    fn hostile_members_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        for members in [
            vec![("../evil", tar::EntryType::Regular, &b"x"[..], "")],
            vec![
                ("l", tar::EntryType::Symlink, &b""[..], "/etc"),
                ("l/passwd", tar::EntryType::Regular, &b"x"[..], ""),
            ],
            vec![("h", tar::EntryType::Link, &b""[..], "/etc/passwd")],
        ] {
            let p = t.path().join("bad.tar");
            std::fs::write(&p, tar_of(&members)).unwrap();
            let r = archive_entries(&p, scratch.path(), "bad.tar");
            assert!(matches!(r, Err(CopyError::Archive { .. })), "{members:?}");
        }
    }

    #[test]
    fn a_cut_archive_is_an_error_not_a_short_file() {
        let t = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let whole = tar_of(&[("big", tar::EntryType::Regular, &[1u8; 4096][..], "")]);
        let p = t.path().join("cut.tar");
        std::fs::write(&p, &whole[..512 + 1000]).unwrap();
        match archive_entries(&p, scratch.path(), "cut.tar") {
            Err(CopyError::Archive { path, reason }) => {
                assert_eq!(path, "cut.tar");
                assert!(
                    reason.contains("`big` is cut short: 1000 of 4096 bytes"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn url_names_and_kinds() {
        assert_eq!(
            url_file_name("https://x.io/a/b/app%20v1.tgz?x=1"),
            "app v1.tgz"
        );
        assert_eq!(url_file_name("https://x.io/"), "__unnamed__");
        assert_eq!(url_file_name("https://x.io"), "__unnamed__");
        assert!(is_git("https://github.com/a/b.git#main"));
        assert!(is_git("git@github.com:a/b.git"));
        assert!(!is_git("https://x.io/file.tgz"));
        assert_eq!(
            display_url("https://user:secret@x.io/f?token=abc"),
            "https://x.io/f"
        );
    }
}
