# Shared parts of the end-to-end build benchmark, sourced by bench/<tool>.sh and bench/e2e.sh.
#
# A tool script (bench/cairn.sh, bench/buildkit.sh, bench/buildah.sh) defines five functions and an array:
#   TOOL_reset             empty the tool's storage and caches (layer cache, npm cache mount, pulled base)
#   TOOL_build_cmd ARGS..  set the array BENCH_CMD to the command building the context in $BENCH_CTX
#                          (extra ARGS are tool flags, e.g. a fixed timestamp)
#   TOOL_push_cmd REF      set BENCH_CMD to the command pushing the last built image to HOST:PORT/REPO:TAG
#   TOOL_image_digest      print the built image's digest (sha256:…)
#   TOOL_diff_ids          print the built image's layer diff_ids, one a line
#   REPRO_FLAGS_TOOL       the tool's flags for the reproducibility scenario (e.g. a fixed timestamp)
# Run alone, a tool script calls `bench_main TOOL`; bench/e2e.sh sources all three and calls
# `bench_main cairn buildkit buildah`: every scenario then runs in rounds, each round running each tool once,
# the first tool of a round rotating, so machine noise hits all of them alike.
# Commands, not functions, are timed so that /usr/bin/time sees the tool's own process tree.
# bench_main measures each scenario with /usr/bin/time and writes machine-readable results:
#   $BENCH_OUT/TOOL.tsv          one row per run: tool scenario run wall_s max_rss_kb run_cmd_s self_rss_mb
#   $BENCH_OUT/TOOL-summary.tsv  one row per scenario: tool scenario runs median_s min_s max_s max_rss_kb
#   $BENCH_OUT/TOOL-repro.tsv    two clean builds: tool same_digest identical_layers total_layers digest_a digest_b
#   $BENCH_OUT/logs/TOOL-SCENARIO-RUN.log   each run's output (plain progress: bench/steps.py reads step times)
# bench/table.py joins the results of several tools into a markdown table.
#
# Environment: N (runs per scenario, default 3), BENCH_OUT (default target/bench), BENCH_APP (default
# testdata/apps/nextjs-3stage), BENCH_EDIT_FILE (file edited by the one-file scenario, default app/page.tsx),
# BENCH_REGISTRY (HOST:PORT of a registry that already holds library/node:22-alpine; default: start one and
# push the stand-in from BENCH_BASE_OCI), BENCH_SCENARIOS (default "cold warm edit push repro").

set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$BENCH_ROOT/e2e/registry.sh"
N=${N:-3}
BENCH_OUT=${BENCH_OUT:-$BENCH_ROOT/target/bench}
BENCH_APP=${BENCH_APP:-$BENCH_ROOT/testdata/apps/nextjs-3stage}
BENCH_EDIT_FILE=${BENCH_EDIT_FILE:-app/page.tsx}
BENCH_BASE_OCI=${BENCH_BASE_OCI:-$BENCH_ROOT/target/fixtures/node-alpine/oci:22-alpine}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-cold warm edit push repro}
BENCH_CA=${BENCH_CA:-/etc/ssl/certs/ca-certificates.crt}
BENCH_CTX=$BENCH_OUT/ctx/$(basename "$BENCH_APP")
REGISTRY_PID=
BENCH_CMD=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Everything a script starts is stopped on exit, also on failure: one EXIT trap runs every function registered
# with `on_exit FN` (the registry, dockerd), the last registered first.
BENCH_ON_EXIT=()
bench_exit() {
    local i
    for ((i = ${#BENCH_ON_EXIT[@]} - 1; i >= 0; i--)); do "${BENCH_ON_EXIT[i]}" || true; done
}
on_exit() {
    BENCH_ON_EXIT+=("$1")
    trap bench_exit EXIT
}

# Start a throwaway registry (state under $BENCH_OUT/registry) unless BENCH_REGISTRY names one, and make
# sure it holds library/node:22-alpine.
registry_up() {
    if [[ -n ${BENCH_REGISTRY:-} ]]; then
        log "using registry $BENCH_REGISTRY"
        return
    fi
    registry_start "$BENCH_OUT/registry" || die "no registry (see above)"
    on_exit registry_down
    BENCH_REGISTRY=$REGISTRY_ADDR
    log "registry $BENCH_REGISTRY (pid $REGISTRY_PID), pushing the base image"
    skopeo copy --quiet --dest-tls-verify=false "oci:$BENCH_BASE_OCI" \
        "docker://$BENCH_REGISTRY/library/node:22-alpine" >&2
}

registry_down() {
    if [[ -n $REGISTRY_PID ]]; then
        registry_stop "$REGISTRY_PID"
        REGISTRY_PID=
    fi
}

# A private copy of the app, so the one-file edit never touches the repository.
context_prepare() {
    rm -rf "$BENCH_CTX" && mkdir -p "$BENCH_CTX"
    tar -C "$BENCH_APP" --exclude=./node_modules --exclude=./.next --exclude=./dist -cf - . | tar -C "$BENCH_CTX" -xf -
}

# tsv_start TOOL: empty the tool's log, per-run logs and results.
tsv_start() {
    mkdir -p "$BENCH_OUT/logs"
    rm -f "$BENCH_OUT/logs/$1"-*.log
    : >"$BENCH_OUT/$1.log"
    printf 'tool\tscenario\trun\twall_s\tmax_rss_kb\trun_cmd_s\tself_rss_mb\n' >"$BENCH_OUT/$1.tsv"
}

# measure TOOL SCENARIO RUN: run BENCH_CMD under /usr/bin/time, append a row to TOOL.tsv; the run's output is
# kept in logs/TOOL-SCENARIO-RUN.log (bench/steps.py reads step times from it) and appended to TOOL.log.
# max_rss_kb is the largest resident set of any single process of the tree (for a builder that runs
# RUN steps as its children, usually `next build`), not the sum. run_cmd_s is cairn's own measure of the
# time spent inside RUN commands and self_rss_mb cairn's own peak resident set without its RUN children
# (both from its summary line, printed when RUN commands took ≥ 1 s), empty for the other tools.
measure() {
    local tool=$1 scenario=$2 run=$3 stats runlog run_s self_mb
    stats=$(mktemp)
    mkdir -p "$BENCH_OUT/logs"
    runlog=$BENCH_OUT/logs/$tool-$scenario-$run.log
    log "$tool $scenario #$run"
    printf '$ %s\n' "${BENCH_CMD[*]}" >"$runlog"
    if ! /usr/bin/time -f '%e\t%M' -o "$stats" "${BENCH_CMD[@]}" >>"$runlog" 2>&1; then
        cat "$runlog" >>"$BENCH_OUT/$tool.log"
        rm -f "$stats"
        die "$tool $scenario #$run failed, see $runlog"
    fi
    cat "$runlog" >>"$BENCH_OUT/$tool.log"
    run_s=$(sed -n 's/.*RUN commands \([0-9.]*\)s, builder overhead.*/\1/p' "$runlog" | tail -n 1)
    self_mb=$(sed -n 's/.*builder overhead.*, cairn peak RSS \([0-9]*\) MB.*/\1/p' "$runlog" | tail -n 1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$scenario" "$run" "$(tail -n 1 "$stats")" "$run_s" "$self_mb" \
        >>"$BENCH_OUT/$tool.tsv"
    log "$tool $scenario #$run: $(tail -n 1 "$stats" | cut -f1) s${run_s:+ (inside RUN commands $run_s s)}"
    rm -f "$stats"
}

# Edit one line of the app (a different text each run, so no run is a cache hit of another), then restore.
edit_apply() {
    local file=$BENCH_CTX/$BENCH_EDIT_FILE
    cp -p "$file" "$file.orig"
    python3 - "$file" "$1" <<'EOF'
import sys
path, tag = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
marker = "<h1>"
if marker not in text:
    sys.exit(f"{path}: no {marker} to edit")
open(path, "w", encoding="utf-8").write(text.replace(marker, f"<h1>[{tag}] ", 1))
EOF
}
edit_restore() { mv "$BENCH_CTX/$BENCH_EDIT_FILE.orig" "$BENCH_CTX/$BENCH_EDIT_FILE"; }

summarize() {
    local tool=$1
    printf 'tool\tscenario\truns\tmedian_s\tmin_s\tmax_s\tmax_rss_kb\n' >"$BENCH_OUT/$tool-summary.tsv"
    awk -F'\t' -v OFS='\t' '
        NR > 1 { key = $1 OFS $2; n[key]++; v[key, n[key]] = $4; if ($5 > rss[key]) rss[key] = $5
                 if (!(key in order)) { order[key] = ++count; keys[count] = key } }
        END {
            for (c = 1; c <= count; c++) {
                key = keys[c]; m = n[key]
                for (i = 1; i <= m; i++) s[i] = v[key, i]
                for (i = 2; i <= m; i++) { x = s[i]; j = i - 1; while (j > 0 && s[j] > x) { s[j + 1] = s[j]; j-- } s[j + 1] = x }
                med = (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
                print key, m, med, s[1], s[m], rss[key]
            }
        }' "$BENCH_OUT/$tool.tsv" >>"$BENCH_OUT/$tool-summary.tsv"
}

# After a reset, let the disk settle before a timed cold build. On ext4 without a journal (this machine
# kind's root filesystem) the inode allocator skips inodes freed in the last ~35 s (`recently_deleted`,
# dirty_expire_centisecs + 5 s) by reading their inode table blocks, so a build that creates 10,000 files
# right after the previous run's storage (100,000+ files) was deleted pays seconds that no real CI run
# pays; whichever tool runs first after a delete pays most. BENCH_SETTLE=0 skips the wait.
settle() {
    sync
    sleep "${BENCH_SETTLE:-40}"
}

untimed_build() {
    local tool=$1
    shift
    "${tool}_build_cmd" "$@"
    printf '$ %s\n' "${BENCH_CMD[*]}" >>"$BENCH_OUT/$tool.log"
    "${BENCH_CMD[@]}" >>"$BENCH_OUT/$tool.log" 2>&1 || die "$tool build failed, see $BENCH_OUT/$tool.log"
}

# Tools whose cache holds a build of the unmodified context (cold ran, or an untimed build did).
declare -A BENCH_PRIMED=()
prime() {
    local tool=$1
    if [[ -z ${BENCH_PRIMED[$tool]:-} ]]; then
        log "$tool: untimed build to fill the cache"
        untimed_build "$tool"
        BENCH_PRIMED[$tool]=1
    fi
}

# rotated ROUND TOOL...: the tools in the order of that round (each tool goes first in turn), so machine
# noise, and which tool runs right after another's delete, hit every tool alike.
rotated() {
    local round=$1 k i
    shift
    local tools=("$@")
    k=$((round % ${#tools[@]}))
    for ((i = 0; i < ${#tools[@]}; i++)); do printf '%s\n' "${tools[(i + k) % ${#tools[@]}]}"; done
}

# Every timed scenario runs N rounds; a round runs each tool once.
scenario_cold() {
    local i t
    for i in $(seq "$N"); do
        for t in $(rotated "$i" "$@"); do
            "${t}_reset"
            settle
            "${t}_build_cmd"
            measure "$t" cold "$i"
            BENCH_PRIMED[$t]=1
        done
    done
}

scenario_warm() {
    local i t
    for t in "$@"; do prime "$t"; done
    for i in $(seq "$N"); do
        for t in $(rotated "$i" "$@"); do
            "${t}_build_cmd"
            measure "$t" warm "$i"
        done
    done
}

# The same edit for every tool of a round, another text each round.
scenario_edit() {
    local i t
    for t in "$@"; do prime "$t"; done
    for i in $(seq "$N"); do
        edit_apply "edit $i $$"
        for t in $(rotated "$i" "$@"); do
            "${t}_build_cmd"
            measure "$t" edit "$i"
        done
        edit_restore
    done
}

# push: a fresh repository each run (every layer uploaded, unless the tool mounts blobs across
# repositories); repush: the same repository again (every blob already there).
scenario_push() {
    local i t repo
    for t in "$@"; do prime "$t"; done
    for i in $(seq "$N"); do
        for t in $(rotated "$i" "$@"); do
            repo=$BENCH_REGISTRY/bench/$t-$$-$i:latest
            "${t}_push_cmd" "$repo"
            measure "$t" push "$i"
            measure "$t" repush "$i"
        done
    done
}

# Not timed: per tool, two builds after a reset each, with the tool's REPRO_FLAGS_TOOL.
scenario_repro() {
    local tool a b same identical total
    for tool in "$@"; do
        local -n flags="REPRO_FLAGS_$tool"
        BENCH_PRIMED[$tool]=
        "${tool}_reset"
        untimed_build "$tool" "${flags[@]}"
        a=$("${tool}_image_digest")
        "${tool}_diff_ids" >"$BENCH_OUT/$tool-repro-a.txt"
        "${tool}_reset"
        untimed_build "$tool" "${flags[@]}"
        b=$("${tool}_image_digest")
        "${tool}_diff_ids" >"$BENCH_OUT/$tool-repro-b.txt"
        same=no && [[ $a == "$b" ]] && same=yes
        total=$(wc -l <"$BENCH_OUT/$tool-repro-a.txt")
        identical=$(paste "$BENCH_OUT/$tool-repro-a.txt" "$BENCH_OUT/$tool-repro-b.txt" | awk -F'\t' '$1 == $2' | wc -l)
        printf 'tool\tsame_digest\tidentical_layers\ttotal_layers\tdigest_a\tdigest_b\tflags\n' >"$BENCH_OUT/$tool-repro.tsv"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$same" "$identical" "$total" "$a" "$b" "${flags[*]}" \
            >>"$BENCH_OUT/$tool-repro.tsv"
        log "$tool repro: same digest: $same, identical layers $identical/$total"
        unset -n flags
    done
}

# bench_main TOOL...: every scenario of $BENCH_SCENARIOS for these tools (each set up by its TOOL_setup
# before), interleaved round by round.
bench_main() {
    local tool scenario
    command -v /usr/bin/time >/dev/null || die "/usr/bin/time missing: apt-get install -y time"
    mkdir -p "$BENCH_OUT"
    for tool in "$@"; do
        tsv_start "$tool"
        rm -f "$BENCH_OUT/$tool-repro.tsv"
    done
    registry_up
    context_prepare
    printf '%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >"$BENCH_OUT/load-before.txt"
    for scenario in $BENCH_SCENARIOS; do
        [[ $scenario =~ ^(cold|warm|edit|push|repro)$ ]] || die "unknown scenario $scenario (cold warm edit push repro)"
        "scenario_$scenario" "$@"
    done
    printf '%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >"$BENCH_OUT/load-after.txt"
    for tool in "$@"; do
        summarize "$tool"
        column -t -s $'\t' "$BENCH_OUT/$tool-summary.tsv" >&2
        if [[ -f $BENCH_OUT/$tool-repro.tsv ]]; then column -t -s $'\t' "$BENCH_OUT/$tool-repro.tsv" >&2; fi
    done
    return 0
}
