#!/usr/bin/env python3
"""What SBOM + provenance cost (#17): cold builds of a Node app with and without attestations, interleaved.

Each pair builds APP (default testdata/apps/nextjs-3stage) twice on the node:22-alpine stand-in, each time
into a fresh cache directory (so `npm ci` and `next build` run every time): once with `--sbom=false
--provenance=false`, once with `--sbom --provenance=mode=max`; pairs alternate which goes first (ABBA), so a
load drift on a shared machine hits both sides alike. Then, on the last warm cache: no-op rebuilds with
attestations (the SBOM comes from the cache memo) and the same with the memo deleted (the SBOM is scanned
again), which isolates the scan itself.

usage: N=3 bench/attest.py [APP_DIR]      (CAIRN_BIN, default target/release/cairn; results in target/bench/attest)
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
app = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata/apps/nextjs-3stage")
target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
cairn = os.environ.get("CAIRN_BIN", os.path.join(target, "release/cairn"))
n = int(os.environ.get("N", "3"))
out = os.environ.get("BENCH_OUT", os.path.join(target, "bench/attest"))
ca = os.environ.get("BENCH_CA", "/etc/ssl/certs/ca-certificates.crt")
base = "oci:" + os.path.join(root, "target/fixtures/node-alpine/oci") + ":22-alpine"
FLAGS = {"none": ["--sbom=false", "--provenance=false"], "attest": ["--sbom", "--provenance=mode=max"]}
os.makedirs(out, exist_ok=True)
env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "BUILDX_NO_DEFAULT_ATTESTATIONS")}


def build(mode, cache, log):
    args = [cairn, "build", "--progress", "plain", "--cache-dir", cache, "--secret", f"id=ca,src={ca}",
            "--build-arg", f"BASE_IMAGE={base}", *FLAGS[mode], "-t", "bench-attest", app]
    t = time.monotonic()
    with open(log, "w") as f:
        r = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env)
    took = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"{mode} build failed, see {log}")
    return took


rows = []
for i in range(n):
    order = ["none", "attest"] if i % 2 == 0 else ["attest", "none"]
    for mode in order:
        cache = os.path.join(out, f"cache-{mode}")
        shutil.rmtree(cache, ignore_errors=True)
        took = build(mode, cache, os.path.join(out, f"cold-{i}-{mode}.log"))
        rows.append((i, mode, took))
        print(f"pair {i} {mode:6} cold {took:7.2f} s  (load {os.getloadavg()[0]:.1f})", flush=True)

cache = os.path.join(out, "cache-attest")
noop_memo = [build("attest", cache, os.path.join(out, "noop-memo.log")) for _ in range(3)]
noop_scan = []
for _ in range(3):
    shutil.rmtree(os.path.join(cache, "attest"), ignore_errors=True)
    noop_scan.append(build("attest", cache, os.path.join(out, "noop-scan.log")))

with open(os.path.join(out, "attest.tsv"), "w") as f:
    f.write("pair\tmode\tseconds\n")
    for i, mode, took in rows:
        f.write(f"{i}\t{mode}\t{took:.2f}\n")
    for took in noop_memo:
        f.write(f"-\tnoop-memo\t{took:.2f}\n")
    for took in noop_scan:
        f.write(f"-\tnoop-scan\t{took:.2f}\n")
ratios = [a / b for (_, _, a), (_, _, b) in
          [(next(r for r in rows if r[0] == i and r[1] == "attest"), next(r for r in rows if r[0] == i and r[1] == "none"))
           for i in range(n)]]
print(f"cold: with/without per pair {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
print(f"no-op rebuild with attestations: memo {statistics.median(noop_memo):.2f} s, "
      f"SBOM scanned again {statistics.median(noop_scan):.2f} s (medians of 3)")
