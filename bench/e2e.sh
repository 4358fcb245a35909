#!/usr/bin/env bash
# bench-e2e: cairn, BuildKit and buildah on the reference apps, interleaved in one run: every
# scenario runs N rounds (default 3) and a round runs each tool once, back to back, the first tool rotating.
# Same base (the node:22-alpine stand-in in a loopback registry), same context copy, same CA secret; each tool
# as bench/cairn.sh, bench/buildkit.sh and bench/buildah.sh describe. BENCH_TOOLS picks the tools (default
# "cairn buildkit buildah"; cairn first: it is the reference of the ratios). Root: BuildKit's dockerd and
# buildah run as root on these machines.
#
# Results in $BENCH_OUT (default target/bench): TOOL.tsv, TOOL-summary.tsv, TOOL-repro.tsv, logs/; the report
# target/bench/e2e.md (bench/report.py: medians, per-round ratios, builder overhead, RUN steps against
# BuildKit, the goals of issue #22), which is printed.
#
# Three apps by default (BENCH_APPS picks): nextjs-3stage, turborepo-web (a Turborepo monorepo whose installer
# stage no output exports) and small = bench/small (one stage: COPY + one RUN, no network; issue #22's
# "small builds" goal). Each is run as a whole of its own (its registry, dockerd, results in
# $BENCH_OUT/e2e-APP/), the reports joined into $BENCH_OUT/e2e.md. BENCH_APP=DIR runs one app (a directory
# with a Dockerfile at its root) into $BENCH_OUT itself.
#
# usage: N=3 bench/e2e.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# app | its directory | its Dockerfile | the file the edit scenario changes (it must hold an <h1>) | goals
# (bench/report.py --goals)
E2E_APPS=(
    "nextjs-3stage|testdata/apps/nextjs-3stage|Dockerfile|app/page.tsx|e2e"
    "turborepo-web|testdata/apps/turborepo-web|apps/web/Dockerfile|apps/web/app/page.tsx|e2e"
    "small|bench/small|Dockerfile|src/index.html|small"
)
if [[ -z ${BENCH_APP:-} ]]; then
    out=${BENCH_OUT:-$ROOT/target/bench}
    mkdir -p "$out"
    : >"$out/e2e.md.new"
    for entry in "${E2E_APPS[@]}"; do
        IFS='|' read -r app dir file edit goals <<<"$entry"
        [[ " ${BENCH_APPS:-nextjs-3stage turborepo-web small} " == *" $app "* ]] || continue
        ctx=$out/e2e-$app/ctx/$app
        extra=()
        # A Dockerfile without heredocs is read as is by every tool; with one, the peers read Dockerfile.buildah.
        if [[ $file != Dockerfile ]]; then
            grep -q '<<' "$ROOT/$dir/$file" && { echo "$app/$file has a heredoc: give it a Dockerfile.buildah" >&2; exit 1; }
            extra=("CAIRN_DOCKERFILE=$ctx/$file" "BUILDAH_DOCKERFILE=$ctx/$file" "BUILDKIT_DOCKERFILE=$ctx/$file")
        fi
        env BENCH_APP="$ROOT/$dir" BENCH_OUT="$out/e2e-$app" BENCH_EDIT_FILE="$edit" BENCH_GOALS="$goals" "${extra[@]}" \
            "$ROOT/bench/e2e.sh"
        cat "$out/e2e-$app/e2e.md" >>"$out/e2e.md.new"
        printf '\n' >>"$out/e2e.md.new"
    done
    mv "$out/e2e.md.new" "$out/e2e.md"
    exit 0
fi

source "$ROOT/bench/buildah.sh"
source "$ROOT/bench/buildkit.sh"
source "$ROOT/bench/cairn.sh"
read -r -a TOOLS <<<"${BENCH_TOOLS:-cairn buildkit buildah}"
[[ ${TOOLS[0]} == cairn ]] || die "BENCH_TOOLS must start with cairn (the reference of the ratios)"

for t in "${TOOLS[@]}"; do
    [[ $t =~ ^(cairn|buildkit|buildah)$ ]] || die "unknown tool $t in BENCH_TOOLS (cairn buildkit buildah)"
    "${t}_setup"
done
bench_main "${TOOLS[@]}"
python3 "$ROOT/bench/report.py" --out "$BENCH_OUT" --goals "${BENCH_GOALS:-e2e}" --title "bench-e2e $(basename "$BENCH_APP")" \
    --context "${BENCH_APP#"$ROOT"/} ($(find "$BENCH_CTX" -type f | wc -l) files)" \
    "${TOOLS[@]}" >"$BENCH_OUT/e2e.md"
cat "$BENCH_OUT/e2e.md"
