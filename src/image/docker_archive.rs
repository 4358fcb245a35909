//! The docker-archive output: the `docker save` tar that `docker load` and
//! `podman load` read.
//!
//! Layout (every entry mtime 0, uid/gid 0, no user or group names, in this
//! order):
//!
//! ```text
//! <v1id>/            for each layer, bottom first
//! <v1id>/VERSION     "1.0"
//! <v1id>/json        legacy v1 layer config (id, parent, created; the image config on the top layer)
//! <v1id>/layer.tar   the UNCOMPRESSED layer tar (its sha256 is the diff_id)
//! <config-hex>.json  the config, byte for byte (its sha256 is the image ID)
//! manifest.json      [{"Config":"<config-hex>.json","RepoTags":["app:1"],"Layers":["<v1id>/layer.tar",…]}]
//! repositories       {"app":{"1":"<top v1id>"}} for pre-1.10 loaders
//! ```
//!
//! Why this classic form and not Docker 25's OCI-in-archive
//! (`blobs/sha256/…` + `index.json`): every loader since Docker 1.10 reads
//! `manifest.json` and follows its paths, including containers/image in
//! podman 4.3 (Debian 12) and skopeo 1.9, which ignore `index.json`; and the
//! classic form is also what containers/image itself writes for
//! `docker-archive:`. Layers are stored uncompressed because that is what
//! `docker save` always wrote: loaders that verify a layer file against its
//! diff_id (older Docker, c/image's diff_id-addressed source) need no
//! decompression guesswork.
//!
//! Layers are decompressed while streaming into the archive, in one pass: the
//! tar header is written with a placeholder size and patched once the
//! uncompressed length is known, and the diff_id and blob digest are verified
//! on the way. Nothing is buffered in memory beyond a copy buffer. The archive
//! is written to a temporary file next to `dest` and renamed into place, so
//! `dest` never holds a half-written archive.
//!
//! `<v1id>` is the sha256 of the canonical JSON of that layer's v1 config
//! (which names its parent's id and its chain ID), so ids are unique per
//! position in the stack and depend only on the image. A layer repeated at a
//! later position gets a `layer.tar` symlink to its first copy, as
//! `docker save` does.

use super::layer::Layer;
use crate::report::{Event, Reporter};
use cairn_layers::blob_store::{BlobError, BlobStore};
use cairn_layers::digest::HashingWriter;
use cairn_layers::{DiffId, Digest};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Digest of the config (the image ID docker and podman show).
    pub config_digest: Digest,
    /// The normalized tags written to `RepoTags`.
    pub repo_tags: Vec<String>,
    /// Layers in the archive.
    pub layers: usize,
    /// Size of the archive file.
    pub bytes: u64,
}

/// Why a docker-archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DockerArchiveError {
    /// Reading a blob or writing the archive failed.
    #[error("docker-archive: cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The blob store could not provide a layer.
    #[error("docker-archive: cannot read layer {digest} from the blob store")]
    Blob {
        /// The layer blob.
        digest: Digest,
        /// The store's error.
        #[source]
        source: BlobError,
    },
    /// The layer's media type is neither a tar nor a gzip tar.
    #[error("docker-archive: layer {digest} has media type `{media_type}`, which cairn cannot decompress (only tar and tar+gzip layers can be exported)")]
    UnsupportedMediaType {
        /// The layer blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// The stored blob's bytes do not match its digest or size.
    #[error("docker-archive: blob of layer {expected} is corrupt: its bytes hash to {actual} ({size} bytes, descriptor says {expected_size}); delete it from the store and pull or rebuild")]
    BlobMismatch {
        /// The descriptor digest.
        expected: Digest,
        /// What the stored bytes hash to.
        actual: Digest,
        /// Bytes read.
        size: u64,
        /// The descriptor size.
        expected_size: u64,
    },
    /// The uncompressed layer does not hash to its diff_id.
    #[error("docker-archive: layer {digest} decompresses to {actual}, but the config says its diff_id is {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        digest: Digest,
        /// The diff_id from the caller/config.
        expected: DiffId,
        /// What the uncompressed bytes hash to.
        actual: Digest,
    },
    /// The layer is not valid gzip.
    #[error("docker-archive: cannot decompress layer {digest}")]
    Decompress {
        /// The layer blob.
        digest: Digest,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The config is not a JSON object with `rootfs.diff_ids` strings.
    #[error("docker-archive: the image config is not valid: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The config's `rootfs.diff_ids` do not match the layers given.
    #[error("docker-archive: the config lists diff_ids [{}] but the layers have [{}]", config.join(", "), layers.join(", "))]
    LayerMismatch {
        /// From the config.
        config: Vec<String>,
        /// From the layers.
        layers: Vec<String>,
    },
    /// A tag cannot be written as a docker `RepoTags` entry.
    #[error("docker-archive: `{tag}` cannot be used as an image tag: {reason}")]
    Tag {
        /// The tag as given.
        tag: String,
        /// Why.
        reason: &'static str,
    },
}

type Result<T, E = DockerArchiveError> = std::result::Result<T, E>;

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> DockerArchiveError + 'a {
    move |source| DockerArchiveError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Hosts that mean Docker Hub; `docker save` writes their names without them.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// Normalize an image reference into the familiar `RepoTags` form `docker save`
/// writes: Docker Hub's host and `library/` are dropped
/// (`docker.io/library/node:22` → `node:22`, `docker.io/me/app` →
/// `me/app:latest`), other registries are kept
/// (`localhost:5000/app:1`), a missing tag becomes `latest`. Digest references
/// are refused: an archive tag must be a tag.
pub fn normalize_repo_tag(reference: &str) -> Result<String> {
    let bad = |reason| DockerArchiveError::Tag {
        tag: reference.to_owned(),
        reason,
    };
    if reference.contains('@') {
        return Err(bad(
            "a docker-archive tag must be NAME:TAG, not a digest reference",
        ));
    }
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (reference, "latest"),
    };
    let tag_ok = tag.len() <= 128
        && tag.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        })
        && !tag.is_empty();
    if !tag_ok {
        return Err(bad(
            "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`",
        ));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let domain = (parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost"))
        .then(|| parts.remove(0))
        .filter(|d| !DOCKER_HUB.contains(d));
    if domain.is_none() && parts.len() == 2 && parts[0] == "library" {
        parts.remove(0);
    }
    if domain.is_some_and(|d| !valid_domain(d)) {
        return Err(bad("the registry host is not a valid HOST[:PORT]"));
    }
    if !parts.iter().all(|c| valid_path_component(c)) {
        return Err(bad(
            "repository path components must be lowercase letters and digits separated by `.`, `_`, `__` or dashes",
        ));
    }
    let name: Vec<&str> = domain.into_iter().chain(parts).collect();
    Ok(format!("{}:{tag}", name.join("/")))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (distribution/reference's path component).
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|x| x == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

/// `host[:port]` with host labels of `[A-Za-z0-9-]` (or a bracketed IPv6 address).
fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (d, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if host.starts_with('[') && host.ends_with(']') {
        host.len() > 2
    } else {
        !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    port_ok && host_ok
}

/// `manifest.json`'s single entry (field order = docker's).
#[derive(Serialize)]
struct ManifestEntry<'a> {
    #[serde(rename = "Config")]
    config: &'a str,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<&'a [String]>,
    #[serde(rename = "Layers")]
    layers: &'a [String],
}

/// How a layer's blob becomes its uncompressed tar.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Compression {
    None,
    Gzip,
}

fn compression_of(layer: &Layer) -> Result<Compression> {
    let mt = layer.media_type.as_str();
    const TAR: [&str; 3] = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
    ];
    const GZIP: [&str; 4] = [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    if TAR.contains(&mt) {
        Ok(Compression::None)
    } else if GZIP.contains(&mt) {
        Ok(Compression::Gzip)
    } else {
        Err(DockerArchiveError::UnsupportedMediaType {
            digest: layer.digest.clone(),
            media_type: layer.media_type.to_string(),
        })
    }
}

/// Parse the config and check its `rootfs.diff_ids` against `layers`.
fn parse_config(config_raw: &[u8], layers: &[Layer]) -> Result<Map<String, Value>> {
    let bad = |reason: String| DockerArchiveError::Config { reason };
    let config: Map<String, Value> =
        serde_json::from_slice(config_raw).map_err(|e| bad(format!("not a JSON object ({e})")))?;
    let diff_ids = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`rootfs.diff_ids` is missing or not an array".into()))?;
    let from_config: Vec<String> = diff_ids
        .iter()
        .map(|d| d.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("`rootfs.diff_ids` holds a non-string".into()))?;
    let from_layers: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    if from_config != from_layers {
        return Err(DockerArchiveError::LayerMismatch {
            config: from_config,
            layers: from_layers,
        });
    }
    Ok(config)
}

/// The legacy v1 config of each layer, with its id (see the module docs).
fn v1_configs(config: &Map<String, Value>, layers: &[Layer]) -> Vec<(String, Map<String, Value>)> {
    let created = config
        .get("created")
        .cloned()
        .unwrap_or_else(|| Value::from("1970-01-01T00:00:00Z"));
    let mut out: Vec<(String, Map<String, Value>)> = Vec::with_capacity(layers.len());
    let mut chain: Option<Digest> = None;
    for (i, layer) in layers.iter().enumerate() {
        chain = Some(match chain {
            None => layer.diff_id.digest().clone(),
            Some(c) => Digest::of(format!("{c} {}", layer.diff_id).as_bytes()),
        });
        let mut v1 = if i + 1 == layers.len() {
            // The top layer carries the image config, as docker save writes it.
            let mut m = config.clone();
            m.remove("rootfs");
            m.remove("history");
            m
        } else {
            Map::new()
        };
        v1.insert("created".into(), created.clone());
        v1.insert(
            "layer_id".into(),
            Value::from(chain.as_ref().map(ToString::to_string)),
        );
        if let Some((parent, _)) = out.last() {
            v1.insert("parent".into(), Value::from(parent.as_str()));
        }
        // serde_json's Map is sorted (no `preserve_order`), so this is canonical.
        let id = Digest::of(Value::Object(v1.clone()).to_string().as_bytes())
            .hex()
            .to_owned();
        v1.insert("id".into(), Value::from(id.as_str()));
        out.push((id, v1));
    }
    out
}

/// Write `dest` as a docker-archive of the image made of `config_raw` (kept
/// byte for byte) and `layers` (blobs in `store`), tagged `repo_tags`
/// (normalized with [`normalize_repo_tag`]). Layer writes are reported as
/// `write` blob events.
pub fn write_docker_archive(
    dest: &Path,
    config_raw: &[u8],
    layers: &[Layer],
    store: &BlobStore,
    repo_tags: &[String],
    reporter: &dyn Reporter,
) -> Result<ArchiveSummary> {
    let config = parse_config(config_raw, layers)?;
    let compressions = layers
        .iter()
        .map(compression_of)
        .collect::<Result<Vec<_>>>()?;
    let mut tags: Vec<String> = Vec::with_capacity(repo_tags.len());
    for t in repo_tags {
        let t = normalize_repo_tag(t)?;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let config_digest = Digest::of(config_raw);
    let v1 = v1_configs(&config, layers);

    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    let mut ar = ArchiveWriter {
        out: BufWriter::with_capacity(256 * 1024, tmp.as_file()),
        path: tmp.path().to_owned(),
    };

    let mut first_copy: HashMap<&DiffId, String> = HashMap::new();
    let mut layer_paths = Vec::with_capacity(layers.len());
    for ((layer, compression), (id, v1_config)) in layers.iter().zip(&compressions).zip(&v1) {
        ar.append_dir(id)?;
        ar.append_bytes(&format!("{id}/VERSION"), b"1.0")?;
        let json = Value::Object(v1_config.clone()).to_string();
        ar.append_bytes(&format!("{id}/json"), json.as_bytes())?;
        let path = format!("{id}/layer.tar");
        match first_copy.get(&layer.diff_id) {
            Some(first) => {
                ar.append_symlink(&path, &format!("../{first}"))?;
                layer_paths.push(first.clone());
            }
            None => {
                ar.append_layer(&path, layer, *compression, store, reporter)?;
                first_copy.insert(&layer.diff_id, path.clone());
                layer_paths.push(path);
            }
        }
    }
    let config_name = format!("{}.json", config_digest.hex());
    ar.append_bytes(&config_name, config_raw)?;
    let manifest = [ManifestEntry {
        config: &config_name,
        repo_tags: (!tags.is_empty()).then_some(tags.as_slice()),
        layers: &layer_paths,
    }];
    let manifest = serde_json::to_vec(&manifest).map_err(|e| DockerArchiveError::Config {
        reason: format!("cannot serialize manifest.json ({e})"),
    })?;
    ar.append_bytes("manifest.json", &manifest)?;
    if let Some((top, _)) = v1.last() {
        if !tags.is_empty() {
            let mut repos: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
            for t in &tags {
                if let Some((repo, tag)) = t.rsplit_once(':') {
                    repos.entry(repo).or_default().insert(tag, top);
                }
            }
            let repos = serde_json::to_vec(&repos).map_err(|e| DockerArchiveError::Config {
                reason: format!("cannot serialize repositories ({e})"),
            })?;
            ar.append_bytes("repositories", &repos)?;
        }
    }
    let bytes = ar.finish()?;

    // The temporary file is created 0600; an exported image is meant to be shared.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(io_err("set permissions of", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("fsync", tmp.path()))?;
    tmp.persist(dest)
        .map_err(|e| io_err("rename the finished archive to", dest)(e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(ArchiveSummary {
        config_digest,
        repo_tags: tags,
        layers: layers.len(),
        bytes,
    })
}

/// A minimal ustar writer over a seekable file: deterministic headers and
/// streamed entries whose size is patched in after the data.
struct ArchiveWriter<'f> {
    out: BufWriter<&'f File>,
    path: PathBuf,
}

const BLOCK: u64 = 512;

impl ArchiveWriter<'_> {
    fn header(
        &self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        size: u64,
    ) -> Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(io_err("name an entry of", &self.path))?;
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h.set_cksum();
        Ok(h)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(io_err("write", &self.path))
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (BLOCK - size % BLOCK) % BLOCK;
        self.write(&[0u8; BLOCK as usize][..rem as usize])
    }

    fn append_dir(&mut self, name: &str) -> Result<()> {
        let h = self.header(name, tar::EntryType::Directory, 0o755, 0)?;
        self.write(h.as_bytes())
    }

    fn append_symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let mut h = self.header(name, tar::EntryType::Symlink, 0o777, 0)?;
        h.set_link_name(target)
            .map_err(io_err("name an entry of", &self.path))?;
        h.set_cksum();
        self.write(h.as_bytes())
    }

    fn append_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let h = self.header(name, tar::EntryType::Regular, 0o644, data.len() as u64)?;
        self.write(h.as_bytes())?;
        self.write(data)?;
        self.pad(data.len() as u64)
    }

    /// Stream a layer's uncompressed tar into the archive, verifying its blob
    /// digest and diff_id, and patch the entry's size afterwards.
    fn append_layer(
        &mut self,
        name: &str,
        layer: &Layer,
        compression: Compression,
        store: &BlobStore,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let header_at = self
            .out
            .stream_position()
            .map_err(io_err("seek in", &self.path))?;
        self.write(
            self.header(name, tar::EntryType::Regular, 0o644, 0)?
                .as_bytes(),
        )?;

        let blob = store
            .open_blob(&layer.digest)
            .map_err(|source| DockerArchiveError::Blob {
                digest: layer.digest.clone(),
                source,
            })?;
        reporter.event(Event::BlobStart {
            digest: layer.digest.to_string(),
            size: Some(layer.size),
            action: "write",
        });
        let blob_path = store.path(&layer.digest);
        let mut raw = Progressed {
            inner: HashingWriter::new(io::sink()),
            source: BufReader::with_capacity(256 * 1024, blob),
            reporter,
            digest: layer.digest.to_string(),
            reported: 0,
        };
        let mut tar_out = HashingWriter::new(&mut self.out);
        let decoded = match compression {
            Compression::None => {
                io::copy(&mut raw, &mut tar_out).map_err(io_err("copy layer", &blob_path))?;
                Ok(())
            }
            Compression::Gzip => {
                let mut gz = flate2::read::MultiGzDecoder::new(&mut raw);
                copy_decoding(&mut gz, &mut tar_out, &layer.digest, &self.path)
            }
        };
        // Hash the rest of the blob too (bytes after the gzip stream, or after
        // a decoding error): a corrupt blob is the root cause to report.
        io::copy(&mut raw, &mut io::sink()).map_err(io_err("read", &blob_path))?;
        let (diff_id, size, _) = tar_out.finish();
        let (blob_digest, blob_size, _) = raw.inner.finish();
        if blob_digest != layer.digest || blob_size != layer.size {
            return Err(DockerArchiveError::BlobMismatch {
                expected: layer.digest.clone(),
                actual: blob_digest,
                size: blob_size,
                expected_size: layer.size,
            });
        }
        decoded?;
        if &diff_id != layer.diff_id.digest() {
            return Err(DockerArchiveError::DiffIdMismatch {
                digest: layer.digest.clone(),
                expected: layer.diff_id.clone(),
                actual: diff_id,
            });
        }
        self.pad(size)?;
        let end = self
            .out
            .stream_position()
            .map_err(io_err("seek in", &self.path))?;
        let header = self.header(name, tar::EntryType::Regular, 0o644, size)?;
        self.out
            .seek(SeekFrom::Start(header_at))
            .map_err(io_err("seek in", &self.path))?;
        self.write(header.as_bytes())?;
        self.out
            .seek(SeekFrom::Start(end))
            .map_err(io_err("seek in", &self.path))?;
        reporter.event(Event::BlobDone {
            digest: layer.digest.to_string(),
        });
        Ok(())
    }

    /// End-of-archive marker; returns the archive's size.
    fn finish(mut self) -> Result<u64> {
        self.write(&[0u8; 2 * BLOCK as usize])?;
        let len = self
            .out
            .stream_position()
            .map_err(io_err("seek in", &self.path))?;
        self.out.flush().map_err(io_err("write", &self.path))?;
        Ok(len)
    }
}

/// Copy from a decoder, telling decompression errors apart from write errors.
fn copy_decoding(
    from: &mut impl Read,
    to: &mut impl Write,
    digest: &Digest,
    archive: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DockerArchiveError::Decompress {
                    digest: digest.clone(),
                    source,
                })
            }
        };
        to.write_all(&buf[..n]).map_err(io_err("write", archive))?;
    }
}

/// Reads a blob, hashing it and reporting progress every MiB.
struct Progressed<'r, R> {
    source: R,
    inner: HashingWriter<io::Sink>,
    reporter: &'r dyn Reporter,
    digest: String,
    reported: u64,
}

impl<R: Read> Read for Progressed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        self.inner.write_all(&buf[..n])?;
        let done = self.inner.len();
        if done - self.reported >= 1 << 20 {
            self.reported = done;
            self.reporter.event(Event::BlobProgress {
                digest: self.digest.clone(),
                done,
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
