# cairn tasks. `just test` is what CI runs (see .ci/run).

set shell := ["bash", "-euo", "pipefail", "-c"]

# fmt check, clippy with warnings as errors, every test of the workspace
test:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# re-bless golden files on purpose (say why in the commit)
bless:
    CAIRN_BLESS=1 cargo test --workspace

# the demo: build the base stand-in, start a registry, build + push + rebuild + diff (issue #8)
demo:
    @echo "just demo: not implemented yet (issue #8)" >&2; exit 1

# the node:22-alpine stand-in as an OCI layout under target/fixtures (issue #4)
fixtures:
    @echo "just fixtures: not implemented yet (issue #4)" >&2; exit 1

# every benchmark
bench: bench-layers
    @echo "bench-registry, bench-build, the e2e table: not implemented yet (issues #4, #5, #8)" >&2

# layer writer throughput against tar | gzip | sha256sum (issue #2)
bench-layers:
    bench/layers.sh

# fuzz the parsers (issue #3)
fuzz:
    @echo "just fuzz: not implemented yet (issue #3)" >&2; exit 1
