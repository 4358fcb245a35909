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
    @echo "just bench-layers: not implemented yet (issue #2)" >&2; exit 1

# fuzz one target for SECONDS (targets: parse, expand); needs `cargo install cargo-fuzz` and nightly
fuzz TARGET="parse" SECONDS="600": fuzz-seed
    cd fuzz && cargo +nightly fuzz run -O {{TARGET}} -- -max_total_time={{SECONDS}} -max_len=4096

# build every fuzz target and run each for ~20 s
fuzz-smoke: fuzz-seed
    cd fuzz && cargo +nightly fuzz build -O
    cd fuzz && for t in $(cargo +nightly fuzz list); do cargo +nightly fuzz run -O "$t" -- -max_total_time=20 -max_len=4096; done

# seed the parser's fuzz corpus with the Dockerfiles of testdata/dockerfile
fuzz-seed:
    mkdir -p fuzz/corpus/parse fuzz/corpus/expand
    find testdata/dockerfile -name Dockerfile | while read -r f; do cp "$f" "fuzz/corpus/parse/seed-$(printf %s "$f" | sha256sum | cut -c1-16)"; done
