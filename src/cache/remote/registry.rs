//! A step cache in a registry repository (`type=registry,ref=REF`): each
//! entry is one small OCI artifact, tagged with the entry's name
//! (`s<slot>-<key hex>`), whose layers are the record (JSON, media type
//! [`RECORD_TYPE`]) and the step's layer blob. Why one tag per entry rather
//! than one cache manifest: see the parent module.
//!
//! Pushing an entry is [`Registry::push_image`]: every blob is HEADed first
//! (a layer the image push already sent is not sent again) and, when it is
//! missing, mounted from the repositories given as `mount_from` (the
//! image's), so cache blobs are the image's own. Credentials are those of
//! any push (`cairn login`, docker's config), so the cache may live in
//! another repository or registry.
//!
//! **Registries that refuse artifacts.** Some registries (Harbor, older ECR
//! and Artifactory) refuse a manifest with an `artifactType` or an unknown
//! config media type (400 `MANIFEST_INVALID`, 415). Then the entry is
//! written again as an image manifest (an OCI image config whose label
//! names the entry type, the same layers), and every later entry of the
//! build goes straight to that shape; reading accepts both. A registry
//! that refuses both fails the export, naming the ref and what to do (by
//! default a warning: `ignore-error=true`).

use super::mounts::{MountRecord, MOUNT_TYPE};
use super::{BlobSink, InvalidEntry, Remote};
use crate::cache::records::StepRecord;
use crate::cache::Error;
use crate::image::config::{ImageConfig, RunConfig};
use crate::image::manifest::{Descriptor, ImageManifest, OCI_CONFIG, OCI_MANIFEST};
use crate::image::{Layer, MediaType};
use crate::registry::{Reference, Registry, RegistryError, Repository};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The artifact type of an entry, and the media type of its record layer.
pub const RECORD_TYPE: &str = "application/vnd.cairn.cache.step.v1+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Entry records larger than this are refused (a step's record is a few
/// KB; a layer's file index, one line per file, a few MB for a
/// `node_modules`).
const RECORD_MAX: u64 = 64 << 20;

/// A registry client and the runtime to drive it from the build's threads.
#[derive(Clone)]
pub struct Client {
    registry: Arc<Registry>,
    runtime: Arc<tokio::runtime::Runtime>,
    mount_from: Vec<Repository>,
}

impl Client {
    /// A client; `mount_from` names repositories that may already hold the
    /// blobs (the pushed image's).
    pub fn new(registry: Registry, mount_from: Vec<Repository>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Client {
            registry: Arc::new(registry),
            runtime: Arc::new(runtime),
            mount_from,
        })
    }

    /// The cache at `reference` (a tag, if any, is ignored).
    pub fn open(&self, reference: &str) -> Result<RegistryCache, Error> {
        let r = reference
            .parse::<Reference>()
            .map_err(|why| Error::BadRef {
                reference: reference.into(),
                why,
            })?;
        Ok(RegistryCache {
            client: self.clone(),
            repo: r.repository().clone(),
            image_shape: AtomicBool::new(false),
        })
    }
}

/// An entry as read: its record's bytes and the manifest's other layers.
type Entry = (Vec<u8>, Vec<Descriptor>);

/// One registry repository used as a step cache.
pub struct RegistryCache {
    client: Client,
    repo: Repository,
    /// The registry refused an artifact manifest: entries are image manifests.
    image_shape: AtomicBool,
}

/// Whether `e` is a registry refusing a manifest for its shape (not for a
/// missing blob, credentials or an outage).
fn refuses_manifest(e: &RegistryError) -> bool {
    match e {
        RegistryError::Status {
            method,
            url,
            status,
            errors,
        } => {
            method == "PUT"
                && url.contains("/manifests/")
                && (*status == 415
                    || (*status == 400
                        && !errors.has("MANIFEST_BLOB_UNKNOWN")
                        && !errors.has("BLOB_UNKNOWN")))
        }
        _ => false,
    }
}

impl RegistryCache {
    fn tagged(&self, name: &str) -> Reference {
        Reference::new(self.repo.clone(), Some(name.to_owned()), None)
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.client.runtime.block_on(f)
    }

    /// The record (JSON, first layer of type `kind`, at most [`RECORD_MAX`]
    /// bytes) of the entry tagged `name`, and the manifest's other layers;
    /// None when there is no such tag.
    fn read(&self, name: &str, kind: &str) -> Result<Option<Entry>, Error> {
        let r = self.tagged(name);
        let reg = &self.client.registry;
        let raw = match self.block(reg.fetch_manifest(&r)) {
            Ok(raw) => raw,
            Err(RegistryError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let invalid = |why: String| InvalidEntry {
            entry: r.to_string(),
            why,
        };
        let m: ImageManifest = serde_json::from_slice(&raw.bytes)
            .map_err(|e| invalid(format!("not a cairn cache entry: {e}")))?;
        // Either shape (see the module doc): the record layer says the kind.
        let shape_ok = m
            .artifact_type
            .as_ref()
            .map(MediaType::as_str)
            .is_none_or(|t| t == kind);
        let Some(rec) = m
            .layers
            .first()
            .filter(|l| shape_ok && l.media_type == kind)
        else {
            return Err(invalid(format!(
                "not a cairn cache entry of type {kind} (artifactType {:?})",
                m.artifact_type.as_ref().map(MediaType::as_str)
            ))
            .into());
        };
        if rec.size > RECORD_MAX {
            return Err(invalid(format!("record of {} bytes refused", rec.size)).into());
        }
        // A scratch store: records are not kept with the build's blobs.
        let scratch = tempfile::tempdir()?;
        let tmp = BlobStore::open(scratch.path())?;
        self.block(reg.fetch_blob(&r, rec, &tmp))?;
        Ok(Some((tmp.read_bytes(&rec.digest)?, m.layers[1..].to_vec())))
    }

    /// Tag `name` with a manifest of `kind` whose layers are the record
    /// `record` and `blob` (read from `store`), as an artifact or, for a
    /// registry that refuses those, as an image.
    fn write(
        &self,
        name: &str,
        kind: &str,
        record: &[u8],
        blob: Option<&Layer>,
        store: &BlobStore,
    ) -> Result<(), Error> {
        let rec_d = store.put_bytes(record)?;
        let mut layers = vec![Descriptor::new(kind, rec_d, record.len() as u64)];
        layers.extend(blob.map(Layer::descriptor));
        let r = self.tagged(name);
        if !self.image_shape.load(Ordering::Relaxed) {
            let empty = store.put_bytes(b"{}")?;
            let manifest = artifact_manifest(kind, &empty, &layers)?;
            match self.push(&r, &manifest, store) {
                Err(e) if refuses_manifest(&e) => self.image_shape.store(true, Ordering::Relaxed),
                other => return Ok(other.map(|_| ())?),
            }
        }
        let config = image_config(kind)?;
        let config_d = store.put_bytes(&config)?;
        let manifest = image_manifest(&config_d, config.len() as u64, &layers)?;
        self.push(&r, &manifest, store).map(|_| ()).map_err(|e| {
            let refused = refuses_manifest(&e);
            let e = Error::WriteEntry {
                entry: r.to_string(),
                source: Box::new(e),
            };
            if refused {
                Error::RefusedBothShapes {
                    repo: self.repo.to_string(),
                    source: Box::new(e),
                }
            } else {
                e
            }
        })
    }

    fn push(
        &self,
        r: &Reference,
        manifest: &[u8],
        store: &BlobStore,
    ) -> Result<Digest, RegistryError> {
        // A push that lost a race with another runner's upload of the same
        // blob is pushed again by push_image itself.
        self.block(self.client.registry.push_image(
            r,
            manifest,
            OCI_MANIFEST,
            store,
            &self.client.mount_from,
        ))
    }
}

/// The manifest of an entry as an OCI artifact of `kind` (empty config).
/// Canonical JSON (sorted keys), the bytes cairn has always written.
fn artifact_manifest(kind: &str, empty: &Digest, layers: &[Descriptor]) -> Result<Vec<u8>, Error> {
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: Some(kind.into()),
        config: Descriptor::new(EMPTY_TYPE, empty.clone(), 2),
        layers: layers.to_vec(),
        subject: None,
        annotations: None,
    };
    Ok(crate::image::canonical::to_vec(&m)?)
}

/// The config of an entry written as an image (for registries that refuse
/// artifacts): what every registry accepts, its label saying what the
/// image is for anyone who looks.
fn image_config(kind: &str) -> Result<Vec<u8>, Error> {
    let labels =
        std::collections::BTreeMap::from([("dev.cairn.cache.entry".to_owned(), kind.to_owned())]);
    let c = ImageConfig {
        architecture: "unknown".into(),
        os: "unknown".into(),
        config: Some(RunConfig {
            labels: Some(labels),
            ..RunConfig::default()
        }),
        ..ImageConfig::default()
    };
    Ok(crate::image::canonical::to_vec(&c)?)
}

/// The manifest of an entry written as an image.
fn image_manifest(config: &Digest, size: u64, layers: &[Descriptor]) -> Result<Vec<u8>, Error> {
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(OCI_CONFIG, config.clone(), size),
        layers: layers.to_vec(),
        subject: None,
        annotations: None,
    };
    Ok(crate::image::canonical::to_vec(&m)?)
}

impl RegistryCache {
    /// The record of entry `name` (of `artifact_type`), refused unless the
    /// blob its manifest names is the one the record names (`blob_of`): a
    /// manifest pushed over the tag pointing elsewhere is not trusted.
    fn checked<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        artifact_type: &str,
        blob_of: impl Fn(&T) -> Option<&Digest>,
    ) -> Result<Option<T>, Error> {
        let Some((bytes, blobs)) = self.read(name, artifact_type)? else {
            return Ok(None);
        };
        let entry = self.tagged(name).to_string();
        let record: T = serde_json::from_slice(&bytes).map_err(|e| InvalidEntry {
            entry: entry.clone(),
            why: format!("the record does not parse: {e}"),
        })?;
        let named = blobs.first().map(|l| l.digest.to_string());
        let recorded = blob_of(&record).map(ToString::to_string);
        if named != recorded {
            return Err(InvalidEntry {
                entry,
                why: format!(
                    "the entry's blob {} is not its record's {}",
                    named.as_deref().unwrap_or("(none)"),
                    recorded.as_deref().unwrap_or("(none)")
                ),
            }
            .into());
        }
        Ok(Some(record))
    }
}

impl Remote for RegistryCache {
    fn describe(&self) -> String {
        format!("registry cache {}", self.repo)
    }

    fn entry(&self, name: &str) -> Result<Option<StepRecord>, Error> {
        self.checked(name, RECORD_TYPE, |r: &StepRecord| {
            r.layer.as_ref().map(|l| &l.digest)
        })
    }

    fn names(&self) -> Result<Vec<String>, Error> {
        let mut tags = self.block(self.client.registry.list_tags(&self.repo))?;
        tags.retain(|t| t.starts_with('s'));
        Ok(tags)
    }

    fn fetch_blob(
        &self,
        layer: &Layer,
        store: &BlobStore,
        sink: Option<&mut dyn BlobSink>,
    ) -> Result<u64, Error> {
        let desc = layer.descriptor();
        let r = Reference::new(self.repo.clone(), None, None);
        // fetch_blob_to verifies the digest before the blob is stored.
        self.block(self.client.registry.fetch_blob_to(&r, &desc, store, sink))?;
        Ok(layer.size)
    }

    fn put(&self, name: &str, record: &StepRecord, store: &BlobStore) -> Result<(), Error> {
        let rec = serde_json::to_vec(record)?;
        self.write(name, RECORD_TYPE, &rec, record.layer.as_ref(), store)
    }

    fn mount_entry(&self, name: &str) -> Result<Option<MountRecord>, Error> {
        self.checked(name, MOUNT_TYPE, |r: &MountRecord| Some(&r.blob.digest))
    }

    fn put_mount(&self, name: &str, record: &MountRecord, store: &BlobStore) -> Result<(), Error> {
        let rec = serde_json::to_vec(record)?;
        self.write(name, MOUNT_TYPE, &rec, Some(&record.blob), store)
    }

    fn degraded(&self) -> Option<String> {
        self.image_shape.load(Ordering::Relaxed).then(|| {
            format!(
                "the registry refused OCI artifact manifests; the entries were written as image manifests (readable by cairn alike) in {}",
                self.repo
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed manifests are byte for byte what the `json!` ones were
    /// (entries written by earlier cairns and by this one look alike).
    #[test]
    fn entry_manifests_keep_their_bytes() {
        let (rec, empty, cfg) = (Digest::of(b"r"), Digest::of(b"{}"), Digest::of(b"c"));
        let layer = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Digest::of(b"l"),
            7,
        );
        let layers = [Descriptor::new(RECORD_TYPE, rec.clone(), 3), layer.clone()];
        let json_layers = serde_json::json!([
            {"mediaType": RECORD_TYPE, "digest": rec.to_string(), "size": 3},
            {"mediaType": layer.media_type, "digest": layer.digest.to_string(), "size": 7},
        ]);
        let artifact = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": RECORD_TYPE,
            "config": {"mediaType": EMPTY_TYPE, "digest": empty.to_string(), "size": 2},
            "layers": json_layers,
        }))
        .unwrap();
        assert_eq!(
            artifact_manifest(RECORD_TYPE, &empty, &layers).unwrap(),
            artifact
        );
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {"Labels": {"dev.cairn.cache.entry": RECORD_TYPE}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap();
        assert_eq!(image_config(RECORD_TYPE).unwrap(), config);
        let image = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cfg.to_string(), "size": 9},
            "layers": json_layers,
        }))
        .unwrap();
        assert_eq!(image_manifest(&cfg, 9, &layers).unwrap(), image);
    }
}
