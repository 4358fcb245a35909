#!/usr/bin/env bash
# `just demo`: cairn on a real Next.js app, start to finish, on a fresh Debian machine.
#   1. installs what is missing (Debian packages, checked with `command -v`), builds cairn;
#   2. builds the node:22-alpine stand-in (offline) and starts a loopback registry holding it;
#   3. builds testdata/apps/nextjs-3stage with progress bars (plain text when not on a terminal), npm fetching
#      inside RUN, and pushes it;
#   4. edits one line of a page (in a copy under target/demo/), rebuilds: the cache hits show;
#   5. prints `cairn diff` of the two images: which step changed, why, and which files;
#   6. stops what it started.
# CAIRN_DEMO_BASE=docker.io/library/node:22-alpine uses that base instead of the stand-in (needs the internet).
E2E_NAME=demo
E2E_OUT=${E2E_OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/demo}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APP=$E2E_ROOT/testdata/apps/nextjs-3stage
EDIT_FILE=app/page.tsx

install_missing() {
    timed "Debian packages (tests/support/system-deps.sh)" "$E2E_OUT/apt.log" "$E2E_ROOT/tests/support/system-deps.sh"
    command -v cargo >/dev/null 2>&1 ||
        die "cargo is missing: install Rust (https://rustup.rs, or apt-get install cargo) and run just demo again"
}

# The terminal gets progress bars; a log or a pipe gets plain lines (which also name every cache hit).
progress_mode() { if [[ -t 2 ]]; then echo tty; else echo plain; fi; }

# build LABEL CONTEXT TAG LAYOUT: cairn build on the terminal, pushed to TAG and written to the OCI layout
# LAYOUT (which also keeps cairn's build record for `cairn diff`), timed; sets BUILT_DIGEST.
build() {
    local label=$1 ctx=$2 tag=$3 layout=$4 t0 meta
    meta=$E2E_OUT/meta.json
    log "$label"
    printf '\n  $ cairn build %s -t %s --push -o type=oci,dest=%s,tar=false --progress %s --build-arg BASE_IMAGE=%s --secret id=ca,src=%s\n\n' \
        "${ctx#"$E2E_ROOT"/}" "$tag" "${layout#"$E2E_ROOT"/}" "$(progress_mode)" "$BASE" "$E2E_CA" >&2
    t0=$(date +%s.%N)
    "$CAIRN" build "$ctx" -t "$tag" --push -o "type=oci,dest=$layout,tar=false" --progress "$(progress_mode)" \
        --insecure-registry "$REGISTRY" --cache-dir "$E2E_OUT/cache" --build-arg "BASE_IMAGE=$BASE" \
        --secret "id=ca,src=$E2E_CA" --metadata-file "$meta" >"$E2E_OUT/digest" || die "$label failed"
    BUILT_DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$meta")
    log "$label: $(elapsed "$t0") s -> $tag@$BUILT_DIGEST"
}

edit_one_line() {
    python3 - "$1" <<'EOF'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
marker = "<h1>"
if marker not in text:
    sys.exit(f"{path}: no {marker} line to edit")
open(path, "w", encoding="utf-8").write(text.replace(marker, "<h1>[edited by just demo] ", 1))
EOF
}

main() {
    local t_demo ctx digest1 digest2 status
    t_demo=$(date +%s.%N)
    rm -rf "$E2E_OUT" && mkdir -p "$E2E_OUT"
    install_missing
    cairn_bin
    require_diff

    registry_up "$E2E_OUT/registry"
    if [[ -n ${CAIRN_DEMO_BASE:-} ]]; then
        BASE=$CAIRN_DEMO_BASE
        log "base image: $BASE (CAIRN_DEMO_BASE; pulled by cairn from its registry)"
    else
        base_fixture
        push_base
        BASE=$REGISTRY/library/node:22-alpine
    fi

    ctx=$E2E_OUT/nextjs-3stage
    copy_app "$APP" "$ctx"
    build "1/3 cold build of nextjs-3stage (npm ci and next build run inside the sandbox)" "$ctx" \
        "$REGISTRY/demo/nextjs-3stage:v1" "$E2E_OUT/v1"
    digest1=$BUILT_DIGEST

    edit_one_line "$ctx/$EDIT_FILE"
    log "2/3 edited one line of $EDIT_FILE:"
    diff -u "$APP/$EDIT_FILE" "$ctx/$EDIT_FILE" | sed 's/^/    /' >&2 || true
    build "2/3 rebuild after the edit (deps and base steps are cache hits)" "$ctx" "$REGISTRY/demo/nextjs-3stage:v2" \
        "$E2E_OUT/v2"
    digest2=$BUILT_DIGEST

    # The OCI layouts hold the same images as the registry plus cairn's build records, so the diff can name
    # the step and the input that changed, not only the files.
    log "3/3 cairn diff oci:${E2E_OUT#"$E2E_ROOT"/}/v1 oci:${E2E_OUT#"$E2E_ROOT"/}/v2 (= $REGISTRY/demo/nextjs-3stage:v1 and :v2)"
    printf '\n' >&2
    status=0
    "$CAIRN_DIFF" diff "oci:$E2E_OUT/v1" "oci:$E2E_OUT/v2" || status=$?
    printf '\n' >&2
    [[ $status == 1 ]] || die "cairn diff exited $status (expected 1: the images differ)"
    [[ $digest1 != "$digest2" ]] || die "the edit did not change the image"
    log "done in $(elapsed "$t_demo") s; stopping the registry (state and cache stay in ${E2E_OUT#"$E2E_ROOT"/})"
}

main "$@"
