#!/usr/bin/env bash
# binfmt.sh [ARCH...]: let this machine RUN foreign-architecture binaries (default: aarch64), for cairn's
# multi-platform tests and benchmarks. As root: installs qemu-user-static when missing, mounts binfmt_misc and
# registers each qemu-ARCH interpreter from /usr/share/binfmts with the F flag (the kernel opens the interpreter
# once, at registration, so it also works inside cairn's RUN sandbox, whose rootfs has no /usr/bin/qemu-*).
# An entry already registered with F is kept; one without F is re-registered. Idempotent.
# Not root: prints what `cairn doctor` sees and the command to run, and fails when an interpreter is missing.
set -euo pipefail
archs=("$@"); [ ${#archs[@]} -gt 0 ] || archs=(aarch64)
B=/proc/sys/fs/binfmt_misc
ok() { [ -f "$B/qemu-$1" ] && grep -q '^enabled' "$B/qemu-$1" && grep -q '^flags:.*F' "$B/qemu-$1"; }
missing=(); for a in "${archs[@]}"; do ok "$a" || missing+=("$a"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "binfmt.sh: no F-flag binfmt_misc handler for: ${missing[*]}; run as root: sudo $0 ${archs[*]}" >&2
    exit 1
fi
if [ ! -f /usr/share/binfmts/qemu-"${missing[0]}" ]; then
    echo "binfmt.sh: apt-get install qemu-user-static" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq qemu-user-static >/dev/null
fi
[ -f "$B/register" ] || mount -t binfmt_misc binfmt_misc "$B"
for a in "${missing[@]}"; do
    spec=/usr/share/binfmts/qemu-$a
    [ -f "$spec" ] || { echo "binfmt.sh: $spec is missing (qemu-user-static has no $a)" >&2; exit 1; }
    field() { sed -n "s/^$1 //p" "$spec"; }
    interp=$(readlink -f "$(field interpreter)")
    [ -x "$interp" ] || { echo "binfmt.sh: interpreter $interp of $spec is missing" >&2; exit 1; }
    [ -f "$B/qemu-$a" ] && echo -1 > "$B/qemu-$a"   # registered without F: replace it
    flags=F; [ "$(field preserve)" = yes ] && flags=PF
    printf ':qemu-%s:M:%s:%s:%s:%s:%s' "$a" "$(field offset)" "$(field magic)" "$(field mask)" "$interp" "$flags" > "$B/register"
    ok "$a" || { echo "binfmt.sh: registering qemu-$a failed" >&2; exit 1; }
    echo "binfmt.sh: registered qemu-$a ($interp, flags $flags)" >&2
done
