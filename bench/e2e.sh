#!/usr/bin/env bash
# bench-e2e: cairn, BuildKit and buildah on testdata/apps/nextjs-3stage (BENCH_APP), interleaved in one run: every
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
# usage: N=3 bench/e2e.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
python3 "$ROOT/bench/report.py" --out "$BENCH_OUT" --goals e2e --title "bench-e2e $(basename "$BENCH_APP")" \
    --context "testdata/apps/$(basename "$BENCH_APP") ($(find "$BENCH_CTX" -type f | wc -l) files)" \
    "${TOOLS[@]}" >"$BENCH_OUT/e2e.md"
cat "$BENCH_OUT/e2e.md"
