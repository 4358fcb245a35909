//! Where a single-file output goes (`dest=FILE` or `dest=-`): the OCI
//! tarball, the docker-archive and the filesystem tar.

use anyhow::Context as _;
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
