#!/usr/bin/env bash
# `cairn diff` benchmark: two ~500 MB images in a loopback registry that share
# four 125 MB incompressible base layers and differ in one small layer (one
# file's content). Each run is a cold `cairn diff REG/bench:a REG/bench:b`
# (new process, new temporary blob store): manifests and configs are read,
# the shared layers are skipped by digest, and only the two small layers are
# fetched and compared. Median of RUNS (default 3) into target/bench/diff.md,
# with the bytes read and fetched that the report itself counts. Goal: ≤ 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/registry.sh
RUNS=${RUNS:-3}
TGT=${CARGO_TARGET_DIR:-target}
OUT=target/bench
mkdir -p "$OUT"
command -v docker-registry >/dev/null || { echo "bench-diff: docker-registry is not installed" >&2; exit 1; }

cargo build -q --release --bin cairn
CAIRN=$TGT/release/cairn

WORK=$(mktemp -d)
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# Two images in one OCI layout (tags a, b): shared layers are real tars of
# random bytes (stored uncompressed: random data does not compress); the top
# layer is a small gzipped tar whose app/version.txt differs.
python3 - "$WORK/img" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)
def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()
shared = []
for i in range(4):
    data = random.Random(i).randbytes(125 * 1000 * 1000)
    tar = tar_of([(f"data/part{i}.bin", data)])
    d, n = put(tar)
    shared.append(({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}, d))
index = []
for tag in ["a", "b"]:
    files = [(f"app/file{k}.js", f"export const k = {k};\n".encode()) for k in range(200)]
    files.append(("app/version.txt", f"version {tag}\n".encode()))
    tar = tar_of(files)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    d, n = put(gzip.compress(tar, mtime=0))
    layers = [s[0] for s in shared] + [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}]
    diff_ids = [s[1] for s in shared] + [diff_id]
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Cmd": ["node", "app/file0.js"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids},
                      "history": [{"created_by": f"COPY part{i}.bin /data/"} for i in range(4)] + [{"created_by": "COPY app/ /app/"}]}).encode()
    cd, cn = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                      "layers": layers}).encode()
    md, mn = put(man)
    with open(os.path.join(root, f"size-{tag}"), "w") as f:
        f.write(str(sum(l["size"] for l in layers)))
    index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                  "annotations": {"org.opencontainers.image.ref.name": tag}})
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index}, f)
PY
SIZE=$(cat "$WORK/img/size-a")
TOTAL=$(du -sb "$WORK/img/blobs" | cut -f1)

registry_start "$WORK/reg"
REG_PID=$REGISTRY_PID
REG=$REGISTRY_ADDR
for tag in a b; do
    "$CAIRN" push "oci:$WORK/img:$tag" "$REG/bench:$tag" > /dev/null 2>&1
done

now() { date +%s.%N; }
: > "$WORK/times"
for i in $(seq "$RUNS"); do
    t0=$(now)
    rc=0
    "$CAIRN" diff "$REG/bench:a" "$REG/bench:b" --json > "$WORK/report.json" 2> "$WORK/diff.err" || rc=$?
    t1=$(now)
    [ "$rc" = 1 ] || { echo "bench-diff: cairn diff exited $rc, expected 1 (different):" >&2; cat "$WORK/diff.err" >&2; exit 1; }
    echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}' >> "$WORK/times"
done

# For scale: what any tool that pulls both images in full (as diffoci does)
# must at least move, timed as `skopeo copy` of both to local directories.
FULL=n/a
if command -v skopeo >/dev/null; then
    t0=$(now)
    for tag in a b; do
        skopeo copy -q --src-tls-verify=false "docker://$REG/bench:$tag" "dir:$WORK/full-$tag" > /dev/null
    done
    FULL=$(echo "$t0 $(now)" | awk '{printf "%.2f s", $2 - $1}')
    rm -rf "$WORK"/full-*
fi

python3 - "$WORK/times" "$WORK/report.json" "$SIZE" "$RUNS" "$TOTAL" "$FULL" > "$OUT/diff.md" <<'PY'
import json, statistics, sys
times = [float(l) for l in open(sys.argv[1])]
r = json.load(open(sys.argv[2]))
size, runs, total = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
med = statistics.median(times)
layers = ", ".join(l["status"] for l in r["layers"])
print("# cairn diff benchmark\n")
print(f"Two images of {size/1e6:.0f} MB each (layers, as the manifest counts them; {total/1e6:.0f} MB of distinct blobs, "
      "the 500 MB base shared) in a loopback distribution 2.8 registry; they differ in one small layer (one file of 201). "
      "Each run is a new process with a new temporary blob store (cold).\n")
print("| metric | value |\n|---|---|")
print(f"| median wall time of `cairn diff REG/bench:a REG/bench:b --json` ({runs} runs) | **{med:.2f} s** |")
print(f"| all runs | {', '.join(f'{t:.2f} s' for t in times)} |")
print(f"| goal | ≤ 2 s: {'met' if med <= 2.0 else 'NOT met'} |")
print(f"| for scale: `skopeo copy` of both images in full (1 run), the floor for a tool that pulls both | {sys.argv[6]} |")
print(f"| compressed bytes fetched from the registry | {r['bytes_fetched']:,} |")
print(f"| uncompressed tar bytes read | {r['bytes_read']:,} |")
print(f"| layers | {layers} |")
print(f"| causes | {json.dumps(r['causes'])} |")
print(f"\nverdict: {r['verdict']}")
PY
cat "$OUT/diff.md"
