#!/usr/bin/env python3
"""Join the two images cairn built into the stand-in's layout (see README.md beside this file).

    assemble.py AMD64_LAYOUT ARM64_LAYOUT OUT

OUT gets tags `22-alpine` (the amd64 image manifest) and `22-alpine-multi` (an image index of the amd64 image and
the linux/arm64/v8 placeholder, as real node tags are indexes). Blobs are copied, never rewritten; the index is
canonical JSON, so the same two images give the same index digest.
"""
import hashlib
import json
import os
import shutil
import sys

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image(layout):
    """The one image manifest of a layout cairn wrote (its build record, an artifact, is left behind)."""
    with open(os.path.join(layout, "index.json")) as f:
        entries = [m for m in json.load(f)["manifests"] if m["mediaType"] == MANIFEST and "artifactType" not in m]
    if len(entries) != 1:
        sys.exit(f"assemble.py: {layout}: expected one image manifest, found {len(entries)}")
    return entries[0]


def blob(layout, digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))


def copy_image(layout, desc, out):
    """The manifest, its config and its layers."""
    with open(blob(layout, desc["digest"]), "rb") as f:
        manifest = json.load(f)
    for d in [desc["digest"], manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]]:
        if not os.path.exists(blob(out, d)):
            shutil.copyfile(blob(layout, d), blob(out, d))


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: assemble.py AMD64_LAYOUT ARM64_LAYOUT OUT")
    amd64_layout, arm64_layout, out = sys.argv[1:]
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    amd64, arm64 = image(amd64_layout), image(arm64_layout)
    copy_image(amd64_layout, amd64, out)
    copy_image(arm64_layout, arm64, out)
    entry = lambda d: {k: d[k] for k in ("mediaType", "digest", "size", "platform")}
    index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry(amd64), entry(arm64)]})
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    with open(blob(out, index_digest), "wb") as f:
        f.write(index)
    tag = lambda d, name: dict(d, annotations={"org.opencontainers.image.ref.name": name})
    top = [
        tag({k: amd64[k] for k in ("mediaType", "digest", "size")}, "22-alpine"),
        tag({"mediaType": INDEX, "digest": index_digest, "size": len(index)}, "22-alpine-multi"),
    ]
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": top}))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(f"22-alpine {amd64['digest']}\n22-alpine-multi {index_digest}")


if __name__ == "__main__":
    main()
