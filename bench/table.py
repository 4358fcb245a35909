#!/usr/bin/env python3
"""Join the benchmark summaries of several tools into one markdown table.

Reads BENCH_OUT/<tool>-summary.tsv and <tool>-repro.tsv (written by bench/lib.sh) for each tool named, in
that order; the first tool is the reference of the ratio columns ("other / first": above 1 means the first
tool is faster). Tools without results are reported, not skipped silently.

usage: table.py [--out DIR] TOOL [TOOL...]        (DIR defaults to target/bench)
"""
import csv
import os
import sys

SCENARIOS = {
    "cold": "cold build (empty storage and npm cache, base pulled)",
    "warm": "warm no-op rebuild",
    "edit": "one line of a page edited",
    "push": "push to a new repository",
    "repush": "push again (all blobs present)",
}


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def main(argv):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "bench")
    if argv[:1] == ["--out"]:
        if len(argv) < 2:
            sys.exit(__doc__)
        out, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    summaries, missing = {}, []
    for tool in argv:
        path = os.path.join(out, f"{tool}-summary.tsv")
        if os.path.exists(path):
            summaries[tool] = {row["scenario"]: row for row in read_tsv(path)}
        else:
            missing.append(tool)
    tools = [t for t in argv if t in summaries]
    if not tools:
        sys.exit(f"no results for {', '.join(argv)} in {out}")
    ref = tools[0]
    header = ["scenario"] + [f"{t} median s (runs)" for t in tools] + [f"{t} peak RSS MB" for t in tools]
    header += [f"{t} / {ref}" for t in tools[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    scenarios = [s for s in SCENARIOS if any(s in summaries[t] for t in tools)]
    for scenario in scenarios:
        cells = [SCENARIOS[scenario]]
        rows = [summaries[t].get(scenario) for t in tools]
        cells += [f"{float(r['median_s']):.1f} ({r['runs']})" if r else "–" for r in rows]
        cells += [f"{int(r['max_rss_kb']) / 1024:.0f}" if r else "–" for r in rows]
        base = rows[0]
        for r in rows[1:]:
            ok = r and base and float(base["median_s"]) > 0
            cells.append(f"{float(r['median_s']) / float(base['median_s']):.2f}×" if ok else "–")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    for tool in tools:
        path = os.path.join(out, f"{tool}-repro.tsv")
        if os.path.exists(path):
            for r in read_tsv(path):
                print(f"\n{tool}, two clean builds ({r['flags'] or 'no extra flags'}): same digest: "
                      f"{r['same_digest']}, identical layers {r['identical_layers']}/{r['total_layers']}")
    if missing:
        print(f"\nno results for: {', '.join(missing)}")


if __name__ == "__main__":
    main(sys.argv[1:])
