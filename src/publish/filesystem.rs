//! The final filesystem of an image, without the image around it: buildx's
//! `type=local` (a directory) and `type=tar` (one tar) outputs.
//!
//! `type=local` unpacks the layers one after another into the directory,
//! whiteouts applied (files owned by the caller, as buildx writes them).
//! `type=tar` merges the layers at the tar level, so ownership, modes and
//! device nodes survive without privileges: a first pass over every layer's
//! headers finds which entry of which layer is visible (later layers win;
//! `.wh.` and opaque whiteouts hide lower layers' paths; a non-directory
//! hides a lower directory's children), a second pass copies those entries,
//! lower layers first so that directories and hard-link targets precede what
//! needs them.

use super::{Built, Dest, Error, Publisher, Subject};
use crate::engine::recompress::{open_uncompressed, OpenLayerError};
use crate::engine::BuildResult;
use crate::image::Layer;
use crate::report::Event;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::raw_name;
use cairn_layers::tar_read::{self, Member, MemberKind, WalkError};
use cairn_layers::unpack::{unpack, UnpackOptions, WhiteoutMode};
use cairn_layers::whiteout::{self, Whiteout};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::path::Path;

/// `type=local`: the filesystem into a directory.
pub struct LocalDir(pub std::path::PathBuf);

/// `type=tar`: the filesystem as one tar.
pub struct FsTar(pub Dest);

/// The one image a filesystem output writes (a multi-platform build has
/// these outputs refused before it starts).
fn one_image<'a>(built: &Built<'a>) -> Result<&'a BuildResult, Error> {
    match built.subject {
        Subject::Image(r) => {
            built.fetch_layers()?;
            Ok(r)
        }
        Subject::Index(_) => Err(Error::MultiPlatformFilesystem),
    }
}

impl Publisher for LocalDir {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        to_local_dir(one_image(built)?, built.store, &self.0)?;
        built.reporter.event(Event::Info(format!(
            "wrote the filesystem to {}",
            self.0.display()
        )));
        Ok(())
    }
}

impl Publisher for FsTar {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        let r = one_image(built)?;
        self.0.write(|w| write_fs_tar(r, built.store, w))?;
        built.reporter.event(Event::Info(format!(
            "wrote the filesystem tar to {}",
            self.0.describe()
        )));
        Ok(())
    }
}

/// Unpack the image's filesystem into `dir` (created if missing).
pub fn to_local_dir(r: &BuildResult, store: &BlobStore, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Apply,
        ..Default::default()
    };
    for l in &r.layers {
        unpack(open_uncompressed(store, &l.digest)?, dir, &opts).map_err(|source| {
            Error::Unpack {
                digest: l.digest.clone(),
                dir: dir.to_path_buf(),
                source: Box::new(source),
            }
        })?;
    }
    Ok(())
}

/// `./a/b/` → `a/b` (a [`raw_name`] string back to its bytes first, so a
/// name that is not UTF-8 reads as it always did here).
fn normalize(path: &str) -> String {
    crate::diff::tar_index::normalize(&String::from_utf8_lossy(&raw_name::to_bytes(path)))
}

/// Remove from `visible` every path under `prefix/` (and `prefix` itself when
/// `itself`) that a layer below `layer` put there.
fn hide(visible: &mut BTreeMap<String, (usize, usize)>, prefix: &str, itself: bool, layer: usize) {
    let under = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let doomed: Vec<String> = visible
        .range(under.clone()..)
        .take_while(|(k, _)| k.starts_with(&under))
        .filter(|(_, (l, _))| *l < layer)
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        visible.remove(&k);
    }
    if itself && visible.get(prefix).is_some_and(|(l, _)| *l < layer) {
        visible.remove(prefix);
    }
}

/// Walk layer `l`'s members with the layers crate's one reader
/// ([`tar_read::for_each_member`]: any compression, each header read once,
/// a member cut short refused), `visit` getting each member's number too.
fn each_member(
    store: &BlobStore,
    l: &Layer,
    mut visit: impl FnMut(usize, Member, &mut dyn Read) -> Result<(), Error>,
) -> Result<(), Error> {
    let blob = store
        .open_blob(&l.digest)
        .map_err(|source| OpenLayerError::Open {
            digest: l.digest.clone(),
            source,
        })?;
    let mut n = 0;
    let walk = tar_read::for_each_member(BufReader::new(blob), |member, data| {
        n += 1;
        visit(n - 1, member, data)
    });
    match walk {
        Ok(_) => Ok(()),
        Err(WalkError::Read(source)) => Err(Error::ReadLayer {
            digest: l.digest.clone(),
            source,
        }),
        Err(WalkError::Visit(e)) => Err(e),
    }
}

/// Write the image's merged filesystem as one tar to `out`.
pub fn write_fs_tar(r: &BuildResult, store: &BlobStore, out: impl Write) -> Result<(), Error> {
    // Pass 1: path → (layer, entry number) of the entry that is visible.
    let mut visible: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (li, l) in r.layers.iter().enumerate() {
        each_member(store, l, |ei, member, _| {
            let path = normalize(&member.path);
            if path.is_empty() {
                return Ok(());
            }
            match whiteout::parse_path(path.as_bytes()).map_err(|source| Error::Whiteout {
                digest: l.digest.clone(),
                source,
            })? {
                Some((parent, Whiteout::Remove(name))) => {
                    let parent = String::from_utf8_lossy(parent);
                    let name = String::from_utf8_lossy(name);
                    let target = if parent.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{parent}/{name}")
                    };
                    hide(&mut visible, &target, true, li);
                }
                Some((parent, Whiteout::Opaque)) => {
                    hide(&mut visible, &String::from_utf8_lossy(parent), false, li);
                }
                None => {
                    if header_of(&member).entry_type() != tar::EntryType::Directory {
                        hide(&mut visible, &path, false, li);
                    }
                    visible.insert(path, (li, ei));
                }
            }
            Ok(())
        })?;
    }
    let wanted: HashSet<(usize, usize)> = visible.into_values().collect();
    // Pass 2: copy the visible entries, lower layers first.
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    for (li, l) in r.layers.iter().enumerate() {
        each_member(store, l, |ei, member, data| {
            if !wanted.contains(&(li, ei)) {
                return Ok(());
            }
            if !member.xattrs.is_empty() {
                let xattrs: Vec<(String, &[u8])> = member
                    .xattrs
                    .iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                    .collect();
                b.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), *v)))?;
            }
            let mut h = header_of(&member);
            let path = normalize(&member.path);
            let path = if h.entry_type() == tar::EntryType::Directory {
                format!("{path}/")
            } else {
                path
            };
            match &member.kind {
                MemberKind::Hardlink(target) => b.append_link(&mut h, &path, normalize(target))?,
                MemberKind::Symlink(target) => {
                    let target = String::from_utf8_lossy(&raw_name::to_bytes(target)).into_owned();
                    b.append_link(&mut h, &path, target)?
                }
                _ => b.append_data(&mut h, &path, data)?,
            }
            Ok(())
        })?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}

/// The member's header block as stored, to copy it unchanged.
fn header_of(member: &Member) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&member.header);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_layers::DiffId;

    fn layer(store: &BlobStore, entries: &[(&str, Option<&str>)]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    h.set_uid(1000);
                    h.set_cksum();
                    b.append_data(&mut h, path, d.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    h.set_cksum();
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        layer_of(store, &b.into_inner().unwrap())
    }

    /// A layer from tar bytes already written.
    fn layer_of(store: &BlobStore, bytes: &[u8]) -> Layer {
        let d = store.put_bytes(bytes).unwrap();
        Layer {
            digest: d.clone(),
            diff_id: DiffId(d),
            size: bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
    }

    fn result_of(layers: Vec<Layer>) -> BuildResult {
        BuildResult {
            config_raw: Vec::new(),
            config_digest: layers[0].digest.clone(),
            manifest_raw: Vec::new(),
            manifest_media_type: crate::image::MediaType::OciManifest,
            manifest_digest: layers[0].digest.clone(),
            layers,
            platform: crate::frontend::Platform::host(),
            record: Default::default(),
            base: None,
            annotations: Default::default(),
            run_command_time: Default::default(),
            run_step_time: Default::default(),
            stages: Vec::new(),
            layer_views: Default::default(),
        }
    }

    /// The merged tar's exact bytes, for layers in both header formats with
    /// owner names, a long name, PAX times and xattrs, links, a device and
    /// whiteouts: the reader under `write_fs_tar` may change, its output not.
    #[test]
    fn merged_tar_bytes_are_pinned() {
        let t = tempfile::tempdir().unwrap();
        let store = BlobStore::open(t.path()).unwrap();
        let entry = |gnu: bool, kind: tar::EntryType, mode: u32| {
            let mut h = if gnu {
                tar::Header::new_gnu()
            } else {
                tar::Header::new_ustar()
            };
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_username("root").unwrap();
            h.set_groupname("wheel").unwrap();
            h.set_size(0);
            h
        };
        let long = format!("usr/{}", "n".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        for (gnu, p) in [
            (true, "./usr/"),
            (false, "usr/lib/"),
            (true, "etc/"),
            (true, "d/"),
        ] {
            let mut h = entry(gnu, tar::EntryType::Directory, 0o755);
            b.append_data(&mut h, p, &[][..]).unwrap();
        }
        for (gnu, p, data) in [
            (true, "etc/passwd", &b"root:x:0:0\n"[..]),
            (false, "etc/gone", b"x"),
            (true, long.as_str(), b"long"),
            (true, "d/child", b"c"),
        ] {
            let mut h = entry(gnu, tar::EntryType::Regular, 0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, p, data).unwrap();
        }
        b.append_pax_extensions([
            ("mtime", &b"1700000000.5"[..]),
            ("SCHILY.xattr.security.capability", b"\x01\x00cap"),
        ])
        .unwrap();
        let mut h = entry(false, tar::EntryType::Regular, 0o4755);
        h.set_size(3);
        b.append_data(&mut h, "usr/ping", &b"elf"[..]).unwrap();
        let mut h = entry(true, tar::EntryType::Symlink, 0o777);
        b.append_link(&mut h, "usr/sh", "/bin/busybox").unwrap();
        let mut h = entry(true, tar::EntryType::Link, 0o644);
        b.append_link(&mut h, "etc/passwd-", "./etc/passwd")
            .unwrap();
        let mut h = entry(false, tar::EntryType::Char, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "usr/null", &[][..]).unwrap();
        let l0 = layer_of(&store, &b.into_inner().unwrap());
        let mut b = tar::Builder::new(Vec::new());
        for (gnu, p, data) in [
            (false, "etc/passwd", &b"root:x:0:0\nnode:x:1000\n"[..]),
            (true, "etc/.wh.gone", b""),
            (true, "usr/lib/.wh..wh..opq", b""),
            (false, "d", b"now a file"),
        ] {
            let mut h = entry(gnu, tar::EntryType::Regular, 0o600);
            h.set_uid(1000);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, p, data).unwrap();
        }
        let l1 = layer_of(&store, &b.into_inner().unwrap());
        let mut out = Vec::new();
        write_fs_tar(&result_of(vec![l0, l1]), &store, &mut out).unwrap();
        let names: Vec<String> = tar::Archive::new(&out[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "usr/",
                "usr/lib/",
                "etc/",
                &long,
                "usr/ping",
                "usr/sh",
                "etc/passwd-",
                "usr/null",
                "etc/passwd",
                "d"
            ],
        );
        assert_eq!(
            cairn_layers::Digest::of(&out).to_string(),
            "sha256:843288b0fb7f8dce8415f50f49197b8ffc091355a3cbb83be3ef62fd5b0b65d7"
        );
    }

    #[test]
    fn layers_merge_with_whiteouts_and_owners_kept() {
        let t = tempfile::tempdir().unwrap();
        let store = BlobStore::open(t.path()).unwrap();
        let l0 = layer(
            &store,
            &[
                ("etc/", None),
                ("etc/a", Some("old a")),
                ("etc/gone", Some("x")),
                ("var/", None),
                ("var/cache/", None),
                ("var/cache/x", Some("x")),
                ("opt/", None),
                ("opt/old", Some("o")),
                ("d/", None),
                ("d/child", Some("c")),
            ],
        );
        let l1 = layer(
            &store,
            &[
                ("etc/a", Some("new a")),
                ("etc/.wh.gone", Some("")),
                ("var/.wh.cache", Some("")),
                ("opt/.wh..wh..opq", Some("")),
                ("opt/new", Some("n")),
                ("d", Some("now a file")),
            ],
        );
        let r = result_of(vec![l0, l1]);
        let mut out = Vec::new();
        write_fs_tar(&r, &store, &mut out).unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let mut got = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            got.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                s,
                e.header().uid().unwrap(),
            ));
        }
        let names: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["etc/", "var/", "opt/", "etc/a", "opt/new", "d"],
            "{got:?}"
        );
        assert_eq!(got[3].1, "new a");
        assert_eq!(got[3].2, 1000, "owners are kept");
    }
}
