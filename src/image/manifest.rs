//! The OCI / Docker schema 2 manifest, index and descriptor shapes that the
//! registry client and the OCI layout need, plus [`Raw`]: parsed JSON kept
//! together with the exact bytes it came from and their digest.
//!
//! Maps are `BTreeMap`s so that anything cairn serializes itself is
//! deterministic. Pulled documents are never re-serialized: their digest is
//! the digest of the bytes received.

use super::media_type::MediaType;
use cairn_layers::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed) manifest: refused, as containerd does.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Annotation naming a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// BuildKit's annotation marking attestation manifests inside an index.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// The `Accept` header for manifest requests: every manifest and index type cairn handles.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// What kind of document a manifest media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// A single-platform image manifest (OCI or Docker).
    Image,
    /// A multi-platform index or manifest list (OCI or Docker).
    Index,
}

impl ManifestKind {
    /// Classify a media type; `None` for anything that is not a supported manifest.
    pub fn of<M: AsRef<str> + ?Sized>(media_type: &M) -> Option<Self> {
        match media_type.as_ref() {
            OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
            OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
            _ => None,
        }
    }
}

/// A platform as written in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlatformSpec {
    /// CPU architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system (`linux`, …).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v8`, `v7`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor (OCI image-spec `descriptor.md`), in Go's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: MediaType,
    /// Digest of the referenced bytes.
    #[serde(with = "super::serde_digest")]
    pub digest: Digest,
    /// Size of the referenced bytes.
    pub size: u64,
    /// Alternative download locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Embedded content (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
}

impl Descriptor {
    /// A plain descriptor.
    pub fn new(media_type: impl Into<MediaType>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            data: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Subject (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A parsed JSON document together with the exact bytes it was parsed from,
/// their digest and media type. The bytes are the truth; the value is a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw<T> {
    /// The parsed value.
    pub value: T,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The media type the bytes were served or stored as.
    pub media_type: MediaType,
}

impl<T: serde::de::DeserializeOwned> Raw<T> {
    /// Parse `bytes`, keeping them.
    pub fn parse(
        bytes: Vec<u8>,
        media_type: impl Into<MediaType>,
    ) -> Result<Self, serde_json::Error> {
        let value = serde_json::from_slice(&bytes)?;
        Ok(Raw {
            value,
            digest: Digest::of(&bytes),
            bytes,
            media_type: media_type.into(),
        })
    }

    /// A descriptor for these bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

impl<T: Serialize> Raw<T> {
    /// Serialize `value` canonically (keys sorted, no whitespace) and keep the bytes.
    pub fn canonical(
        value: T,
        media_type: impl Into<MediaType>,
    ) -> Result<Self, serde_json::Error> {
        let bytes = super::canonical::to_vec(&value)?;
        Ok(Raw {
            value,
            digest: Digest::of(&bytes),
            bytes,
            media_type: media_type.into(),
        })
    }
}

/// The media type a manifest document declares in its `mediaType` field, if any.
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match (p.media_type, p.manifests) {
        (Some(m), _) => Some(m),
        // An index without mediaType is still recognisable by its `manifests` array.
        (None, Some(_)) => Some(OCI_INDEX.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_manifests_parse_and_keep_bytes() {
        let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
        let raw: Raw<ImageManifest> = Raw::parse(bytes.to_vec(), DOCKER_MANIFEST).unwrap();
        assert_eq!(raw.bytes, bytes);
        assert_eq!(raw.digest, Digest::of(bytes));
        assert_eq!(raw.value.config.size, 2);
        assert_eq!(ManifestKind::of(DOCKER_MANIFEST), Some(ManifestKind::Image));
        assert_eq!(
            ManifestKind::of(DOCKER_MANIFEST_LIST),
            Some(ManifestKind::Index)
        );
        assert_eq!(ManifestKind::of(DOCKER_SCHEMA1), None);
    }

    #[test]
    fn descriptor_serializes_in_go_order_without_empty_fields() {
        let mut d = Descriptor::new(OCI_MANIFEST, Digest::of(b""), 0);
        d.platform = Some(PlatformSpec {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        });
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(
            s,
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"platform":{"architecture":"amd64","os":"linux"}}"#
        );
    }

    #[test]
    fn bad_digest_in_descriptor_is_rejected() {
        let e = serde_json::from_str::<Descriptor>(
            r#"{"mediaType":"x","digest":"sha256:XYZ","size":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("sha256"), "{e}");
    }

    #[test]
    fn declared_media_type_probe() {
        assert_eq!(
            declared_media_type(br#"{"manifests":[]}"#).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(declared_media_type(br#"{"schemaVersion":2}"#), None);
    }
}
