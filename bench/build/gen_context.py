#!/usr/bin/env python3
"""Generate the bench-build context: 5,000 files, deterministic bytes, a Node-app-like mix.

The same arguments give the same tree, byte for byte (a seeded PRNG, no clock, no host data):
  package.json, package-lock.json, tsconfig.json, README.md, .dockerignore, Dockerfile, scripts/entrypoint.sh
  src/      src/pages/index.tsx (the page bench/build.sh edits), src/index.js and TypeScript/JavaScript sources in a nested tree (components, pages, lib, hooks, ...), 0.3-12 KB each
  tests/    test files beside a few fixtures
  public/   static assets: incompressible "images" and fonts (2-160 KB), SVGs, locale JSON
The Dockerfile is copied from beside this script. Prints a one-line summary (files, bytes) on stdout.

usage: gen_context.py DEST           (DEST is emptied first)
"""
import json
import os
import random
import shutil
import sys

TOTAL_FILES = 5000
# Files outside src/, tests/ and public/ (written by fixed_files).
FIXED = 7
TESTS = 300
PUBLIC = 1200
SRC = TOTAL_FILES - FIXED - TESTS - PUBLIC

WORDS = ("user order invoice cart session route widget table chart modal button form field input "
         "panel layout header footer sidebar menu token cache query client server stream event "
         "filter sort page item list detail summary metric status health config theme locale").split()
SRC_DIRS = ("components", "components/ui", "components/forms", "components/charts", "pages", "pages/admin",
            "pages/account", "lib", "lib/api", "lib/db", "hooks", "services", "utils", "store",
            "store/slices", "styles", "types", "i18n", "middleware", "workers")


def ident(r, n=2):
    parts = [r.choice(WORDS) for _ in range(n)]
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def source_file(r, size):
    """Code-looking text of about `size` bytes."""
    out = [f'import {{ {ident(r)} }} from "../lib/{r.choice(WORDS)}";\n',
           f'import {{ {ident(r)}, {ident(r)} }} from "./{r.choice(WORDS)}";\n\n']
    n = sum(len(s) for s in out)
    while n < size:
        name, arg = ident(r, 3), ident(r, 1)
        body = [f"export function {name}({arg}: {ident(r).capitalize()}) {{\n"]
        for _ in range(r.randint(2, 9)):
            body.append(f"  const {ident(r)} = {arg}.{ident(r)}?.({r.randint(0, 9999)}) ?? \"{r.choice(WORDS)}\";\n")
        body.append(f"  return {{ {', '.join(ident(r) for _ in range(r.randint(1, 4)))} }};\n}}\n\n")
        s = "".join(body)
        out.append(s)
        n += len(s)
    return "".join(out).encode()


def fixed_files(dest):
    r = random.Random("fixed")
    deps = {f"@bench/{ident(r)}-{i}": f"^{r.randint(1, 20)}.{r.randint(0, 30)}.{r.randint(0, 9)}" for i in range(60)}
    pkg = {"name": "bench-build-app", "version": "1.0.0", "private": True,
           "scripts": {"start": "node src/index.js", "build": "tsc -p ."}, "dependencies": deps}
    lock = {"name": "bench-build-app", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
            "packages": {f"node_modules/{k}": {"version": v.lstrip("^"),
                                                "resolved": f"https://registry.npmjs.org/{k}/-/{k}.tgz",
                                                "integrity": "sha512-" + r.randbytes(48).hex()}
                         for k, v in sorted(deps.items())}}
    # A lock file of a real app also lists the transitive packages: ~700 entries, ~250 KB.
    for i in range(700):
        k = f"node_modules/{ident(r)}-{i}"
        lock["packages"][k] = {"version": f"{r.randint(0, 9)}.{r.randint(0, 30)}.0",
                               "integrity": "sha512-" + r.randbytes(48).hex()}
    files = {
        "package.json": json.dumps(pkg, indent=2, sort_keys=True) + "\n",
        "package-lock.json": json.dumps(lock, indent=2, sort_keys=True) + "\n",
        "tsconfig.json": json.dumps({"compilerOptions": {"target": "es2022", "strict": True}}, indent=2) + "\n",
        "README.md": "# bench-build-app\n\nA generated context for `just bench-build`.\n",
        ".dockerignore": "node_modules\n.git\n**/*.log\ncoverage\n",
        "scripts/entrypoint.sh": "#!/bin/sh\nexec node src/index.js \"$@\"\n",
    }
    for rel, text in files.items():
        write(dest, rel, text.encode())
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "Dockerfile"),
                    os.path.join(dest, "Dockerfile"))
    return len(files) + 1


def write(dest, rel, data):
    path = os.path.join(dest, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__)
    dest = argv[0]
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    assert fixed_files(dest) == FIXED
    r = random.Random("src")
    # The home page is the file the one-file-change scenario edits (one line of its <h1>).
    write(dest, "src/pages/index.tsx", b"export default function Home() {\n  return <h1>Welcome</h1>;\n}\n")
    write(dest, "src/index.js", source_file(r, 2000))
    for i in range(SRC - 2):
        d = r.choice(SRC_DIRS)
        ext = r.choice((".ts", ".ts", ".tsx", ".tsx", ".js", ".css"))
        write(dest, f"src/{d}/{ident(r)}-{i}{ext}", source_file(r, int(r.lognormvariate(7.8, 0.7)) % 12000 + 300))
    r = random.Random("tests")
    for i in range(TESTS):
        write(dest, f"tests/{r.choice(SRC_DIRS)}/{ident(r)}-{i}.test.ts", source_file(r, r.randint(500, 6000)))
    r = random.Random("public")
    for i in range(PUBLIC):
        kind = r.random()
        if kind < 0.45:  # already-compressed images: incompressible bytes
            write(dest, f"public/images/{r.choice(WORDS)}/{ident(r)}-{i}.png", r.randbytes(r.randint(2000, 60000)))
        elif kind < 0.55:
            write(dest, f"public/fonts/{ident(r)}-{i}.woff2", r.randbytes(r.randint(20000, 160000)))
        elif kind < 0.85:
            paths = "".join(f'<path d="M{r.randint(0, 99)} {r.randint(0, 99)}L{r.randint(0, 99)} {r.randint(0, 99)}"/>'
                            for _ in range(r.randint(5, 80)))
            write(dest, f"public/icons/{ident(r)}-{i}.svg", f'<svg xmlns="http://www.w3.org/2000/svg">{paths}</svg>\n'.encode())
        else:
            strings = {ident(r, 3): " ".join(r.choice(WORDS) for _ in range(r.randint(2, 12))) for _ in range(r.randint(20, 200))}
            write(dest, f"public/locales/{r.choice(('en', 'de', 'fr', 'ja', 'pt'))}/{ident(r)}-{i}.json",
                  (json.dumps(strings, indent=2, sort_keys=True) + "\n").encode())
    files = size = 0
    for root, _, names in os.walk(dest):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(root, n))
    if files != TOTAL_FILES:
        sys.exit(f"generated {files} files, expected {TOTAL_FILES}")
    print(f"{files} files, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
