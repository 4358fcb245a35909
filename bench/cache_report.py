#!/usr/bin/env python3
"""The report of bench/cache.sh (issue #16 item 9) as markdown: per scenario and tool the wall time and the
bytes moved through the registry (from bench/byteproxy.py), cairn's own cache-import line, and the goals:
fresh-runner no-op ≤ 2 s and ≤ 0.2× the best peer's; fresh-runner edit ≤ 1.15× the warm-local edit.

usage: cache_report.py --out DIR TOOL...
"""
import argparse
import csv
import datetime
import os
import re
import statistics

from report import machine, read_text, version, VERSION_CMDS

LABELS = {
    "seed": "seed: cold build, cache exported, pushed",
    "warm-noop": "warm local storage, nothing changed",
    "warm-edit": "warm local storage, one line edited",
    "fresh-noop": "fresh runner (empty local storage), registry cache, nothing changed",
    "fresh-edit": "fresh runner, registry cache, one line edited",
}
IMPORT = re.compile(r"cache import \(.*\): (\d+) steps hit, (\d+) blobs fetched \((\d+) bytes\)")


def mb(n):
    return f"{n / 1e6:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("tools", nargs="+")
    a = ap.parse_args()
    with open(os.path.join(a.out, "cache.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    cell = {}
    for r in rows:
        cell.setdefault((r["scenario"], r["tool"]), []).append(r)

    def med(scenario, tool, key="wall_s"):
        v = [float(r[key]) for r in cell.get((scenario, tool), []) if r[key]]
        return statistics.median(v) if v else None

    def load(name):
        return read_text(a.out, name)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rounds = max((len(v) for v in cell.values()), default=0)
    print(f"# bench-cache: the CI scenario, {' vs '.join(a.tools)} ({now})\n")
    print(f"- machine: {machine()}")
    print(f"- load average (1/5/15 min): {load('load-before.txt')} before, {load('load-after.txt')} after")
    for t in a.tools[1:]:
        print(f"- {t}: {version(VERSION_CMDS.get(t))}")
    print(f"- {rounds} round(s); a run = build with the tool's registry cache + push of the image; medians; "
          "MB down / up through the registry (HTTP, headers included)\n")
    print("| scenario | " + " | ".join(f"{t} s | {t} MB down / up" for t in a.tools) + " |")
    print("|---" * (1 + 2 * len(a.tools)) + "|")
    for s, label in LABELS.items():
        cells = [label]
        for t in a.tools:
            w = med(s, t)
            d, u = med(s, t, "down_bytes"), med(s, t, "up_bytes")
            cells.append(f"{w:.2f}" if w is not None else "–")
            cells.append(f"{mb(d)} / {mb(u)}" if d is not None else "–")
        print("| " + " | ".join(cells) + " |")

    # cairn's own account of the import.
    lines = []
    for s in LABELS:
        for r in cell.get((s, "cairn"), []):
            try:
                with open(os.path.join(a.out, "logs", f"cairn-{s}-{r['run']}.log"), encoding="utf-8") as f:
                    m = None
                    for line in f:
                        m = IMPORT.search(line) or m
            except OSError:
                m = None
            if m:
                lines.append(f"- {s} #{r['run']}: {m.group(1)} steps hit, {m.group(2)} blobs fetched "
                             f"({mb(int(m.group(3)))} MB)")
    if lines:
        print("\ncairn's cache import (its summary line):\n")
        print("\n".join(lines))

    # The ratios for every tool: fresh edit / warm edit, fresh no-op against the best other tool.
    print("\n| tool | fresh edit / warm edit | fresh no-op / best other tool's fresh no-op |\n|---|---|---|")
    for t in a.tools:
        fe, we, fn = med("fresh-edit", t), med("warm-edit", t), med("fresh-noop", t)
        others = [v for v in (med("fresh-noop", o) for o in a.tools if o != t) if v]
        edit = f"{fe / we:.2f}×" if fe is not None and we else "–"
        noop = f"{fn / min(others):.2f}×" if fn is not None and others else "–"
        print(f"| {t} | {edit} | {noop} |")

    print("\n| goal (#16 item 9) | value | met |\n|---|---|---|")
    fresh_noop = med("fresh-noop", "cairn")
    peers = [med("fresh-noop", t) for t in a.tools[1:]]
    peers = [p for p in peers if p is not None]
    if fresh_noop is not None:
        print(f"| fresh-runner no-op ≤ 2 s | {fresh_noop:.2f} s | {'yes' if fresh_noop <= 2 else '**no**'} |")
        if peers:
            ratio = fresh_noop / min(peers)
            print(f"| fresh-runner no-op ≤ 0.2× the best peer ({min(peers):.2f} s) | {ratio:.2f}× | "
                  f"{'yes' if ratio <= 0.2 else '**no**'} |")
    fresh_edit, warm_edit = med("fresh-edit", "cairn"), med("warm-edit", "cairn")
    if fresh_edit is not None and warm_edit:
        ratio = fresh_edit / warm_edit
        print(f"| fresh-runner edit ≤ 1.15× warm-local edit ({warm_edit:.2f} s) | {ratio:.2f}× | "
              f"{'yes' if ratio <= 1.15 else '**no**'} |")


if __name__ == "__main__":
    main()
