#!/usr/bin/env python3
"""The benchmark report: cairn against its peers from one interleaved run, as markdown.

Reads, in OUT (bench/lib.sh writes them):
  TOOL.tsv                    one row per run: tool scenario run wall_s max_rss_kb run_cmd_s
  TOOL-repro.tsv              the reproducibility scenario (optional)
  logs/TOOL-SCENARIO-RUN.log  each run's output; cairn and BuildKit print BuildKit's plain progress
                              (`#5 [builder 3/7] RUN …` … `#5 DONE 12.3s`), from which the RUN steps are timed
  load-before.txt, load-after.txt

The first tool is cairn, the reference of every ratio (peer / cairn: above 1 means cairn is faster). Ratios are
taken per round (the tools of a round ran back to back, so they saw the same machine), then summarized.
Builder overhead is wall time minus the time inside RUN commands. cairn measures its own RUN time; the peers
do not print theirs, so their overhead is their wall time minus cairn's RUN time of the same round (an
estimate that assumes the RUN work costs the same in every sandbox, which the RUN-step table checks).

usage: report.py --out DIR --goals e2e|small|build [--title TEXT] [--context TEXT] TOOL...
"""
import argparse
import csv
import datetime
import os
import platform
import re
import statistics
import subprocess

LABELS = {
    "cold": "cold build (empty storage and caches, base pulled)",
    "warm": "no-op rebuild",
    "edit": "one line of a source file edited",
    "push": "push to a new repository",
    "repush": "push again (all blobs present)",
}
VERSION_CMDS = {
    "cairn": None,
    "buildkit": ["/usr/bin/docker", "version", "-f", "docker {{.Server.Version}} (BuildKit embedded)"],
    "buildah": ["buildah", "--version"],
}


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def machine():
    cpu, mem = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem = f", {int(f.readline().split()[1]) / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPU ({cpu}){mem}, kernel {platform.release()}"


def read_text(out, name):
    """The stripped text of OUT/NAME, or "?" (e.g. load-before.txt)."""
    try:
        with open(os.path.join(out, name), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return "?"


def version(cmd):
    if not cmd:
        return ""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=20).stdout
        return out.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def span(values):
    if not values:
        return "–"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


# `#5 [builder 3/7] RUN …`: matched across tools by stage and command, not by number.
STEP_START = re.compile(r"^#(\d+) \[(\S+)(?: \d+/\d+)?\] (RUN .*)$")
STEP_DONE = re.compile(r"^#(\d+) DONE ([0-9.]+)s$")
# cairn's split of a RUN step: `#5 RUN command 10.00s, capture 0.81s, layer write 1.41s, sandbox setup 0.12s`.
STEP_TIMES = re.compile(r"^#(\d+) RUN command ([0-9.]+)s, capture ([0-9.]+)s, (?:layer write|snapshot) ([0-9.]+)s, "
                        r"sandbox setup ([0-9.]+)s(?:, lower layers ([0-9.]+)s)?$")


def run_steps(path):
    """RUN steps that ran (not cached) in one build log: {"[stage] RUN text": seconds} (the `DONE` time)."""
    return {title: t["done"] for title, t in run_step_times(path).items()}


def run_step_times(path):
    """RUN steps that ran in one build log: {"[stage] RUN text": {"done": s, and from cairn's split "command",
    "capture", "write", "setup"}}."""
    titles, times, out = {}, {}, {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = STEP_START.match(line)
                if m:
                    titles[m.group(1)] = f"[{m.group(2)}] {m.group(3)[:70]}"
                    continue
                m = STEP_TIMES.match(line)
                if m and m.group(1) in titles:
                    times[m.group(1)] = dict(zip(("command", "capture", "write", "setup", "lowers"),
                                                 (float(g or 0) for g in m.groups()[1:])))
                    continue
                m = STEP_DONE.match(line)
                if m and m.group(1) in titles:
                    out[titles[m.group(1)]] = {"done": float(m.group(2)), **times.get(m.group(1), {})}
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    # small: issue #22's one-stage COPY + RUN app, whose goal is the wall time (≤ BuildKit's), not the
    # overhead share (a 2 s RUN makes any fixed cost a large share).
    ap.add_argument("--goals", choices=["e2e", "small", "build"], required=True)
    ap.add_argument("--title", default="benchmark")
    ap.add_argument("--context", default="")
    ap.add_argument("tools", nargs="+")
    a = ap.parse_args()
    tools = [t for t in a.tools if read_tsv(os.path.join(a.out, f"{t}.tsv"))]
    missing = [t for t in a.tools if t not in tools]
    if not tools or tools[0] != "cairn":
        raise SystemExit(f"report.py: no cairn results in {a.out}")
    rows = {t: read_tsv(os.path.join(a.out, f"{t}.tsv")) for t in tools}
    # runs[tool][scenario][round] = row
    runs = {t: {} for t in tools}
    for t in tools:
        for r in rows[t]:
            runs[t].setdefault(r["scenario"], {})[r["run"]] = r
    scenarios = [s for s in LABELS if s in runs["cairn"]]
    peers = tools[1:]

    def load(name):
        return read_text(a.out, name)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {a.title}: {' vs '.join(tools)} ({now})\n")
    print(f"- machine: {machine()}")
    print(f"- load average (1/5/15 min): {load('load-before.txt')} before, {load('load-after.txt')} after")
    for t in peers:
        print(f"- {t}: {version(VERSION_CMDS.get(t))}")
    if a.context:
        print(f"- context: {a.context}")
    n = max((len(v) for v in runs["cairn"].values()), default=0)
    print(f"- {n} rounds per scenario; each round runs every tool once, back to back, the first tool rotating;"
          " medians (min–max) of wall time")
    if missing:
        print(f"- no results for: {', '.join(missing)}")

    print("\n| scenario | " + " | ".join(f"{t} s" for t in tools)
          + "".join(f" | {t} / cairn per round | cairn faster in every round vs {t}" for t in peers)
          + " | " + " | ".join(f"{t} peak RSS MB" for t in tools) + " |")
    print("|---" * (1 + 2 * len(tools) + 2 * len(peers)) + "|")
    pair_wins = {}
    for s in scenarios:
        cells = [LABELS[s]]
        for t in tools:
            cells.append(span([fnum(r["wall_s"]) for r in runs[t].get(s, {}).values()]))
        for t in peers:
            ratios = []
            for rnd, c in sorted(runs["cairn"][s].items()):
                p = runs[t].get(s, {}).get(rnd)
                if p and fnum(c["wall_s"]):
                    ratios.append(fnum(p["wall_s"]) / fnum(c["wall_s"]))
            pair_wins[(s, t)] = bool(ratios) and all(x > 1 for x in ratios)
            cells.append(" / ".join(f"{x:.2f}×" for x in ratios) or "–")
            cells.append(("yes" if pair_wins[(s, t)] else "**no**") if ratios else "–")
        for t in tools:
            rss = [int(r["max_rss_kb"]) for r in runs[t].get(s, {}).values() if r["max_rss_kb"].isdigit()]
            # cairn's own peak without its RUN children, from its summary line (builds with RUN ≥ 1 s).
            own = [int(r.get("self_rss_mb") or 0) for r in runs[t].get(s, {}).values() if r.get("self_rss_mb")]
            # BuildKit builds inside dockerd: the timed process is only the docker client.
            cell = "n/a (daemon)" if t == "buildkit" else f"{max(rss) / 1024:.0f}" if rss else "–"
            if own:
                cell += f" (cairn alone {max(own)})"
            cells.append(cell)
        print("| " + " | ".join(cells) + " |")

    # Builder overhead, where RUN time was measured.
    overhead = {}
    run_scenarios = [s for s in scenarios if any(fnum(r.get("run_cmd_s")) for r in runs["cairn"][s].values())]
    if run_scenarios:
        print("\nBuilder overhead = wall time − time inside RUN commands. cairn's RUN time is its own measure; "
              "the peers' overhead is their wall time minus cairn's RUN time of the same round (an estimate).\n")
        print("| scenario | cairn RUN s | " + " | ".join(f"{t} overhead s (% of RUN)" for t in tools) + " |")
        print("|---" * (2 + len(tools)) + "|")
        for s in run_scenarios:
            run_s = {rnd: fnum(r.get("run_cmd_s")) for rnd, r in runs["cairn"][s].items()}
            cells = [LABELS[s], span([v for v in run_s.values() if v])]
            for t in tools:
                ov, pct = [], []
                for rnd, r in runs[t].get(s, {}).items():
                    rs = run_s.get(rnd)
                    if rs:
                        ov.append(fnum(r["wall_s"]) - rs)
                        pct.append(100 * ov[-1] / rs)
                overhead[(s, t)] = statistics.median(pct) if pct else None
                cells.append(f"{span(ov)} ({statistics.median(pct):.0f} %)" if ov else "–")
            print("| " + " | ".join(cells) + " |")

    # RUN steps: cairn vs BuildKit, the same step of the same round.
    if "buildkit" in tools:
        per_step = {}
        for s in ("cold", "edit"):
            for rnd in runs["cairn"].get(s, {}):
                c = run_step_times(os.path.join(a.out, "logs", f"cairn-{s}-{rnd}.log"))
                b = run_steps(os.path.join(a.out, "logs", f"buildkit-{s}-{rnd}.log"))
                for title in c.keys() & b.keys():
                    per_step.setdefault((s, title), []).append((c[title], b[title]))
        if per_step:
            print("\nRUN steps that ran in both (not cached), seconds. BuildKit: its plain progress (`DONE`, the "
                  "whole step); cairn: the whole step (`DONE`) and, from its `RUN command …` line, the time inside "
                  "the command alone and what cairn adds (capture of the changes + layer write + sandbox setup + lower "
                  "layers made stackable). "
                  "Goal: cairn's command ≤ 1.05× BuildKit's step.\n")
            print("| scenario | step | cairn step s | cairn command s | cairn capture + write + setup + lowers s "
                  "| BuildKit s "
                  "| cairn command / BuildKit | cairn step / BuildKit |")
            print("|---|---|---|---|---|---|---|---|")

            def ratio(pairs):
                r = [c / b for c, b in pairs if b > 0 and c is not None]
                return f"{statistics.median(r):.2f}×" if r else "–"

            for (s, title), pairs in sorted(per_step.items()):
                done = [(c["done"], b) for c, b in pairs]
                cmd = [(c.get("command"), b) for c, b in pairs]
                added = [c["capture"] + c["write"] + c["setup"] + c["lowers"] for c, _ in pairs if "command" in c]
                print(f"| {s} | `{title}` | {span([c for c, _ in done])} | "
                      f"{span([c for c, _ in cmd if c is not None]) if added else '–'} | "
                      f"{span(added) if added else '–'} | {span([b for _, b in pairs])} | {ratio(cmd)} | "
                      f"{ratio(done)} |")

    # Goals.
    print("\n| goal | met |\n|---|---|")
    goals = []
    if a.goals == "e2e":
        if ("cold", "cairn") in overhead:
            goals.append(("cold: cairn's overhead ≤ 10 % of RUN time (median)", overhead[("cold", "cairn")] <= 10))
        if ("edit", "cairn") in overhead:
            goals.append(("edit: cairn's overhead ≤ 5 % of RUN time (median)", overhead[("edit", "cairn")] <= 5))
    warm = [fnum(r["wall_s"]) for r in runs["cairn"].get("warm", {}).values()]
    if warm:
        limit = 0.25 if a.goals == "build" else 0.05
        goals.append((f"no-op ≤ {limit} s (median)", statistics.median(warm) <= limit))
    for s in ("cold", "edit"):
        if ("buildkit" in peers) and (s, "buildkit") in pair_wins:
            goals.append((f"{s}: cairn faster than BuildKit in every round", pair_wins[(s, "buildkit")]))
    for text, ok in goals:
        print(f"| {text} | {'yes' if ok else '**no**'} |")

    for t in tools:
        for r in read_tsv(os.path.join(a.out, f"{t}-repro.tsv")):
            print(f"\n{t}, two clean builds ({r['flags'] or 'no extra flags'}): same digest: {r['same_digest']}, "
                  f"identical layers {r['identical_layers']}/{r['total_layers']}")


if __name__ == "__main__":
    main()
