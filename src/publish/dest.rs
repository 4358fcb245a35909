//! Where a single-file output goes (`dest=FILE` or `dest=-`): the OCI
//! tarball, the docker-archive and the filesystem tar.

use super::Error;
use std::io::Write;
use std::path::PathBuf;

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
    pub fn write(&self, f: impl FnOnce(&mut dyn Write) -> Result<(), Error>) -> Result<(), Error> {
        match self {
            Dest::File(p) => {
                let file = std::fs::File::create(p).map_err(|source| Error::Create {
                    path: p.clone(),
                    source,
                })?;
                let mut w = std::io::BufWriter::new(file);
                f(&mut w)?;
                w.flush().map_err(|source| Error::WriteFile {
                    path: p.clone(),
                    source,
                })?;
            }
            Dest::Stdout => {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                f(&mut w)?;
                w.flush().map_err(Error::WriteStdout)?;
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
