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
use crate::engine::recompress::open_uncompressed;
use crate::engine::BuildResult;
use crate::report::Event;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::unpack::{unpack, UnpackOptions, WhiteoutMode};
use cairn_layers::whiteout::{self, Whiteout};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
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

/// `./a/b/` → `a/b`.
fn normalize(path: &[u8]) -> String {
    crate::diff::tar_index::normalize(&String::from_utf8_lossy(path))
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

/// Write the image's merged filesystem as one tar to `out`.
pub fn write_fs_tar(r: &BuildResult, store: &BlobStore, out: impl Write) -> Result<(), Error> {
    // Pass 1: path → (layer, entry number) of the entry that is visible.
    let mut visible: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (li, l) in r.layers.iter().enumerate() {
        let reading = |source| Error::ReadLayer {
            digest: l.digest.clone(),
            source,
        };
        let mut ar = tar::Archive::new(open_uncompressed(store, &l.digest)?);
        for (ei, e) in ar.entries().map_err(reading)?.enumerate() {
            let e = e.map_err(reading)?;
            let path = normalize(&e.path_bytes());
            if path.is_empty() {
                continue;
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
                    if e.header().entry_type() != tar::EntryType::Directory {
                        hide(&mut visible, &path, false, li);
                    }
                    visible.insert(path, (li, ei));
                }
            }
        }
    }
    let wanted: HashSet<(usize, usize)> = visible.into_values().collect();
    // Pass 2: copy the visible entries, lower layers first.
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    for (li, l) in r.layers.iter().enumerate() {
        let mut ar = tar::Archive::new(open_uncompressed(store, &l.digest)?);
        for (ei, e) in ar.entries()?.enumerate() {
            let mut e = e.map_err(|source| Error::ReadLayer {
                digest: l.digest.clone(),
                source,
            })?;
            if !wanted.contains(&(li, ei)) {
                continue;
            }
            let path = normalize(&e.path_bytes());
            let xattrs: Vec<(String, Vec<u8>)> = e
                .pax_extensions()?
                .into_iter()
                .flatten()
                .filter_map(|x| x.ok())
                .filter(|x| x.key().is_ok_and(|k| k.starts_with("SCHILY.xattr.")))
                .filter_map(|x| Some((x.key().ok()?.to_owned(), x.value_bytes().to_vec())))
                .collect();
            if !xattrs.is_empty() {
                b.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
            }
            let mut h = e.header().clone();
            let kind = h.entry_type();
            let path = if kind == tar::EntryType::Directory {
                format!("{path}/")
            } else {
                path
            };
            if kind.is_hard_link() || kind.is_symlink() {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target = if kind.is_hard_link() {
                    normalize(&target)
                } else {
                    String::from_utf8_lossy(&target).into_owned()
                };
                b.append_link(&mut h, &path, &target)?;
            } else {
                b.append_data(&mut h, &path, &mut e)?;
            }
        }
    }
    b.into_inner()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Layer;
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
        let bytes = b.into_inner().unwrap();
        let d = store.put_bytes(&bytes).unwrap();
        Layer {
            digest: d.clone(),
            diff_id: DiffId(d),
            size: bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
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
        let r = BuildResult {
            config_raw: Vec::new(),
            config_digest: l0.digest.clone(),
            manifest_raw: Vec::new(),
            manifest_media_type: crate::image::MediaType::OciManifest,
            manifest_digest: l0.digest.clone(),
            layers: vec![l0, l1],
            platform: crate::frontend::Platform::host(),
            record: Default::default(),
            base: None,
            annotations: Default::default(),
            run_command_time: Default::default(),
            run_step_time: Default::default(),
            stages: Vec::new(),
            layer_views: Default::default(),
        };
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
