//! Single-file image outputs that may go to standard output: buildx's
//! `type=oci` tarball (an OCI layout in a tar, as `podman load`, `skopeo
//! copy oci-archive:` and `docker load` read it) and `type=docker`
//! (a docker-archive).
//!
//! The OCI tarball is the layout [`super::output::to_oci_layout`] writes
//! (blobs hard-linked from the cache), packed in a fixed order with fixed
//! metadata (mode 0644/0755, uid/gid 0, mtime 0), so the same image gives
//! the same tar bytes.

use super::build::BuildResult;
use super::output;
use crate::report::Reporter;
use anyhow::Context as _;
use cairn_layers::blob_store::BlobStore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a file output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file.
    File(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

impl Dest {
    /// Call `f` with a writer for this destination (the file is created, or replaced).
    pub fn write(
        &self,
        f: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            Dest::File(p) => {
                let file = std::fs::File::create(p)
                    .with_context(|| format!("creating {}", p.display()))?;
                let mut w = std::io::BufWriter::new(file);
                f(&mut w)?;
                w.flush()
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            Dest::Stdout => {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                f(&mut w)?;
                w.flush().context("writing to standard output")?;
            }
        }
        Ok(())
    }

    /// How to name it in messages.
    pub fn describe(&self) -> String {
        match self {
            Dest::File(p) => p.display().to_string(),
            Dest::Stdout => "standard output".into(),
        }
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
fn pack_layout(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
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
        let f =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
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

/// Write the image (with its attached record) as an OCI layout tarball.
/// `scratch` is a directory on the cache's filesystem for the staging layout.
pub fn write_oci_tar(
    r: &BuildResult,
    store: &BlobStore,
    tags: &[String],
    dest: &Dest,
    scratch: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(scratch)?;
    let tmp = tempfile::Builder::new()
        .prefix("oci-export-")
        .tempdir_in(scratch)
        .with_context(|| format!("creating a staging directory in {}", scratch.display()))?;
    let dir = tmp.path().join("layout");
    output::to_oci_layout(r, store, &dir, tags)?;
    dest.write(|w| pack_layout(&dir, w))
        .with_context(|| format!("writing the OCI tarball to {}", dest.describe()))
}

/// Write the image as a docker-archive (`docker load`, `podman load`).
pub fn write_docker(
    r: &BuildResult,
    store: &BlobStore,
    names: &[String],
    dest: &Dest,
    scratch: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    match dest {
        Dest::File(p) => output::to_docker_archive(r, store, p, names, reporter),
        Dest::Stdout => {
            // The archive writer needs a seekable file; stream it out afterwards.
            std::fs::create_dir_all(scratch)?;
            let tmp = tempfile::NamedTempFile::new_in(scratch)?;
            output::to_docker_archive(r, store, tmp.path(), names, reporter)?;
            let mut f = std::fs::File::open(tmp.path())?;
            dest.write(|w| Ok(std::io::copy(&mut f, w).map(|_| ())?))
        }
    }
}
