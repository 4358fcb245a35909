#!/usr/bin/env python3
"""Check a `cairn diff --json --files` report against the differences an app is known to have.

usage: explain.py DIFF_JSON EXPECTED_TSV

EXPECTED_TSV: one line per known source of non-determinism, `REGEX<TAB>WHY` (`#` comments allowed). REGEX
is matched (re.fullmatch) against each differing path of a layer (tar path, no leading slash).

Prints every differing file with the reason it differs (ours and cairn diff's own `known` note), then exits
0 when every difference is expected, 1 when any is not (an unexpected file, a config field, a layer on one
side only) or the report is malformed.
"""

import json
import re
import sys


def load_expected(path):
    rules = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pattern, sep, why = line.partition("\t")
            if not sep:
                sys.exit(f"{path}:{lineno}: expected REGEX<TAB>WHY")
            rules.append((re.compile(pattern), why.strip()))
    return rules


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        report = json.load(f)
    rules = load_expected(sys.argv[2])
    unexpected = 0
    expected = 0

    for field in report.get("config", []):
        # Only history text could legitimately differ, and here it must not: both builds ran the same steps.
        print(f"  UNEXPECTED config {field['field']}: {field.get('a')!r} -> {field.get('b')!r}")
        unexpected += 1

    for layer in report.get("layers", []):
        status = layer.get("status")
        made_by = layer.get("created_by") or "?"
        if status in ("identical", "compression-only"):
            continue
        if status != "different":
            print(f"  UNEXPECTED layer {status}: {made_by}")
            unexpected += 1
            continue
        changes = (layer.get("files") or {}).get("changes", [])
        print(f"  layer {(layer.get('a') or 0) + 1} ({made_by}): {len(changes)} file(s) differ")
        for change in changes:
            path = change["path"]
            attrs = ",".join(a["attr"] for a in change.get("attrs", [])) or change.get("change", "?")
            why = next((w for rx, w in rules if rx.fullmatch(path)), None)
            known = change.get("known")
            note = f"; cairn diff: {known}" if known else ""
            if why is None:
                print(f"    UNEXPECTED {path} [{change.get('change')}: {attrs}]{note}")
                unexpected += 1
            else:
                print(f"    expected   {path} [{attrs}]: {why}{note}")
                expected += 1

    print(f"  verdict (cairn diff): {report.get('verdict', '?')}")
    print(f"  {expected} expected difference(s), {unexpected} unexpected")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
