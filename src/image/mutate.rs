//! [`Image`]: an image being built — config and layers — and the one place
//! that changes it, in the spirit of go-containerregistry's `mutate`:
//! [`Image::with_layer`] and [`Image::with_history`] append a layer or a
//! config-only step (keeping `rootfs.diff_ids`, `history` and `layers` in
//! step), and [`Image::finalize`] stamps the epoch into `created` and writes
//! the config and the manifest from their types, canonically (sorted keys, no
//! whitespace: the same image always gives the same bytes).

use super::config::{History, ImageConfig};
use super::layer::Layer;
use super::manifest::{Descriptor, ImageIndex, ImageManifest, Raw};
use super::media_type::MediaType;
use cairn_layers::Digest;
use std::collections::BTreeMap;

/// The comment cairn writes into history entries (BuildKit writes `buildkit.dockerfile.v0`).
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// An image under construction: its config and layers, bottom first, and the
/// `created` time of the history entries it gains.
#[derive(Clone, Debug)]
pub struct Image {
    /// The config; `rootfs.diff_ids` and `history` follow `layers` (use the
    /// `with_*` methods).
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// `created` of new history entries and of the finalized config (RFC 3339).
    pub created: String,
}

/// A finished image: its config and manifest as the bytes to store.
#[derive(Clone, Debug)]
pub struct Finalized {
    /// The canonical config.
    pub config: Raw<ImageConfig>,
    /// The canonical manifest.
    pub manifest: Raw<ImageManifest>,
}

impl Image {
    /// An image of `config` and its `layers` (a base's, or scratch's none),
    /// whose new history entries say `created`. `rootfs.diff_ids` is
    /// rewritten from `layers`, so the two agree from the start.
    pub fn new(mut config: ImageConfig, layers: Vec<Layer>, created: String) -> Image {
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
        Image {
            config,
            layers,
            created,
        }
    }

    /// Append `layer` with its history entry (`created_by`).
    pub fn with_layer(&mut self, layer: Layer, created_by: String) {
        self.config.rootfs.diff_ids.push(layer.diff_id.to_string());
        self.layers.push(layer);
        let h = self.history(created_by, false);
        self.config.history.push(h);
    }

    /// Record a config-only step (`empty_layer: true`) in the history.
    pub fn with_history(&mut self, created_by: String) {
        let h = self.history(created_by, true);
        self.config.history.push(h);
    }

    fn history(&self, created_by: String, empty_layer: bool) -> History {
        History {
            created: Some(self.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer,
        }
    }

    /// The finished OCI image: `created` set, each layer under its OCI media
    /// type (a pulled Docker layer's bytes are the same), config and manifest
    /// written canonically with `annotations` (none: no `annotations` field,
    /// so unannotated digests do not change).
    pub fn finalize(
        &mut self,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Finalized, serde_json::Error> {
        self.config.created = Some(self.created.clone());
        let config = Raw::canonical(self.config.clone(), MediaType::OciConfig)?;
        let layers: Vec<Layer> = self
            .layers
            .iter()
            .map(|l| Layer {
                media_type: l.media_type.to_oci(),
                ..l.clone()
            })
            .collect();
        let manifest = manifest(
            MediaType::OciManifest,
            config.descriptor(),
            &layers,
            annotations,
        )?;
        Ok(Finalized { config, manifest })
    }
}

/// The canonical manifest of type `media_type` for `config` and `layers`
/// (each under its own media type) with `annotations`.
pub fn manifest(
    media_type: MediaType,
    config: Descriptor,
    layers: &[Layer],
    annotations: &BTreeMap<String, String>,
) -> Result<Raw<ImageManifest>, serde_json::Error> {
    let value = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type.clone()),
        artifact_type: None,
        config,
        layers: layers.iter().map(Layer::descriptor).collect(),
        subject: None,
        annotations: Some(annotations.clone()).filter(|a| !a.is_empty()),
    };
    Raw::canonical(value, media_type)
}

/// The canonical OCI index of `manifests` (in the given order) with
/// `annotations` (none: no `annotations` field).
pub fn index(
    manifests: Vec<Descriptor>,
    annotations: &BTreeMap<String, String>,
) -> Result<Raw<ImageIndex>, serde_json::Error> {
    let value = ImageIndex {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        manifests,
        annotations: Some(annotations.clone()).filter(|a| !a.is_empty()),
    };
    Raw::canonical(value, MediaType::OciIndex)
}

/// The canonical OCI 1.1 artifact manifest of `artifact_type`: `config`
/// (usually the empty descriptor), `layers`, the `subject` it is attached
/// to, and `annotations` (none: no `annotations` field).
pub fn artifact(
    artifact_type: &str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    subject: Descriptor,
    annotations: &BTreeMap<String, String>,
) -> Result<Raw<ImageManifest>, serde_json::Error> {
    let value = ImageManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        artifact_type: Some(artifact_type.into()),
        config,
        layers,
        subject: Some(subject),
        annotations: Some(annotations.clone()).filter(|a| !a.is_empty()),
    };
    Raw::canonical(value, MediaType::OciManifest)
}

/// The config descriptor for `bytes` stored under `digest` (the digest the
/// store computed) with `media_type`.
pub fn config_descriptor(media_type: MediaType, digest: Digest, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, digest, bytes.len() as u64)
}

/// RFC 3339 UTC time (`1970-01-01T00:00:00Z`) for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all u64 days we meet.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_layers::DiffId;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_792_022_400), "2026-10-15T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    fn layer(n: u8, media_type: MediaType) -> Layer {
        Layer {
            digest: Digest::of(&[n]),
            diff_id: DiffId(Digest::of(&[n, n])),
            size: n.into(),
            media_type,
        }
    }

    #[test]
    fn layers_diff_ids_and_history_stay_in_step() {
        let base = vec![layer(1, MediaType::DockerLayerGzip)];
        let mut img = Image::new(ImageConfig::default(), base, rfc3339(0));
        assert_eq!(
            img.config.rootfs.diff_ids,
            [Digest::of(&[1, 1]).to_string()]
        );
        img.with_history("ENV A=1".into());
        img.with_layer(layer(2, MediaType::OciLayerGzip), "COPY . .".into());
        assert_eq!(img.layers.len(), 2);
        assert_eq!(
            img.config.rootfs.diff_ids,
            [
                Digest::of(&[1, 1]).to_string(),
                Digest::of(&[2, 2]).to_string()
            ]
        );
        let empties: Vec<bool> = img.config.history.iter().map(|h| h.empty_layer).collect();
        assert_eq!(empties, [true, false]);
        assert!(img
            .config
            .history
            .iter()
            .all(|h| h.created.as_deref() == Some("1970-01-01T00:00:00Z")));
    }

    #[test]
    fn finalize_writes_the_canonical_manifest_byte_for_byte() {
        let mut img = Image::new(
            ImageConfig::default(),
            vec![layer(1, MediaType::DockerLayerGzip)],
            rfc3339(0),
        );
        let f = img.finalize(&BTreeMap::new()).unwrap();
        assert_eq!(
            f.config.value.created.as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(f.config.bytes, img.config.to_canonical_json().unwrap());
        // The shape `serde_json::json!` gave before: keys sorted at every level.
        let expected = format!(
            r#"{{"config":{{"digest":"{}","mediaType":"application/vnd.oci.image.config.v1+json","size":{}}},"layers":[{{"digest":"{}","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#,
            f.config.digest,
            f.config.bytes.len(),
            Digest::of(&[1])
        );
        assert_eq!(
            String::from_utf8(f.manifest.bytes.clone()).unwrap(),
            expected
        );
        assert_eq!(f.manifest.digest, Digest::of(expected.as_bytes()));
        let ann: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        let f = img.finalize(&ann).unwrap();
        assert!(String::from_utf8(f.manifest.bytes)
            .unwrap()
            .starts_with(r#"{"annotations":{"a":"b"},"config":"#));
    }

    /// The bytes the `serde_json::json!` values used to give, for the same inputs.
    #[test]
    fn index_and_artifact_bytes_are_the_json_values_serialized() {
        let d = Descriptor::new(MediaType::OciManifest, Digest::of(b"m"), 3);
        let ann: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        for a in [BTreeMap::new(), ann] {
            let mut want = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [&d],
            });
            if !a.is_empty() {
                want["annotations"] = serde_json::json!(a);
            }
            let got = index(vec![d.clone()], &a).unwrap();
            assert_eq!(got.bytes, serde_json::to_vec(&want).unwrap());

            let t = "application/vnd.cairn.build-record.v1+json";
            let mut want = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": t,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(b"{}").to_string(), "size": 2},
                "layers": [{"mediaType": t, "digest": Digest::of(b"body").to_string(), "size": 4}],
                "subject": &d,
            });
            if !a.is_empty() {
                want["annotations"] = serde_json::to_value(&a).unwrap();
            }
            let got = artifact(
                t,
                Descriptor::new(MediaType::OciEmpty, Digest::of(b"{}"), 2),
                vec![Descriptor::new(t, Digest::of(b"body"), 4)],
                d.clone(),
                &a,
            )
            .unwrap();
            assert_eq!(got.bytes, serde_json::to_vec(&want).unwrap());
        }
    }
}
