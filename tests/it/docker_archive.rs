//! docker-archive output loaded by the REAL `podman load` and read back by
//! `skopeo inspect`, in throwaway storage (vfs driver, temp root and runroot).

use cairn::image::config::{ImageConfig, RootFs, RunConfig};
use cairn::image::docker_archive::write_docker_archive;
use cairn::image::Layer;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::{DiffId, Digest};
use flate2::{write::GzEncoder, Compression};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A deterministic layer: (uncompressed tar, gzip blob).
fn layer(files: &[(&str, &[u8], u32)]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    (tar, gz)
}

/// `podman` confined to `dir`: its own storage, run root and config, so the
/// host's images and storage.conf are never touched.
pub(crate) fn podman(dir: &Path, args: &[&str]) -> std::process::Output {
    let storage_conf = dir.join("storage.conf");
    if !storage_conf.exists() {
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
                dir.display()
            ),
        )
        .unwrap();
    }
    let out = Command::new("podman")
        .env("CONTAINERS_STORAGE_CONF", &storage_conf)
        .env("TMPDIR", dir)
        .args(["--root", &format!("{}/root", dir.display())])
        .args(["--runroot", &format!("{}/run", dir.display())])
        .args(["--storage-driver", "vfs"])
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
        .args(["--tmpdir", &format!("{}/tmp", dir.display())])
        .args(args)
        .output()
        .expect("run podman");
    assert!(
        out.status.success(),
        "podman {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn podman_loads_the_archive_and_skopeo_reads_it_back() {
    if !have("podman") {
        eprintln!("\n\n*** SKIPPED: podman is not installed; the docker-archive was NOT checked against a real loader ***\n\n");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = BlobStore::open(t.path().join("store")).unwrap();
    let blobs = [
        layer(&[
            ("etc/hello", b"hello\n", 0o644),
            ("bin/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ]),
        layer(&[("app/index.js", b"console.log('cairn')\n", 0o644)]),
    ];
    let layers: Vec<Layer> = blobs
        .iter()
        .map(|(tar, gz)| Layer {
            digest: store.put_bytes(gz).unwrap(),
            diff_id: DiffId(Digest::of(tar)),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: gz.len() as u64,
        })
        .collect();
    let mut rc = RunConfig::default();
    rc.set_env("PATH", "/usr/local/bin:/usr/bin:/bin");
    rc.set_env("NODE_ENV", "production");
    rc.cmd = Some(vec!["node".into(), "/app/index.js".into()]);
    rc.working_dir = Some("/app".into());
    let config = ImageConfig {
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
    .unwrap();
    let archive = t.path().join("out").join("image.tar");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let tags = vec![
        "docker.io/library/cairn-it:v1".to_string(),
        "localhost:5000/team/app:2".to_string(),
    ];
    let sum = write_docker_archive(&archive, &config, &layers, &store, &tags, &()).unwrap();
    let config_digest = Digest::of(&config);
    assert_eq!(sum.config_digest, config_digest);

    // podman load, then inspect by the normalized tag.
    let pdir = t.path().join("podman");
    std::fs::create_dir_all(pdir.join("tmp")).unwrap();
    let load = podman(&pdir, &["load", "-i", archive.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&load.stdout);
    assert!(said.contains("cairn-it:v1"), "podman load said: {said}");
    let out = podman(&pdir, &["image", "inspect", "localhost/cairn-it:v1"]);
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    let img = &inspect[0];
    assert_eq!(
        img["Id"],
        config_digest.hex(),
        "image ID is the config digest"
    );
    assert_eq!(
        img["Config"]["Env"],
        serde_json::json!(["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_ENV=production"])
    );
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["node", "/app/index.js"])
    );
    assert_eq!(img["Config"]["WorkingDir"], "/app");
    let loaded_layers: Vec<String> = img["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    assert_eq!(loaded_layers, want);
    let names = podman(
        &pdir,
        &[
            "image",
            "inspect",
            "--format",
            "{{.RepoTags}}",
            config_digest.hex(),
        ],
    );
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(names.contains("localhost:5000/team/app:2"), "tags: {names}");

    // skopeo reads the same archive: same config bytes, same layer count.
    if !have("skopeo") {
        eprintln!("\n*** skopeo not installed: skipping the skopeo half ***\n");
        return;
    }
    let src = format!("docker-archive:{}", archive.display());
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", &src])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["config"]["digest"], config_digest.to_string());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    let cfg = Command::new("skopeo")
        .args(["inspect", "--config", "--raw", &src])
        .output()
        .unwrap();
    assert!(
        cfg.status.success(),
        "{}",
        String::from_utf8_lossy(&cfg.stderr)
    );
    assert_eq!(cfg.stdout, config, "config bytes survive byte for byte");
}
