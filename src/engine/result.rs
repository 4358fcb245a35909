//! What a build hands on: the descriptor of a [`BuildResult`]'s manifest,
//! as an index entry or a push names it.

use super::build::BuildResult;
use crate::image::manifest::Descriptor;

impl BuildResult {
    /// The manifest's descriptor, with its platform.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            self.manifest_media_type.clone(),
            self.manifest_digest.clone(),
            self.manifest_raw.len() as u64,
        );
        d.platform = Some(self.platform.to_spec());
        d
    }
}
