#!/usr/bin/env bash
# What the rootless tests need (`just test-user`, part of `just test`):
#   as root: the unprivileged test user cairn-unpriv with its subordinate ids (unpriv-user.sh; idempotent) — the
#            tests build as root and as that user and compare digests;
#   as another user: a subordinate id range of your own in /etc/subuid and /etc/subgid, and newuidmap — the
#            tests then build as you; without them this says exactly what to run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
    "$here/unpriv-user.sh"
    # That user runs the built binaries and reads the stand-in inside this checkout, so every directory above it
    # must be traversable (o+x: entering, not listing). A clone under /root (0700) is not, until this.
    d=$(cd "$here/../.." && pwd)
    while [ "$d" != / ]; do
        if [ "$(( 0$(stat -c %a "$d") & 1 ))" = 0 ]; then
            chmod o+x "$d" && echo "test-user.sh: chmod o+x $d (so cairn-unpriv can reach the checkout)" >&2
        fi
        d=$(dirname "$d")
    done
    exit 0
fi
me=$(id -un); uid=$(id -u)
has_range() { grep -qE "^($me|$uid):[0-9]+:[0-9]+" "$1" 2>/dev/null; }
if has_range /etc/subuid && has_range /etc/subgid && command -v newuidmap >/dev/null 2>&1; then
    echo "test-user.sh: the rootless tests run as $me ($(grep -E "^($me|$uid):" /etc/subuid | head -n1))" >&2
    exit 0
fi
echo "test-user.sh: the rootless tests need a subordinate id range for $me and newuidmap; run:" >&2
echo "    sudo apt-get install -y uidmap && sudo usermod --add-subuids 200000-265535 --add-subgids 200000-265535 $me" >&2
echo "  (or run just test as root, which creates the test user cairn-unpriv itself)" >&2
exit 1
