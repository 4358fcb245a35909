#!/usr/bin/env bash
# Is a RUN step's work slower in cairn's sandbox than in BuildKit's, and where? (issue #22 item 4.) Builds
# bench/run-probe/Dockerfile (nextjs-3stage's deps step plus probes, see there) with cairn and BuildKit, cold,
# ROUNDS rounds (default 3), the first tool alternating, and prints each run's PROBE lines and the per-probe
# medians and per-round ratios cairn/BuildKit. Uses bench/cairn.sh and bench/buildkit.sh as they are (own
# registry and dockerd, stopped on exit); results under $BENCH_OUT (default target/bench/run-probe).
# usage: ROUNDS=4 bench/run-probe.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/run-probe}
# Outside the context copy (context_prepare copies the app into $BENCH_OUT/ctx); its name tags the images.
APP=$BENCH_OUT/app/run-probe
rm -rf "$APP" && mkdir -p "$APP"
cp "$ROOT"/bench/run-probe/{Dockerfile,probe.js} "$ROOT"/testdata/apps/nextjs-3stage/package{,-lock}.json "$APP"/
export BENCH_APP=$APP
source "$ROOT/bench/cairn.sh"
source "$ROOT/bench/buildkit.sh"
BUILDKIT_DOCKERFILE=$APP/Dockerfile
CAIRN_DOCKERFILE=$APP/Dockerfile
mkdir -p "$BENCH_OUT"
context_prepare
registry_up
cairn_setup
buildkit_setup
for r in $(seq "${ROUNDS:-3}"); do
    if ((r % 2)); then order="cairn buildkit"; else order="buildkit cairn"; fi
    for t in $order; do
        "${t}_reset"
        "${t}_build_cmd"
        log "$t round $r"
        "${BENCH_CMD[@]}" >"$BENCH_OUT/$t-$r.log" 2>&1 || die "$t failed, see $BENCH_OUT/$t-$r.log"
        grep -o 'PROBE [a-z0-9].*' "$BENCH_OUT/$t-$r.log" | grep -v '\$(' | sed "s/^/$t#$r /"
    done
done
python3 - "$BENCH_OUT" "${ROUNDS:-3}" <<'PY'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
keys = ["dns per lookup ms", "https per request ms", "npm-ci-online", "npm-ci-offline", "20000 files ms", "rm-files"]
for k in keys:
    v = {}
    for t in ("cairn", "buildkit"):
        for r in range(1, rounds + 1):
            m = re.search(r"PROBE " + re.escape(k) + r" ([0-9.]+)", open(f"{out}/{t}-{r}.log").read())
            v.setdefault(t, []).append(float(m.group(1)) if m else float("nan"))
    c, b = v["cairn"], v["buildkit"]
    print(f"{k:22} cairn median {statistics.median(c):8.2f}  buildkit median {statistics.median(b):8.2f}  "
          f"ratio {statistics.median(c) / statistics.median(b):.2f}  per round {[round(x / y, 2) for x, y in zip(c, b)]}")
PY
