//! What a build hands on: the descriptor of a [`BuildResult`]'s manifest,
//! as an index entry or a push names it.

use super::build::BuildResult;
use crate::image::manifest::{Descriptor, OCI_MANIFEST};

impl BuildResult {
    /// The media type the manifest declares (Docker's with `oci-mediatypes=false`).
    pub fn manifest_media_type(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.manifest_raw)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| OCI_MANIFEST.to_owned())
    }

    /// The manifest's descriptor, with its platform.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            self.manifest_media_type(),
            self.manifest_digest.clone(),
            self.manifest_raw.len() as u64,
        );
        d.platform = Some(self.platform.to_spec());
        d
    }
}
