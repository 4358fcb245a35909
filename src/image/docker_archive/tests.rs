use super::*;
use crate::image::config::{ImageConfig, RootFs, RunConfig};
use crate::report::Recorder;
use flate2::{write::GzEncoder, Compression as Level};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A small deterministic layer tar and its gzip.
fn layer_bytes(files: &[(&str, &[u8])]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Level::default());
    gz.write_all(&tar).unwrap();
    (tar.clone(), gz.finish().unwrap())
}

struct Fixture {
    dir: tempfile::TempDir,
    store: BlobStore,
    layers: Vec<Layer>,
    tars: Vec<Vec<u8>>,
    config: Vec<u8>,
}

fn fixture(contents: &[&[u8]]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let mut layers = Vec::new();
    let mut tars = Vec::new();
    for c in contents {
        let (tar, gz) = layer_bytes(&[("f.txt", c)]);
        let digest = store.put_bytes(&gz).unwrap();
        layers.push(Layer {
            digest,
            diff_id: DiffId(Digest::of(&tar)),
            media_type: GZIP.into(),
            size: gz.len() as u64,
        });
        tars.push(tar);
    }
    let config = config_for(&layers);
    Fixture {
        dir,
        store,
        layers,
        tars,
        config,
    }
}

fn config_for(layers: &[Layer]) -> Vec<u8> {
    let mut rc = RunConfig::default();
    rc.set_env("PATH", "/bin");
    rc.cmd = Some(vec!["node".into()]);
    ImageConfig {
        created: Some("1970-01-01T00:00:00Z".into()),
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(rc),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
        ..Default::default()
    }
    .to_canonical_json()
    .unwrap()
}

impl Fixture {
    fn write(&self, name: &str, tags: &[&str]) -> Result<ArchiveSummary> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        write_docker_archive(
            &self.dir.path().join(name),
            &self.config,
            &self.layers,
            &self.store,
            &tags,
            &(),
        )
    }

    fn read(&self, name: &str) -> Vec<(tar::Header, Vec<u8>)> {
        let f = File::open(self.dir.path().join(name)).unwrap();
        let mut ar = tar::Archive::new(f);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.header().clone(), data)
            })
            .collect()
    }

    /// Files in the fixture dir other than the store (temp files included).
    fn outputs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "store")
            .collect();
        v.sort();
        v
    }
}

fn entry<'a>(entries: &'a [(tar::Header, Vec<u8>)], name: &str) -> &'a [u8] {
    &entries
        .iter()
        .find(|(h, _)| h.path().unwrap().to_str() == Some(name))
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

#[test]
fn archive_has_docker_save_layout_with_uncompressed_layers() {
    let fx = fixture(&[b"base", b"app"]);
    let sum = fx
        .write(
            "img.tar",
            &["docker.io/library/app:1", "localhost:5000/app", "app:1"],
        )
        .unwrap();
    assert_eq!(sum.config_digest, Digest::of(&fx.config));
    assert_eq!(sum.repo_tags, ["app:1", "localhost:5000/app:latest"]);
    let entries = fx.read("img.tar");
    assert_eq!(
        sum.bytes,
        std::fs::metadata(fx.dir.path().join("img.tar"))
            .unwrap()
            .len()
    );
    for (h, _) in &entries {
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
    }
    let names: Vec<String> = entries
        .iter()
        .map(|(h, _)| h.path().unwrap().display().to_string())
        .collect();
    let manifest: Value = serde_json::from_slice(entry(&entries, "manifest.json")).unwrap();
    let config_name = format!("{}.json", sum.config_digest.hex());
    let layer_paths: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(manifest[0]["Config"], config_name.as_str());
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["app:1", "localhost:5000/app:latest"])
    );
    let ids: Vec<&str> = layer_paths
        .iter()
        .map(|p| p.strip_suffix("/layer.tar").unwrap())
        .collect();
    let want: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            [
                id.to_string(),
                format!("{id}/VERSION"),
                format!("{id}/json"),
                format!("{id}/layer.tar"),
            ]
        })
        .chain([
            config_name.clone(),
            "manifest.json".into(),
            "repositories".into(),
        ])
        .collect();
    assert_eq!(names, want);
    for (path, tar) in layer_paths.iter().zip(&fx.tars) {
        assert_eq!(
            entry(&entries, path),
            tar.as_slice(),
            "layer.tar is the uncompressed tar"
        );
    }
    assert_eq!(entry(&entries, &config_name), fx.config.as_slice());
    let top: Value = serde_json::from_slice(entry(&entries, &format!("{}/json", ids[1]))).unwrap();
    assert_eq!(top["id"], ids[1]);
    assert_eq!(top["parent"], ids[0]);
    assert_eq!(top["config"]["Cmd"], serde_json::json!(["node"]));
    assert!(top.get("rootfs").is_none());
    let repos: Value = serde_json::from_slice(entry(&entries, "repositories")).unwrap();
    assert_eq!(
        repos,
        serde_json::json!({"app": {"1": ids[1]}, "localhost:5000/app": {"latest": ids[1]}})
    );
    assert_eq!(fx.outputs(), ["img.tar"], "no temporary file left");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(fx.dir.path().join("img.tar"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn output_is_deterministic() {
    let fx = fixture(&[b"one", b"two", b"three"]);
    fx.write("a.tar", &["x:1"]).unwrap();
    fx.write("b.tar", &["x:1"]).unwrap();
    let a = std::fs::read(fx.dir.path().join("a.tar")).unwrap();
    let b = std::fs::read(fx.dir.path().join("b.tar")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn repeated_layer_is_stored_once_and_linked() {
    let fx = fixture(&[b"same", b"other", b"same"]);
    let sum = fx.write("img.tar", &[]).unwrap();
    assert!(sum.repo_tags.is_empty());
    let entries = fx.read("img.tar");
    let manifest: Value = serde_json::from_slice(entry(&entries, "manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers[0], layers[2]);
    assert_ne!(layers[0], layers[1]);
    let links: Vec<_> = entries
        .iter()
        .filter(|(h, _)| h.entry_type() == tar::EntryType::Symlink)
        .collect();
    assert_eq!(links.len(), 1);
    let target = links[0].0.link_name().unwrap().unwrap();
    assert_eq!(
        target.to_str().unwrap(),
        format!("../{}", layers[0].as_str().unwrap())
    );
    assert!(entries
        .iter()
        .all(|(h, _)| h.path().unwrap().to_str() != Some("repositories")));
}

#[test]
fn uncompressed_layers_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let (tar, _) = layer_bytes(&[("a", b"plain")]);
    let d = store.put_bytes(&tar).unwrap();
    let layers = [Layer {
        digest: d.clone(),
        diff_id: DiffId(d),
        media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
        size: tar.len() as u64,
    }];
    let dest = dir.path().join("x.tar");
    write_docker_archive(&dest, &config_for(&layers), &layers, &store, &[], &()).unwrap();
    let mut ar = tar::Archive::new(File::open(&dest).unwrap());
    let mut found = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("layer.tar") {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            assert_eq!(v, tar);
            found = true;
        }
    }
    assert!(found);
}

#[test]
fn wrong_diff_id_fails_and_leaves_nothing() {
    let mut fx = fixture(&[b"a", b"b"]);
    fx.layers[1].diff_id = DiffId(Digest::of(b"not the tar"));
    fx.config = config_for(&fx.layers);
    let err = fx.write("img.tar", &["x"]).unwrap_err();
    assert!(
        matches!(err, DockerArchiveError::DiffIdMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("decompresses to sha256:"), "{err}");
    assert!(fx.outputs().is_empty(), "left behind: {:?}", fx.outputs());
}

#[test]
fn corrupt_blob_is_detected() {
    let fx = fixture(&[b"a"]);
    let p = fx.store.path(&fx.layers[0].digest);
    // Same gzip stream plus trailing garbage: decompresses fine, digest differs.
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(b"junk");
    std::fs::write(&p, bytes).unwrap();
    let err = fx.write("img.tar", &[]).unwrap_err();
    assert!(
        matches!(err, DockerArchiveError::BlobMismatch { .. }),
        "{err}"
    );
    assert!(fx.outputs().is_empty());
}

#[test]
fn invalid_gzip_is_a_decompression_error() {
    let mut fx = fixture(&[b"a"]);
    let not_gzip = b"this is not gzip";
    fx.layers[0].digest = fx.store.put_bytes(not_gzip).unwrap();
    fx.layers[0].size = not_gzip.len() as u64;
    let err = fx.write("img.tar", &[]).unwrap_err();
    assert!(
        matches!(err, DockerArchiveError::Decompress { .. }),
        "{err}"
    );
    assert!(fx.outputs().is_empty());
}

#[test]
fn config_must_list_the_layers() {
    let mut fx = fixture(&[b"a", b"b"]);
    fx.config = config_for(&fx.layers[..1]);
    let err = fx.write("img.tar", &[]).unwrap_err();
    assert!(
        matches!(err, DockerArchiveError::LayerMismatch { .. }),
        "{err}"
    );
    fx.config = b"[1]".to_vec();
    let err = fx.write("img.tar", &[]).unwrap_err();
    assert!(matches!(err, DockerArchiveError::Config { .. }), "{err}");
    assert!(fx.outputs().is_empty());
}

#[test]
fn zstd_and_unknown_media_types_are_refused() {
    let mut fx = fixture(&[b"a"]);
    fx.layers[0].media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
    let err = fx.write("img.tar", &[]).unwrap_err();
    assert!(err.to_string().contains("tar+zstd"), "{err}");
}

#[test]
fn layer_writes_are_reported() {
    let fx = fixture(&[b"a", b"b"]);
    let rec = Recorder::default();
    write_docker_archive(
        &fx.dir.path().join("img.tar"),
        &fx.config,
        &fx.layers,
        &fx.store,
        &[],
        &rec,
    )
    .unwrap();
    let events = rec.0.into_inner().unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::BlobStart { digest, action, .. } => format!("start {action} {digest}"),
            Event::BlobDone { digest } => format!("done {digest}"),
            other => format!("{other:?}"),
        })
        .collect();
    let d0 = &fx.layers[0].digest;
    let d1 = &fx.layers[1].digest;
    assert_eq!(
        kinds,
        [
            format!("start write {d0}"),
            format!("done {d0}"),
            format!("start write {d1}"),
            format!("done {d1}")
        ]
    );
}

#[test]
fn repo_tags_are_normalized_like_docker_save() {
    let ok = [
        ("docker.io/library/node:22-alpine", "node:22-alpine"),
        ("index.docker.io/library/node", "node:latest"),
        ("library/node:22", "node:22"),
        ("node", "node:latest"),
        ("docker.io/me/app:v1", "me/app:v1"),
        ("docker.io/library/a/b:1", "library/a/b:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app:1", "localhost/app:1"),
        ("ghcr.io/org/team/app:v1.2_3", "ghcr.io/org/team/app:v1.2_3"),
        ("127.0.0.1:5000/a__b/c--d:x", "127.0.0.1:5000/a__b/c--d:x"),
        ("quay.io/library/x:1", "quay.io/library/x:1"),
    ];
    for (input, want) in ok {
        assert_eq!(normalize_repo_tag(input).unwrap(), want, "{input}");
    }
    let bad = [
        "node@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "Node:1",
        "node:",
        "node:-x",
        ":1",
        "a//b",
        "a_-b",
        "registry.example.com:port/x",
        "-bad.host/x",
        &format!("x:{}", "t".repeat(129)),
    ];
    for input in bad {
        assert!(normalize_repo_tag(input).is_err(), "{input} accepted");
    }
}
