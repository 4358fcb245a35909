#!/usr/bin/env bash
# bench-multi (issue #19): a two-platform build, linux/amd64 native + linux/arm64 under QEMU user emulation, by
# cairn (`--platform linux/amd64,linux/arm64`: one index) and buildah (`--platform linux/amd64,linux/arm64
# --manifest`), in the same run, the tools alternating which goes first; cold builds only (empty cache /
# storage, base pulled from the same loopback registry). Every cairn run must give the same index digest.
# Two apps (BENCH_MULTI_APP):
#   small (default)  bench/multi/Dockerfile on the generated 5,000-file context (bench/build/gen_context.py) and
#                    the two-platform busybox base (target/fixtures/busybox-multi, pushed with skopeo --all);
#                    N runs (default 3), plus cairn for linux/amd64 alone, to show what the second (emulated)
#                    platform costs.
#   nextjs           testdata/apps/nextjs-3stage (npm ci, next build: minutes under QEMU) on the two-platform
#                    Node base (target/fixtures/node-multi: testdata/base/node-multi/build.sh), the CA as the
#                    build secret `ca` and each tool's Dockerfile as bench-e2e has them (buildah 1.28 reads no
#                    heredocs: Dockerfile.buildah); N runs (default 1); no amd64-alone run unless
#                    BENCH_MULTI_ALONE=1. A round takes 10-20 min on a busy 2-core machine.
# buildah's output is stamped line by line (bench/stamp.py) so that bench/multi_steps.py can time its RUN steps
# per platform beside cairn's (`#N DONE`); the report has that table for the last round.
# BENCH_REGISTRY=HOST:PORT uses a running registry instead of starting one on a free loopback port.
# Needs: an F-flag qemu-aarch64 binfmt_misc handler (tests/support/binfmt.sh as root), buildah + runc, the base.
# Results: $BENCH_OUT (default target/bench/multi, target/bench/multi-nextjs): TOOL.tsv, TOOL-summary.tsv,
# TOOL.log, logs/TOOL-SCENARIO-RUN.log; report target/bench/multi.md (multi-nextjs.md) (printed).
#
# usage: N=3 bench/multi-platform.sh            BENCH_MULTI_APP=nextjs bench/multi-platform.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_MULTI_APP=${BENCH_MULTI_APP:-small}
PLATFORMS=linux/amd64,linux/arm64
case $BENCH_MULTI_APP in
small)
    BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/multi}
    BENCH_APP=$BENCH_OUT/ctx/app
    BUILDAH_DOCKERFILE=$ROOT/bench/multi/Dockerfile
    CAIRN_DOCKERFILE=$ROOT/bench/multi/Dockerfile
    REPORT=$ROOT/target/bench/multi.md
    BASE_OCI=${BENCH_MULTI_BASE_OCI:-$ROOT/target/fixtures/busybox-multi/oci:multi}
    BASE_BUILD="testdata/base/busybox-multi/build.sh target/fixtures/busybox-multi"
    BASE_REF=library/busybox:multi
    BASE_ARG=BASE
    ALONE=${BENCH_MULTI_ALONE:-1}
    ;;
nextjs)
    BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/multi-nextjs}
    BENCH_APP=$ROOT/testdata/apps/nextjs-3stage
    BENCH_CTX=$BENCH_OUT/ctx/nextjs-3stage
    BUILDAH_DOCKERFILE=$BENCH_CTX/Dockerfile.buildah
    CAIRN_DOCKERFILE=$BENCH_CTX/Dockerfile
    REPORT=$ROOT/target/bench/multi-nextjs.md
    BASE_OCI=${BENCH_MULTI_BASE_OCI:-$ROOT/target/fixtures/node-multi/oci:22-multi}
    BASE_BUILD="testdata/base/node-multi/build.sh target/fixtures/node-multi"
    BASE_REF=library/node:22-multi
    BASE_ARG=BASE_IMAGE
    ALONE=${BENCH_MULTI_ALONE:-0}
    N=${N:-1}
    ;;
*)
    echo "BENCH_MULTI_APP=$BENCH_MULTI_APP: expected small or nextjs" >&2
    exit 2
    ;;
esac
source "$ROOT/bench/buildah.sh"
source "$ROOT/bench/cairn.sh"
BUILDAH_IMAGE=localhost/bench/multi-$BENCH_MULTI_APP:buildah
INDEX_DIGEST=

# The CA secret for the app's npm ci (nextjs; the small app has no secret mount, so it is not passed).
secret_args() {
    [[ $BENCH_MULTI_APP == nextjs ]] && printf '%s\n' --secret "id=ca,src=$BENCH_CA"
    return 0
}

multi_cairn_cmd() {   # multi_cairn_cmd PLATFORMS
    local secret
    mapfile -t secret < <(secret_args)
    BENCH_CMD=(env -u SOURCE_DATE_EPOCH "$CAIRN_BIN" build --progress plain --cache-dir "$CAIRN_CACHE" \
        --platform "$1" "${secret[@]}" --build-arg "$BASE_ARG=$BENCH_REGISTRY/$BASE_REF" \
        -f "$CAIRN_DOCKERFILE" -t "$CAIRN_TAG" "$BENCH_CTX")
}

multi_buildah_cmd() {
    local secret
    mapfile -t secret < <(secret_args)
    BENCH_CMD=(python3 "$ROOT/bench/stamp.py" env "TMPDIR=$BUILDAH_DIR/tmp" buildah bud --isolation chroot \
        --runtime runc --layers --format docker --tls-verify=false --platform "$PLATFORMS" \
        --manifest "$BUILDAH_IMAGE" "${secret[@]}" --build-arg "$BASE_ARG=$BENCH_REGISTRY/$BASE_REF" \
        -f "$BUILDAH_DOCKERFILE" "$BENCH_CTX")
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
    [[ -f ${BASE_OCI%:*}/index.json ]] || die "no two-platform base at ${BASE_OCI%:*}: run $BASE_BUILD"
    tests_binfmt=$ROOT/tests/support/binfmt.sh
    "$tests_binfmt" aarch64 || die "no arm64 emulation (see above)"
    if [[ $BENCH_MULTI_APP == small ]]; then
        log "context: $(python3 "$ROOT/bench/build/gen_context.py" "$BENCH_APP")"
    else
        context_prepare
        heredoc_free_current
    fi
    cairn_setup
    buildah_setup
    # BENCH_REGISTRY=HOST:PORT: a registry already running (the base is pushed to it); else a throwaway one.
    if [[ -z ${BENCH_REGISTRY:-} ]]; then
        registry_start "$BENCH_OUT/registry" || die "no registry (see above)"
        trap 'registry_stop "$REGISTRY_PID"' EXIT
        BENCH_REGISTRY=$REGISTRY_ADDR
    fi
    skopeo copy --all --quiet --dest-tls-verify=false "oci:$BASE_OCI" "docker://$BENCH_REGISTRY/$BASE_REF" >&2
    log "registry $BENCH_REGISTRY holds $BASE_REF"
    printf '%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >"$BENCH_OUT/load-before.txt"
    for t in cairn buildah; do printf 'tool\tscenario\trun\twall_s\tmax_rss_kb\trun_cmd_s\n' >"$BENCH_OUT/$t.tsv"; done
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
        if [[ $ALONE == 1 ]]; then
            cairn_reset; settle
            multi_cairn_cmd linux/amd64
            measure cairn cold-amd64-only "$i"
        fi
    done
    printf '%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >"$BENCH_OUT/load-after.txt"
    for t in cairn buildah; do summarize "$t"; done
    {
        echo "# bench-multi ($BENCH_MULTI_APP): two-platform build (linux/amd64 + linux/arm64 under QEMU), $(date -u +%FT%TZ)"
        echo
        echo "N=$N cold runs per row; $(nproc) CPUs, load $(cat "$BENCH_OUT/load-before.txt") before," \
            "$(cat "$BENCH_OUT/load-after.txt") after; $("$CAIRN_BIN" --version 2>/dev/null || echo cairn), $(buildah --version)"
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
        echo "RUN steps per platform, round $N (cairn: its step time; buildah: from its stamped log, up to the"
        echo "platform's next step, so with the step's commit):"
        echo
        python3 "$ROOT/bench/multi_steps.py" "$BENCH_OUT/logs/cairn-cold-2-platforms-$N.log" \
            "$BENCH_OUT/logs/buildah-cold-2-platforms-$N.log"
        echo
        echo 'raw runs (tool, scenario, run, wall s, max RSS KB, cairn RUN s):'
        tail -q -n +2 "$BENCH_OUT/cairn.tsv" "$BENCH_OUT/buildah.tsv" | sed 's/^/    /'
    } > "$REPORT"
    cat "$REPORT"
}

main
