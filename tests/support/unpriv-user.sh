#!/usr/bin/env bash
# Create the unprivileged test user for the rootless sandbox tests (run as root;
# CI calls it before `just test`). Idempotent.
#   user:  cairn-unpriv (uid/gid 2345), no login shell, home /home/cairn-unpriv
#   ids:   /etc/subuid and /etc/subgid  cairn-unpriv:400000:65536  (exactly one range:
#          shadow's tools and cairn use the FIRST matching line, so drop others)
# The tests find it by name (CAIRN_UNPRIV_USER overrides) and skip loudly if absent.
set -euo pipefail
user=${CAIRN_UNPRIV_USER:-cairn-unpriv}
uid=${CAIRN_UNPRIV_UID:-2345}
start=${CAIRN_UNPRIV_SUBID:-400000}
count=65536

if [ "$(id -u)" != 0 ]; then
  echo "unpriv-user.sh: must run as root" >&2; exit 1
fi
command -v newuidmap >/dev/null || { apt-get update -qq && apt-get install -y -qq uidmap >/dev/null; }
if ! id -u "$user" >/dev/null 2>&1; then
  # --no-user-group would leave the gid at 100; keep uid = gid for readable tests.
  groupadd --gid "$uid" "$user"
  useradd --uid "$uid" --gid "$uid" --create-home --shell /usr/sbin/nologin "$user"
fi
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  grep -v "^$user:" "$f" > "$f.cairn-tmp" || true
  echo "$user:$start:$count" >> "$f.cairn-tmp"
  cat "$f.cairn-tmp" > "$f"; rm -f "$f.cairn-tmp"
done
echo "unpriv-user.sh: $user ($(id -u "$user")) with subordinate ids $start+$count"
