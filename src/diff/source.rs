//! Where the two sides of `cairn diff` come from, and how their layers are
//! opened lazily.
//!
//! Resolution order of one side `S`:
//! 1. `oci:DIR[:TAG]` — an OCI image layout;
//! 2. `docker-archive:FILE` — a `docker save` tar;
//! 3. cairn's local image store (`oci:$CACHE/images`, where `cairn build`
//!    without `-o` puts images) when it holds the tag `S` (or `S:latest`, or
//!    `sha256-HEX` for `sha256:HEX`), whatever registry `S` names: what
//!    `cairn build -t S` left there comes first (the command says so);
//! 4. otherwise, the registry the reference names (Docker Hub by default).
//!
//! Only manifests and configs are read when a side is loaded; a layer's bytes
//! are read (for a registry: downloaded into a temporary store first) only
//! when [`LoadedImage::open_layer`] is called, which `compare_images` does
//! only for layers whose digests differ.

use super::Error;
use crate::engine::record::BuildRecord;
use crate::engine::record_artifact;
use crate::error::Hinted;
use crate::image::config::ImageConfig;
use crate::image::manifest::{Descriptor, ImageIndex, ImageManifest, ManifestKind, REF_NAME};
use crate::image::oci_layout::{split_dir_tag, OciLayout};
use crate::image::{Layer, MediaType};
use crate::registry::pull::{is_attestation, select_platform};
use crate::registry::{Platform, Reference, Registry};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::{DiffId, Digest};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The tag prefix under which `cairn build` stores a build record in an OCI layout.
pub const RECORD_TAG_PREFIX: &str = "cairn-record-";

/// Where one side comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An OCI layout directory and an optional tag.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// The tag (`None`: the only image in the layout).
        tag: Option<String>,
    },
    /// A `docker save` archive.
    DockerArchive(PathBuf),
    /// A registry reference.
    Registry(Reference),
}

/// Resolve a side's string (see the module docs for the order).
pub fn parse_source(s: &str, local_store: &Path) -> Result<Source, Error> {
    if let Some(rest) = s.strip_prefix("oci:") {
        let (dir, tag) = split_dir_tag(rest);
        return Ok(Source::Layout {
            dir: dir.into(),
            tag: tag.map(str::to_owned),
        });
    }
    if let Some(file) = s.strip_prefix("docker-archive:") {
        return Ok(Source::DockerArchive(file.into()));
    }
    if let Some(t) = crate::image::local_store::find(s, local_store) {
        return Ok(Source::Layout {
            dir: local_store.to_owned(),
            tag: Some(t),
        });
    }
    let reference: Reference = s.parse().map_err(|source| Error::NotAReference {
        text: s.to_owned(),
        local_store: local_store.to_owned(),
        source,
    })?;
    Ok(Source::Registry(reference))
}

/// A registry client and the runtime that drives it, shared by both sides.
pub struct Remote {
    /// The client.
    pub registry: Registry,
    /// The runtime its futures run on.
    pub runtime: tokio::runtime::Runtime,
    /// Compressed bytes downloaded so far (layers fetched for the comparison).
    pub fetched: AtomicU64,
}

impl Remote {
    /// A quiet client (stdout is the report; blob transfers are counted in
    /// it) for registries, `insecure` ones over plain HTTP.
    pub fn new(insecure: Vec<String>) -> Result<Self, Error> {
        Ok(Remote {
            registry: Registry::new(crate::registry::RegistryOptions::new(
                insecure,
                Arc::new(()),
            ))
            .map_err(Error::Client)?,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?,
            fetched: AtomicU64::new(0),
        })
    }
}

/// How a side's layer bytes are reached.
enum Blobs {
    /// A local blob store (OCI layout).
    Store(BlobStore),
    /// Entries of a docker archive: path → (offset of the data, size).
    Archive {
        file: PathBuf,
        entries: BTreeMap<String, (u64, u64)>,
        paths: BTreeMap<Digest, String>,
    },
    /// A registry; blobs are downloaded into `store` on demand.
    Registry {
        remote: Arc<Remote>,
        reference: Reference,
        store: BlobStore,
        _tmp: tempfile::TempDir,
    },
}

/// One side, loaded: manifest and config read, layers not yet.
pub struct LoadedImage {
    /// How the user named it.
    pub name: String,
    /// The index the manifest was selected from, if any.
    pub index_digest: Option<String>,
    /// The image manifest digest (`None` for a docker archive, which has none).
    pub manifest_digest: Option<String>,
    /// The config digest.
    pub config_digest: String,
    /// The parsed config.
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// cairn's build record, when one is stored with the image.
    pub record: Option<BuildRecord>,
    /// The SBOMs and provenance attached to it.
    pub attestations: Vec<crate::attest::read::Attestation>,
    blobs: Blobs,
}

/// A config's `rootfs.diff_ids` entry, parsed.
fn diff_id(id: &str, what: &str) -> Result<DiffId, Error> {
    id.parse().map_err(|source| Error::DiffId {
        side: what.to_owned(),
        id: id.to_owned(),
        source,
    })
}

fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Config {
        side: what.to_owned(),
        source,
    })
}

/// Pair manifest layer descriptors with the config's diff_ids.
fn layer_infos(
    layers: &[Descriptor],
    config: &ImageConfig,
    what: &str,
) -> Result<Vec<Layer>, Error> {
    let ids = &config.rootfs.diff_ids;
    if ids.len() != layers.len() {
        return Err(Error::LayerCount {
            side: what.to_owned(),
            listing: "manifest",
            layers: layers.len(),
            diff_ids: ids.len(),
        });
    }
    layers
        .iter()
        .zip(ids)
        .map(|(d, id)| Ok(Layer::from_descriptor(d, diff_id(id, what)?)))
        .collect()
}

impl LoadedImage {
    /// Load a side: manifests and config only.
    pub fn load(
        name: &str,
        source: &Source,
        platform: &Platform,
        remote: impl FnOnce() -> Result<Arc<Remote>, Error>,
    ) -> Result<Self, Error> {
        match source {
            Source::Layout { dir, tag } => load_layout(name, dir, tag.as_deref(), platform),
            Source::DockerArchive(file) => load_archive(name, file),
            Source::Registry(r) => load_registry(name, r, platform, remote()?),
        }
    }

    /// Open a layer's stream (compressed or not, as stored).
    pub fn open_layer(&self, l: &Layer) -> Result<Box<dyn Read + Send>, Error> {
        let digest = &l.digest;
        let open = |source| Error::OpenLayer {
            side: self.name.clone(),
            digest: l.digest.to_string(),
            source,
        };
        match &self.blobs {
            Blobs::Store(store) => Ok(Box::new(store.open_blob(digest).map_err(open)?)),
            Blobs::Archive {
                file,
                entries,
                paths,
            } => {
                let path = paths.get(&l.digest).ok_or_else(|| Error::NoLayerFile {
                    side: self.name.clone(),
                    digest: l.digest.to_string(),
                })?;
                let &(offset, size) = entries.get(path).ok_or_else(|| Error::NoArchiveEntry {
                    side: self.name.clone(),
                    path: path.clone(),
                })?;
                let mut f = File::open(file).map_err(|source| Error::OpenArchive {
                    file: file.clone(),
                    source,
                })?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|source| Error::ReadArchive {
                        file: file.clone(),
                        source,
                    })?;
                Ok(Box::new(f.take(size)))
            }
            Blobs::Registry {
                remote,
                reference,
                store,
                ..
            } => {
                let desc = Descriptor::new(l.media_type.clone(), digest.clone(), l.size);
                remote
                    .runtime
                    .block_on(remote.registry.fetch_blob(reference, &desc, store))
                    .map_err(|e| Error::FetchLayer {
                        digest: l.digest.to_string(),
                        reference: reference.to_string(),
                        source: Box::new(Hinted::registry(e, reference)),
                    })?;
                remote.fetched.fetch_add(l.size, Ordering::Relaxed);
                Ok(Box::new(store.open_blob(digest).map_err(open)?))
            }
        }
    }
}

/// `dir` opened as an OCI layout.
fn open_layout(dir: &Path) -> Result<OciLayout, Error> {
    OciLayout::open(dir).map_err(|source| Error::OpenLayout {
        dir: dir.to_owned(),
        source,
    })
}

/// A registry side's manifest that cannot be fetched, with what to do.
fn fetch_error(e: crate::registry::RegistryError, reference: &Reference) -> Error {
    Error::Fetch {
        reference: reference.to_string(),
        source: Box::new(Hinted::registry(e, reference)),
    }
}

/// What `oci:DIR[:TAG]` names: the tag's entry, or the layout's only image
/// (build records sit beside images; they are not candidates).
fn top_descriptor(layout: &OciLayout, tag: Option<&str>) -> Result<Descriptor, Error> {
    if tag.is_some() {
        return Ok(layout.resolve(tag)?);
    }
    let index = layout.index()?;
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            !d.annotation(REF_NAME)
                .is_some_and(|t| t.starts_with(RECORD_TAG_PREFIX))
        })
        .collect();
    Ok(match images.as_slice() {
        [one] => (*one).clone(),
        _ => layout.resolve(None)?,
    })
}

/// The platforms of a multi-platform image (its index's entries, in order,
/// attestations left out); `None` when the source is a single image.
pub fn index_platforms(
    source: &Source,
    remote: impl FnOnce() -> Result<Arc<Remote>, Error>,
) -> Result<Option<Vec<Platform>>, Error> {
    let (bytes, media_type) = match source {
        Source::DockerArchive(_) => return Ok(None),
        Source::Layout { dir, tag } => {
            let layout = open_layout(dir)?;
            let d = top_descriptor(&layout, tag.as_deref())?;
            (
                layout.store().read_bytes(&d.digest)?,
                d.media_type.to_string(),
            )
        }
        Source::Registry(r) => {
            let remote = remote()?;
            let m = remote
                .runtime
                .block_on(remote.registry.fetch_manifest(r))
                .map_err(|e| fetch_error(e, r))?;
            (m.bytes, m.media_type)
        }
    };
    if ManifestKind::of(&media_type) != Some(ManifestKind::Index) {
        return Ok(None);
    }
    let idx: ImageIndex = serde_json::from_slice(&bytes).map_err(Error::ParseIndex)?;
    let mut out: Vec<Platform> = Vec::new();
    for d in idx.manifests.iter().filter(|d| !is_attestation(d)) {
        if let Some(p) = d.platform.as_ref().map(Platform::from_spec) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(Some(out))
}

fn load_layout(
    name: &str,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<LoadedImage, Error> {
    let layout = open_layout(dir)?;
    let store = layout.store();
    let entry = top_descriptor(&layout, tag)?;
    let mut desc = entry.clone();
    let dummy: Reference =
        "localhost/oci-layout"
            .parse()
            .map_err(|source| Error::NotAReference {
                text: "localhost/oci-layout".into(),
                local_store: dir.to_owned(),
                source,
            })?;
    let mut index_digest = None;
    for _ in 0..4 {
        if ManifestKind::of(&desc.media_type) != Some(ManifestKind::Index) {
            break;
        }
        index_digest.get_or_insert_with(|| desc.digest.to_string());
        let idx: ImageIndex =
            serde_json::from_slice(&store.read_bytes(&desc.digest)?).map_err(|source| {
                Error::Index {
                    side: name.to_owned(),
                    digest: desc.digest.to_string(),
                    source,
                }
            })?;
        desc = select_platform(&dummy, &idx, platform)
            .map_err(Error::Platform)?
            .clone();
    }
    let manifest: ImageManifest = serde_json::from_slice(&store.read_bytes(&desc.digest)?)
        .map_err(|source| Error::Manifest {
            side: name.to_owned(),
            digest: desc.digest.to_string(),
            source,
        })?;
    let config_bytes = store
        .read_bytes(&manifest.config.digest)
        .map_err(|source| Error::ReadConfig {
            side: name.to_owned(),
            digest: manifest.config.digest.to_string(),
            source,
        })?;
    let config = parse_config(&config_bytes, name)?;
    let layers = layer_infos(&manifest.layers, &config, name)?;
    let read = |m: &ImageManifest| record_artifact::read_record(m, |l| store.read_bytes(&l.digest));
    let record = match record_artifact::in_layout(&layout, &entry) {
        Some((_, _, m)) => read(&m),
        // Layouts written before records were attached held them under a tag.
        None => layout
            .resolve(Some(&format!("{RECORD_TAG_PREFIX}{}", desc.digest.hex())))
            .ok()
            .and_then(|d| store.read_bytes(&d.digest).ok())
            .and_then(|b| serde_json::from_slice::<ImageManifest>(&b).ok())
            .and_then(|m| read(&m)),
    };
    Ok(LoadedImage {
        name: name.to_owned(),
        index_digest,
        manifest_digest: Some(desc.digest.to_string()),
        config_digest: manifest.config.digest.to_string(),
        config,
        layers,
        record,
        attestations: crate::attest::read::in_layout(&layout, &entry, &desc.digest),
        blobs: Blobs::Store(store.clone()),
    })
}

/// Index a docker archive's entries (one pass over headers, data skipped)
/// and resolve symlinked layer files to their targets.
fn archive_entries(file: &Path) -> Result<BTreeMap<String, (u64, u64)>, Error> {
    let f = File::open(file).map_err(|source| Error::OpenArchive {
        file: file.to_owned(),
        source,
    })?;
    let read = |source| Error::ReadArchive {
        file: file.to_owned(),
        source,
    };
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut entries = BTreeMap::new();
    let mut links = Vec::new();
    for e in ar.entries_with_seek().map_err(read)? {
        let e = e.map_err(read)?;
        let path = super::tar_index::normalize(&String::from_utf8_lossy(&e.path_bytes()));
        match e.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = e.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    links.push((path, target, e.header().entry_type()));
                }
            }
            _ => {
                entries.insert(path, (e.raw_file_position(), e.size()));
            }
        }
    }
    for (path, target, kind) in links {
        let resolved = if kind == tar::EntryType::Symlink {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            lexical_join(dir, &target)
        } else {
            super::tar_index::normalize(&target)
        };
        if let Some(v) = entries.get(&resolved).copied() {
            entries.insert(path, v);
        }
    }
    Ok(entries)
}

/// `dir/target` with `.` and `..` resolved lexically (never above the root).
fn lexical_join(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn read_entry(
    file: &Path,
    entries: &BTreeMap<String, (u64, u64)>,
    path: &str,
) -> Result<Vec<u8>, Error> {
    let &(offset, size) = entries.get(path).ok_or_else(|| Error::ArchiveMissing {
        file: file.to_owned(),
        what: "",
        path: path.to_owned(),
    })?;
    if size > 64 << 20 {
        return Err(Error::ArchiveEntryTooLarge {
            file: file.to_owned(),
            path: path.to_owned(),
            size,
        });
    }
    let read = |source| Error::ReadArchive {
        file: file.to_owned(),
        source,
    };
    let mut f = File::open(file).map_err(|source| Error::OpenArchive {
        file: file.to_owned(),
        source,
    })?;
    f.seek(SeekFrom::Start(offset)).map_err(read)?;
    let mut buf = Vec::with_capacity(size as usize);
    f.take(size).read_to_end(&mut buf).map_err(read)?;
    Ok(buf)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    layers: Vec<String>,
}

fn load_archive(name: &str, file: &Path) -> Result<LoadedImage, Error> {
    let entries = archive_entries(file)?;
    let manifests: Vec<ArchiveManifest> =
        serde_json::from_slice(&read_entry(file, &entries, "manifest.json")?).map_err(
            |source| Error::ArchiveManifest {
                file: file.to_owned(),
                source,
            },
        )?;
    let m = manifests
        .into_iter()
        .next()
        .ok_or_else(|| Error::ArchiveEmpty {
            file: file.to_owned(),
        })?;
    let config_bytes = read_entry(file, &entries, &super::tar_index::normalize(&m.config))?;
    let config = parse_config(&config_bytes, name)?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::LayerCount {
            side: name.to_owned(),
            listing: "manifest.json",
            layers: m.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    let mut paths = BTreeMap::new();
    let mut layers = Vec::new();
    for (p, id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        let p = super::tar_index::normalize(p);
        let &(_, size) = entries.get(&p).ok_or_else(|| Error::ArchiveMissing {
            file: file.to_owned(),
            what: "layer ",
            path: p.clone(),
        })?;
        // OCI-style archives name blobs by digest (maybe compressed); classic
        // `layer.tar` files are uncompressed, so their digest is the diff_id.
        let diff_id = diff_id(id, name)?;
        let digest = match p.strip_prefix("blobs/sha256/") {
            Some(hex) => {
                format!("sha256:{hex}")
                    .parse()
                    .map_err(|source| Error::ArchiveLayerPath {
                        file: file.to_owned(),
                        path: p.clone(),
                        source,
                    })?
            }
            None => diff_id.0.clone(),
        };
        paths.insert(digest.clone(), p);
        layers.push(Layer {
            digest,
            diff_id,
            size,
            media_type: MediaType::DockerLayer,
        });
    }
    Ok(LoadedImage {
        name: name.to_owned(),
        index_digest: None,
        manifest_digest: None,
        config_digest: Digest::of(&config_bytes).to_string(),
        config,
        layers,
        record: None,
        attestations: Vec::new(),
        blobs: Blobs::Archive {
            file: file.to_owned(),
            entries,
            paths,
        },
    })
}

fn load_registry(
    name: &str,
    reference: &Reference,
    platform: &Platform,
    remote: Arc<Remote>,
) -> Result<LoadedImage, Error> {
    let tmp = tempfile::Builder::new()
        .prefix("cairn-diff-")
        .tempdir()
        .map_err(Error::TempStore)?;
    let store = BlobStore::open(tmp.path())?;
    let image = remote
        .runtime
        .block_on(remote.registry.pull_manifest(reference, platform, &store))
        .map_err(|e| fetch_error(e, reference))?;
    let config = parse_config(&image.config.bytes, name)?;
    let layers = layer_infos(&image.layers, &config, name)?;
    let record = record_artifact::from_registry(
        &remote.registry,
        &remote.runtime,
        reference.repository(),
        &image.digest,
        &store,
    );
    // Not being able to list them is no reason not to compare the images.
    let attestations = crate::attest::read::in_registry(
        &remote.registry,
        &remote.runtime,
        reference.repository(),
        &image.digest,
        &store,
    )
    .unwrap_or_default();
    Ok(LoadedImage {
        name: name.to_owned(),
        index_digest: image.index_digest.map(|d| d.to_string()),
        manifest_digest: Some(image.digest.to_string()),
        config_digest: image.manifest.value.config.digest.to_string(),
        config,
        layers,
        record,
        attestations,
        blobs: Blobs::Registry {
            remote,
            reference: reference.clone(),
            store,
            _tmp: tmp,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::OCI_MANIFEST;

    #[test]
    fn sources_resolve_in_the_documented_order() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("images");
        let l = OciLayout::create(&store).unwrap();
        let d = l.store().put_bytes(b"{}").unwrap();
        l.tag(&Descriptor::new(OCI_MANIFEST, d, 2), Some("app:1"))
            .unwrap();
        assert_eq!(
            parse_source("oci:out:v1", &store).unwrap(),
            Source::Layout {
                dir: "out".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            parse_source("docker-archive:a.tar", &store).unwrap(),
            Source::DockerArchive("a.tar".into())
        );
        assert_eq!(
            parse_source("app:1", &store).unwrap(),
            Source::Layout {
                dir: store.clone(),
                tag: Some("app:1".into())
            }
        );
        assert!(matches!(
            parse_source("localhost:5000/app:1", &store).unwrap(),
            Source::Registry(_)
        ));
        assert!(matches!(
            parse_source("app:2", &store).unwrap(),
            Source::Registry(_)
        ));
        assert!(parse_source("UPPER CASE", &store).is_err());
    }

    #[test]
    fn symlinked_archive_paths_resolve_lexically() {
        assert_eq!(lexical_join("b", "../a/layer.tar"), "a/layer.tar");
        assert_eq!(lexical_join("", "../../x"), "x");
        assert_eq!(lexical_join("a", "/y"), "y");
    }
}
