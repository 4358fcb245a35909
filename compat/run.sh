#!/usr/bin/env bash
# `just compat` (issue #21): BuildKit as a live oracle. Builds a corpus of Dockerfiles with cairn and with
# BuildKit (Debian's docker.io dockerd, started here on a private socket and data root, stopped by PID) from the
# same base image (the node:22-alpine stand-in, pushed to a throwaway loopback registry both pull from) and the
# same context, then compares each pair (compat/compare.py): the config field by field and the final filesystem
# entry by entry. A difference not listed with its reason in compat/expected.tsv fails the run. Every case is
# also built a second time by cairn with another empty cache: the two digests must be equal, or every file
# that differs must be named with a hint by `cairn diff` (a random tool inside RUN).
#
# Corpus (tiers, COMPAT_TIER):
#   fast (default)  testdata/compat/cases.dockerfile (the COPY/ADD/WORKDIR/USER/RUN matrix) and
#                   testdata/compat/real/* (real deployment Dockerfiles with minimal apps; npm inside RUN)
#   all             fast + the four reference apps of testdata/apps (Next.js builds: several minutes)
# usage: compat/run.sh [CASE-GLOB...]       (default: every case of the tier)
# env:   COMPAT_BASE_OCI  the base image as an OCI layout, tag 22-alpine (default target/fixtures/node-alpine/oci)
#        COMPAT_OUT       state and reports (default target/compat; emptied each run, the dockerd data root kept)
#        COMPAT_TIER      fast | all
#        COMPAT_CA        CA bundle given to npm in RUN as secret `ca` (default /etc/ssl/certs/ca-certificates.crt)
#        CAIRN            the cairn binary (default: cargo build, target/debug/cairn)
set -euo pipefail
shopt -s nullglob
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source e2e/registry.sh
OUT=$(realpath -m "${COMPAT_OUT:-target/compat}")
BASE_OCI=$(realpath -m "${COMPAT_BASE_OCI:-target/fixtures/node-alpine/oci}")
TIER=${COMPAT_TIER:-fast}
CA=${COMPAT_CA:-/etc/ssl/certs/ca-certificates.crt}
T0=$(date +%s)

say() { printf 'compat: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
elapsed() { echo "$(($(date +%s) - T0))s"; }

[[ $TIER == fast || $TIER == all ]] || die "COMPAT_TIER=$TIER: use fast or all"
[[ -f $BASE_OCI/index.json ]] ||
    die "no base image layout at $BASE_OCI: set COMPAT_BASE_OCI to the node:22-alpine stand-in (or run \`just fixtures\`)"
[[ -r $CA ]] || die "COMPAT_CA=$CA is not readable: point it at the CA bundle npm must trust"

# --- what the run needs -------------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null; then
    say "installing docker.io (dockerd, the BuildKit oracle)"
    [[ $(id -u) == 0 ]] || die "dockerd is missing and installing docker.io needs root: apt-get install docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
[[ $(id -u) == 0 ]] || die "dockerd needs root: run \`just compat\` as root (CI does)"
# The docker.io client builds with BuildKit by itself; newer clients want the buildx plugin for that.
DOCKER=${COMPAT_DOCKER:-}
if [[ -z $DOCKER ]]; then
    for c in /usr/bin/docker $(command -v docker || true); do
        [[ -x $c ]] && DOCKER=$c && break
    done
fi
[[ -n $DOCKER ]] || die "no docker client: apt-get install docker.io"
if [[ -z ${CAIRN:-} ]]; then
    cargo build -q --bin cairn
    CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/cairn
fi

# --- everything started is stopped on exit, also on failure -------------------------------------------------
PIDS=()
RUNTIME=$(mktemp -d /tmp/cairn-compat.XXXXXX) # short: a unix socket path must stay under 108 bytes
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$RUNTIME"
    [[ $rc == 0 ]] || say "FAILED after $(elapsed) (state and logs in $OUT)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$OUT"/{cases,ctx,cairn-a,cairn-b,cache-a,cache-b,buildkit,logs,registry} "$OUT"/*.tsv "$OUT"/*.txt
mkdir -p "$OUT"/{cases,logs,buildkit} "$OUT/docker"

registry_start "$OUT/registry" || die "no registry (see above)"
PIDS+=("$REGISTRY_PID")
BASE=$REGISTRY_ADDR/library/node:22-alpine
"$CAIRN" push --progress plain --insecure-registry "$REGISTRY_ADDR" "oci:$BASE_OCI:22-alpine" "$BASE" \
    >"$OUT/logs/push-base.log" 2>&1 || die "pushing the base failed, see $OUT/logs/push-base.log"

dockerd --host "unix://$RUNTIME/docker.sock" --data-root "$OUT/docker" --exec-root "$RUNTIME/exec" \
    --pidfile "$RUNTIME/docker.pid" --iptables=false --bridge=none >"$OUT/logs/dockerd.log" 2>&1 &
PIDS+=("$!")
export DOCKER_HOST=unix://$RUNTIME/docker.sock DOCKER_BUILDKIT=1
for _ in $(seq 150); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.2; done
"$DOCKER" version >/dev/null 2>&1 || die "dockerd did not start, see $OUT/logs/dockerd.log"
say "dockerd $("$DOCKER" version -f '{{.Server.Version}}') (pid ${PIDS[-1]}), registry $REGISTRY_ADDR, base $BASE ($(elapsed))"

# --- the corpus ---------------------------------------------------------------------------------------------
# The shared context of the edge cases, with what git cannot hold.
prepare_ctx() {
    local c=$OUT/ctx t
    cp -a testdata/compat/ctx "$c"
    chmod 700 "$c/dir"
    chmod 640 "$c/g.txt"
    mkdir -p "$c/empty"
    ln "$c/hl/one" "$c/hl/two"
    ln "$c/hl/one" "$c/hl/sub/three"
    t=$RUNTIME/arch
    mkdir -p "$t/pkg/lib"
    echo 'module.exports = 1' >"$t/pkg/index.js"
    echo lib >"$t/pkg/lib/l.js"
    ln "$t/pkg/index.js" "$t/pkg/lib/linked.js"
    ln -s index.js "$t/pkg/main.js"
    chmod 700 "$t" "$t/pkg"
    local tarx=(--sort=name --mtime=@0 --owner=4321 --group=4321 --numeric-owner)
    tar -C "$t" "${tarx[@]}" -cf "$c/arch.tar" .
    tar -C "$t" "${tarx[@]}" -czf "$c/arch.tar.gz" .
    tar -C "$t" "${tarx[@]}" -cJf "$c/arch.tar.xz" .
    tar -C "$t" "${tarx[@]}" -cf "$c/arch-noroot.tar" pkg
}

# add_case NAME CONTEXT DOCKERFILE BUILDKIT_DOCKERFILE TARGET SECRET(0|1)
CASES=()
add_case() {
    local glob ok=0
    if [[ ${#FILTER[@]} == 0 ]]; then ok=1; fi
    for glob in "${FILTER[@]}"; do [[ $1 == $glob ]] && ok=1; done
    [[ $ok == 1 ]] && CASES+=("$1|$2|$3|$4|$5|$6")
    return 0
}
FILTER=("$@")

prepare_ctx
python3 - "$OUT/cases" "$BASE" testdata/compat/cases.dockerfile >"$OUT/edge-cases.txt" <<'PY'
import os, re, sys
out, base, src = sys.argv[1], sys.argv[2], sys.argv[3]
SRC = """FROM ${BASE_IMAGE} AS src
RUN mkdir -p /out/d/inner /out/e && echo a > /out/d/a && ln /out/d/a /out/d/b && ln /out/d/a /out/d/inner/c \\
 && echo x > /out/d/inner/x && ln -s a /out/d/rel && chown -R 4321:4321 /out/d && chmod 700 /out/d \\
 && ln -s /out/d /out/ld && echo f > /out/f.txt && chmod 600 /out/f.txt
FROM ${BASE_IMAGE}
"""
def render(body):
    body = body.replace("@BASE@", base)
    body = "\n".join(SRC.rstrip("\n") if l.strip() == "@SRC" else l for l in body.splitlines())
    head = "ARG BASE_IMAGE=node:22-alpine\n"
    if not re.search(r"^FROM ", body, re.M):
        head += "FROM ${BASE_IMAGE}\n"
    return head + body.strip("\n") + "\n"
cases, name, part = {}, None, None
for line in open(src).read().splitlines():
    if line.startswith("### "):
        name, part = line[4:].strip(), "cairn"
        if name in cases:
            sys.exit(f"testdata/compat/cases.dockerfile: case {name} twice")
        cases[name] = {"cairn": [], "buildkit": None}
    elif line.strip() == "#### buildkit":
        part = "buildkit"
        cases[name]["buildkit"] = []
    elif name and not (line.startswith("#") and not line.startswith("#!")):
        cases[name][part].append(line)
for name, c in cases.items():
    d = os.path.join(out, name)
    os.makedirs(d)
    with open(os.path.join(d, "Dockerfile"), "w") as f:
        f.write(render("\n".join(c["cairn"])))
    bk = os.path.join(d, "Dockerfile.buildkit")
    with open(bk, "w") as f:
        f.write(render("\n".join(c["buildkit"] if c["buildkit"] is not None else c["cairn"])))
    print(name)
PY
while read -r name; do
    add_case "$name" "$OUT/ctx" "$OUT/cases/$name/Dockerfile" "$OUT/cases/$name/Dockerfile.buildkit" "" 0
done <"$OUT/edge-cases.txt"

# Real deployment Dockerfiles (their own context; an optional Dockerfile.buildkit when they use newer syntax).
for d in testdata/compat/real/*/; do
    name=real-$(basename "$d")
    bk=$d/Dockerfile
    [[ -f $d/Dockerfile.buildkit ]] && bk=$d/Dockerfile.buildkit
    add_case "$name" "$ROOT/$d" "$ROOT/$d/Dockerfile" "$ROOT/$bk" "" 1
done
if [[ $TIER == all ]]; then
    # The reference apps (BuildKit 20.10 has no heredocs: bench/unheredoc.py writes the same bytes with printf).
    for spec in nextjs-3stage:Dockerfile: nextjs-standalone:Dockerfile: monorepo-backend:apps/backend/Dockerfile: \
        unified-targets:Dockerfile:api-production unified-targets:Dockerfile:web-production; do
        IFS=: read -r app file target <<<"$spec"
        bk=$OUT/cases/app-$app-$target.Dockerfile
        python3 bench/unheredoc.py "testdata/apps/$app/$file" "$bk"
        add_case "app-$app${target:+-$target}" "$ROOT/testdata/apps/$app" "$ROOT/testdata/apps/$app/$file" "$bk" "$target" 1
    done
fi
[[ ${#CASES[@]} -gt 0 ]] || die "no case matches: $*"
say "${#CASES[@]} case(s), tier $TIER"

# --- the builds ---------------------------------------------------------------------------------------------
# BuildKit builds run in the background while cairn builds (each side one build at a time).
buildkit_all() {
    local c name ctx bkfile target secret args
    for c in "${CASES[@]}"; do
        IFS='|' read -r name ctx _ bkfile target secret <<<"$c"
        args=(build --network host --progress plain -f "$bkfile" -t "compat/$name:buildkit" --build-arg "BASE_IMAGE=$BASE")
        [[ -n $target ]] && args+=(--target "$target")
        [[ $secret == 1 ]] && args+=(--secret "id=ca,src=$CA")
        if ! "$DOCKER" "${args[@]}" "$ctx" >"$OUT/logs/$name.buildkit.log" 2>&1; then
            echo "$name" >>"$OUT/buildkit-failed.txt"
        fi
    done
}
buildkit_all &
BK_PID=$!
PIDS+=("$BK_PID")

# cairn_build NAME CTX DOCKERFILE TARGET SECRET SIDE(a|b): builds into $OUT/cairn-SIDE with the cache $OUT/cache-SIDE.
cairn_build() {
    local name=$1 ctx=$2 file=$3 target=$4 secret=$5 side=$6 args
    args=(build "$ctx" -f "$file" -t "compat:$name" -o "type=oci,dest=$OUT/cairn-$side,tar=false"
        --cache-dir "$OUT/cache-$side" --insecure-registry "$REGISTRY_ADDR" --build-arg "BASE_IMAGE=$BASE"
        --progress plain --metadata-file "$OUT/logs/$name.$side.json")
    [[ -n $target ]] && args+=(--target "$target")
    [[ $secret == 1 ]] && args+=(--secret "id=ca,src=$CA")
    "$CAIRN" "${args[@]}" >"$OUT/logs/$name.cairn-$side.log" 2>&1
}
digest_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$1"; }

FAILED=()
: >"$OUT/cases.tsv"
: >"$OUT/digests.tsv"
for c in "${CASES[@]}"; do
    IFS='|' read -r name ctx file _ target secret <<<"$c"
    t=$(date +%s)
    if ! cairn_build "$name" "$ctx" "$file" "$target" "$secret" a; then
        say "$name: cairn build failed, see $OUT/logs/$name.cairn-a.log"
        FAILED+=("$name")
        continue
    fi
    ta=$(($(date +%s) - t))
    cairn_build "$name" "$ctx" "$file" "$target" "$secret" b ||
        die "$name: the second cairn build failed, see $OUT/logs/$name.cairn-b.log"
    da=$(digest_of "$OUT/logs/$name.a.json") db=$(digest_of "$OUT/logs/$name.b.json")
    printf '%s\t%s\t%s\t%ss\n' "$name" "$da" "$db" "$ta" >>"$OUT/digests.tsv"
    if [[ $da != "$db" ]]; then
        # Only a random tool inside RUN may do this, and cairn diff must say which file and why.
        "$CAIRN" diff --json --files "oci:$OUT/cairn-a:$name" "oci:$OUT/cairn-b:$name" \
            >"$OUT/logs/$name.nondeterminism.json" 2>"$OUT/logs/$name.nondeterminism.err" || true
        if python3 compat/compare.py nondeterminism "$OUT/logs/$name.nondeterminism.json"; then
            say "$name: two cold builds differ; every difference named by cairn diff with a hint"
        else
            say "$name: two cold builds differ where cairn diff gives no hint, see $OUT/logs/$name.nondeterminism.json"
            FAILED+=("$name")
        fi
    fi
    printf '%s\t%s\tcompat/%s:buildkit\n' "$name" "$da" "$name" >>"$OUT/cases.tsv"
done
say "cairn: ${#CASES[@]} case(s) built twice ($(elapsed)); waiting for BuildKit"
wait "$BK_PID" || true
if [[ -f $OUT/buildkit-failed.txt ]]; then
    while read -r name; do
        say "$name: BuildKit build failed, see $OUT/logs/$name.buildkit.log"
        FAILED+=("$name")
    done <"$OUT/buildkit-failed.txt"
fi
# Compare only the cases both sides built.
python3 - "$OUT/cases.tsv" "$OUT/buildkit-failed.txt" <<'PY'
import sys, os
failed = set(open(sys.argv[2]).read().split()) if os.path.exists(sys.argv[2]) else set()
rows = [l for l in open(sys.argv[1]) if l.split("\t")[0] not in failed]
open(sys.argv[1], "w").writelines(rows)
PY
mapfile -t TAGS < <(cut -f3 "$OUT/cases.tsv")
if [[ ${#TAGS[@]} -gt 0 ]]; then
    mkdir -p "$OUT/buildkit/save"
    "$DOCKER" save "${TAGS[@]}" | tar -x -C "$OUT/buildkit/save"
    say "BuildKit: images saved ($(elapsed)); comparing"
    python3 compat/compare.py images "$OUT/cases.tsv" "$OUT/cairn-a" "$OUT/buildkit/save" compat/expected.tsv \
        "$OUT/report.tsv" || FAILED+=("(comparison)")
fi
"$DOCKER" image rm -f "${TAGS[@]}" >/dev/null 2>&1 || true
if [[ ${#FAILED[@]} -gt 0 ]]; then
    die "${#FAILED[@]} failure(s): ${FAILED[*]}"
fi
say "ok: ${#CASES[@]} case(s) equal to BuildKit up to compat/expected.tsv, reproducible ($(elapsed))"
