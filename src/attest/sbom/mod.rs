//! The software bill of materials of an image: what is installed, found by
//! reading the image's layers (never by running it), and which layer and
//! which Dockerfile step put each package there.
//!
//! [`scan`] walks the layers bottom up as an overlay would (whiteouts and
//! opaque directories delete what lower layers wrote) and keeps only the few
//! files that name packages: apk's database ([`apk`]), Node's installed
//! `package.json` files and lockfiles ([`node`]), `os-release`, and what the
//! official `node` images install from release tarballs rather than with a
//! package manager: Node.js itself (`/usr/local/bin/node`, its version from
//! `node_version.h`) and yarn (`/opt/yarn-v*/`). The result,
//! an [`Inventory`], is written as SPDX 2.3 ([`spdx`]) or CycloneDX 1.6
//! ([`cyclonedx`]) JSON. Both writers take every identifier and time from
//! the image's digests and the build epoch, so the same image gives the same
//! bytes on every machine.

pub mod apk;
pub mod cyclonedx;
pub mod node;
pub mod spdx;

use super::Error;
use crate::engine::layer_view::LayerView;
use crate::engine::recompress::OpenLayerError;
use crate::image::config::ImageConfig;
use crate::image::Layer;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::collections::BTreeMap;
use std::io::Read as _;

/// apk's database of installed packages.
const APK_DB: &str = "lib/apk/db/installed";
/// Node.js as the official images install it (release tarball into
/// `/usr/local`): the binary, found by its presence (never read) …
const NODE_BIN: &str = "usr/local/bin/node";
/// … and the header the same tarball ships, which names its version.
const NODE_VERSION_H: &str = "usr/local/include/node/node_version.h";
/// A file larger than this is not read as a package manifest (a hostile
/// image could make one huge).
const MANIFEST_MAX: u64 = 64 << 20;
/// All manifests read from one image together: past this the scan stops
/// with an error rather than hold a hostile image's gigabytes in memory.
const TOTAL_MAX: u64 = 1 << 30;

/// Where a package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ecosystem {
    /// The base image the target's `FROM` chain starts from.
    Image,
    /// An Alpine package (apk).
    Apk,
    /// A Node package (npm, installed under `node_modules`, or a project).
    Npm,
    /// A program installed from a release tarball (Node.js itself).
    Generic,
}

/// One package found in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Its kind.
    pub ecosystem: Ecosystem,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The license as the package declares it.
    pub license: Option<String>,
    /// apk's package identity (hex SHA-1), or the base image's digest hex.
    pub checksum: Option<(&'static str, String)>,
    /// apk: architecture.
    pub arch: Option<String>,
    /// apk: the source package.
    pub origin: Option<String>,
    /// Package URL.
    pub purl: String,
    /// Where it was found (absolute path of the manifest or database).
    pub path: String,
    /// The layer (0-based) and its diff_id.
    pub layer: Option<(usize, String)>,
    /// The step that made that layer (`FROM ref` for a base layer).
    pub step: Option<String>,
    /// What the project's lockfile says about it (npm).
    pub lock: Option<String>,
    /// A project (`package.json` outside `node_modules`), not a dependency.
    pub project: bool,
}

/// Everything an SBOM says about one image (or build stage).
#[derive(Clone, Debug)]
pub struct Inventory {
    /// A name for the image: the repository of its first tag, else its id.
    pub name: String,
    /// The build stage scanned (`None`: the image itself).
    pub stage: Option<String>,
    /// The image config's digest (its id): namespaces derive from it.
    pub config_digest: Digest,
    /// The build epoch (SOURCE_DATE_EPOCH): the documents' creation time.
    pub epoch: u64,
    /// `os-release` ID and VERSION_ID.
    pub distro: Option<(String, String)>,
    /// Packages, in one order (ecosystem, name, version, path).
    pub packages: Vec<Package>,
}

/// The base image of what is scanned: reference, digest, layer count.
pub struct Base<'a> {
    /// `registry/repo:tag`.
    pub reference: &'a str,
    /// Its manifest digest.
    pub digest: &'a Digest,
    /// How many of the image's layers are the base's.
    pub layers: usize,
}

/// Escape a purl component (RFC 3986 unreserved characters stay).
pub fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A regular file of interest, as the uppermost layer holding it left it.
struct Found {
    layer: usize,
    bytes: Vec<u8>,
}

fn interesting(path: &str) -> bool {
    path == APK_DB
        || path == NODE_VERSION_H
        || path == "etc/os-release"
        || path == "usr/lib/os-release"
        || node::LOCKFILES
            .iter()
            .any(|l| path.ends_with(&format!("/{l}")) && !path.contains("node_modules/"))
        || path.ends_with("/package.json")
            && (!path.contains("node_modules/") || node::is_installed_manifest(path))
}

fn normalize(raw: &str) -> String {
    let mut p = raw;
    while let Some(r) = p.strip_prefix("./").or_else(|| p.strip_prefix('/')) {
        p = r;
    }
    p.trim_end_matches('/').to_owned()
}

/// Remove `path` and everything under it from `files`.
fn remove_tree(files: &mut BTreeMap<String, Found>, path: &str, below_layer: Option<usize>) {
    let prefix = format!("{path}/");
    let doomed: Vec<String> = files
        .range(path.to_owned()..)
        .take_while(|(k, _)| k.as_str() == path || k.starts_with(&prefix))
        .filter(|(k, f)| {
            (k.as_str() == path || k.starts_with(&prefix))
                && below_layer.is_none_or(|l| f.layer < l)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        files.remove(&k);
    }
}

/// What one layer does to the files of interest, in archive order.
enum Event {
    /// An opaque directory: lower layers' content of it is hidden.
    Opaque(String),
    /// A whiteout: the path and everything under it is gone.
    Remove(String),
    /// Something that is not a file of interest now sits at the path.
    Replaced(String),
    /// A file of interest and its bytes.
    File(String, Vec<u8>),
}

/// What a layer member is, as far as the scan cares.
enum Kind {
    Dir,
    File(u64),
    Other,
}

/// The event of the member at `path` (normalized) of layer `i` (blob
/// `digest`), if any; `read` gives a file's bytes. `total` counts the bytes
/// kept over every layer (see [`TOTAL_MAX`]).
fn event(
    (i, digest): (usize, &Digest),
    path: String,
    kind: Kind,
    total: &std::sync::atomic::AtomicU64,
    read: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> Result<Option<Event>, Error> {
    use std::sync::atomic::Ordering;
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path.as_str()),
    };
    if name == cairn_layers::whiteout::OPAQUE {
        return Ok(Some(Event::Opaque(dir.to_owned())));
    }
    if let Some(gone) = name.strip_prefix(cairn_layers::whiteout::PREFIX) {
        let gone = if dir.is_empty() {
            gone.to_owned()
        } else {
            format!("{dir}/{gone}")
        };
        return Ok(Some(Event::Remove(gone)));
    }
    let size = match kind {
        // Its presence is what counts; 100 MB of binary are not read.
        Kind::File(_) if path == NODE_BIN => return Ok(Some(Event::File(path, Vec::new()))),
        Kind::File(size) if interesting(&path) && size <= MANIFEST_MAX => size,
        Kind::Dir => return Ok(None),
        // Whatever it is, it replaces a file of ours at that path.
        _ => return Ok(Some(Event::Replaced(path))),
    };
    let kept = total.fetch_add(size, Ordering::Relaxed) + size;
    if kept > TOTAL_MAX {
        return Err(Error::TooManyManifests {
            index: i,
            digest: digest.clone(),
            limit_mib: TOTAL_MAX >> 20,
        });
    }
    let bytes = read().map_err(|source| Error::ReadFile {
        path: path.clone(),
        index: i,
        digest: digest.clone(),
        source,
    })?;
    Ok(Some(Event::File(path, bytes)))
}

/// The events of layer `i` (read from `store` by the layers crate's one tar
/// reader), in archive order.
fn layer_events(
    store: &BlobStore,
    i: usize,
    l: &Layer,
    total: &std::sync::atomic::AtomicU64,
) -> Result<Vec<Event>, Error> {
    use cairn_layers::tar_read::{for_each_member, MemberKind, WalkError};
    let what = |source| Error::ReadLayer {
        index: i,
        digest: l.digest.clone(),
        source,
    };
    let blob = store
        .open_blob(&l.digest)
        .map_err(|source| Error::OpenLayer {
            index: i,
            source: OpenLayerError::Open {
                digest: l.digest.clone(),
                source,
            },
        })?;
    let mut out = Vec::new();
    for_each_member(std::io::BufReader::new(blob), |member, data| {
        let kind = match member.kind {
            MemberKind::File => Kind::File(member.size),
            MemberKind::Dir => Kind::Dir,
            _ => Kind::Other,
        };
        let read = || {
            let mut bytes = Vec::with_capacity(member.size as usize);
            data.read_to_end(&mut bytes).map(|_| bytes)
        };
        out.extend(event(
            (i, &l.digest),
            normalize(&member.path),
            kind,
            total,
            read,
        )?);
        Ok(())
    })
    .map_err(|e| match e {
        WalkError::Read(source) => what(source),
        WalkError::Visit(e) => e,
    })?;
    Ok(out)
}

/// The events of layer `i` from what the build has of it (`view`); `None`
/// when the view cannot tell them as the blob would (a file of interest
/// with several hard links: the archive holds all but one as links).
fn view_events(
    view: &LayerView,
    i: usize,
    l: &Layer,
    total: &std::sync::atomic::AtomicU64,
) -> Result<Option<Vec<Event>>, Error> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let mut out = Vec::new();
    match view {
        LayerView::Entries(fs) => {
            for e in fs.entries() {
                // The path as the archive stores it, read as the blob scan reads it.
                let raw = cairn_layers::raw_name::to_os(&e.path);
                let raw: &std::ffi::OsStr = &raw;
                let path = normalize(&String::from_utf8_lossy(
                    std::os::unix::ffi::OsStrExt::as_bytes(raw),
                ));
                let (kind, source) = match &e.kind {
                    cairn_layers::EntryKind::Dir => (Kind::Dir, None),
                    cairn_layers::EntryKind::File { size, source } => {
                        (Kind::File(*size), Some((source, *size)))
                    }
                    _ => (Kind::Other, None),
                };
                let read = || match source {
                    Some((src, size)) => {
                        let mut bytes = Vec::with_capacity(size as usize);
                        src.open(size)?.read_to_end(&mut bytes).map(|_| bytes)
                    }
                    None => Ok(Vec::new()),
                };
                out.extend(event((i, &l.digest), path, kind, total, read)?);
            }
        }
        LayerView::Dir(root) => {
            for entry in walkdir::WalkDir::new(root).min_depth(1) {
                let entry = entry.map_err(|source| Error::Walk {
                    path: root.clone(),
                    source,
                })?;
                let Ok(rel) = entry.path().strip_prefix(root) else {
                    continue;
                };
                let path = normalize(&String::from_utf8_lossy(
                    std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str()),
                ));
                let md = entry.metadata().map_err(|source| Error::Walk {
                    path: entry.path().to_owned(),
                    source,
                })?;
                let ft = md.file_type();
                if ft.is_char_device() && md.rdev() == 0 {
                    out.push(Event::Remove(path));
                    continue;
                }
                if ft.is_dir() && crate::engine::fs::is_opaque(entry.path()) {
                    out.push(Event::Opaque(path));
                    continue;
                }
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    if md.nlink() > 1 && (path == NODE_BIN || interesting(&path)) {
                        return Ok(None);
                    }
                    Kind::File(md.len())
                } else {
                    Kind::Other
                };
                let read = || std::fs::read(entry.path());
                out.extend(event((i, &l.digest), path, kind, total, read)?);
            }
        }
    }
    Ok(Some(out))
}

/// The interesting files of `layers` as the merged filesystem shows them,
/// and every version of apk's database (by layer) for attribution. Layers
/// are decompressed in parallel (most of the cost), their events applied
/// bottom up.
#[allow(clippy::type_complexity)]
fn walk(
    store: &BlobStore,
    layers: &[Layer],
    views: &BTreeMap<String, LayerView>,
) -> Result<(BTreeMap<String, Found>, Vec<(usize, Vec<u8>)>), Error> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let total = AtomicU64::new(0);
    let next = AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Vec<Event>, Error>>>> =
        std::sync::Mutex::new((0..layers.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(layers.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(l) = layers.get(i) else {
                    break;
                };
                // What the build has of the layer, else its blob (also when
                // the view fails: a directory of ids this user cannot read).
                let viewed = views
                    .get(&l.diff_id.to_string())
                    .and_then(|v| view_events(v, i, l, &total).ok().flatten());
                let r = viewed.map_or_else(|| layer_events(store, i, l, &total), Ok);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().map_err(|_| Error::ScanPanicked)?;
    let mut files: BTreeMap<String, Found> = BTreeMap::new();
    let mut dbs = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let events = r.ok_or(Error::NotScanned(i))??;
        for e in events {
            match e {
                // Hides what lower layers put in the directory, not this layer's own.
                Event::Opaque(dir) => remove_tree(&mut files, &dir, Some(i)),
                Event::Remove(path) => remove_tree(&mut files, &path, None),
                Event::Replaced(path) => {
                    files.remove(&path);
                }
                Event::File(path, bytes) => {
                    if path == APK_DB {
                        dbs.push((i, bytes.clone()));
                    }
                    files.insert(path, Found { layer: i, bytes });
                }
            }
        }
    }
    Ok((files, dbs))
}

fn os_release(files: &BTreeMap<String, Found>) -> Option<(String, String)> {
    let f = files
        .get("etc/os-release")
        .or_else(|| files.get("usr/lib/os-release"))?;
    let text = String::from_utf8_lossy(&f.bytes);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    Some((get("ID")?, get("VERSION_ID")?))
}

/// The step of each layer: the config's history entries that made a layer,
/// in order; a base layer is `FROM <base>`.
fn layer_steps(config: &ImageConfig, base: Option<&Base>, n: usize) -> Vec<String> {
    let mut steps: Vec<String> = config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone().unwrap_or_default())
        .collect();
    steps.resize(n, String::new());
    if let Some(b) = base {
        for s in steps.iter_mut().take(b.layers) {
            *s = format!("FROM {}", b.reference);
        }
    }
    steps
}

/// The package of a `package.json` at `path` (in the image, no leading `/`).
fn npm_package(
    p: node::NodePackage,
    path: &str,
    (layer, step): (Option<(usize, String)>, Option<String>),
    lock: Option<String>,
    project: bool,
) -> Package {
    Package {
        ecosystem: Ecosystem::Npm,
        purl: node::purl(&p.name, &p.version),
        name: p.name,
        version: p.version,
        license: p.license,
        checksum: None,
        arch: None,
        origin: None,
        path: format!("/{path}"),
        layer,
        step,
        lock,
        project,
    }
}

/// Node.js and yarn as the official `node` images install them, from
/// release tarballs (neither apk nor npm knows them): the `node` binary in
/// `/usr/local/bin` with the version its `node_version.h` says (the
/// config's `NODE_VERSION` when the headers were deleted), and
/// `/opt/yarn-v*/package.json`.
fn runtimes(
    files: &BTreeMap<String, Found>,
    config: &ImageConfig,
    at: &dyn Fn(usize) -> (Option<(usize, String)>, Option<String>),
) -> Vec<Package> {
    let mut out = Vec::new();
    if let Some(bin) = files.get(NODE_BIN) {
        let version = files
            .get(NODE_VERSION_H)
            .and_then(|h| node::node_version_h(&String::from_utf8_lossy(&h.bytes)))
            .or_else(|| config.env("NODE_VERSION").map(str::to_owned))
            .filter(|v| !v.is_empty());
        if let Some(version) = version {
            let (layer, step) = at(bin.layer);
            out.push(Package {
                ecosystem: Ecosystem::Generic,
                purl: format!("pkg:generic/node@{}", purl_escape(&version)),
                name: "node".into(),
                version,
                license: None,
                checksum: None,
                arch: None,
                origin: None,
                path: format!("/{NODE_BIN}"),
                layer,
                step,
                lock: None,
                project: false,
            });
        }
    }
    for (path, f) in files.range("opt/yarn-v".to_owned()..) {
        if !path.starts_with("opt/yarn-v") {
            break;
        }
        // `opt/yarn-vX/package.json`, not a file deeper in yarn's tree.
        let is_root = path
            .strip_suffix("/package.json")
            .is_some_and(|dir| dir.matches('/').count() == 1);
        let Some(p) = is_root
            .then(|| node::parse_package_json(&f.bytes))
            .flatten()
            .filter(|p| p.name == "yarn")
        else {
            continue;
        };
        out.push(npm_package(p, path, at(f.layer), None, true));
    }
    out
}

/// Scan an image (its `layers`, `config`, `base`) into an inventory: each
/// layer from its view when `views` has one (by diff_id), else its blob in
/// `store`.
pub fn scan(
    (store, views): (&BlobStore, &BTreeMap<String, LayerView>),
    layers: &[Layer],
    config: &ImageConfig,
    base: Option<&Base>,
    (name, stage, config_digest, epoch): (String, Option<String>, Digest, u64),
) -> Result<Inventory, Error> {
    let (files, dbs) = walk(store, layers, views)?;
    let steps = layer_steps(config, base, layers.len());
    let at = |layer: usize| {
        (
            Some((layer, layers[layer].diff_id.to_string())),
            Some(steps[layer].clone()).filter(|s| !s.is_empty()),
        )
    };
    let distro = os_release(&files);
    let mut packages = Vec::new();
    if let Some(b) = base {
        let r: Option<crate::registry::Reference> = b.reference.parse().ok();
        let (repo, tag, url) = match (&r, b.reference.strip_prefix("oci-layout://")) {
            (_, Some(local)) => {
                let (name, tag) = local.split_once(':').unwrap_or((local, ""));
                (
                    b.reference.to_owned(),
                    Some(tag.to_owned()).filter(|t| !t.is_empty()),
                    name.to_owned(),
                )
            }
            (Some(r), None) => (
                r.repository().to_string(),
                r.tag().map(str::to_owned),
                r.repository().to_string(),
            ),
            (None, None) => (b.reference.to_owned(), None, b.reference.to_owned()),
        };
        let short = url.rsplit('/').next().unwrap_or(&url).to_owned();
        let mut q = Vec::new();
        if r.is_some() {
            q.push(format!("repository_url={}", purl_escape(&url)));
        }
        if let Some(t) = &tag {
            q.push(format!("tag={}", purl_escape(t)));
        }
        let mut purl = format!(
            "pkg:oci/{}@{}",
            purl_escape(&short),
            purl_escape(&b.digest.to_string())
        );
        if !q.is_empty() {
            purl.push('?');
            purl.push_str(&q.join("&"));
        }
        packages.push(Package {
            ecosystem: Ecosystem::Image,
            name: repo,
            version: tag.unwrap_or_else(|| b.digest.to_string()),
            license: None,
            checksum: Some(("SHA256", b.digest.hex().to_owned())),
            arch: None,
            origin: None,
            purl,
            path: String::new(),
            layer: None,
            step: Some(format!("FROM {}", b.reference)),
            lock: None,
            project: false,
        });
    }
    if let Some(db) = files.get(APK_DB) {
        let parsed: Vec<(usize, Vec<apk::ApkPackage>)> = dbs
            .iter()
            .map(|(i, b)| (*i, apk::parse_installed(&String::from_utf8_lossy(b))))
            .collect();
        for p in apk::parse_installed(&String::from_utf8_lossy(&db.bytes)) {
            // The lowest layer whose database lists this name and version.
            let first = parsed
                .iter()
                .find(|(_, ps)| {
                    ps.iter()
                        .any(|q| q.name == p.name && q.version == p.version)
                })
                .map_or(db.layer, |(i, _)| *i);
            let (layer, step) = at(first);
            packages.push(Package {
                ecosystem: Ecosystem::Apk,
                purl: apk::purl(&p, distro.as_ref().map(|d| d.1.as_str())),
                name: p.name,
                version: p.version,
                license: p.license,
                checksum: p.sha1.map(|h| ("SHA1", h)),
                arch: p.arch,
                origin: p.origin,
                path: format!("/{APK_DB}"),
                layer,
                step,
                lock: None,
                project: false,
            });
        }
    }
    // Each project's lockfile: package-lock.json first, as npm would use it.
    let mut locks: BTreeMap<&str, node::Lockfile> = BTreeMap::new();
    for name in node::LOCKFILES {
        for (k, f) in &files {
            let Some(project) = k
                .strip_suffix(name)
                .filter(|p| p.is_empty() || p.ends_with('/'))
            else {
                continue;
            };
            let project = project.trim_end_matches('/');
            if !locks.contains_key(project) {
                if let Some(l) = node::Lockfile::parse(name, &f.bytes) {
                    locks.insert(project, l);
                }
            }
        }
    }
    for (path, f) in &files {
        let Some(dir) = path.strip_suffix("package.json") else {
            continue;
        };
        let dir = dir.trim_end_matches('/');
        let installed = node::is_installed_manifest(path);
        let project = !installed
            && (locks.contains_key(dir)
                || files
                    .range(format!("{dir}/node_modules/")..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&format!("{dir}/node_modules/"))));
        if !installed && !project {
            continue;
        }
        let Some(p) = node::parse_package_json(&f.bytes) else {
            continue;
        };
        let lock = if installed {
            node::project_and_key(path).map(|(proj, key)| match locks.get(proj) {
                None => "no lockfile".to_owned(),
                Some(l) => l.check(key, &p.name, &p.version),
            })
        } else {
            None
        };
        packages.push(npm_package(p, path, at(f.layer), lock, project));
    }
    packages.extend(runtimes(&files, config, &at));
    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.path).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.path,
        ))
    });
    // A yarn with its own node_modules is a project too: listed once.
    packages.dedup_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.path) == (b.ecosystem, &b.name, &b.version, &b.path)
    });
    Ok(Inventory {
        name,
        stage,
        config_digest,
        epoch,
        distro,
        packages,
    })
}

/// A UUID (RFC 4122 layout, version 8: "custom") derived from `seed`, for
/// the document ids the formats require: the same document, the same id.
pub fn uuid_from(seed: &[u8]) -> String {
    let d = Digest::of(seed);
    let mut b = [0u8; 16];
    if let Ok(raw) = hex::decode(d.hex()) {
        b.copy_from_slice(&raw[..16]);
    }
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fs::EntryFs;
    use std::sync::Arc;

    fn layer(store: &BlobStore, files: &[(&str, Option<&str>)]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        for (p, body) in files {
            let mut h = tar::Header::new_gnu();
            match body {
                Some(body) => {
                    h.set_size(body.len() as u64);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, p, body.as_bytes()).unwrap();
                }
                None => {
                    h.set_size(0);
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_cksum();
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
            }
        }
        let bytes = b.into_inner().unwrap();
        let digest = store.put_bytes(&bytes).unwrap();
        Layer {
            diff_id: digest.to_string().parse().unwrap(),
            digest,
            size: bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
    }

    #[test]
    fn whiteouts_and_attribution() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let db1 = "P:musl\nV:1.2.5-r10\nA:x86_64\nL:MIT\n\n";
        let db2 = "P:musl\nV:1.2.5-r10\nA:x86_64\nL:MIT\n\nP:curl\nV:8.0-r0\nA:x86_64\nL:curl\n\n";
        let l0 = layer(
            &store,
            &[
                ("lib/apk/db/installed", Some(db1)),
                ("etc/os-release", Some("ID=alpine\nVERSION_ID=3.23.0\n")),
            ],
        );
        let l1 = layer(
            &store,
            &[
                ("lib/apk/db/installed", Some(db2)),
                (
                    "app/package.json",
                    Some(r#"{"name":"app","version":"1.0.0"}"#),
                ),
                (
                    "app/node_modules/a/package.json",
                    Some(r#"{"name":"a","version":"1.0.0","license":"MIT"}"#),
                ),
                (
                    "app/node_modules/gone/package.json",
                    Some(r#"{"name":"gone","version":"1.0.0"}"#),
                ),
                (
                    "app/package-lock.json",
                    Some(r#"{"packages":{"node_modules/a":{"version":"0.9.0"}}}"#),
                ),
            ],
        );
        let l2 = layer(&store, &[("app/node_modules/.wh.gone", Some(""))]);
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"base"},{"created_by":"ENV X=1","empty_layer":true},{"created_by":"RUN apk add curl"},{"created_by":"RUN rm"}]}"#,
        )
        .unwrap();
        let digest = Digest::of(b"base");
        let base = Base {
            reference: "registry.example/library/node:22-alpine",
            digest: &digest,
            layers: 1,
        };
        let inv = scan(
            (&store, &BTreeMap::new()),
            &[l0, l1, l2],
            &config,
            Some(&base),
            ("app".into(), None, Digest::of(b"c"), 0),
        )
        .unwrap();
        let names: Vec<(&str, &str)> = inv
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.step.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "registry.example/library/node",
                    "FROM registry.example/library/node:22-alpine"
                ),
                ("curl", "RUN apk add curl"),
                ("musl", "FROM registry.example/library/node:22-alpine"),
                ("a", "RUN apk add curl"),
                ("app", "RUN apk add curl"),
            ]
        );
        assert_eq!(inv.distro, Some(("alpine".into(), "3.23.0".into())));
        let a = &inv.packages[3];
        assert_eq!(a.lock.as_deref(), Some("package-lock.json pins 0.9.0"));
        assert!(inv.packages[4].project);
        assert_eq!(
            inv.packages[0].purl,
            format!(
                "pkg:oci/node@sha256%3A{}?repository_url=registry.example%2Flibrary%2Fnode&tag=22-alpine",
                digest.hex()
            )
        );
    }

    #[test]
    fn a_yarn_project_is_checked_against_yarn_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let l0 = layer(
            &store,
            &[
                (
                    "srv/package.json",
                    Some(r#"{"name":"srv","version":"2.0.0"}"#),
                ),
                ("srv/yarn.lock", Some("ms@^2.1.1:\n  version \"2.1.3\"\n")),
                (
                    "srv/node_modules/ms/package.json",
                    Some(r#"{"name":"ms","version":"2.1.2"}"#),
                ),
            ],
        );
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"COPY . /srv"}]}"#,
        )
        .unwrap();
        let inv = scan(
            (&store, &BTreeMap::new()),
            &[l0],
            &config,
            None,
            ("srv".into(), None, Digest::of(b"c"), 0),
        )
        .unwrap();
        let ms = inv.packages.iter().find(|p| p.name == "ms").unwrap();
        assert_eq!(ms.lock.as_deref(), Some("yarn.lock pins 2.1.3"));
        assert!(inv.packages.iter().any(|p| p.name == "srv" && p.project));
    }

    #[test]
    fn node_and_yarn_from_their_release_tarballs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let header = "#define NODE_MAJOR_VERSION 22\n#define NODE_MINOR_VERSION 20\n#define NODE_PATCH_VERSION 0\n";
        let l0 = layer(
            &store,
            &[("etc/os-release", Some("ID=alpine\nVERSION_ID=3.23.0\n"))],
        );
        let l1 = layer(
            &store,
            &[
                ("usr/local/bin/node", Some("\x7fELF not read")),
                ("usr/local/include/node/node_version.h", Some(header)),
            ],
        );
        let l2 = layer(
            &store,
            &[
                (
                    "opt/yarn-v1.22.22/package.json",
                    Some(r#"{"name":"yarn","version":"1.22.22","license":"BSD-2-Clause"}"#),
                ),
                (
                    "opt/yarn-v1.22.22/lib/package.json",
                    Some(r#"{"name":"not-yarn","version":"0.0.1"}"#),
                ),
            ],
        );
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["NODE_VERSION=9.9.9"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"base"},{"created_by":"RUN node"},{"created_by":"RUN yarn"}]}"#,
        )
        .unwrap();
        let scan_of = |layers: &[Layer]| {
            scan(
                (&store, &BTreeMap::new()),
                layers,
                &config,
                None,
                ("n".into(), None, Digest::of(b"c"), 0),
            )
            .unwrap()
            .packages
        };
        let found = scan_of(&[l0.clone(), l1.clone(), l2.clone()]);
        let got: Vec<(&str, &str, &str, &str)> = found
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.purl.as_str(),
                    p.step.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("yarn", "1.22.22", "pkg:npm/yarn@1.22.22", "RUN yarn"),
                ("node", "22.20.0", "pkg:generic/node@22.20.0", "RUN node"),
            ]
        );
        assert_eq!(found[1].path, "/usr/local/bin/node");
        assert!(found[0].project);
        // Headers deleted: the version the image's config says.
        let l1b = layer(&store, &[("usr/local/bin/node", Some("\x7fELF"))]);
        let found = scan_of(&[l0.clone(), l1b]);
        assert_eq!(found[0].version, "9.9.9");
        // No binary: no node, whatever the header or the config say.
        let l1c = layer(
            &store,
            &[("usr/local/include/node/node_version.h", Some(header))],
        );
        assert!(scan_of(&[l0, l1c]).is_empty());
    }

    /// The entries of a plain tar layer blob, held in memory, as the build
    /// keeps the layers it wrote.
    fn entries_of(store: &BlobStore, l: &Layer) -> LayerView {
        let mut ar = tar::Archive::new(std::fs::File::open(store.path(&l.digest)).unwrap());
        let mut entries = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            if e.header().entry_type().is_dir() {
                entries.push(cairn_layers::Entry::dir(&path));
                continue;
            }
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            entries.push(cairn_layers::Entry {
                kind: cairn_layers::EntryKind::File {
                    size: bytes.len() as u64,
                    source: cairn_layers::Source::Bytes(bytes.into()),
                },
                ..cairn_layers::Entry::dir(&path)
            });
        }
        LayerView::Entries(Arc::new(EntryFs::new(entries)))
    }

    #[test]
    fn layer_views_give_the_blobs_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let db = "P:musl\nV:1.2.5-r10\nA:x86_64\nL:MIT\n\n";
        let layers = [
            layer(
                &store,
                &[
                    ("lib/apk/db/installed", Some(db)),
                    ("etc/os-release", Some("ID=alpine\nVERSION_ID=3.23.0\n")),
                    ("usr/local/bin/node", Some("ELF")),
                    (
                        "usr/local/include/node/node_version.h",
                        Some("#define NODE_MAJOR_VERSION 22\n#define NODE_MINOR_VERSION 1\n#define NODE_PATCH_VERSION 0\n"),
                    ),
                    ("opt/old/node_modules/x/package.json", Some(r#"{"name":"x","version":"1.0.0"}"#)),
                    ("srv/node_modules/gone/package.json", Some(r#"{"name":"gone","version":"1.0.0"}"#)),
                ],
            ),
            layer(
                &store,
                &[
                    ("srv/package.json", Some(r#"{"name":"srv","version":"2.0.0"}"#)),
                    ("srv/node_modules/a/package.json", Some(r#"{"name":"a","version":"1.0.0","license":"MIT AND custom"}"#)),
                    ("srv/node_modules/.wh.gone", Some("")),
                    ("opt/old/.wh..wh..opq", Some("")),
                    ("opt/old/node_modules/y/package.json", Some(r#"{"name":"y","version":"3.0.0"}"#)),
                ],
            ),
        ];
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"base"},{"created_by":"COPY . /srv"}]}"#,
        )
        .unwrap();
        let scan_with = |views: &BTreeMap<String, LayerView>| {
            let inv = scan(
                (&store, views),
                &layers,
                &config,
                None,
                ("v".into(), None, Digest::of(b"c"), 0),
            )
            .unwrap();
            spdx::write(&inv).unwrap()
        };
        let from_blobs = scan_with(&BTreeMap::new());
        let names: Vec<String> = serde_json::from_slice::<serde_json::Value>(&from_blobs).unwrap()
            ["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["v", "musl", "a", "srv", "y", "node"]);
        // Entries in memory: the same document, byte for byte.
        let entries: BTreeMap<String, LayerView> = layers
            .iter()
            .map(|l| (l.diff_id.to_string(), entries_of(&store, l)))
            .collect();
        assert_eq!(scan_with(&entries), from_blobs);
        // A view that cannot be read falls back to the blob.
        let broken: BTreeMap<String, LayerView> = layers
            .iter()
            .map(|l| {
                (
                    l.diff_id.to_string(),
                    LayerView::Dir(dir.path().join("missing")),
                )
            })
            .collect();
        assert_eq!(scan_with(&broken), from_blobs);
        // Unpacked directories in overlay form (whiteouts are character
        // devices 0/0: root only).
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping the unpacked-directory half: not root");
            return;
        }
        let unpacked: BTreeMap<String, LayerView> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let dest = dir.path().join(format!("unpacked-{i}"));
                std::fs::create_dir_all(&dest).unwrap();
                let opts = cairn_layers::unpack::UnpackOptions {
                    whiteouts: cairn_layers::unpack::WhiteoutMode::Overlay,
                    preserve_ownership: false,
                    owner_xattr: None,
                    donors: None,
                    expect_diff_id: None,
                    ..Default::default()
                };
                cairn_layers::unpack::unpack_auto(
                    std::fs::File::open(store.path(&l.digest)).unwrap(),
                    &dest,
                    &opts,
                )
                .unwrap();
                (l.diff_id.to_string(), LayerView::Dir(dest))
            })
            .collect();
        assert_eq!(scan_with(&unpacked), from_blobs);
        // A file of interest with two links: the archive would hold one as a
        // link, so the scan reads the blob instead of guessing.
        let LayerView::Dir(top) = &unpacked[&layers[1].diff_id.to_string()] else {
            unreachable!()
        };
        std::fs::hard_link(top.join("srv/package.json"), top.join("srv/other")).unwrap();
        assert_eq!(scan_with(&unpacked), from_blobs);
    }

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let u = uuid_from(b"x");
        assert_eq!(u, uuid_from(b"x"));
        assert_ne!(u, uuid_from(b"y"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
    }
}
