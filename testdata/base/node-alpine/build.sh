#!/usr/bin/env bash
# build.sh OUT: the offline node:22-alpine stand-in as an OCI layout at OUT/oci, built by cairn (README.md here).
#   1. prepare.py fills OUT/ctx from pinned downloads (cached in $CAIRN_FIXTURE_CACHE, default OUT/dl);
#   2. `cairn build` of the Dockerfile here (linux/amd64) and of arm64-placeholder/ (linux/arm64/v8), each on a
#      fresh cache, at the stand-in's fixed epoch;
#   3. assemble.py joins them: tags 22-alpine (image) and 22-alpine-multi (index);
#   4. the digests must equal the ones pinned in ./digests (CAIRN_BLESS=1 rewrites the pins, on purpose).
# $CAIRN: the cairn binary (default: target/debug/cairn of this checkout, built here if missing).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
base_init "$0" "$@"
T0=$(date +%s)

for tool in python3 qemu-img debugfs patchelf strip npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is missing: run tests/support/system-deps.sh as root (just deps does)" >&2; exit 1; }
done
python3 -m pip --version >/dev/null 2>&1 || { echo "build.sh: pip is missing: apt-get install python3-pip (just deps does)" >&2; exit 1; }

python3 "$HERE/prepare.py" "$OUT/ctx" "$DL"
cp "$HERE/docker-entrypoint.sh" "$OUT/ctx/"

rm -rf "$OUT/build" "$OUT/oci"
build() {   # build CONTEXT DOCKERFILE PLATFORM NAME
    "$CAIRN" build "$1" -f "$2" --platform "$3" --source-date-epoch "$EPOCH" --cache-dir "$OUT/build/cache-$4" \
        --progress plain -o "type=oci,dest=$OUT/build/$4,tar=false" >/dev/null 2>"$OUT/build/$4.log" ||
        { echo "build.sh: cairn build of $2 failed:" >&2; cat "$OUT/build/$4.log" >&2; exit 1; }
}
mkdir -p "$OUT/build"
build "$OUT/ctx" "$HERE/Dockerfile" linux/amd64 amd64
build "$HERE/arm64-placeholder" "$HERE/arm64-placeholder/Dockerfile" linux/arm64/v8 arm64
python3 "$HERE/assemble.py" "$OUT/build/amd64" "$OUT/build/arm64" "$OUT/oci" > "$OUT/digests"
rm -rf "$OUT/build"

base_pins
echo "build.sh: $OUT/oci ($(tr '\n' ' ' < "$OUT/digests")) in $(( $(date +%s) - T0 )) s" >&2
