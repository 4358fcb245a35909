#!/usr/bin/env bash
# Registry push/pull benchmark: cairn vs `skopeo copy`, same machine, same
# loopback registry, same run. Images: the node:22-alpine stand-in (54 MB)
# and a generated 300 MB image (3 incompressible 100 MB layers). Each case
# runs RUNS times (alternating tools); the report gives medians and ratios
# (cairn / skopeo; < 1 means cairn is faster) in target/bench/registry.md.
#
# Push: every run goes to a new repository, so every blob is uploaded.
# Pull: every run writes into a new OCI layout, so every blob is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/registry.sh
RUNS=${RUNS:-5}
TGT=${CARGO_TARGET_DIR:-target}
OUT=target/bench
FIX=target/fixtures/node-alpine/oci
mkdir -p "$OUT"
[ -f "$FIX/index.json" ] || { echo "bench-registry: run \`just fixtures\` first" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "bench-registry: skopeo is not installed" >&2; exit 1; }

cargo build -q --release --bin cairn
CAIRN=$TGT/release/cairn

WORK=$(mktemp -d)
cleanup() { stop_regs; rm -rf "$WORK"; }
trap cleanup EXIT

# A generated 300 MB image: 3 x 100 MB incompressible layers, OCI layout.
python3 - "$WORK/big" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)
import random
layers = []
for i in range(3):
    r = random.Random(i)
    data = r.randbytes(100 * 1000 * 1000)
    d, n = put(data)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
cfg = json.dumps({"architecture": "amd64", "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
cd, cn = put(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                  "layers": layers}).encode()
md, mn = put(man)
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                              "annotations": {"org.opencontainers.image.ref.name": "big"}}]}, f)
PY

# One fresh registry per tool and run: skopeo remembers where it saw blobs
# (its blob-info cache) and would mount them instead of uploading on a reused
# registry, which is not the transfer being measured.
REG_PIDS=()
start_reg() { # NAME -> sets REG_ADDR=host:port (runs in this shell, so its pid is remembered)
    registry_start "$WORK/$1"
    REG_PIDS+=("$REGISTRY_PID")
    REG_ADDR=$REGISTRY_ADDR
}
stop_regs() { for p in "${REG_PIDS[@]}"; do registry_stop "$p"; done; REG_PIDS=(); }

now() { date +%s.%N; }
TIMES=$WORK/times.tsv
: > "$TIMES"
timed() { # CASE TOOL CMD...
    local case=$1 tool=$2; shift 2
    local t0; t0=$(now)
    "$@" > /dev/null 2>"$WORK/last.err" || { echo "bench-registry: $tool failed on $case:" >&2; cat "$WORK/last.err" >&2; exit 1; }
    echo -e "$case\t$tool\t$(echo "$(now) - $t0" | bc)" >> "$TIMES"
}

for img in "node-alpine:$FIX:22-alpine" "generated-300mb:$WORK/big:big"; do
    IFS=: read -r name dir tag <<< "$img"
    for run in $(seq "$RUNS"); do
        start_reg "rc$run-$name"; RC=$REG_ADDR
        start_reg "rs$run-$name"; RS=$REG_ADDR
        timed "push $name" cairn "$CAIRN" push "oci:$dir:$tag" "$RC/bench/$name:$tag"
        timed "push $name" skopeo skopeo copy -q --dest-tls-verify=false "oci:$dir:$tag" "docker://$RS/bench/$name:$tag"
        timed "pull $name" cairn "$CAIRN" pull "$RC/bench/$name:$tag" --output "oci:$WORK/pc"
        timed "pull $name" skopeo skopeo copy -q --src-tls-verify=false "docker://$RS/bench/$name:$tag" "oci:$WORK/ps:$tag"
        stop_regs
        rm -rf "$WORK/pc" "$WORK/ps" "$WORK/rc$run-$name" "$WORK/rs$run-$name"
    done
done

python3 - "$TIMES" "$RUNS" "$(nproc)" > "$OUT/registry.md" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for line in open(sys.argv[1]):
    case, tool, t = line.rstrip("\n").split("\t")
    if case not in order:
        order.append(case)
    rows[case][tool].append(float(t))
print("# Registry benchmark: cairn vs skopeo copy\n")
print(f"Loopback docker-registry (distribution 2.8), a fresh registry per tool and run, {sys.argv[2]} runs per cell, tools alternating, {sys.argv[3]} CPUs (shared).")
print("Median wall time in seconds; ratio = cairn / skopeo (goal <= 0.80).\n")
print("| case | cairn (s) | skopeo (s) | ratio |")
print("|---|---:|---:|---:|")
for case in order:
    c = statistics.median(rows[case]["cairn"]); s = statistics.median(rows[case]["skopeo"])
    print(f"| {case} | {c:.3f} | {s:.3f} | {c/s:.2f} |")
print("\nAll runs (s):\n")
for case in order:
    for tool in ("cairn", "skopeo"):
        print(f"- {case}, {tool}: " + ", ".join(f"{x:.3f}" for x in rows[case][tool]))
PY
cat "$OUT/registry.md"
