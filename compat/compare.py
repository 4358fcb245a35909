#!/usr/bin/env python3
"""The comparer of `just compat` (issue #21): cairn's image against BuildKit's, per corpus case.

For each case it reads cairn's image from an OCI layout and BuildKit's from an unpacked `docker save`,
compares the config field by field and the final filesystem (all layers applied, whiteouts and opaque
directories honoured) entry by entry: type, mode, uid/gid, link target, content digest, xattrs and
hard-link group. Modification times are left out (the two builders stamp files differently by design).
Every difference must match a line of the expectations file (case glob, key glob, reason); any other
fails the run. Keys look like `config.Env`, `history` or `fs:/app/x :mode`.

usage: compare.py images CASES_TSV CAIRN_OCI BUILDKIT_SAVE_DIR EXPECTED_TSV REPORT
       compare.py nondeterminism DIFF_JSON      (every file two cold cairn builds disagree on has a hint)
"""
import fnmatch
import gzip
import hashlib
import json
import os
import sys
import tarfile

# Config fields compared (under `config`); absent, null and empty mean the same to a runtime.
CONFIG_FIELDS = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                 "StopSignal", "Healthcheck", "OnBuild", "Shell", "ArgsEscaped"]


def blob(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def read_oci(layout, digest):
    """The image whose manifest is `digest` in the OCI layout: (config, [(diff_id, layer blob)])."""
    try:
        with open(blob(layout, digest)) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"compare: no manifest {digest} in {layout}")
    with open(blob(layout, manifest["config"]["digest"])) as f:
        config = json.load(f)
    layers = [blob(layout, l["digest"]) for l in manifest["layers"]]
    return config, list(zip(config["rootfs"]["diff_ids"], layers))


def read_saved(save_dir, repo_tag):
    with open(os.path.join(save_dir, "manifest.json")) as f:
        manifest = json.load(f)
    for m in manifest:
        if repo_tag in (m.get("RepoTags") or []):
            with open(os.path.join(save_dir, m["Config"])) as f:
                config = json.load(f)
            layers = [os.path.join(save_dir, l) for l in m["Layers"]]
            return config, list(zip(config["rootfs"]["diff_ids"], layers))
    raise SystemExit(f"compare: no image {repo_tag} in {save_dir}/manifest.json")


def norm(path):
    p = path
    while p.startswith("./"):
        p = p[2:]
    return p.strip("/")


def open_layer(path):
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return tarfile.open(fileobj=gzip.open(path), mode="r|")
    if magic == b"\x28\xb5\x2f\xfd":
        raise SystemExit(f"compare: {path} is zstd-compressed; not supported here")
    return tarfile.open(path, mode="r|")


_LAYERS = {}


def parse_layer(diff_id, path):
    """The layer's members in archive order, each a dict; cached by diff_id (both sides share bases)."""
    if diff_id in _LAYERS:
        return _LAYERS[diff_id]
    out = []
    with open_layer(path) as tf:
        for m in tf:
            e = {"path": norm(m.name), "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid,
                 "xattrs": {k[len("SCHILY.xattr."):]: v for k, v in sorted(m.pax_headers.items())
                            if k.startswith("SCHILY.xattr.")}}
            if m.isreg():
                h = hashlib.sha256()
                f = tf.extractfile(m)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                e.update(type="file", content=f"sha256:{h.hexdigest()}", size=m.size)
            elif m.isdir():
                e.update(type="dir")
            elif m.issym():
                e.update(type="symlink", link=m.linkname)
            elif m.islnk():
                e.update(type="hardlink", link=norm(m.linkname))
            elif m.ischr() or m.isblk():
                e.update(type="chardev" if m.ischr() else "blockdev", device=f"{m.devmajor}:{m.devminor}")
            elif m.isfifo():
                e.update(type="fifo")
            else:
                continue
            out.append(e)
    _LAYERS[diff_id] = out
    return out


def same(a, b):
    return a is not None and {k: v for k, v in a.items() if k != "ino"} == {k: v for k, v in b.items() if k != "ino"}


def apply(layers):
    """The final filesystem: path -> entry (with an inode number shared by hard links), and how many
    layers change it. BuildKit 20.10 also writes layers that change nothing (WORKDIR of an existing
    directory: empty; a RUN: the `etc` of its mount points, as it was), where cairn writes none."""
    fs, next_ino, changing = {}, [0], 0

    def remove_tree(p, keep_self=False):
        pre = p + "/" if p else ""
        for k in [k for k in fs if k.startswith(pre)]:
            del fs[k]
        if not keep_self:
            fs.pop(p, None)

    for diff_id, path in layers:
        entries = parse_layer(diff_id, path)
        before = len(fs)
        changed = False
        # Deletions see only the lower layers: opaque markers and whiteouts first.
        for e in entries:
            d, _, name = e["path"].rpartition("/")
            if name == ".wh..wh..opq":
                remove_tree(d, keep_self=True)
            elif name.startswith(".wh."):
                remove_tree((d + "/" if d else "") + name[len(".wh."):])
        for e in entries:
            name = e["path"].rpartition("/")[2]
            if name.startswith(".wh.") or not e["path"]:
                continue
            old = fs.get(e["path"])
            if not same(old, e):
                changed = True
            if old is not None and not (old["type"] == "dir" and e["type"] == "dir"):
                remove_tree(e["path"])
            if e["type"] == "hardlink":
                target = fs.get(e["link"])
                if target is None:
                    raise SystemExit(f"compare: hard link {e['path']} -> {e['link']}: no such file in {path}")
                fs[e["path"]] = dict(target, path=e["path"])
                continue
            next_ino[0] += 1
            fs[e["path"]] = dict(e, ino=next_ino[0])
        changing += changed or len(fs) < before
    groups = {}
    for p, e in fs.items():
        groups.setdefault(e["ino"], []).append(p)
    for p, e in fs.items():
        g = sorted(groups[e["ino"]])
        e["hardlinks"] = " ".join(g) if len(g) > 1 else ""
    return fs, changing


ATTRS = ["type", "mode", "uid", "gid", "link", "content", "device", "xattrs", "hardlinks"]


def show(e, a):
    v = e.get(a, "")
    if a == "mode":
        return f"{v:04o}"
    if a == "xattrs":
        return ",".join(f"{k}={v.encode().hex() if isinstance(v, str) else v.hex()}" for k, v in sorted(v.items())) if v else "-"
    return str(v) if v != "" else "-"


def fs_diffs(a, b):
    for p in sorted(set(a) | set(b)):
        ea, eb = a.get(p), b.get(p)
        if ea is None:
            yield f"fs:/{p} :only-buildkit", "-", eb["type"]
        elif eb is None:
            yield f"fs:/{p} :only-cairn", ea["type"], "-"
        else:
            for at in ATTRS:
                va, vb = show(ea, at), show(eb, at)
                if va != vb:
                    yield f"fs:/{p} :{at}", va, vb


def empty(v):
    return v is None or v == {} or v == [] or v == ""


def config_diffs(a, b):
    for k in ["os", "architecture", "variant"]:
        if not (empty(a.get(k)) and empty(b.get(k))) and a.get(k) != b.get(k):
            yield k, json.dumps(a.get(k)), json.dumps(b.get(k))
    ca, cb = a.get("config") or {}, b.get("config") or {}
    for k in sorted(set(CONFIG_FIELDS) | set(ca) | set(cb)):
        va, vb = ca.get(k), cb.get(k)
        if empty(va) and empty(vb):
            continue
        if k == "ArgsEscaped" and not va and not vb:
            continue
        if va != vb:
            yield f"config.{k}", json.dumps(va, sort_keys=True), json.dumps(vb, sort_keys=True)


def load_expected(path):
    rules = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) < 3 or not parts[2].strip():
                raise SystemExit(f"{path}:{n}: want CASE-GLOB<TAB>KEY-GLOB<TAB>REASON, got {line!r}")
            rules.append({"case": parts[0], "key": parts[1], "reason": parts[2], "line": n, "used": 0})
    return rules


def images(cases_tsv, cairn_oci, save_dir, expected_tsv, report_path):
    rules = load_expected(expected_tsv)
    failed, report = [], []
    with open(cases_tsv) as f:
        cases = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    for name, digest, repo_tag in cases:
        ca, la = read_oci(cairn_oci, digest)
        cb, lb = read_saved(save_dir, repo_tag)
        (fa, na), (fb, nb) = apply(la), apply(lb)
        diffs = list(config_diffs(ca, cb)) + list(fs_diffs(fa, fb))
        if na != nb:
            diffs.append(("layers", str(na), str(nb)))
        unexplained = 0
        for key, va, vb in diffs:
            rule = next((r for r in rules if fnmatch.fnmatchcase(name, r["case"])
                         and fnmatch.fnmatchcase(key, r["key"])), None)
            if rule:
                rule["used"] += 1
                report.append(f"{name}\t{key}\tcairn={va}\tbuildkit={vb}\texpected: {rule['reason']}")
            else:
                unexplained += 1
                report.append(f"{name}\t{key}\tcairn={va}\tbuildkit={vb}\tUNEXPECTED")
        status = "ok" if unexplained == 0 else f"FAIL ({unexplained} unexpected)"
        print(f"compat: {name}: {len(diffs)} difference(s), {status}", flush=True)
        if unexplained:
            failed.append(name)
    with open(report_path, "w") as f:
        f.write("\n".join(report) + ("\n" if report else ""))
    ran = {c[0] for c in cases}
    for r in rules:
        if r["used"] == 0 and any(fnmatch.fnmatchcase(c, r["case"]) for c in ran) and "*" not in r["case"]:
            print(f"compat: note: {expected_tsv}:{r['line']} matched nothing this run ({r['case']} {r['key']})")
    if failed:
        print(f"compat: {len(failed)} case(s) differ from BuildKit in ways {expected_tsv} does not list: "
              f"{' '.join(failed)}\ncompat: every difference: {report_path} (lines marked UNEXPECTED)")
        return 1
    return 0


def nondeterminism(diff_json):
    """Two cold cairn builds differ: every differing file must be named with a hint by `cairn diff`."""
    with open(diff_json) as f:
        d = json.load(f)
    bad = []
    for layer in d.get("layers", []):
        for c in (layer.get("files") or {}).get("changes", []):
            if c.get("cause") in ("timestamps", "order-only") or c.get("known"):
                continue
            bad.append(c["path"])
    for c in d.get("config", []):
        if not c.get("field", "").startswith("history"):
            bad.append(f"config {c.get('field')}")
    for p in bad[:20]:
        print(f"compat:   no hint from cairn diff for {p}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "images":
        sys.exit(images(*sys.argv[2:]))
    if len(sys.argv) == 3 and sys.argv[1] == "nondeterminism":
        sys.exit(nondeterminism(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
