#!/usr/bin/env bash
# The buildah side of the end-to-end benchmark (see bench/lib.sh for scenarios, outputs and environment).
#
# buildah 1.28 as root: --isolation chroot --runtime runc (crun fails on this host's hybrid cgroups),
# --layers (it caches nothing without), --format docker (OCI format drops HEALTHCHECK), its own storage via
# CONTAINERS_STORAGE_CONF and its own TMPDIR (where it keeps RUN --mount=type=cache directories), the CA as a
# build secret. It builds Dockerfile.buildah, the app's Dockerfile with the heredoc turned into printf
# (buildah 1.28 cannot read heredocs); the script checks that file is current.
#
# usage: N=3 bench/buildah.sh            results in target/bench/buildah{.tsv,-summary.tsv,-repro.tsv}
# Sourced (bench/build.sh does), it only defines the functions; BUILDAH_DOCKERFILE then names another
# Dockerfile (one without heredocs, so it needs no buildah copy).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILDAH_DIR=$BENCH_OUT/buildah
BUILDAH_IMAGE=localhost/bench/$(basename "$BENCH_APP"):buildah
# Peers' finding: --timestamp 0 with --format docker still differs (random container id and hostname in the
# config); the scenario measures exactly the benchmark's configuration.
REPRO_FLAGS_buildah=(--timestamp 0)

BUILDAH_DOCKERFILE=${BUILDAH_DOCKERFILE:-}
export CONTAINERS_STORAGE_CONF=$BUILDAH_DIR/storage.conf

buildah_setup() {
    command -v buildah >/dev/null || die "buildah missing: apt-get install -y buildah runc"
    mkdir -p "$BUILDAH_DIR/tmp"
    cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$BUILDAH_DIR/root"
runroot = "$BUILDAH_DIR/run"
CONF
    log "$(buildah --version)"
    if [[ -z $BUILDAH_DOCKERFILE ]]; then heredoc_free_current; fi
}

# The app's Dockerfile.buildah (read by buildah 1.28 and by 20.10's BuildKit, neither of which reads
# heredocs) must be what bench/unheredoc.py makes of its Dockerfile.
heredoc_free_current() {
    local generated
    generated=$(mktemp)
    python3 "$BENCH_ROOT/bench/unheredoc.py" "$BENCH_APP/Dockerfile" "$generated"
    cmp -s "$generated" "$BENCH_APP/Dockerfile.buildah" ||
        die "$BENCH_APP/Dockerfile.buildah is stale: run bench/unheredoc.py Dockerfile Dockerfile.buildah there"
    rm -f "$generated"
}

buildah_reset() {
    if [[ -d $BUILDAH_DIR/root ]]; then
        buildah rm --all >/dev/null 2>&1 || true
        buildah rmi --all --force >/dev/null 2>&1 || true
        local mnt
        # Leftover overlay mounts would make rm fail; unmount the deepest first.
        for mnt in $(findmnt -rn -o TARGET | grep -F "$BUILDAH_DIR/" | sort -r); do
            umount "$mnt" || die "cannot unmount $mnt"
        done
    fi
    rm -rf "$BUILDAH_DIR/root" "$BUILDAH_DIR/run" "$BUILDAH_DIR/tmp"
    mkdir -p "$BUILDAH_DIR/tmp"
}

buildah_build_cmd() {
    BENCH_CMD=(env "TMPDIR=$BUILDAH_DIR/tmp" buildah bud --isolation chroot --runtime runc --layers --format docker --tls-verify=false \
        --secret "id=ca,src=$BENCH_CA" \
        --build-arg "BASE_IMAGE=$BENCH_REGISTRY/library/node:22-alpine" \
        "$@" -f "${BUILDAH_DOCKERFILE:-$BENCH_CTX/Dockerfile.buildah}" -t "$BUILDAH_IMAGE" "$BENCH_CTX")
}

buildah_push_cmd() {
    BENCH_CMD=(buildah push --tls-verify=false "$BUILDAH_IMAGE" "docker://$1")
}

buildah_image_digest() {
    buildah inspect --type image --format '{{.FromImageDigest}}' "$BUILDAH_IMAGE"
}

buildah_diff_ids() {
    buildah inspect --type image --format '{{range .OCIv1.RootFS.DiffIDs}}{{println .}}{{end}}' "$BUILDAH_IMAGE" |
        sed '/^$/d'
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    mkdir -p "$BENCH_OUT"
    buildah_setup
    bench_main buildah
fi
