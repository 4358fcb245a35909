#!/usr/bin/env bash
# The cairn side of the end-to-end benchmark (see bench/lib.sh for scenarios, outputs and environment),
# the same shape as bench/buildah.sh: same Dockerfile (cairn reads heredocs, so the app's own), same
# context copy, same registry and base, the CA as the same build secret.
#
# cairn: a release build (CAIRN_BIN overrides it), its own cache directory under $BENCH_OUT/cairn (layer
# cache, context digests, base blobs, RUN cache mounts and the local image store `oci:CACHE/images`,
# where each build is tagged $CAIRN_TAG). A reset deletes that directory. No reproducibility flags: cairn
# builds with SOURCE_DATE_EPOCH=0 unless told otherwise, so the repro scenario runs the benchmark's own
# command line (SOURCE_DATE_EPOCH is unset for it, so the host's environment cannot change that).
#
# usage: N=3 bench/cairn.sh              results in target/bench/cairn{.tsv,-summary.tsv,-repro.tsv}
# Sourced (bench/build.sh does), it only defines the functions.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CAIRN_DIR=$BENCH_OUT/cairn
CAIRN_CACHE=$CAIRN_DIR/cache
CAIRN_BIN=${CAIRN_BIN:-}
# The name of the built image in the local store (a layout tag: no registry, no colon).
CAIRN_TAG=bench-$(basename "$BENCH_APP")
CAIRN_DOCKERFILE=${CAIRN_DOCKERFILE:-}
REPRO_FLAGS_cairn=()

cairn_setup() {
    if [[ -z $CAIRN_BIN ]]; then
        log "cargo build --release --bin cairn"
        (cd "$BENCH_ROOT" && cargo build -q --release --bin cairn) || die "cargo build --release failed"
        CAIRN_BIN=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/cairn
    fi
    [[ -x $CAIRN_BIN ]] || die "$CAIRN_BIN is not an executable"
    mkdir -p "$CAIRN_DIR"
    log "$("$CAIRN_BIN" --version 2>/dev/null || echo cairn) ($CAIRN_BIN)"
}

cairn_reset() {
    rm -rf "$CAIRN_CACHE"
}

cairn_build_cmd() {
    BENCH_CMD=(env -u SOURCE_DATE_EPOCH "$CAIRN_BIN" build --progress plain --cache-dir "$CAIRN_CACHE" \
        --secret "id=ca,src=$BENCH_CA" \
        --build-arg "BASE_IMAGE=$BENCH_REGISTRY/library/node:22-alpine" \
        "$@" -f "${CAIRN_DOCKERFILE:-$BENCH_CTX/Dockerfile}" -t "$CAIRN_TAG" "$BENCH_CTX")
}

cairn_push_cmd() {
    BENCH_CMD=("$CAIRN_BIN" push "oci:$CAIRN_CACHE/images:$CAIRN_TAG" "$1")
}

# The digest of the manifest bytes as stored, which is what a registry names the image by.
cairn_image_digest() {
    local hex
    hex=$("$CAIRN_BIN" inspect --raw "oci:$CAIRN_CACHE/images:$CAIRN_TAG" | sha256sum | cut -d' ' -f1)
    echo "sha256:$hex"
}

cairn_diff_ids() {
    "$CAIRN_BIN" inspect --config "oci:$CAIRN_CACHE/images:$CAIRN_TAG" |
        python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["rootfs"]["diff_ids"]))'
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    mkdir -p "$BENCH_OUT"
    cairn_setup
    bench_main cairn
fi
