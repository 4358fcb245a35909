#!/usr/bin/env python3
"""Where a two-platform build's time goes, RUN step by RUN step and platform by platform, for cairn and buildah
from the logs of one bench/multi-platform.sh run (markdown on stdout).

cairn's plain progress names each step's platform and prints its time:
    #12 [linux/arm64 deps 4/4] RUN --mount=… npm ci …      …      #12 DONE 93.2s
buildah (under bench/stamp.py, every line stamped with seconds since the start) prints
    [  40.100] [linux/arm64] STEP 4/4: RUN --mount=… npm ci …
and no time of its own: a step lasts until the next line of the same platform that starts a step or commits
the image (so it includes writing the step's layer).
Steps are matched by platform and instruction text (whitespace collapsed); a step only one tool has (cairn's
heredoc is a printf for buildah 1.28) shows on its own row.

usage: multi_steps.py CAIRN_LOG BUILDAH_LOG
"""
import re
import sys

CAIRN_START = re.compile(r"^#(\d+) \[(\S+) [^\]]*\] (.*)$")
CAIRN_DONE = re.compile(r"^#(\d+) DONE ([0-9.]+)s$")
BUILDAH_LINE = re.compile(r"^\[\s*([0-9.]+)\] \[([a-z0-9]+/[a-z0-9]+(?:/[a-z0-9]+)?)\] (?:\[\d+/\d+\] )?(STEP \d+/\d+: (.*)|COMMIT.*)$")


def norm(text):
    return " ".join(text.split())[:200]


def cairn_steps(path):
    """[(platform, text, seconds)] of the RUN steps that ran (cache hits have no DONE)."""
    started, out = {}, []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        m = CAIRN_START.match(line)
        if m and m.group(3).startswith("RUN"):
            started[m.group(1)] = (m.group(2), norm(m.group(3)))
            continue
        m = CAIRN_DONE.match(line)
        if m and m.group(1) in started:
            platform, text = started.pop(m.group(1))
            out.append((platform, text, float(m.group(2))))
    return out


def buildah_steps(path):
    """[(platform, text, seconds)] of the RUN steps, each up to the platform's next step or commit."""
    last, out = {}, []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = BUILDAH_LINE.match(line.rstrip("\n"))
        if not m:
            continue
        t, platform, text = float(m.group(1)), m.group(2), m.group(4)
        if platform in last:
            prev_text, prev_t = last.pop(platform)
            if prev_text.startswith("RUN"):
                out.append((platform, prev_text, t - prev_t))
        if text is not None:
            last[platform] = (norm(text), t)
    return out


def main():
    cairn, buildah = cairn_steps(sys.argv[1]), buildah_steps(sys.argv[2])
    used, rows = set(), []
    for platform, text, s in cairn:
        match = next((i for i, b in enumerate(buildah) if i not in used and b[:2] == (platform, text)), None)
        if match is not None:
            used.add(match)
        rows.append((platform, text, s, None if match is None else buildah[match][2]))
    rows += [(p, t, None, s) for i, (p, t, s) in enumerate(buildah) if i not in used]
    fmt = lambda v: "" if v is None else f"{v:.1f}"
    print("| platform | RUN step | cairn s | buildah s |")
    print("|---|---|---|---|")
    for platform, text, c, b in sorted(rows, key=lambda r: r[0]):
        short = text if len(text) <= 70 else text[:67] + "…"
        print(f"| {platform} | `{short}` | {fmt(c)} | {fmt(b)} |")
    for platform in sorted({r[0] for r in rows}):
        c = sum(r[2] or 0 for r in rows if r[0] == platform)
        b = sum(r[3] or 0 for r in rows if r[0] == platform)
        print(f"| {platform} | **all RUN steps** | {c:.1f} | {b:.1f} |")


if __name__ == "__main__":
    main()
