//! The members of a plain (uncompressed) tar layer as [`Entry`]s whose file
//! data stays where it lies in the blob ([`Source::Range`]): a layer that
//! later steps only read (`COPY --from=deps /build/node_modules`) need not
//! be unpacked, which costs an inode and a copy per file.
//!
//! Only simple layers are indexed: a whiteout, an opaque marker, a hard
//! link, a sparse or otherwise unusual member, or a path the unpacker would
//! refuse makes [`index_plain`] answer `None`, and the caller unpacks. The
//! metadata is read as [`crate::unpack`] applies it (header mode, uid and
//! gid; mtime from PAX when present), so the entries describe exactly the
//! directory an unpack would create.

use crate::entry::{check_path, Entry, EntryKind, Source};
use crate::tar_read::{Member, MemberKind};
use crate::whiteout::PREFIX as WHITEOUT_PREFIX;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

/// Index the plain tar at `blob`; `None` if it holds anything but plain
/// directories, files, symlinks, devices and fifos.
pub fn index_plain(blob: &Path) -> io::Result<Option<Vec<Entry>>> {
    let mut archive = tar::Archive::new(BufReader::with_capacity(64 * 1024, File::open(blob)?));
    let mut out = Vec::new();
    for entry in archive.entries_with_seek()? {
        let mut entry = entry?;
        let member = match Member::read(&mut entry) {
            Ok(m) => m,
            // A header the unpacker would judge itself.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = member
            .path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if path.is_empty() || path == "." {
            continue;
        }
        if check_path(&path).is_err() {
            return Ok(None);
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        if name.starts_with(WHITEOUT_PREFIX) {
            return Ok(None);
        }
        let kind = match member.kind {
            MemberKind::File => EntryKind::File {
                size: member.size,
                source: Source::Range {
                    path: blob.to_owned(),
                    offset: entry.raw_file_position(),
                },
            },
            MemberKind::Dir => EntryKind::Dir,
            MemberKind::Symlink(target) => EntryKind::Symlink { target },
            MemberKind::Char(major, minor) => EntryKind::CharDevice { major, minor },
            MemberKind::Block(major, minor) => EntryKind::BlockDevice { major, minor },
            MemberKind::Fifo => EntryKind::Fifo,
            MemberKind::Hardlink(_) | MemberKind::Other(_) => return Ok(None),
        };
        let (mode, uid, gid) = (member.mode, member.uid, member.gid);
        let Ok(mtime) = u64::try_from(member.mtime.secs) else {
            return Ok(None);
        };
        out.push(Entry {
            path,
            // Linux keeps no mode of its own on a symlink.
            mode: if matches!(kind, EntryKind::Symlink { .. }) {
                0o777
            } else {
                mode
            },
            kind,
            uid: u32::try_from(uid).unwrap_or(u32::MAX),
            gid: u32::try_from(gid).unwrap_or(u32::MAX),
            mtime,
            // As a directory view reports them: COPY --from never carries xattrs.
            xattrs: BTreeMap::new(),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_store::BlobStore;
    use crate::compress::Compression;
    use crate::layer::{write_layer, LayerOptions};
    use crate::tar::MtimePolicy;
    use std::io::Read;

    fn plain(store: &BlobStore, entries: Vec<Entry>) -> std::path::PathBuf {
        let mut opts = LayerOptions::new(MtimePolicy::Clamp(1_700_000_000));
        opts.compression = Compression::None;
        store.path(&write_layer(entries, &opts, store).unwrap().digest)
    }

    #[test]
    fn members_read_where_they_lie() {
        let t = tempfile::tempdir().unwrap();
        let store = BlobStore::open(t.path()).unwrap();
        let long = format!("d/{}", "n".repeat(150));
        let odd = crate::raw_name::from_bytes(b"d/caf\xe9").into_owned();
        let mut exe = Entry::file_bytes("d/exe", vec![7u8; 70_000]);
        exe.mode = 0o4755;
        exe.uid = 1001;
        exe.gid = 3_000_000;
        exe.mtime = 1_600_000_000;
        let mut link = Entry::dir("d/link");
        link.kind = EntryKind::Symlink {
            target: "exe".into(),
        };
        let blob = plain(
            &store,
            vec![
                Entry::dir("d"),
                Entry::file_bytes(&odd, &b"odd name"[..]),
                exe,
                link,
                Entry::file_bytes(&long, &b"long name"[..]),
            ],
        );
        let got = index_plain(&blob).unwrap().unwrap();
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["d", odd.as_str(), "d/exe", "d/link", long.as_str()]
        );
        let exe = &got[2];
        assert_eq!(
            (exe.mode, exe.uid, exe.gid, exe.mtime),
            (0o4755, 1001, 3_000_000, 1_600_000_000)
        );
        let EntryKind::File { size, source } = &exe.kind else {
            panic!("{exe:?}")
        };
        let mut data = Vec::new();
        source.open(*size).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(data, vec![7u8; 70_000]);
        assert_eq!(
            got[3].kind,
            EntryKind::Symlink {
                target: "exe".into()
            }
        );
        let EntryKind::File { size, source } = &got[1].kind else {
            panic!()
        };
        let mut data = Vec::new();
        source.open(*size).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"odd name");
        let EntryKind::File { size, source } = &got[4].kind else {
            panic!()
        };
        let mut data = Vec::new();
        source.open(*size).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"long name");
    }

    #[test]
    fn whiteouts_and_hardlinks_are_left_to_the_unpacker() {
        let t = tempfile::tempdir().unwrap();
        let store = BlobStore::open(t.path()).unwrap();
        let wh = plain(
            &store,
            vec![Entry::dir("d"), Entry::file_bytes("d/.wh.gone", &b""[..])],
        );
        assert!(index_plain(&wh).unwrap().is_none());
        let mut hl = Entry::dir("b");
        hl.kind = EntryKind::Hardlink { target: "a".into() };
        let hard = plain(&store, vec![Entry::file_bytes("a", &b"x"[..]), hl]);
        assert!(index_plain(&hard).unwrap().is_none());
    }
}
