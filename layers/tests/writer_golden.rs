//! Golden vectors of the layer writer.
//!
//! - `go_archive_tar_vector`: our header bytes equal Go `archive/tar`'s
//!   (reproducibility.md §7, the gzip Go wrote is stored in testdata).
//! - diff_ids (`testdata/golden/layers/diff_ids.txt`) pin the tar format;
//!   gzip digests (`digests.txt`) pin the compressor. They live in separate
//!   files so a compressor upgrade is visibly not a tar change.
//!   Re-bless with `CAIRN_BLESS=1` and say why in the commit.

mod support;

use cairn_layers::blob_store::BlobStore;
use cairn_layers::{write_layer, Compression, Entry, LayerOptions, LayerWriter, MtimePolicy};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden/layers")
}

#[test]
fn go_archive_tar_vector() {
    let gz = std::fs::read(golden_dir().join("go-archive-tar-vector.tar.gz")).unwrap();
    let mut go_tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut go_tar)
        .unwrap();
    assert_eq!(
        cairn_layers::Digest::of(&go_tar).to_string(),
        "sha256:2022486dd794c24ed82e9de9d2be07f14f24e3c4126a3d8ee8172df978abb388"
    );
    let at = |e: Entry| Entry {
        mtime: 1_700_000_000,
        ..e
    };
    let mut run = at(Entry::file_bytes(
        "app/run.sh",
        &b"#!/bin/sh\necho hi\n"[..],
    ));
    run.mode = 0o755;
    let mut whiteout = Entry::file_bytes("app/.wh.old.txt", &b""[..]);
    whiteout.mode = 0;
    // Go's vector is in walk order, not ours: compare entry by entry.
    let entries = [
        at(Entry::dir("app")),
        at(Entry::file_bytes("app/hello.txt", &b"hello\n"[..])),
        run,
        whiteout,
    ];
    let mut ours = Vec::new();
    for e in &entries {
        let mut w = LayerWriter::new(Vec::new(), MtimePolicy::Clamp(1_700_000_000));
        w.append(e).unwrap();
        let one = w.finish().unwrap();
        ours.extend_from_slice(&one[..one.len() - 1024]);
    }
    ours.extend_from_slice(&[0; 1024]);
    assert_eq!(ours.len(), go_tar.len());
    for (i, (a, b)) in ours.chunks(512).zip(go_tar.chunks(512)).enumerate() {
        assert_eq!(a, b, "block {i} differs from Go archive/tar");
    }
}

fn layer_of(entries: Vec<Entry>, compression: Compression) -> cairn_layers::Layer {
    let t = tempfile::tempdir().unwrap();
    let store = BlobStore::open(t.path()).unwrap();
    let opts = LayerOptions {
        compression,
        ..LayerOptions::new(support::POLICY)
    };
    write_layer(entries, &opts, &store).unwrap()
}

/// Compare `got` with the golden file, or rewrite it under `CAIRN_BLESS=1`.
fn check_golden(file: &str, header: &str, got: &BTreeMap<&str, String>) {
    let path = golden_dir().join(file);
    let text: String = std::iter::once(header.to_string())
        .chain(got.iter().map(|(k, v)| format!("{k} {v}")))
        .map(|l| l + "\n")
        .collect();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let want: BTreeMap<&str, &str> = old
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let changes: Vec<String> = got
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(&v.as_str()))
        .map(|(k, v)| format!("  {k}: {} -> {v}", want.get(k).unwrap_or(&"(none)")))
        .collect();
    if std::env::var_os("CAIRN_BLESS").is_some_and(|v| v == "1") {
        if !changes.is_empty() || old != text {
            eprintln!("re-blessed {}:\n{}", path.display(), changes.join("\n"));
            std::fs::write(&path, text).unwrap();
        }
        return;
    }
    assert!(
        changes.is_empty() && want.len() == got.len(),
        "{} changed (re-bless with CAIRN_BLESS=1 only on purpose):\n{}",
        path.display(),
        changes.join("\n")
    );
}

#[test]
fn golden_diff_ids_and_digests() {
    let cases = [
        ("small", support::small()),
        ("multiblock", support::multiblock()),
    ];
    let mut diff_ids = BTreeMap::new();
    let mut digests = BTreeMap::new();
    for (name, entries) in cases {
        let gz = layer_of(entries.clone(), Compression::Gzip);
        let plain = layer_of(entries, Compression::None);
        assert_eq!(
            gz.diff_id, plain.diff_id,
            "{name}: compression changed the tar"
        );
        assert_eq!(
            plain.digest,
            *plain.diff_id.digest(),
            "{name}: plain digest is the diff_id"
        );
        assert_eq!(plain.size, plain.uncompressed_size);
        diff_ids.insert(name, gz.diff_id.to_string());
        digests.insert(name, gz.digest.to_string());
    }
    check_golden(
        "diff_ids.txt",
        "# uncompressed layer tar sha256 per case of layers/tests/writer_golden.rs (changes = tar format change)",
        &diff_ids,
    );
    check_golden(
        "digests.txt",
        "# gzip blob sha256 per case (flate2 1.1.11 + zlib-rs 0.6.8, level 6, 1 MiB blocks; changes = compressor change)",
        &digests,
    );
}

#[test]
fn empty_layer_has_the_well_known_diff_id() {
    let layer = layer_of(Vec::new(), Compression::Gzip);
    assert_eq!(
        layer.diff_id.to_string(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    assert_eq!((layer.uncompressed_size, layer.entries), (1024, 0));
}
