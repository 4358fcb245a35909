#!/usr/bin/env bash
# End-to-end proof on the reference apps (issue #8): for each app
#   1. a loopback registry (state under target/e2e/APP/registry) holding the node:22-alpine stand-in;
#   2. `cairn build` with npm fetching from the npm registry inside RUN (cache mount, the CA as secret `ca`),
#      pushed to the registry (and written as a docker-archive);
#   3. read back by other tools: `skopeo inspect` (same digest) and `skopeo copy` + `umoci unpack`;
#   4. the image started with podman (runc) and GET /api/health -> 200 {"status":"healthy"};
#   5. a rebuild from a copy of the app in another directory with a fresh cache: same digest, or every
#      difference named by `cairn diff` and listed in e2e/expected/APP.tsv with the reason; others fail;
#   6. both builds attach an SBOM (`--sbom`); the first one's package list is checked against what `apk info -v`,
#      `npm ls --all --json` (each project it names, and `-g`), `node --version` and `yarn --version` report
#      inside the image (run with `cairn run`): every difference explained in e2e/sbom_check.py (issue #17).
# Each step prints its time; everything started is stopped on exit (also on failure).
#
# usage: e2e/run.sh [APP[:TARGET]...]   default: every app (APP is a directory of testdata/apps)
# env: see e2e/lib.sh. State and logs: $E2E_OUT/APP[-TARGET]/ (kept; removed when that app runs again).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# app|Dockerfile (relative to the app)|target|a file the image must hold (checked in the umoci bundle)
APPS=(
    "nextjs-3stage|Dockerfile||srv/app/.next/BUILD_ID"
    "nextjs-standalone|Dockerfile||app/server.js"
    "monorepo-backend|apps/backend/Dockerfile||repo/apps/backend/dist/server.js"
    "turborepo-web|apps/web/Dockerfile||app/apps/web/server.js"
    "unified-targets|Dockerfile|api-production|workspace/apps/api/dist/server.js"
    "unified-targets|Dockerfile|web-production|srv/web/server.mjs"
)

# build_app LABEL CONTEXT DOCKERFILE TARGET CACHE_DIR TAG LOG EXTRA...: prints nothing, sets BUILT_DIGEST.
build_app() {
    local label=$1 ctx=$2 file=$3 target=$4 cache=$5 tag=$6 logf=$7 meta
    shift 7
    meta=$(mktemp)
    local args=(build "$ctx" -f "$ctx/$file" -t "$tag" --push --progress plain
        --insecure-registry "$REGISTRY" --cache-dir "$cache"
        --build-arg "BASE_IMAGE=$REGISTRY/library/node:22-alpine"
        --secret "id=ca,src=$E2E_CA" --metadata-file "$meta" "$@")
    [[ -n $target ]] && args+=(--target "$target")
    timed "$label" "$logf" "$CAIRN" "${args[@]}"
    BUILT_DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$meta")
    rm -f "$meta"
    log "$label: $tag@$BUILT_DIGEST"
}

# check_sbom APP REF DIR: the SBOM attached to REF against the tools inside the image (see e2e/sbom_check.py);
# what was collected stays in DIR/sbom.
check_sbom() {
    local app=$1 ref=$2 out=$3/sbom project t0
    local run=("$CAIRN" run --insecure-registry "$REGISTRY" --cache-dir "$3/cache-a" --network none
        --progress plain)
    t0=$(date +%s.%N)
    mkdir -p "$out"
    log "SBOM against apk, npm, node and yarn in the image ..."
    into() {
        local f=$1
        shift
        printf '\n$ %s > %s\n' "$*" "$f" >>"$logf"
        "$@" >"$f" 2>>"$logf" || [[ ${ALLOW_EXIT:-} == 1 ]] || die "$* failed (see $logf)"
    }
    into "$out/sbom.spdx.json" "$CAIRN" sbom --insecure-registry "$REGISTRY" --cache-dir "$3/cache-a" "$ref"
    into "$out/apk-info.txt" "${run[@]}" --entrypoint apk "$ref" info -v
    into "$out/node-version.txt" "${run[@]}" --entrypoint node "$ref" -- --version
    into "$out/yarn-version.txt" "${run[@]}" --entrypoint yarn "$ref" -- --version
    # npm ls exits 1 when a tree has missing (e.g. dev) dependencies; its JSON is still the tree.
    ALLOW_EXIT=1 into "$out/npm-ls-global.json" "${run[@]}" --entrypoint npm "$ref" ls -g --all --json
    # The projects the SBOM names (a package.json beside node_modules or a lockfile), outside npm's and yarn's.
    # --include=dev: with NODE_ENV=production (the apps' runtime) npm ls hides installed devDependencies.
    while read -r project; do
        ALLOW_EXIT=1 into "$out/npm-ls.${project//\//_}.json" "${run[@]}" --entrypoint npm -w "$project" "$ref" \
            ls --all --json --include=dev
    done < <(python3 -c '
import json, sys
for p in json.load(open(sys.argv[1]))["packages"]:
    where = (p.get("comment") or "").split(";")[0].removeprefix("found in ")
    if p.get("primaryPackagePurpose") == "APPLICATION" and where.endswith("/package.json") \
            and not where.startswith(("/usr/local/lib/node_modules/", "/opt/yarn-v")):
        print(where.removesuffix("/package.json"))' "$out/sbom.spdx.json")
    python3 "$E2E_ROOT/e2e/sbom_check.py" "$app" "$out" >"$out/report.txt" 2>&1 || {
        sed 's/^/    | /' "$out/report.txt" >&2
        die "the SBOM of $ref does not match what the tools in the image report (see $out/report.txt)"
    }
    cat "$out/report.txt" >>"$logf"
    log "SBOM matches apk, npm, node and yarn in the image ($(grep -c '^  explained' "$out/report.txt") explained difference(s)): $(elapsed "$t0") s"
}

run_app() {
    local app=$1 file=$2 target=$3 probe=$4 name dir src logf ref_a ref_b digest_a digest_b remote t_app
    name=$app${target:+-$target}
    dir=$E2E_OUT/$name
    src=$E2E_ROOT/testdata/apps/$app
    logf=$dir/e2e.log
    t_app=$(date +%s.%N)
    E2E_NAME=$name
    rm -rf "$dir" && mkdir -p "$dir"
    : >"$logf"
    log "=== $name (log: $logf)"

    registry_up "$dir/registry"
    push_base
    ref_a=$REGISTRY/e2e/$name:a
    ref_b=$REGISTRY/e2e/$name:b

    # 1. the build, pushed, and kept as a docker-archive for podman.
    build_app "cairn build (cold, npm fetching inside RUN) + push" "$src" "$file" "$target" "$dir/cache-a" \
        "$ref_a" "$logf" --sbom -o "type=docker-archive,dest=$dir/a.tar"
    digest_a=$BUILT_DIGEST
    check_sbom "$app" "$ref_a" "$dir"

    # 2. other tools read it back.
    timed "skopeo inspect" "$logf" skopeo inspect --tls-verify=false "docker://$ref_a"
    remote=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref_a")
    [[ $remote == "$digest_a" ]] || die "skopeo sees $remote at $ref_a, cairn pushed $digest_a"
    timed "skopeo copy to an OCI layout" "$logf" \
        skopeo copy --quiet --src-tls-verify=false "docker://$ref_a" "oci:$dir/skopeo-oci:a"
    timed "umoci unpack" "$logf" umoci unpack --image "$dir/skopeo-oci:a" "$dir/bundle"
    [[ -e $dir/bundle/rootfs/$probe ]] || die "umoci unpacked $ref_a but /$probe is missing"
    log "umoci: /$probe present; runtime user $(python3 -c 'import json, sys; u = json.load(open(sys.argv[1]))["process"]["user"]; print(u["uid"], u["gid"], sep=":")' "$dir/bundle/config.json")"
    rm -rf "$dir/bundle" "$dir/skopeo-oci"

    # 3. start it: podman pulls it from the registry (the docker-archive is checked to load as well).
    podman_setup "$dir/podman"
    timed "podman pull from the registry" "$logf" "${PODMAN[@]}" pull --tls-verify=false "$ref_a"
    timed "podman load of the docker-archive" "$logf" "${PODMAN[@]}" load -i "$dir/a.tar"
    health_check "e2e-$name-$$" "$ref_a" "$logf"
    rm -f "$dir/a.tar"

    # 4. the same build in another directory, with a fresh cache: same digest, or explained differences.
    copy_app "$src" "$dir/copy"
    build_app "cairn build from a copy, fresh cache" "$dir/copy" "$file" "$target" "$dir/cache-b" \
        "$ref_b" "$logf" --sbom
    digest_b=$BUILT_DIGEST
    if [[ $digest_a == "$digest_b" ]]; then
        log "reproducible: both builds are $digest_a"
        "$CAIRN_DIFF" diff --insecure-registry "$REGISTRY" "$ref_a" "$ref_b" >>"$logf" 2>&1 ||
            die "same digest, but cairn diff does not say identical (see $logf)"
    else
        log "digests differ: $digest_a vs $digest_b; cairn diff:"
        local status=0
        "$CAIRN_DIFF" diff --json --files --insecure-registry "$REGISTRY" "$ref_a" "$ref_b" >"$dir/diff.json" \
            2>>"$logf" || status=$?
        [[ $status == 1 ]] || die "cairn diff exited $status (expected 1: different), see $logf"
        "$CAIRN_DIFF" diff --files --insecure-registry "$REGISTRY" "$ref_a" "$ref_b" >"$dir/diff.txt" 2>&1 || true
        if ! python3 "$E2E_ROOT/e2e/explain.py" "$dir/diff.json" "$E2E_ROOT/e2e/expected/$app.tsv" | tee -a "$logf" >&2; then
            die "unexpected differences between two builds of $name (report: $dir/diff.txt, $dir/diff.json)"
        fi
        log "not bit-for-bit reproducible, for the expected reasons above (e2e/expected/$app.tsv)"
    fi
    # Caches, podman storage and the copy stay for inspection (deleting ~1 GB of small files takes minutes on a
    # busy disk); the next run of this app removes them first.
    log "=== $name passed in $(elapsed "$t_app") s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$digest_a" "$digest_b" "$(elapsed "$t_app")" >>"$E2E_OUT/summary.tsv"
    # Stop this app's registry and containers now; the next app starts its own.
    run_app_cleanup
}

run_app_cleanup() {
    local i
    for ((i = ${#E2E_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${E2E_CLEANUP[$i]}" >/dev/null 2>&1 || true
    done
    E2E_CLEANUP=()
}

main() {
    need docker-registry skopeo umoci podman runc curl python3
    mkdir -p "$E2E_OUT"
    cairn_bin
    require_diff
    base_fixture
    printf 'app\tdigest_a\tdigest_b\tseconds\n' >"$E2E_OUT/summary.tsv"
    local entry app file target probe selected=0
    for entry in "${APPS[@]}"; do
        IFS='|' read -r app file target probe <<<"$entry"
        if [[ $# -gt 0 && " $* " != *" $app "* && " $* " != *" $app:$target "* ]]; then
            continue
        fi
        selected=1
        run_app "$app" "$file" "$target" "$probe"
    done
    [[ $selected == 1 ]] || die "no app matches: $* (apps: testdata/apps/*, e.g. nextjs-3stage or unified-targets:api-production)"
    E2E_NAME=e2e
    log "all passed:"
    column -t -s $'\t' "$E2E_OUT/summary.tsv" >&2
}

main "$@"
