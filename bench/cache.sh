#!/usr/bin/env bash
# bench-cache (issue #16 item 9): the CI scenario on testdata/apps/nextjs-3stage (BENCH_APP): a "fresh runner"
# (empty local storage, warm registry cache) against a runner that kept its local cache, for an unchanged
# context and for one line edited, cairn's registry cache beside buildah's `--cache-from/--cache-to` and
# BuildKit's inline cache (`BUILDKIT_INLINE_CACHE=1` + `--cache-from IMAGE`), all on one docker-registry.
# A run is what a CI job does: build with the cache flags, then push the image (cairn `--push`; the peers
# `docker push` / `buildah push` in the same timed command). Each tool has its own cache repository.
#
# Per round, scenario by scenario, the tools interleaved (first tool rotating):
#   seed         reset, build the unchanged app, export the cache, push (timed, it is the cold CI job)
#   warm-noop    the same again on the warm local storage
#   warm-edit    one line of app/page.tsx edited (restored after)
#   fresh-noop   reset (a new runner), the unchanged app, cache from the registry
#   fresh-edit   reset, another edit of the same line (a text no earlier run built), cache from the registry
# cairn and buildah export to their cache on every run (CI jobs do); BuildKit's inline cache is the image
# itself, so every run pushes its image to its own tag and imports the seed's (the tag a CI job would reuse
# is last-writer-wins: a later edit's push would change what the next no-op finds).
#
# Bytes moved: every tool reaches the registry through bench/byteproxy.py, which counts the bytes each way
# (down = pulls and cache imports, up = pushes and exports, HTTP headers included). cairn's own line
# `cache import (…): N steps hit, M blobs fetched (B bytes)` is kept too.
#
# Results in $BENCH_OUT (default target/bench/cache): cache.tsv (tool scenario run wall_s down_bytes
# up_bytes), logs/, and the report cache.md (bench/cache_report.py), printed. N rounds (default 1), root.
# usage: N=1 bench/cache.sh        BENCH_TOOLS="cairn buildkit buildah" (default), BENCH_SETTLE=seconds
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/cache}
export N=${N:-1}
source "$ROOT/bench/buildah.sh"
source "$ROOT/bench/buildkit.sh"
source "$ROOT/bench/cairn.sh"
read -r -a TOOLS <<<"${BENCH_TOOLS:-cairn buildkit buildah}"
[[ ${TOOLS[0]} == cairn ]] || die "BENCH_TOOLS must start with cairn (the reference of the ratios)"
PROXY=
PROXY_PID=
PROXY_STATE=$BENCH_OUT/proxy.state

proxy_up() {
    local port _
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -f "$PROXY_STATE"
    python3 "$ROOT/bench/byteproxy.py" "$port" "$BENCH_REGISTRY" "$PROXY_STATE" 2>"$BENCH_OUT/proxy.log" &
    PROXY_PID=$!
    on_exit proxy_down
    for _ in $(seq 50); do [[ -s $PROXY_STATE ]] && break; sleep 0.1; done
    [[ -s $PROXY_STATE ]] || die "the byte-counting proxy did not start, see $BENCH_OUT/proxy.log"
    PROXY=127.0.0.1:$port
    log "byte-counting proxy $PROXY → $BENCH_REGISTRY (pid $PROXY_PID)"
}
proxy_down() {
    [[ -z $PROXY_PID ]] || { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }
    PROXY_PID=
}

# The CI job of each tool: build with its registry cache (of round $ROUND), push the image to REF.
cache_cmd_cairn() {
    local ref=$1
    BENCH_CMD=(env -u SOURCE_DATE_EPOCH "$CAIRN_BIN" build --progress plain --cache-dir "$CAIRN_CACHE"
        --insecure-registry "$PROXY" --secret "id=ca,src=$BENCH_CA"
        --build-arg "BASE_IMAGE=$PROXY/library/node:22-alpine"
        --cache-from "type=registry,ref=$PROXY/cache/cairn-r$ROUND"
        --cache-to "type=registry,ref=$PROXY/cache/cairn-r$ROUND,mode=max"
        -f "$BENCH_CTX/Dockerfile" -t "$ref" --push "$BENCH_CTX")
}
cache_cmd_buildkit() {
    local ref=$1
    BENCH_CMD=(bash -c '"$@" && "$DOCKER" push --quiet "$REF"' ci
        "$DOCKER" build --network host --progress plain --secret "id=ca,src=$BENCH_CA"
        --build-arg "BASE_IMAGE=$PROXY/library/node:22-alpine" --build-arg BUILDKIT_INLINE_CACHE=1
        --cache-from "$PROXY/bench/buildkit-r$ROUND:seed" -f "$(buildkit_dockerfile)" -t "$ref" "$BENCH_CTX")
    export REF=$ref DOCKER
}
cache_cmd_buildah() {
    local ref=$1
    BENCH_CMD=(bash -c '"$@" && buildah push --quiet --tls-verify=false "$REF" "docker://$REF"' ci
        env "TMPDIR=$BUILDAH_DIR/tmp" buildah bud --isolation chroot --runtime runc --layers --format docker
        --tls-verify=false --secret "id=ca,src=$BENCH_CA"
        --build-arg "BASE_IMAGE=$PROXY/library/node:22-alpine"
        --cache-from "$PROXY/cache/buildah-r$ROUND" --cache-to "$PROXY/cache/buildah-r$ROUND"
        -f "$BENCH_CTX/Dockerfile.buildah" -t "$ref" "$BENCH_CTX")
    export REF=$ref
}

bytes_now() { cat "$PROXY_STATE"; }

# run_one TOOL SCENARIO ROUND: reset if fresh, run the CI job, record wall time and bytes each way.
run_one() {
    local tool=$1 scenario=$2 round=$3 before after
    case $scenario in seed | fresh-*) "${tool}_reset"; settle ;; esac
    # Each round has its own cache and image repositories: a round's seed starts from an empty registry
    # cache (with one shared cache, round 2's seed hit everything and left the warm local cache without
    # layers, so its "warm" edit was a fresh one).
    ROUND=$round
    "cache_cmd_$tool" "$PROXY/bench/$tool-r$round:$scenario"
    before=$(bytes_now)
    measure "$tool" "$scenario" "$round"
    sleep 0.5
    after=$(bytes_now)
    read -r d0 u0 <<<"$before"
    read -r d1 u1 <<<"$after"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$scenario" "$round" \
        "$(awk -F'\t' -v t="$tool" -v s="$scenario" -v r="$round" '$1 == t && $2 == s && $3 == r { w = $4 } END { print w }' "$BENCH_OUT/$tool.tsv")" \
        "$((d1 - d0))" "$((u1 - u0))" >>"$BENCH_OUT/cache.tsv"
    log "$tool $scenario #$round: $(numfmt --to=iec $((d1 - d0)))B down, $(numfmt --to=iec $((u1 - u0)))B up"
}

main() {
    mkdir -p "$BENCH_OUT"
    for t in "${TOOLS[@]}"; do
        [[ $t =~ ^(cairn|buildkit|buildah)$ ]] || die "unknown tool $t in BENCH_TOOLS (cairn buildkit buildah)"
        "${t}_setup"
        tsv_start "$t"
    done
    registry_up
    proxy_up
    context_prepare
    printf 'tool\tscenario\trun\twall_s\tdown_bytes\tup_bytes\n' >"$BENCH_OUT/cache.tsv"
    printf '%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >"$BENCH_OUT/load-before.txt"
    local i t scenario
    for i in $(seq "$N"); do
        for scenario in seed warm-noop warm-edit fresh-noop fresh-edit; do
            case $scenario in
                warm-edit) edit_apply "warm $i $$" ;;
                fresh-edit) edit_apply "fresh $i $$" ;;
            esac
            for t in $(rotated "$i" "${TOOLS[@]}"); do run_one "$t" "$scenario" "$i"; done
            case $scenario in *-edit) edit_restore ;; esac
        done
    done
    printf '%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >"$BENCH_OUT/load-after.txt"
    python3 "$ROOT/bench/cache_report.py" --out "$BENCH_OUT" "${TOOLS[@]}" >"$BENCH_OUT/cache.md"
    cat "$BENCH_OUT/cache.md"
}

main
