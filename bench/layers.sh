#!/usr/bin/env bash
# Layer writer throughput: cairn vs `tar --sort=name | gzip -6 | sha256sum` on a
# generated 20k-file / 200 MB tree under target/bench (see layers/examples/bench_layers.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/bench
cargo build --release -p cairn-layers --example bench_layers
"${CARGO_TARGET_DIR:-target}/release/examples/bench_layers" --root "$root" --runs "${RUNS:-5}"
echo "appended to $root/layers.md"
