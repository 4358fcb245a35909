//! [`Layer`]: the one description of a layer everywhere in cairn — a base
//! image's, a step's, a cached step's, a docker-archive's and a compared
//! image's — in the spirit of go-containerregistry's `v1.Layer`: the
//! compressed blob's digest and size, the uncompressed tar's diff_id, and
//! the media type saying how the blob is compressed.
//!
//! It serializes as `{"digest", "diff_id", "size", "media_type"}` with the
//! digests as `sha256:…` strings (the shape of the cache's step records and
//! of `cairn diff --format json`).

use super::manifest::Descriptor;
use super::media_type::MediaType;
use cairn_layers::{DiffId, Digest};
use serde::{Deserialize, Serialize};

/// One layer: blob digest and size, diff_id and media type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the blob (compressed bytes for a compressed layer).
    #[serde(with = "super::serde_digest")]
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    #[serde(with = "super::serde_digest::diff_id")]
    pub diff_id: DiffId,
    /// Size of the blob.
    pub size: u64,
    /// The media type a manifest gives it.
    pub media_type: MediaType,
}

impl Layer {
    /// A manifest layer descriptor and its config diff_id.
    pub fn from_descriptor(d: &Descriptor, diff_id: DiffId) -> Layer {
        Layer {
            digest: d.digest.clone(),
            diff_id,
            size: d.size,
            media_type: d.media_type.clone(),
        }
    }

    /// The manifest descriptor of this layer.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_records_always_did() {
        let l = Layer {
            digest: Digest::of(b"blob"),
            diff_id: DiffId(Digest::of(b"tar")),
            size: 4,
            media_type: MediaType::OciLayerGzip,
        };
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"digest":"{}","diff_id":"{}","size":4,"media_type":"application/vnd.oci.image.layer.v1.tar+gzip"}}"#,
                Digest::of(b"blob"),
                Digest::of(b"tar")
            )
        );
        assert_eq!(serde_json::from_str::<Layer>(&s).unwrap(), l);
        assert!(serde_json::from_str::<Layer>(&s.replace("sha256:", "md5:")).is_err());
        assert_eq!(
            Layer::from_descriptor(&l.descriptor(), l.diff_id.clone()),
            l
        );
    }
}
