//! `type=docker`: a docker-archive (`docker load`, `podman load`), to a
//! file or standard output. An archive holds one platform: a
//! multi-platform build writes one archive per platform
//! (`app.tar` → `app.linux-arm64.tar`).

use super::{Built, Dest, Error, Publisher, Subject};
use crate::engine::BuildResult;
use crate::image::docker_archive::write_docker_archive;
use crate::report::Event;
use std::path::Path;

/// A docker-archive under `names` (`-t`/`name=`).
pub struct DockerArchive {
    /// Where (a multi-platform build needs a file).
    pub dest: Dest,
    /// The `RepoTags`.
    pub names: Vec<String>,
}

impl Publisher for DockerArchive {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        built.fetch_layers()?;
        match (built.subject, &self.dest) {
            (Subject::Image(r), dest) => {
                self.write(built, r, dest)?;
                built.reporter.event(Event::Info(format!(
                    "wrote docker-archive to {}",
                    dest.describe()
                )));
            }
            (Subject::Index(ix), Dest::File(file)) => {
                for r in &ix.images {
                    let f = platform_archive_path(file, &r.platform);
                    write_file(built, r, &f, &self.names)?;
                    built.reporter.event(Event::Info(format!(
                        "wrote docker-archive {} ({})",
                        f.display(),
                        r.platform
                    )));
                }
            }
            (Subject::Index(_), Dest::Stdout) => return Err(Error::MultiPlatformArchiveToStdout),
        }
        Ok(())
    }
}

impl DockerArchive {
    fn write(&self, built: &Built<'_>, r: &BuildResult, dest: &Dest) -> Result<(), Error> {
        match dest {
            Dest::File(p) => write_file(built, r, p, &self.names),
            Dest::Stdout => {
                // The archive writer needs a seekable file; stream it out afterwards.
                std::fs::create_dir_all(built.scratch)?;
                let tmp = tempfile::NamedTempFile::new_in(built.scratch)?;
                write_file(built, r, tmp.path(), &self.names)?;
                let mut f = std::fs::File::open(tmp.path())?;
                dest.write(|w| Ok(std::io::copy(&mut f, w).map(|_| ())?))
            }
        }
    }
}

/// Where the docker-archive of one platform of a multi-platform build goes:
/// `app.tar` → `app.linux-arm64.tar`.
pub fn platform_archive_path(file: &Path, p: &crate::frontend::Platform) -> std::path::PathBuf {
    let name = p.to_string().replace('/', "-");
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
    let ext = file.extension().map(|e| e.to_string_lossy().into_owned());
    let leaf = match (stem, ext) {
        (Some(stem), Some(ext)) => format!("{stem}.{name}.{ext}"),
        (Some(stem), None) => format!("{stem}.{name}"),
        _ => name,
    };
    file.with_file_name(leaf)
}

/// Write `r` as a docker-archive file.
fn write_file(
    built: &Built<'_>,
    r: &BuildResult,
    file: &Path,
    tags: &[String],
) -> Result<(), Error> {
    write_docker_archive(
        file,
        &r.config_raw,
        &r.layers,
        built.store,
        tags,
        built.reporter,
    )
    .map_err(|source| Error::DockerArchive {
        file: file.to_path_buf(),
        source,
    })?;
    Ok(())
}
