//! cairn's local image store (`oci:CACHE/images`): where an image goes
//! without `-o`, and with `type=image`. An OCI layout, so it holds the
//! layers' bytes; `cairn run|inspect|push|diff NAME` look names up there.

use super::{Built, Publisher, Subject};
use crate::report::Event;
use std::path::PathBuf;

/// The local store under `names` (`sha256-HEX` when unnamed).
pub struct LocalStore {
    /// The store's directory (`CACHE/images`).
    pub dir: PathBuf,
    /// The names as given: the store is looked up by `NAME:TAG` (`cairn run myapp:dev`).
    pub names: Vec<String>,
}

impl Publisher for LocalStore {
    fn publish(&self, built: &Built<'_>) -> anyhow::Result<()> {
        built.fetch_layers()?;
        let names: Vec<String> = if self.names.is_empty() {
            vec![format!("sha256-{}", built.subject.digest().hex())]
        } else {
            self.names.clone()
        };
        super::oci_layout::write_layout(built, &self.dir, &names)?;
        let what = match built.subject {
            Subject::Image(_) => "image",
            Subject::Index(_) => "index",
        };
        built.reporter.event(Event::Info(format!(
            "{what} stored in oci:{} as {}",
            self.dir.display(),
            names.join(", ")
        )));
        Ok(())
    }
}
