#!/usr/bin/env bash
# The independent validators the attestation tests run, in a Python venv under target/ (made once, reused):
# pyspdxtools (PyPI spdx-tools) for SPDX 2.3 JSON, and cyclonedx-python-lib's JSON validator (it bundles the
# CycloneDX 1.6 schema and the schemas it references, so validation needs no network). Needs python3 with venv
# (Debian: python3-venv, in system-deps.sh) and PyPI the first time. Prints the venv's bin directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CAIRN_ATTEST_VENV:-$root/target/attest-venv}"
mkdir -p "$(dirname "$venv")"
# Tests run in parallel: one of them installs, the others wait.
exec 9>"$venv.lock"
flock 9
if [ ! -f "$venv/.installed-1" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check \
        'spdx-tools==0.8.3' 'cyclonedx-python-lib[json-validation]==11.5.0' >&2
    touch "$venv/.installed-1"
fi
echo "$venv/bin"
