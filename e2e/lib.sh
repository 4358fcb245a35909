# Shared parts of e2e/run.sh and e2e/demo.sh (sourced, not run).
#
# Everything a script starts (registry, containers) is registered with `on_exit` and stopped by the EXIT
# trap, on success and on failure alike. State lives under $E2E_OUT (default target/e2e).
#
# Environment:
#   CAIRN            the cairn binary (default: `cargo build --bin cairn`, then $CARGO_TARGET_DIR/debug/cairn)
#   CAIRN_DIFF       a cairn that has `cairn diff` (default: $CAIRN)
#   E2E_OUT          state and logs (default target/e2e)
#   E2E_BASE_OCI     the node:22-alpine stand-in layout (default target/fixtures/node-alpine/oci, built by
#                    `just fixtures` when missing)
#   E2E_CA           the CA bundle given to RUN steps as secret `ca` (default /etc/ssl/certs/ca-certificates.crt)

set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$E2E_ROOT/e2e/registry.sh"
E2E_OUT=${E2E_OUT:-$E2E_ROOT/target/e2e}
E2E_BASE_OCI=${E2E_BASE_OCI:-$E2E_ROOT/target/fixtures/node-alpine/oci}
E2E_CA=${E2E_CA:-/etc/ssl/certs/ca-certificates.crt}
E2E_T0=$(date +%s.%N)
REGISTRY=
REGISTRY_PID=
PODMAN=()
E2E_CLEANUP=()

log() { printf '[%s %6.1fs] %s\n' "${E2E_NAME:-e2e}" "$(elapsed "$E2E_T0")" "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# on_exit CMD...: run CMD (a single shell word list) when the script exits, last registered first.
on_exit() { E2E_CLEANUP+=("$*"); }
run_cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    for ((i = ${#E2E_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${E2E_CLEANUP[$i]}" >/dev/null 2>&1 || true
    done
    exit "$status"
}
trap run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timed LABEL LOGFILE CMD...: run CMD with its output appended to LOGFILE, print how long it took; on failure
# show the end of the log and stop.
timed() {
    local label=$1 logf=$2 t0
    shift 2
    t0=$(date +%s.%N)
    log "$label ..."
    printf '\n$ %s\n' "$*" >>"$logf"
    if ! "$@" >>"$logf" 2>&1; then
        tail -n 40 "$logf" | sed 's/^/    | /' >&2
        die "$label (after $(elapsed "$t0") s; full log: $logf)"
    fi
    log "$label: $(elapsed "$t0") s"
}

need() {
    local bin
    for bin in "$@"; do
        command -v "$bin" >/dev/null 2>&1 || die "$bin is missing (just demo installs it; or apt-get install it)"
    done
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cairn_bin() {
    if [[ -n ${CAIRN:-} ]]; then
        [[ -x $CAIRN ]] || die "CAIRN=$CAIRN is not executable"
        return
    fi
    timed "cargo build --bin cairn" "$E2E_OUT/cargo.log" cargo build --manifest-path "$E2E_ROOT/Cargo.toml" --bin cairn
    CAIRN=${CARGO_TARGET_DIR:-$E2E_ROOT/target}/debug/cairn
}

# cairn diff is the tool that explains a digest difference: without it the comparison cannot be checked.
require_diff() {
    CAIRN_DIFF=${CAIRN_DIFF:-$CAIRN}
    if ! "$CAIRN_DIFF" diff --help 2>/dev/null | grep -q '<A>'; then
        die "this cairn has no 'cairn diff A B' (needed to explain digest differences): build a cairn that has it"
    fi
}

base_fixture() {
    if [[ $E2E_BASE_OCI == "$E2E_ROOT/target/fixtures/node-alpine/oci" ]]; then
        # built once, rebuilt when its pinned digests change (a no-op otherwise)
        timed "build the node:22-alpine stand-in (just fixtures)" "$E2E_OUT/fixtures.log" \
            just --justfile "$E2E_ROOT/justfile" --working-directory "$E2E_ROOT" fixtures
    elif [[ ! -f $E2E_BASE_OCI/index.json ]]; then
        die "E2E_BASE_OCI=$E2E_BASE_OCI has no index.json"
    fi
}

# registry_up DIR: a loopback registry with its state in DIR, stopped on exit.
registry_up() {
    local dir=$1
    registry_start "$dir" || die "no registry (see above)"
    on_exit "registry_stop $REGISTRY_PID"
    REGISTRY=$REGISTRY_ADDR
    log "registry $REGISTRY (pid $REGISTRY_PID, state in $dir)"
}

push_base() {
    timed "push the base: cairn push oci:…:22-alpine $REGISTRY/library/node:22-alpine" "$E2E_OUT/base.log" \
        "$CAIRN" push --progress plain --insecure-registry "$REGISTRY" "oci:$E2E_BASE_OCI:22-alpine" \
        "$REGISTRY/library/node:22-alpine"
}

# podman_setup DIR: podman with its own storage under DIR (runc: crun fails on this kernel's cgroup setup).
podman_setup() {
    local dir=$1 run
    # podman refuses a runroot longer than 50 characters: that one goes to /tmp.
    run=$(mktemp -d /tmp/cairn-e2e-run.XXXXXX)
    on_exit "rm -rf $run"
    mkdir -p "$dir/root" "$dir/tmp"
    PODMAN=(podman --root "$dir/root" --runroot "$run" --tmpdir "$dir/tmp" --storage-driver overlay
        --runtime runc --cgroup-manager cgroupfs --events-backend file)
    on_exit "${PODMAN[*]} rm -af -t 0"
}

# health_check NAME IMAGE LOGFILE: start IMAGE on a free port (host network, PORT in the environment),
# expect GET /api/health -> 200 {"status":"healthy"} within 90 s, then stop it.
health_check() {
    local name=$1 image=$2 logf=$3 port body code t0 i
    port=$(free_port)
    t0=$(date +%s.%N)
    "${PODMAN[@]}" run -d --name "$name" --network host --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
        -e "PORT=$port" "$image" >>"$logf" 2>&1 || die "podman run $image failed, see $logf"
    on_exit "${PODMAN[*]} rm -f -t 0 $name"
    code=
    for i in $(seq 180); do
        code=$(curl -s -o "$E2E_OUT/health.body" -w '%{http_code}' "http://127.0.0.1:$port/api/health" 2>/dev/null) &&
            [[ $code == 200 ]] && break
        if [[ $("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
            "${PODMAN[@]}" logs "$name" >>"$logf" 2>&1 || true
            tail -n 20 "$logf" | sed 's/^/    | /' >&2
            die "container $name exited before answering /api/health"
        fi
        sleep 0.5
    done
    body=$(cat "$E2E_OUT/health.body" 2>/dev/null || true)
    "${PODMAN[@]}" logs "$name" >>"$logf" 2>&1 || true
    "${PODMAN[@]}" rm -f -t 2 "$name" >>"$logf" 2>&1 || true
    [[ $code == 200 ]] || die "GET /api/health on $image: HTTP ${code:-none} after $(elapsed "$t0") s, see $logf"
    [[ $body == '{"status":"healthy"}' ]] || die "GET /api/health on $image answered '$body'"
    log "run $image: GET /api/health -> 200 $body after $(elapsed "$t0") s; stopped"
}

# A private copy of an app (its node_modules, .next, dist left out).
copy_app() {
    local src=$1 dst=$2
    rm -rf "$dst" && mkdir -p "$dst"
    tar -C "$src" --exclude=node_modules --exclude=./.next --exclude=dist -cf - . | tar -C "$dst" -xf -
}
