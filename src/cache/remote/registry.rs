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

use super::Remote;
use crate::cache::records::{CachedLayer, StepRecord};
use crate::image::manifest::{Descriptor, ImageManifest, OCI_MANIFEST};
use crate::registry::{Reference, Registry, RegistryError, Repository};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::sync::Arc;

/// The artifact type of an entry, and the media type of its record layer.
pub const RECORD_TYPE: &str = "application/vnd.cairn.cache.step.v1+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Entry records larger than this are refused (a record is a few KB).
const RECORD_MAX: u64 = 1 << 20;

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
    pub fn new(registry: Registry, mount_from: Vec<Repository>) -> anyhow::Result<Self> {
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
    pub fn open(&self, reference: &str) -> anyhow::Result<RegistryCache> {
        let r = reference.parse::<Reference>().map_err(|e| {
            crate::error::hint(
                anyhow::anyhow!("cache ref {reference}: {e}"),
                "write ref=REGISTRY/REPOSITORY, e.g. ref=registry.example.com/app/cache",
            )
        })?;
        Ok(RegistryCache {
            client: self.clone(),
            repo: r.repository().clone(),
        })
    }
}

/// One registry repository used as a step cache.
pub struct RegistryCache {
    client: Client,
    repo: Repository,
}

impl RegistryCache {
    fn tagged(&self, name: &str) -> Reference {
        Reference::new(self.repo.clone(), Some(name.to_owned()), None)
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.client.runtime.block_on(f)
    }
}

impl Remote for RegistryCache {
    fn describe(&self) -> String {
        format!("registry cache {}", self.repo)
    }

    fn entry(&self, name: &str) -> anyhow::Result<Option<StepRecord>> {
        let r = self.tagged(name);
        let reg = &self.client.registry;
        let raw = match self.block(reg.fetch_manifest(&r)) {
            Ok(raw) => raw,
            Err(RegistryError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let m: ImageManifest = serde_json::from_slice(&raw.bytes)
            .map_err(|e| anyhow::anyhow!("{r} is not a cairn cache entry: {e}"))?;
        let Some(rec) = m.layers.first().filter(|l| {
            m.artifact_type.as_deref() == Some(RECORD_TYPE) && l.media_type == RECORD_TYPE
        }) else {
            anyhow::bail!(
                "{r} is not a cairn cache entry (artifactType {:?})",
                m.artifact_type
            );
        };
        anyhow::ensure!(
            rec.size <= RECORD_MAX,
            "{r}: record of {} bytes refused",
            rec.size
        );
        // A scratch store: records are not kept with the build's blobs.
        let scratch = tempfile::tempdir()?;
        let tmp = BlobStore::open(scratch.path())?;
        self.block(reg.fetch_blob(&r, rec, &tmp))?;
        let bytes = tmp.read_bytes(&rec.digest)?;
        let record: StepRecord = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{r}: the record does not parse: {e}"))?;
        // The manifest names the layer too: it must be the record's.
        let named = m.layers.get(1).map(|l| l.digest.to_string());
        anyhow::ensure!(
            named == record.layer.as_ref().map(|l| l.digest.clone()),
            "{r}: the record's layer is not the entry's"
        );
        Ok(Some(record))
    }

    fn names(&self) -> anyhow::Result<Vec<String>> {
        let mut tags = self.block(self.client.registry.list_tags(&self.repo))?;
        tags.retain(|t| t.starts_with('s'));
        Ok(tags)
    }

    fn fetch_blob(&self, layer: &CachedLayer, store: &BlobStore) -> anyhow::Result<u64> {
        let d: Digest = layer.digest.parse()?;
        let desc = Descriptor::new(layer.media_type.clone(), d, layer.size);
        let r = Reference::new(self.repo.clone(), None, None);
        // fetch_blob verifies the digest before the blob is stored.
        self.block(self.client.registry.fetch_blob(&r, &desc, store))?;
        Ok(layer.size)
    }

    fn put(&self, name: &str, record: &StepRecord, store: &BlobStore) -> anyhow::Result<()> {
        let rec = serde_json::to_vec(record)?;
        let rec_d = store.put_bytes(&rec)?;
        let empty = store.put_bytes(b"{}")?;
        let mut layers = vec![serde_json::json!({
            "mediaType": RECORD_TYPE, "digest": rec_d.to_string(), "size": rec.len(),
        })];
        if let Some(l) = &record.layer {
            layers.push(serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size,
            }));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": RECORD_TYPE,
            "config": {"mediaType": EMPTY_TYPE, "digest": empty.to_string(), "size": 2},
            "layers": layers,
        }))?;
        let r = self.tagged(name);
        // A push that lost a race with another runner's upload of the same
        // blob is pushed again by push_image itself.
        self.block(self.client.registry.push_image(
            &r,
            &manifest,
            OCI_MANIFEST,
            store,
            &self.client.mount_from,
        ))?;
        Ok(())
    }
}
