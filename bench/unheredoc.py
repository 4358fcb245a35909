#!/usr/bin/env python3
"""Write a copy of a Dockerfile for buildah 1.28, which cannot read heredocs.

Every `RUN cat > FILE << 'WORD'` ... `WORD` becomes `RUN printf '%s\\n' 'line' ... > FILE`, which writes
the same bytes; the `# syntax=` directive is dropped. Only quoted-delimiter heredocs (no expansion) whose
lines hold no single quote are supported: anything else is an error, never a silent mistranslation.

usage: unheredoc.py SRC DST
"""
import re
import sys

HEREDOC = re.compile(r"^RUN cat > (?P<file>\S+) << '(?P<word>[A-Za-z_]+)'\n", re.M)


def translate(src: str, name: str) -> str:
    out, pos = [], 0
    for m in HEREDOC.finditer(src):
        end_marker = "\n" + m["word"] + "\n"
        end = src.find(end_marker, m.end() - 1)
        if end < 0:
            sys.exit(f"{name}: heredoc {m['word']} is never closed")
        body = src[m.end():end + 1].splitlines()
        for line in body:
            if "'" in line:
                sys.exit(f"{name}: heredoc line holds a single quote, cannot translate: {line!r}")
        args = " \\\n    ".join(f"'{line}'" for line in body)
        out.append(src[pos:m.start()])
        out.append(f"RUN printf '%s\\n' \\\n    {args} \\\n    > {m['file']}\n")
        pos = end + len(end_marker)
    out.append(src[pos:])
    text = "".join(out)
    if "<<" in text:
        sys.exit(f"{name}: a heredoc form this script does not know is left")
    text = re.sub(r"^# syntax=.*\n", "", text, flags=re.M)
    header = (f"# GENERATED from {name} by bench/unheredoc.py for buildah 1.28 (no heredoc support):\n"
              "# each heredoc is a printf writing the same bytes. Regenerate, do not edit.\n")
    return header + text


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = translate(f.read(), src.rsplit("/", 1)[-1])
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
