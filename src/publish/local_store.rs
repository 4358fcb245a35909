//! cairn's local image store (`oci:CACHE/images`): where an image goes
//! without `-o`, and with `type=image`. An OCI layout, so it holds the
//! layers' bytes; `cairn run|inspect|push|diff NAME` look names up there.

use super::{Built, Error, Publisher, Subject};
use crate::report::Event;
use std::path::PathBuf;

/// The local store under `names` (`sha256-HEX` when unnamed).
pub struct LocalStore {
    /// The store's directory (`CACHE/images`).
    pub dir: PathBuf,
    /// The names as given: the store is looked up by `NAME:TAG` (`cairn run myapp:dev`).
    pub names: Vec<String>,
    /// Beside a push: when layers are still lazy (remote cache hits), the
    /// registry is the image's home and the store is skipped rather than
    /// downloading them (a fresh CI runner would throw the copy away).
    pub beside_push: bool,
}

impl Publisher for LocalStore {
    fn publish(&self, built: &Built<'_>) -> Result<(), Error> {
        if self.beside_push {
            let lazy = built
                .subject
                .images()
                .iter()
                .flat_map(|r| &r.layers)
                .filter(|l| !built.store.contains(&l.digest))
                .count();
            if lazy > 0 {
                built.reporter.event(Event::Info(format!(
                    "not kept in the local store: {lazy} layers came from the remote cache and are \
                     pushed registry-side, not downloaded (`cairn pull` it, or -o type=image,push=false, \
                     to have it here)"
                )));
                return Ok(());
            }
        }
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
