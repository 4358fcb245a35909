//! `type=oci`: the image (or index) in an OCI layout, as a directory
//! (`tar=false`) or packed in a tarball (as `podman load`, `skopeo copy
//! oci-archive:` and `docker load` read it). The layout's blobs are
//! hard-linked from the cache; the build record and attestations go in as
//! attached artifacts ([`super::attachments`]). The tarball packs the
//! layout in a fixed order with fixed metadata (mode 0644/0755, uid/gid 0,
//! mtime 0), so the same image gives the same tar bytes.

use super::{Built, Dest, Error, Publisher, Subject};
use crate::image::oci_layout::OciLayout;
use crate::registry::Reference;
use crate::report::Event;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The tag an OCI layout records for a `-t` reference (`app:1.0` → `1.0`).
pub fn layout_tag(reference: &str) -> String {
    match reference.parse::<Reference>() {
        Ok(r) => r.tag().unwrap_or("latest").to_owned(),
        Err(_) => reference.to_owned(),
    }
}

/// Copy the subject (blobs and attachments) into the layout at `dir`, and
/// tag the index if there is one, else the image, with each of `tags`
/// (untagged builds are tagged `latest`, as `docker build` names them).
/// The layers must be in the store ([`Built::fetch_layers`]).
pub fn write_layout(built: &Built<'_>, dir: &Path, tags: &[String]) -> Result<(), Error> {
    let layout = OciLayout::create(dir).map_err(|source| Error::CreateLayout {
        dir: dir.to_path_buf(),
        source,
    })?;
    let store = built.store;
    let mut top = None;
    let mut attestations = Vec::new();
    for r in built.subject.images() {
        layout.store().copy_from(store, &r.manifest_digest)?;
        layout.store().copy_from(store, &r.config_digest)?;
        for l in &r.layers {
            layout.store().copy_from(store, &l.digest)?;
        }
        let (entry, attached) = super::attachments::into_layout(built, r, layout.store())?;
        attestations.extend(attached);
        top.get_or_insert(entry);
    }
    if let Subject::Index(ix) = built.subject {
        layout.store().copy_from(store, &ix.index_digest)?;
        top = Some(ix.descriptor());
    }
    let top = top.ok_or(Error::NoImage)?;
    let top = crate::attest::annotate(&top, &attestations);
    let latest = ["latest".to_owned()];
    for t in if tags.is_empty() { &latest[..] } else { tags } {
        layout.tag(&top, Some(t))?;
    }
    Ok(())
}

/// `type=oci,tar=false`: a layout directory.
pub struct OciDir {
    /// The directory.
    pub dir: PathBuf,
    /// `-t`/`name=` references (their tags tag the layout).
    pub names: Vec<String>,
}

impl Publisher for OciDir {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        built.fetch_layers()?;
        let tags: Vec<String> = self.names.iter().map(|t| layout_tag(t)).collect();
        write_layout(built, &self.dir, &tags)?;
        built.reporter.event(Event::Info(format!(
            "wrote OCI layout {}",
            self.dir.display()
        )));
        Ok(())
    }
}

/// `type=oci`: a layout tarball, to a file or standard output.
pub struct OciTar {
    /// Where.
    pub dest: Dest,
    /// `-t`/`name=` references.
    pub names: Vec<String>,
}

impl Publisher for OciTar {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        built.fetch_layers()?;
        let tags: Vec<String> = self.names.iter().map(|t| layout_tag(t)).collect();
        std::fs::create_dir_all(built.scratch)?;
        let tmp = tempfile::Builder::new()
            .prefix("oci-export-")
            .tempdir_in(built.scratch)
            .map_err(|source| Error::StagingDir {
                dir: built.scratch.to_path_buf(),
                source,
            })?;
        let dir = tmp.path().join("layout");
        write_layout(built, &dir, &tags)?;
        self.dest
            .write(|w| pack_layout(&dir, w))
            .map_err(|e| e.in_tarball(self.dest.describe()))?;
        built.reporter.event(Event::Info(format!(
            "wrote the OCI tarball to {}",
            self.dest.describe()
        )));
        Ok(())
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Pack the layout directory `dir` (flat: files and `blobs/sha256/*`) into `out`.
fn pack_layout(dir: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let mut b = tar::Builder::new(out);
    for name in ["oci-layout", "index.json"] {
        let bytes = std::fs::read(dir.join(name))?;
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        b.append_data(&mut h, name, &bytes[..])?;
    }
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, d, std::io::empty())?;
    }
    let mut blobs: Vec<_> = std::fs::read_dir(dir.join("blobs/sha256"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    blobs.sort();
    for name in blobs {
        let path = dir.join("blobs/sha256").join(&name);
        let f = std::fs::File::open(&path).map_err(|source| Error::ReadBlob {
            path: path.clone(),
            source,
        })?;
        let mut h = header(tar::EntryType::Regular, 0o644, f.metadata()?.len());
        b.append_data(
            &mut h,
            format!("blobs/sha256/{}", name.to_string_lossy()),
            f,
        )?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}
