//! Unpack throughput on real layers. Ignored by default; point it at layer
//! blobs (gzip or plain, lowest first, `:`-separated):
//! `CAIRN_UNPACK_BENCH=/path/l1:/path/l2 cargo test -p cairn-layers --test unpack_bench -- --ignored --nocapture`

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use cairn_layers::unpack::{unpack_auto, UnpackOptions};

#[test]
#[ignore = "benchmark: needs CAIRN_UNPACK_BENCH"]
fn unpack_real_layers() {
    let Some(list) = std::env::var_os("CAIRN_UNPACK_BENCH") else {
        panic!("set CAIRN_UNPACK_BENCH to `:`-separated layer blob paths");
    };
    // CAIRN_UNPACK_BENCH_DEST: unpack there (and keep it) to compare with GNU tar.
    let tmp = tempfile::tempdir().unwrap();
    let dest = std::env::var_os("CAIRN_UNPACK_BENCH_DEST")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    let opts = UnpackOptions {
        preserve_ownership: true,
        ..Default::default()
    };
    let start = Instant::now();
    let (mut entries, mut bytes) = (0, 0);
    for layer in std::env::split_paths(&list) {
        let t = Instant::now();
        let f = BufReader::with_capacity(1 << 20, File::open(&layer).unwrap());
        let stats = unpack_auto(f, &dest, &opts).unwrap();
        println!(
            "{}: {} entries, {} MB in {:.2?}",
            layer.display(),
            stats.entries,
            stats.bytes >> 20,
            t.elapsed()
        );
        entries += stats.entries;
        bytes += stats.bytes;
    }
    let total = start.elapsed();
    let t = Instant::now();
    let paths = walkdir::WalkDir::new(&dest)
        .min_depth(1)
        .into_iter()
        .count();
    println!(
        "total: {entries} entries, {} MB in {total:.2?} ({:.0} entries/s, {:.0} MB/s); snapshot of {} paths in {:.2?}",
        bytes >> 20,
        entries as f64 / total.as_secs_f64(),
        (bytes >> 20) as f64 / total.as_secs_f64(),
        paths,
        t.elapsed()
    );
}
