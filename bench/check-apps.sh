#!/usr/bin/env bash
# Build every reference app of testdata/apps with buildah 1.28 (the peer) and check that the image serves
# /api/health with {"status":"healthy"} under podman. It checks the Dockerfiles themselves, independently of
# cairn; nothing is timed. Results: target/bench/check-apps.tsv (app target image_id health).
#
# usage: bench/check-apps.sh [APP...]      (default: every app; APP is a directory name of testdata/apps)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHECK_DIR=$BENCH_OUT/check
export CONTAINERS_STORAGE_CONF=$CHECK_DIR/storage.conf
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs --events-backend file)

# app|context (relative to the app)|Dockerfile (relative to the context)|target|port the server listens on
APPS=(
    "nextjs-3stage|.|Dockerfile.buildah||3000"
    "nextjs-standalone|.|Dockerfile||3000"
    "monorepo-backend|.|apps/backend/Dockerfile||4000"
    "unified-targets|.|Dockerfile|api-production|8080"
    "unified-targets|.|Dockerfile|web-production|8081"
)

check_one() {
    local app=$1 ctx=$2 file=$3 target=$4 port=$5 image name free body id
    image=localhost/check/$app:${target:-default}
    name=check-$app-${target:-default}-$$
    ctx=$BENCH_ROOT/testdata/apps/$app/$ctx
    log "build $app ${target:+--target $target}"
    local args=(bud --isolation chroot --runtime runc --layers --format docker --tls-verify=false
        --secret "id=ca,src=$BENCH_CA" --build-arg "BASE_IMAGE=$BENCH_REGISTRY/library/node:22-alpine"
        -f "$ctx/$file" -t "$image")
    [[ -n $target ]] && args+=(--target "$target")
    env "TMPDIR=$CHECK_DIR/tmp" buildah "${args[@]}" "$ctx" >>"$BENCH_OUT/check-apps.log" 2>&1 ||
        die "buildah failed for $app, see $BENCH_OUT/check-apps.log"
    id=$(buildah inspect --type image --format '{{.FromImageID}}' "$image")
    # The container shares the host network: move the server to a free port through PORT.
    free=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${PODMAN[@]}" run -d --name "$name" --network host --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
        -e "PORT=$free" "$image" >>"$BENCH_OUT/check-apps.log" 2>&1 || die "podman run failed for $app"
    body=
    for _ in $(seq 60); do
        body=$(curl -fsS "http://127.0.0.1:$free/api/health" 2>/dev/null) && break
        sleep 0.5
    done
    "${PODMAN[@]}" logs "$name" >>"$BENCH_OUT/check-apps.log" 2>&1 || true
    "${PODMAN[@]}" rm -f "$name" >/dev/null 2>&1 || true
    local verdict=ok
    [[ $body == '{"status":"healthy"}' ]] || verdict="FAILED (${body:-no answer})"
    printf '%s\t%s\t%s\t%s\n' "$app" "${target:--}" "$id" "$verdict" >>"$BENCH_OUT/check-apps.tsv"
    log "$app ${target}: image $id (port $port in the image): $verdict"
}

mkdir -p "$CHECK_DIR/tmp" "$BENCH_OUT"
cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$CHECK_DIR/root"
runroot = "$CHECK_DIR/run"
CONF
: >"$BENCH_OUT/check-apps.log"
printf 'app\ttarget\timage_id\thealth\n' >"$BENCH_OUT/check-apps.tsv"
registry_up
for entry in "${APPS[@]}"; do
    IFS='|' read -r app ctx file target port <<<"$entry"
    if [[ $# -gt 0 && " $* " != *" $app "* ]]; then
        continue
    fi
    check_one "$app" "$ctx" "$file" "$target" "$port"
done
column -t -s $'\t' "$BENCH_OUT/check-apps.tsv" >&2
! grep -q FAILED "$BENCH_OUT/check-apps.tsv"
