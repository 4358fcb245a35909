#!/usr/bin/env python3
"""The SBOM of a reference app's image against what the tools inside that image report (issue #17, item 5).

    sbom_check.py APP DIR

DIR holds what e2e/run.sh collected from the image (each tool run inside it with `cairn run`):
  sbom.spdx.json      `cairn sbom` of the image (SPDX 2.3)
  apk-info.txt        `apk info -v`
  npm-ls-global.json  `npm ls -g --all --json`
  npm-ls.PATH.json    `npm ls --all --json` in each project the SBOM names (PATH: its directory, `/` as `_`)
  node-version.txt    `node --version`
  yarn-version.txt    `yarn --version`

Each side is a set of `name@version` (apk: `name-version`, as apk prints it). A difference fails the check unless
an entry of ALLOWED below explains it: which side has it, which apps, a pattern, and why. Prints every difference
with its reason; exits 1 on an unexplained one.
"""
import glob
import json
import os
import re
import sys

# (side, apps or "*", regex on the item, reason). side: "sbom" = only the SBOM lists it, "tool" = only the tool.
ALLOWED = [
    # npm (in the base image, so every app) installs cliui's `string-width-cjs: npm:string-width@^4.2.0` & co.
    ("tool", "*", r"^(string-width|strip-ansi|wrap-ansi)-cjs@",
     "an npm alias (`NAME-cjs: npm:NAME@…`, npm's @isaacs/cliui dependency): npm ls names the install by the alias, "
     "the SBOM by the package's own name (its package.json `name`), which its purl must carry"),
    ("sbom", "*", r"^wrap-ansi@7\.0\.0$",
     "wrap-ansi 7.0.0 is installed only as the alias wrap-ansi-cjs (above), which is how npm ls names it; "
     "string-width 4.2.3 and strip-ansi 6.0.1 are also installed under their own names, so only this one shows"),
    ("tool", ("monorepo-backend",), r"^@acme/(shared|backend)@",
     "an npm workspace: node_modules/@acme/NAME is a symlink to the workspace's directory (npm ls follows it); "
     "the SBOM lists installed packages, whose package.json is a regular file under node_modules"),
]


def fail(msg):
    print(f"sbom_check: {msg}", file=sys.stderr)
    sys.exit(2)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")


def npm_json(path):
    """npm ls --json output: `cairn run` passes the container's stderr on its stdout too, so npm's own
    `npm error …` lines (ELSPROBLEMS for missing dev dependencies) come around it; the JSON starts at `{`."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        fail(f"{path}: {e}")
    start = 0 if text.startswith("{") else text.find("\n{") + 1
    if not text[start:].startswith("{"):
        fail(f"{path}: no JSON from npm ls:\n{text[:2000]}")
    try:
        # Its `npm error A complete log …` line may follow.
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError as e:
        fail(f"{path}: {e}")


def purl(p):
    for r in p.get("externalRefs", []):
        if r.get("referenceType") == "purl":
            return r["referenceLocator"]
    return ""


def found_in(p):
    m = re.match(r"found in (\S+)", p.get("comment", ""))
    return m.group(1).rstrip(";") if m else ""


def npm_ls_set(tree):
    """name@version of the root and of every dependency, recursively (deduped entries included)."""
    out = set()
    if tree.get("name") and tree.get("version"):
        out.add(f"{tree['name']}@{tree['version']}")

    def walk(node):
        for name, dep in (node.get("dependencies") or {}).items():
            if dep.get("version"):
                out.add(f"{name}@{dep['version']}")
            walk(dep)

    walk(tree)
    return out


def main():
    if len(sys.argv) != 3:
        fail("usage: sbom_check.py APP DIR")
    app, d = sys.argv[1:]
    sbom = load_json(os.path.join(d, "sbom.spdx.json"))
    pkgs = [p for p in sbom["packages"] if purl(p)]
    comparisons = []

    # apk: every package in apk's database.
    sbom_apk = {f"{p['name']}-{p['versionInfo']}" for p in pkgs if purl(p).startswith("pkg:apk/")}
    with open(os.path.join(d, "apk-info.txt")) as f:
        apk = {l.strip() for l in f if l.strip() and not l.startswith("WARNING")}
    comparisons.append(("apk info -v", sbom_apk, apk))

    # Node packages: each project's tree, npm's global install, and yarn.
    npm = [p for p in pkgs if purl(p).startswith("pkg:npm/")]
    covered = set()
    for ls_file in sorted(glob.glob(os.path.join(d, "npm-ls.*.json"))):
        project = ls_file[len(os.path.join(d, "npm-ls.")):-len(".json")].replace("_", "/")
        mine = [p for p in npm if found_in(p) == f"{project}/package.json"
                or found_in(p).startswith(f"{project}/node_modules/")]
        covered.update(id(p) for p in mine)
        comparisons.append((f"npm ls --all in {project}", {f"{p['name']}@{p['versionInfo']}" for p in mine},
                            npm_ls_set(npm_json(ls_file))))
    glob_dir = "/usr/local/lib/node_modules/"
    mine = [p for p in npm if found_in(p).startswith(glob_dir)]
    covered.update(id(p) for p in mine)
    global_ls = npm_ls_set(npm_json(os.path.join(d, "npm-ls-global.json")))
    global_ls.discard(next((x for x in global_ls if x.startswith("lib@") or x.startswith("local@")), None))
    comparisons.append(("npm ls -g --all", {f"{p['name']}@{p['versionInfo']}" for p in mine}, global_ls))
    runtimes = {p["name"]: p["versionInfo"] for p in pkgs
                if purl(p).startswith("pkg:generic/node@") or purl(p).startswith("pkg:npm/yarn@")
                and found_in(p).startswith("/opt/yarn-v")}
    covered.update(id(p) for p in npm if p["name"] == "yarn" and found_in(p).startswith("/opt/yarn-v"))
    said = {}
    for prog in ("node", "yarn"):
        with open(os.path.join(d, f"{prog}-version.txt")) as f:
            said[prog] = f.read().strip().lstrip("v")
    comparisons.append(("node --version, yarn --version",
                        {f"{k}@{v}" for k, v in runtimes.items()}, {f"{k}@{v}" for k, v in said.items()}))
    stray = sorted(f"{p['name']}@{p['versionInfo']} ({found_in(p)})" for p in npm if id(p) not in covered)
    comparisons.append(("Node packages outside every project, npm's global dir and /opt/yarn-v*",
                        set(stray), set()))

    unexplained = 0
    for what, in_sbom, in_tool in comparisons:
        same = in_sbom & in_tool
        print(f"{what}: {len(same)} in both, {len(in_sbom - in_tool)} only in the SBOM, "
              f"{len(in_tool - in_sbom)} only in the tool")
        for side, items in (("sbom", in_sbom - in_tool), ("tool", in_tool - in_sbom)):
            for item in sorted(items):
                reason = next((r for s, apps, pat, r in ALLOWED
                               if s == side and (apps == "*" or app in apps) and re.search(pat, item)), None)
                where = "only in the SBOM" if side == "sbom" else "only in the tool's output"
                if reason:
                    print(f"  explained: {item} {where}: {reason}")
                else:
                    unexplained += 1
                    print(f"  UNEXPLAINED: {item} {where}")
    if not any(in_sbom for _, in_sbom, _ in comparisons[:1]):
        fail("the SBOM lists no apk package")
    if unexplained:
        print(f"sbom_check: {unexplained} unexplained difference(s); explain each in ALLOWED in {__file__} "
              "(with the reason) or fix the SBOM", file=sys.stderr)
        sys.exit(1)
    print("sbom_check: the SBOM matches what apk, npm, node and yarn report in the image")


if __name__ == "__main__":
    main()
