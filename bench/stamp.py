#!/usr/bin/env python3
"""Run a command, its stdout and stderr merged, each line prefixed with the seconds since the start
(`[  12.345] line`), so that a tool which prints no step times (buildah) can be timed step by step from its
log (bench/multi_steps.py). Exits with the command's exit code.

usage: stamp.py CMD [ARG...]
"""
import subprocess
import sys
import time


def main():
    start = time.monotonic()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        sys.stdout.write(f"[{time.monotonic() - start:8.3f}] {line}\n")
        sys.stdout.flush()
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
