//! Snapshot throughput on a rootfs-sized tree (2000 dirs × 100 files, the
//! shape of the sandbox notes' capture benchmark). Ignored by default:
//! `cargo test -p cairn-layers --test tree_bench -- --ignored --nocapture`.

use std::fs;
use std::time::Instant;

use cairn_layers::tree::{diff, SnapshotOptions, Tree};

#[test]
#[ignore = "benchmark: creates 200k files"]
fn snapshot_200k_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in 0..2000 {
        let dir = root.join(format!("d{d:04}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}")), b"0123456789abcdef").unwrap();
        }
    }
    let n = 2000 * 101;

    let t = Instant::now();
    let before = Tree::snapshot(root).unwrap();
    let snap = t.elapsed();
    assert_eq!(before.len(), n);

    fs::write(root.join("d0007/f050"), b"changed").unwrap();
    let t = Instant::now();
    let after = Tree::snapshot(root).unwrap();
    let entries = diff(&before, &after, root).unwrap();
    let snap_diff = t.elapsed();
    assert_eq!(entries.len(), 2);

    let t = Instant::now();
    let hashed = Tree::snapshot_with(
        root,
        &SnapshotOptions {
            hash_content: true,
            ..Default::default()
        },
    )
    .unwrap();
    let hashed_time = t.elapsed();
    assert_eq!(hashed.len(), n);

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!(
        "snapshot: {n} paths in {snap:.2?} ({:.0} paths/s); snapshot+diff: {snap_diff:.2?} ({:.0} paths/s); hashed snapshot: {hashed_time:.2?} ({:.0} paths/s)",
        rate(snap),
        rate(snap_diff),
        rate(hashed_time)
    );
}
