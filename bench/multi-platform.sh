#!/usr/bin/env bash
# bench-multi (issue #19): a two-platform build, linux/amd64 native + linux/arm64 under QEMU user emulation, by
# cairn (`--platform linux/amd64,linux/arm64`: one index) and buildah (`--platform linux/amd64,linux/arm64
# --manifest`), in the same run: same Dockerfile (bench/multi/Dockerfile), same generated 5,000-file context
# (bench/build/gen_context.py), same loopback registry holding the two-platform busybox base
# (testdata/base/busybox-multi, pushed with skopeo --all). Cold builds only (empty cache / storage, base pulled),
# N runs (default 3), the tools alternating which goes first; plus cairn for linux/amd64 alone, to show what the
# second (emulated) platform costs. Every cairn run must give the same index digest.
# Needs: an F-flag qemu-aarch64 binfmt_misc handler (tests/support/binfmt.sh as root), buildah + runc, the base
# (testdata/base/busybox-multi/build.sh target/fixtures/busybox-multi).
# Results: $BENCH_OUT (default target/bench/multi): TOOL.tsv, TOOL-summary.tsv, TOOL.log; report
# target/bench/multi.md (printed).
#
# usage: N=3 bench/multi-platform.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/multi}
BENCH_APP=$BENCH_OUT/ctx/app
BUILDAH_DOCKERFILE=$ROOT/bench/multi/Dockerfile
CAIRN_DOCKERFILE=$ROOT/bench/multi/Dockerfile
REPORT=$ROOT/target/bench/multi.md
BASE_OCI=${BENCH_MULTI_BASE_OCI:-$ROOT/target/fixtures/busybox-multi/oci:multi}
PLATFORMS=linux/amd64,linux/arm64
source "$ROOT/bench/buildah.sh"
source "$ROOT/bench/cairn.sh"
BUILDAH_IMAGE=localhost/bench/multi:buildah
INDEX_DIGEST=

multi_cairn_cmd() {   # multi_cairn_cmd PLATFORMS
    BENCH_CMD=(env -u SOURCE_DATE_EPOCH "$CAIRN_BIN" build --progress plain --cache-dir "$CAIRN_CACHE" \
        --platform "$1" --build-arg "BASE=$BENCH_REGISTRY/library/busybox:multi" \
        -f "$CAIRN_DOCKERFILE" -t "$CAIRN_TAG" "$BENCH_CTX")
}

multi_buildah_cmd() {
    BENCH_CMD=(env "TMPDIR=$BUILDAH_DIR/tmp" buildah bud --isolation chroot --runtime runc --layers --format docker \
        --tls-verify=false --platform "$PLATFORMS" --manifest "$BUILDAH_IMAGE" \
        --build-arg "BASE=$BENCH_REGISTRY/library/busybox:multi" -f "$BUILDAH_DOCKERFILE" "$BENCH_CTX")
}

# The index cairn stored must be the same in every run (reproducible per platform).
check_cairn_index() {
    local d
    d=$(cairn_image_digest)
    [[ -z $INDEX_DIGEST ]] && INDEX_DIGEST=$d
    [[ $d == "$INDEX_DIGEST" ]] || die "cairn built index $d, expected $INDEX_DIGEST (not reproducible)"
    "$CAIRN_BIN" inspect --raw "oci:$CAIRN_CACHE/images:$CAIRN_TAG" | grep -q '"architecture":"arm64"' ||
        die "cairn's image is not a two-platform index"
}

main() {
    local i t order
    rm -rf "$BENCH_OUT" && mkdir -p "$BENCH_OUT/ctx"
    [[ -f ${BASE_OCI%:*}/index.json ]] || die "no busybox-multi base: run testdata/base/busybox-multi/build.sh target/fixtures/busybox-multi"
    tests_binfmt=$ROOT/tests/support/binfmt.sh
    "$tests_binfmt" aarch64 || die "no arm64 emulation (see above)"
    log "context: $(python3 "$ROOT/bench/build/gen_context.py" "$BENCH_APP")"
    cairn_setup
    buildah_setup
    registry_start "$BENCH_OUT/registry" || die "no registry (see above)"
    trap 'registry_stop "$REGISTRY_PID"' EXIT
    BENCH_REGISTRY=$REGISTRY_ADDR
    skopeo copy --all --quiet --dest-tls-verify=false "oci:$BASE_OCI" "docker://$BENCH_REGISTRY/library/busybox:multi" >&2
    log "registry $BENCH_REGISTRY holds library/busybox:multi"
    for t in cairn buildah; do printf 'tool\tscenario\trun\twall_s\tmax_rss_kb\n' >"$BENCH_OUT/$t.tsv"; done
    for i in $(seq "$N"); do
        order=(cairn buildah)
        ((i % 2)) || order=(buildah cairn)
        for t in "${order[@]}"; do
            "${t}_reset"; settle
            "multi_${t}_cmd" "$PLATFORMS"
            measure "$t" cold-2-platforms "$i"
            if [[ $t == cairn ]]; then
                check_cairn_index
                grep -o 'built 2 platforms in .*' "$BENCH_OUT/cairn.log" | tail -1 >&2
            fi
        done
        cairn_reset; settle
        multi_cairn_cmd linux/amd64
        measure cairn cold-amd64-only "$i"
    done
    for t in cairn buildah; do summarize "$t"; done
    {
        echo "# bench-multi: two-platform build (linux/amd64 + linux/arm64 under QEMU), $(date -u +%FT%TZ)"
        echo
        echo "N=$N cold runs per row; $(nproc) CPUs; $("$CAIRN_BIN" --version 2>/dev/null || echo cairn), $(buildah --version)"
        echo
        echo '| tool | scenario | runs | median s | min s | max s | max RSS KB |'
        echo '|---|---|---|---|---|---|---|'
        tail -q -n +2 "$BENCH_OUT/cairn-summary.tsv" "$BENCH_OUT/buildah-summary.tsv" | awk -F'\t' -v OFS=' | ' '{print "| " $1, $2, $3, $4, $5, $6, $7 " |"}'
        echo
        echo "cairn index (every run): $INDEX_DIGEST"
        echo
        echo 'cairn, per run: time inside RUN commands (both platforms) as cairn reports it:'
        grep -o 'built 2 platforms in .*' "$BENCH_OUT/cairn.log" | sed 's/^/    /'
        echo
        echo 'raw runs (tool, scenario, run, wall s, max RSS KB):'
        tail -q -n +2 "$BENCH_OUT/cairn.tsv" "$BENCH_OUT/buildah.tsv" | sed 's/^/    /'
    } > "$REPORT"
    cat "$REPORT"
}

main
