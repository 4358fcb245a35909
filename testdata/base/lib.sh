# What every testdata/base/NAME/build.sh shares (sourced, after `set -euo pipefail`).
#   base_init "$0" "$@"   checks the one argument OUT and sets HERE (the base's folder), ROOT (the checkout), OUT,
#                         DL (download cache: $CAIRN_FIXTURE_CACHE or OUT/dl), EPOCH (every base's one time) and
#                         CAIRN (the binary: $CAIRN, else target/debug/cairn, built when missing)
#   base_pins             OUT/digests must equal HERE/digests: a base that builds to other digests is not
#                         reproducible here, or changed on purpose (CAIRN_BLESS=1 re-pins; say why in the commit)
base_init() {
    [ $# -eq 2 ] || { echo "usage: $1 OUT" >&2; exit 2; }
    HERE=$(cd "$(dirname "$1")" && pwd)
    ROOT=$(cd "$HERE/../../.." && pwd)
    mkdir -p "$2"; OUT=$(cd "$2" && pwd)
    DL=${CAIRN_FIXTURE_CACHE:-$OUT/dl}
    EPOCH=1792022400   # 2026-10-15T00:00:00Z
    CAIRN=${CAIRN:-$ROOT/target/debug/cairn}
    [ -x "$CAIRN" ] || (cd "$ROOT" && cargo build -q --bin cairn)
}

base_pins() {
    local pins=${HERE#"$ROOT"/}/digests
    if [ "${CAIRN_BLESS:-}" = 1 ]; then
        cp "$OUT/digests" "$HERE/digests"; echo "build.sh: pinned $(tr '\n' ' ' < "$HERE/digests")" >&2
    elif ! diff -u "$HERE/digests" "$OUT/digests" >&2; then
        echo "build.sh: the digests differ from $pins (above): the build is not reproducible here, or its inputs" \
            "changed on purpose (then CAIRN_BLESS=1 and say why in the commit)" >&2
        exit 1
    fi
}
