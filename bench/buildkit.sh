#!/usr/bin/env bash
# The BuildKit side of the benchmarks (see bench/lib.sh for scenarios, outputs and environment), the same shape
# as bench/buildah.sh and bench/cairn.sh.
#
# BuildKit here is the one embedded in Debian 12's docker.io 20.10 daemon (the only one installable on these
# machines): this script starts `dockerd` itself on a private socket, data root and exec root
# (`--iptables=false --bridge=none`), and stops it by its PID on exit. Builds are `DOCKER_BUILDKIT=1 docker
# build --network host --progress plain` with the CA as the same build secret and the base from the same
# loopback registry (dockerd trusts 127.0.0.0/8 without TLS). 20.10's BuildKit has no heredocs and cannot pull
# a `# syntax=` frontend image, so it builds the heredoc-free copy (Dockerfile.buildah, checked current by
# buildah.sh's rule) with any `# syntax=` line stripped. A reset is `docker builder prune -af` (layer cache and
# RUN cache mounts) plus removal of every image (the built one and the pulled base).
#
# The image digest of the repro scenario is the image ID (the config digest): dockerd gives a manifest digest
# only on push, and two configs with the same diff_ids and history are the same image.
#
# usage: N=3 bench/buildkit.sh           results in target/bench/buildkit{.tsv,-summary.tsv,-repro.tsv} (root)
# Sourced (bench/e2e.sh, bench/build.sh do), it only defines the functions; BUILDKIT_DOCKERFILE then names
# another Dockerfile.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# heredoc_free_current
source "$(dirname "${BASH_SOURCE[0]}")/buildah.sh"

BUILDKIT_DIR=$BENCH_OUT/buildkit
BUILDKIT_IMAGE=bench/$(basename "$BENCH_APP"):buildkit
BUILDKIT_DOCKERFILE=${BUILDKIT_DOCKERFILE:-}
BUILDKIT_PID=
BUILDKIT_RUNTIME=
REPRO_FLAGS_buildkit=()
# The docker.io client builds with BuildKit by itself; newer clients (e.g. in /usr/local/bin) want buildx.
DOCKER=${BENCH_DOCKER:-/usr/bin/docker}

buildkit_setup() {
    [[ $(id -u) == 0 ]] || die "BuildKit's dockerd needs root"
    command -v dockerd >/dev/null && [[ -x $DOCKER ]] || die "dockerd missing: apt-get install -y docker.io"
    mkdir -p "$BUILDKIT_DIR/data"
    # Short: a unix socket path must stay under 108 bytes.
    BUILDKIT_RUNTIME=$(mktemp -d /tmp/cairn-bench-dockerd.XXXXXX)
    dockerd --host "unix://$BUILDKIT_RUNTIME/docker.sock" --data-root "$BUILDKIT_DIR/data" \
        --exec-root "$BUILDKIT_RUNTIME/exec" --pidfile "$BUILDKIT_RUNTIME/docker.pid" \
        --iptables=false --bridge=none >"$BUILDKIT_DIR/dockerd.log" 2>&1 &
    BUILDKIT_PID=$!
    on_exit buildkit_teardown
    export DOCKER_HOST=unix://$BUILDKIT_RUNTIME/docker.sock DOCKER_BUILDKIT=1
    local _
    for _ in $(seq 150); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.2; done
    "$DOCKER" version >/dev/null 2>&1 || die "dockerd did not start, see $BUILDKIT_DIR/dockerd.log"
    log "dockerd $("$DOCKER" version -f '{{.Server.Version}}') with BuildKit (pid $BUILDKIT_PID)"
    if [[ -z $BUILDKIT_DOCKERFILE ]]; then
        heredoc_free_current
        BUILDKIT_DOCKERFILE=$BENCH_CTX/Dockerfile.buildah
    fi
}

buildkit_teardown() {
    if [[ -n $BUILDKIT_PID ]]; then
        kill "$BUILDKIT_PID" 2>/dev/null || true
        wait "$BUILDKIT_PID" 2>/dev/null || true
        BUILDKIT_PID=
    fi
    [[ -n $BUILDKIT_RUNTIME ]] && rm -rf "$BUILDKIT_RUNTIME"
    BUILDKIT_RUNTIME=
}

buildkit_reset() {
    "$DOCKER" builder prune -af >/dev/null
    local ids
    # One id per image: an image with two tags is listed twice, and removing it twice is an error.
    ids=$("$DOCKER" image ls -aq | sort -u)
    [[ -z $ids ]] || "$DOCKER" image rm -f $ids >/dev/null
}

# The Dockerfile BuildKit reads: the heredoc-free one without its `# syntax=` line (20.10 cannot pull it).
buildkit_dockerfile() {
    local out=$BUILDKIT_DIR/Dockerfile
    grep -v '^# *syntax=' "$BUILDKIT_DOCKERFILE" >"$out"
    echo "$out"
}

buildkit_build_cmd() {
    BENCH_CMD=("$DOCKER" build --network host --progress plain \
        --secret "id=ca,src=$BENCH_CA" \
        --build-arg "BASE_IMAGE=$BENCH_REGISTRY/library/node:22-alpine" \
        "$@" -f "$(buildkit_dockerfile)" -t "$BUILDKIT_IMAGE" "$BENCH_CTX")
}

buildkit_push_cmd() {
    BENCH_CMD=(bash -c '"$1" tag "$2" "$3" && "$1" push --quiet "$3"' push "$DOCKER" "$BUILDKIT_IMAGE" "$1")
}

buildkit_image_digest() {
    "$DOCKER" image inspect -f '{{.Id}}' "$BUILDKIT_IMAGE"
}

buildkit_diff_ids() {
    "$DOCKER" image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$BUILDKIT_IMAGE" | sed '/^$/d'
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    mkdir -p "$BENCH_OUT"
    buildkit_setup
    bench_main buildkit
fi
