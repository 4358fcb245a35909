#!/bin/sh
# Container entrypoint: serve the prebuilt .next directory on $PORT (default 3000).
set -eu
exec next start -H 0.0.0.0 -p "${PORT:-3000}"
