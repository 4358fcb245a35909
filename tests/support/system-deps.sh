#!/usr/bin/env bash
# The Debian packages `just test`, `just demo` and the stand-in's build use, installed when missing (`just deps`).
# As root: apt-get installs what `command -v` does not find (one `apt-get update` first). Otherwise: prints the
# one command to run and fails. Idempotent; prints nothing when everything is there.
set -euo pipefail
# command:package. The tests start a registry and read what cairn writes with skopeo/umoci/podman(runc); the
# stand-in is prepared from a VM disk (qemu-img, debugfs), patched (patchelf, strip) and downloaded by pip and npm;
# `just compat` compares with BuildKit, the one inside Debian's docker.io dockerd; arm64 RUN steps of the
# multi-platform tests run under QEMU (tests/support/binfmt.sh registers it); the `--ssh` test forwards a real
# ssh-agent (openssh-client).
pairs=(docker-registry:docker-registry skopeo:skopeo umoci:umoci podman:podman runc:runc newuidmap:uidmap
       runuser:util-linux curl:curl python3:python3 pip3:python3-pip qemu-img:qemu-utils debugfs:e2fsprogs
       patchelf:patchelf strip:binutils npm:npm openssl:openssl dockerd:docker.io qemu-aarch64-static:qemu-user-static
       ssh-agent:openssh-client)
missing=()
for pair in "${pairs[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# The attestation tests make a venv for their validators (tests/support/attest-tools.sh); Debian splits venv out.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "system-deps.sh: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "system-deps.sh: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
