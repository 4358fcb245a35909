#!/usr/bin/env bash
# build.sh OUT: the two-platform busybox test base as an OCI layout at OUT/oci (tag `multi`: an index of linux/amd64
# and linux/arm64), built by `cairn build --platform linux/amd64,linux/arm64` of the Dockerfile here.
#   1. Debian 12's busybox-static for amd64 and arm64 (pinned version and sha256), fetched with `apt-get download`
#      into $CAIRN_FIXTURE_CACHE (default OUT/dl); the arm64 one needs `dpkg --add-architecture arm64` and an
#      `apt-get update`, done here as root (otherwise the command to run is printed);
#   2. OUT/ctx/<arch>/: bin/busybox, a symlink per applet, /tmp, /root; fixed mtimes;
#   3. the digests must equal the ones pinned in ./digests (CAIRN_BLESS=1 rewrites the pins, on purpose).
# $CAIRN: the cairn binary (default: target/debug/cairn of this checkout, built here if missing).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
base_init "$0" "$@"
VERSION=1:1.35.0-4+deb12u1+b1
declare -A SHA=(
    [amd64]=3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744
    [arm64]=732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5
)

mkdir -p "$DL"
deb() { echo "$DL/busybox-static_${VERSION//:/%3a}_$1.deb"; }
for arch in amd64 arm64; do
    f=$(deb "$arch")
    if [ -f "$f" ] && echo "${SHA[$arch]}  $f" | sha256sum -c --status; then continue; fi
    if ! { dpkg --print-architecture; dpkg --print-foreign-architectures; } | grep -qx "$arch"; then
        [ "$(id -u)" = 0 ] || { echo "build.sh: apt has no $arch packages; run as root: dpkg --add-architecture $arch && apt-get update" >&2; exit 1; }
        dpkg --add-architecture "$arch" && apt-get update -qq
    fi
    # apt-get download writes into the current directory, as _apt when it can.
    (cd "$DL" && apt-get download -q "busybox-static:$arch=$VERSION" >/dev/null 2>"$DL/apt-$arch.log") ||
        { echo "build.sh: apt-get download busybox-static:$arch=$VERSION failed (a newer Debian point release may" \
               "have replaced it: then update VERSION and the sha256 pins here, and bless):" >&2; cat "$DL/apt-$arch.log" >&2; exit 1; }
    echo "${SHA[$arch]}  $f" | sha256sum -c --status ||
        { echo "build.sh: $f does not have the pinned sha256 ${SHA[$arch]}" >&2; exit 1; }
done

rm -rf "$OUT/ctx" "$OUT/x" "$OUT/build" "$OUT/oci"
for arch in amd64 arm64; do
    mkdir -p "$OUT/x/$arch" && dpkg-deb -x "$(deb "$arch")" "$OUT/x/$arch"
    mkdir -p "$OUT/ctx/$arch/bin" "$OUT/ctx/$arch/tmp" "$OUT/ctx/$arch/root" "$OUT/ctx/$arch/etc"
    cp "$OUT/x/$arch/bin/busybox" "$OUT/ctx/$arch/bin/busybox"
done
# The applet list of whichever busybox this machine runs (both come from one source package and configuration).
list=$("$OUT/ctx/amd64/bin/busybox" --list-full 2>/dev/null || "$OUT/ctx/arm64/bin/busybox" --list-full)
for arch in amd64 arm64; do
    for applet in $list; do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$OUT/ctx/$arch/$(dirname "$applet")"
        ln -sf /bin/busybox "$OUT/ctx/$arch/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$OUT/ctx/$arch/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$OUT/ctx/$arch/etc/group"
done
chmod 1777 "$OUT/ctx"/*/tmp; chmod 0700 "$OUT/ctx"/*/root
find "$OUT/ctx" -exec touch -h -d "@$EPOCH" {} +
cp "$HERE/Dockerfile" "$OUT/ctx/Dockerfile"
rm -rf "$OUT/x"

mkdir -p "$OUT/build"
"$CAIRN" build "$OUT/ctx" --platform linux/amd64,linux/arm64 --source-date-epoch "$EPOCH" \
    --cache-dir "$OUT/build/cache" --progress plain -t busybox:multi -o "type=oci,dest=$OUT/oci,tar=false" \
    --metadata-file "$OUT/build/meta.json" >/dev/null 2>"$OUT/build/log" ||
    { echo "build.sh: cairn build failed:" >&2; cat "$OUT/build/log" >&2; exit 1; }
python3 - "$OUT/build/meta.json" > "$OUT/digests" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("multi", m["containerimage.digest"])
for d in m["containerimage.platforms"]:
    p = d["platform"]
    print(p["os"] + "/" + p["architecture"], d["digest"])
PY
rm -rf "$OUT/build"

base_pins
echo "build.sh: $OUT/oci ($(tr '\n' ' ' < "$OUT/digests"))" >&2
