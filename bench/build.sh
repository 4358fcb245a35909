#!/usr/bin/env bash
# bench-build (issue #5): cairn vs buildah on a generated 5,000-file Node-app context, same run, same
# Dockerfile (bench/build/Dockerfile: 4 stages, COPY-heavy, no RUN), same context, same loopback registry
# holding the node:22-alpine stand-in. Scenarios (env BENCH_SCENARIOS, default "cold warm edit"), N runs
# each (default 5), the two tools alternating within a run:
#   cold  empty cache/storage, base pulled from the registry
#   warm  no-op rebuild
#   edit  one line of src/pages/index.tsx changed (a different text each run), restored afterwards
# Each cairn rebuild is checked: a no-op must give the cold build's digest, an edit another one.
# The tools are driven by the functions of bench/cairn.sh and bench/buildah.sh (same flags as the e2e
# benchmark); results in $BENCH_OUT (default target/bench/build/: TOOL.tsv, TOOL-summary.tsv, TOOL.log)
# and the report target/bench/build.md, which is printed.
#
# usage: N=5 bench/build.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/build}
N=${N:-5}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-cold warm edit}
BENCH_APP=$BENCH_OUT/ctx/app
BENCH_EDIT_FILE=src/pages/index.tsx
REPORT=$ROOT/target/bench/build.md
if [[ -z ${BENCH_BASE_OCI:-} ]]; then
    dir=$ROOT/target/fixtures/node-alpine/oci
    [[ -f $dir/index.json ]] && BENCH_BASE_OCI=$dir:22-alpine
    [[ -n ${BENCH_BASE_OCI:-} ]] || { echo "bench-build: no node:22-alpine stand-in: run \`just fixtures\`" >&2; exit 1; }
fi
BUILDAH_DOCKERFILE=$BENCH_APP/Dockerfile
source "$ROOT/bench/buildah.sh"
source "$ROOT/bench/cairn.sh"
TOOLS=(cairn buildah)
REF_DIGEST=

# The cairn image must be the reference one after a no-op and another one after an edit.
check_cairn() {
    local expect=$1 d
    d=$(cairn_image_digest)
    case $expect in
        ref) [[ -z $REF_DIGEST ]] && REF_DIGEST=$d
             [[ $d == "$REF_DIGEST" ]] || die "cairn rebuilt $d, expected the unchanged image $REF_DIGEST" ;;
        other) [[ $d != "$REF_DIGEST" ]] || die "cairn ignored the edit: still $d" ;;
    esac
}

# run_all SCENARIO RUN: every tool once, alternating which goes first.
run_all() {
    local scenario=$1 run=$2 order=("${TOOLS[@]}") t
    ((run % 2)) || order=("${TOOLS[1]}" "${TOOLS[0]}")
    for t in "${order[@]}"; do
        if [[ $scenario == cold ]]; then "${t}_reset"; fi
        "${t}_build_cmd"
        measure "$t" "$scenario" "$run"
        if [[ $t == cairn ]]; then
            if [[ $scenario == edit ]]; then check_cairn other; else check_cairn ref; fi
        fi
    done
}

main() {
    local t i scenario summary load_before
    mkdir -p "$BENCH_OUT"
    buildah_setup
    cairn_setup
    command -v /usr/bin/time >/dev/null || die "/usr/bin/time missing: apt-get install -y time"
    registry_up
    log "generating the context in $BENCH_CTX"
    summary=$(python3 "$ROOT/bench/build/gen_context.py" "$BENCH_CTX")
    log "context: $summary"
    for t in "${TOOLS[@]}"; do
        : >"$BENCH_OUT/$t.log"
        printf 'tool\tscenario\trun\twall_s\tmax_rss_kb\n' >"$BENCH_OUT/$t.tsv"
    done
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    if [[ $BENCH_SCENARIOS != cold* ]]; then
        for t in "${TOOLS[@]}"; do
            log "$t: untimed build to fill the cache"
            "${t}_reset"
            untimed_build "$t"
        done
        check_cairn ref
    fi
    for scenario in $BENCH_SCENARIOS; do
        [[ $scenario =~ ^(cold|warm|edit)$ ]] || die "unknown scenario $scenario (cold, warm, edit)"
        for i in $(seq "$N"); do
            if [[ $scenario == edit ]]; then
                edit_apply "edit $i $$"
                run_all "$scenario" "$i"
                edit_restore
            else
                run_all "$scenario" "$i"
            fi
        done
    done
    for t in "${TOOLS[@]}"; do summarize "$t"; done
    python3 "$ROOT/bench/build/report.py" --out "$BENCH_OUT" --context "$summary" --runs "$N" \
        --load-before "$load_before" --load-after "$(cut -d' ' -f1-3 /proc/loadavg)" >"$REPORT"
    cat "$REPORT"
}

main
