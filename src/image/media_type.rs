//! [`MediaType`]: the media types of manifests, indexes, configs and layers as
//! one typed value, parsed once where a document or a descriptor is read and
//! written back with exactly the spelling it came with (an unknown type is
//! kept verbatim in [`MediaType::Other`], so nothing cairn passes through is
//! ever re-spelled and no digest moves).

use super::manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Docker schema 2 image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The OCI 1.1 empty descriptor's config (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = cairn_layers::compress::MEDIA_TYPE_TAR;
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = cairn_layers::compress::MEDIA_TYPE_TAR_GZIP;
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker zstd layer (what BuildKit writes for zstd without OCI media types).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// A plain layer of a stage that was not exported when it was built: never
/// written to a manifest (it is gzipped, or kept plain with OCI's type, first).
pub const STAGE_LAYER: &str = "application/vnd.cairn.stage-layer.v1.tar";

/// How a layer blob is compressed, as its media type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerCompression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// A plain tar.
    Uncompressed,
}

/// A media type. Known spellings are variants; anything else is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaType {
    /// OCI image manifest.
    OciManifest,
    /// OCI image index.
    OciIndex,
    /// OCI image config.
    OciConfig,
    /// OCI empty config (`{}`) of artifacts.
    OciEmpty,
    /// OCI uncompressed layer.
    OciLayer,
    /// OCI gzip layer.
    OciLayerGzip,
    /// OCI zstd layer.
    OciLayerZstd,
    /// Docker schema 2 manifest.
    DockerManifest,
    /// Docker schema 2 manifest list.
    DockerManifestList,
    /// Docker schema 1 (refused).
    DockerSchema1,
    /// Docker image config.
    DockerConfig,
    /// Docker uncompressed layer.
    DockerLayer,
    /// Docker gzip layer.
    DockerLayerGzip,
    /// Docker zstd layer.
    DockerLayerZstd,
    /// cairn's plain stage layer ([`STAGE_LAYER`]).
    StageLayer,
    /// Anything else (artifact types, foreign layers, …), verbatim.
    Other(String),
}

impl MediaType {
    /// Classify a spelling.
    pub fn parse(s: &str) -> MediaType {
        match s {
            OCI_MANIFEST => MediaType::OciManifest,
            OCI_INDEX => MediaType::OciIndex,
            OCI_CONFIG => MediaType::OciConfig,
            OCI_EMPTY => MediaType::OciEmpty,
            OCI_LAYER => MediaType::OciLayer,
            OCI_LAYER_GZIP => MediaType::OciLayerGzip,
            OCI_LAYER_ZSTD => MediaType::OciLayerZstd,
            DOCKER_MANIFEST => MediaType::DockerManifest,
            DOCKER_MANIFEST_LIST => MediaType::DockerManifestList,
            DOCKER_SCHEMA1 => MediaType::DockerSchema1,
            DOCKER_CONFIG => MediaType::DockerConfig,
            DOCKER_LAYER => MediaType::DockerLayer,
            DOCKER_LAYER_GZIP => MediaType::DockerLayerGzip,
            DOCKER_LAYER_ZSTD => MediaType::DockerLayerZstd,
            STAGE_LAYER => MediaType::StageLayer,
            other => MediaType::Other(other.to_owned()),
        }
    }

    /// The spelling.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::OciManifest => OCI_MANIFEST,
            MediaType::OciIndex => OCI_INDEX,
            MediaType::OciConfig => OCI_CONFIG,
            MediaType::OciEmpty => OCI_EMPTY,
            MediaType::OciLayer => OCI_LAYER,
            MediaType::OciLayerGzip => OCI_LAYER_GZIP,
            MediaType::OciLayerZstd => OCI_LAYER_ZSTD,
            MediaType::DockerManifest => DOCKER_MANIFEST,
            MediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
            MediaType::DockerSchema1 => DOCKER_SCHEMA1,
            MediaType::DockerConfig => DOCKER_CONFIG,
            MediaType::DockerLayer => DOCKER_LAYER,
            MediaType::DockerLayerGzip => DOCKER_LAYER_GZIP,
            MediaType::DockerLayerZstd => DOCKER_LAYER_ZSTD,
            MediaType::StageLayer => STAGE_LAYER,
            MediaType::Other(s) => s,
        }
    }

    /// The layer type for `compression`, OCI's or Docker's spelling.
    pub fn layer(compression: LayerCompression, oci: bool) -> MediaType {
        match (compression, oci) {
            (LayerCompression::Uncompressed, true) => MediaType::OciLayer,
            (LayerCompression::Gzip, true) => MediaType::OciLayerGzip,
            (LayerCompression::Zstd, true) => MediaType::OciLayerZstd,
            (LayerCompression::Uncompressed, false) => MediaType::DockerLayer,
            (LayerCompression::Gzip, false) => MediaType::DockerLayerGzip,
            (LayerCompression::Zstd, false) => MediaType::DockerLayerZstd,
        }
    }

    /// The compression a layer type names. Unknown layer types (foreign,
    /// nondistributable) are read by their suffix, as containerd does;
    /// anything without one is taken as a plain tar.
    pub fn compression(&self) -> LayerCompression {
        match self {
            MediaType::OciLayerGzip | MediaType::DockerLayerGzip => LayerCompression::Gzip,
            MediaType::OciLayerZstd | MediaType::DockerLayerZstd => LayerCompression::Zstd,
            MediaType::Other(s) if s.ends_with("+gzip") || s.ends_with(".gzip") => {
                LayerCompression::Gzip
            }
            MediaType::Other(s) if s.ends_with("+zstd") || s.ends_with(".zstd") => {
                LayerCompression::Zstd
            }
            _ => LayerCompression::Uncompressed,
        }
    }

    /// The OCI spelling of a Docker layer type (the same bytes under
    /// another name); every other type as it is.
    pub fn to_oci(&self) -> MediaType {
        match self {
            MediaType::DockerLayerGzip => MediaType::OciLayerGzip,
            MediaType::DockerLayer => MediaType::OciLayer,
            other => other.clone(),
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        MediaType::parse(s)
    }
}

impl From<String> for MediaType {
    fn from(s: String) -> Self {
        MediaType::parse(&s)
    }
}

impl From<&String> for MediaType {
    fn from(s: &String) -> Self {
        MediaType::parse(s)
    }
}

impl From<&MediaType> for MediaType {
    fn from(m: &MediaType) -> Self {
        m.clone()
    }
}

impl AsRef<str> for MediaType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(MediaType::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for s in [
            OCI_MANIFEST,
            OCI_INDEX,
            OCI_CONFIG,
            OCI_EMPTY,
            OCI_LAYER,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
            DOCKER_SCHEMA1,
            DOCKER_CONFIG,
            DOCKER_LAYER,
            DOCKER_LAYER_GZIP,
            DOCKER_LAYER_ZSTD,
            STAGE_LAYER,
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.cairn.build-record.v1+json",
        ] {
            let m = MediaType::parse(s);
            assert_eq!(m.as_str(), s);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<MediaType>(&json).unwrap(), m);
        }
        assert!(matches!(
            MediaType::parse("application/x-y"),
            MediaType::Other(_)
        ));
    }

    #[test]
    fn layer_types_name_their_compression() {
        use LayerCompression::*;
        for c in [Uncompressed, Gzip, Zstd] {
            for oci in [true, false] {
                assert_eq!(MediaType::layer(c, oci).compression(), c);
            }
        }
        assert_eq!(
            MediaType::parse("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
                .compression(),
            Gzip
        );
        assert_eq!(MediaType::DockerLayerGzip.to_oci(), MediaType::OciLayerGzip);
        assert_eq!(
            MediaType::DockerLayerZstd.to_oci(),
            MediaType::DockerLayerZstd
        );
    }
}
