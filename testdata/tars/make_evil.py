#!/usr/bin/env python3
"""Generate the hostile tar corpus in testdata/tars/evil/.

Each tar is what a hostile (or broken) registry could serve as a layer. The
bytes are committed; this script documents exactly how each was made and
regenerates them deterministically (fixed mtimes, uid/gid 0, no user names):

    python3 testdata/tars/make_evil.py

The layout the tests use is `<tmp>/dest` (the extraction root) next to
`<tmp>/sentinel` (must stay byte-identical), so relative escapes aim at
`../sentinel`. The Rust side (layers/tests/unpack_evil.rs) has one test per
file and fails if a tar here has no test.
"""

import io
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "evil")
MTIME = 1700000000


def info(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=None, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.linkname = linkname
    if mode is None:
        mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mode = mode
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def f(name, data=b"x\n", **kw):
    return info(name, tarfile.REGTYPE, data, **kw)


def d(name, **kw):
    return info(name, tarfile.DIRTYPE, **kw)


def sym(name, target):
    return info(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hard(name, target):
    return info(name, tarfile.LNKTYPE, linkname=target)


def build(members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for ti, data in members:
            tar.addfile(ti, data)
    return buf.getvalue()


LONG = "d" * 100
DEEP = "/".join([LONG] * 100)  # 100 components, ~10 KB

CORPUS = {
    # Path escapes.
    "dotdot.tar": build([f("../sentinel/pwned", b"pwned\n")]),
    "dotdot-nested.tar": build([d("a/"), f("a/../../sentinel/pwned", b"pwned\n")]),
    "absolute.tar": build([f("/tmp/cairn-evil-absolute", b"pwned\n")]),
    # Symlink escapes: write through a symlink created earlier in the tar.
    "symlink-abs-then-write.tar": build(
        [sym("a", "/tmp"), f("a/cairn-evil-symlink-abs", b"pwned\n")]
    ),
    "symlink-rel-then-write.tar": build(
        [sym("a", "../sentinel"), f("a/pwned", b"pwned\n")]
    ),
    "symlink-parent-then-write.tar": build([sym("p", ".."), f("p/sentinel/pwned", b"pwned\n")]),
    "symlink-chain-then-write.tar": build(
        [sym("a", "b"), sym("b", "../sentinel"), f("a/pwned", b"pwned\n")]
    ),
    "symlink-then-dir.tar": build([sym("a", "../sentinel"), d("a/sub/")]),
    # Writing a regular file where a symlink to the outside already is:
    # the symlink must be replaced, its target untouched.
    "symlink-then-overwrite.tar": build(
        [sym("x", "../sentinel/victim"), f("x", b"pwned\n")]
    ),
    # Hard links.
    "hardlink-etc-passwd.tar": build(
        [hard("h", "/etc/passwd"), f("h", b"root::0:0::/:/bin/sh\n")]
    ),
    "hardlink-dotdot.tar": build([hard("h", "../sentinel/victim"), f("h", b"pwned\n")]),
    "hardlink-through-symlink.tar": build(
        [sym("s", "../sentinel"), hard("h", "s/victim"), f("h", b"pwned\n")]
    ),
    "hardlink-to-dir.tar": build([d("dir/"), hard("h", "dir")]),
    "hardlink-missing.tar": build([hard("h", "nope")]),
    # Writing through an earlier hard link must not modify the link's other name.
    "hardlink-then-overwrite.tar": build(
        [f("orig", b"original\n"), hard("h", "orig"), f("h", b"replaced\n")]
    ),
    # Whiteouts aimed outside dest or malformed.
    "whiteout-dotdot.tar": build([f("../.wh.sentinel", b"")]),
    "whiteout-dotdot-inner.tar": build([f("../sentinel/.wh.victim", b"")]),
    "whiteout-of-dot.tar": build([f(".wh..", b"")]),
    "whiteout-of-dotdot.tar": build([d("sub/"), f("sub/.wh...", b"")]),
    "whiteout-empty.tar": build([f(".wh.", b"")]),
    "whiteout-reserved.tar": build([f(".wh..wh.foo", b"")]),
    "whiteout-through-symlink.tar": build(
        [sym("s", "../sentinel"), f("s/.wh.victim", b"")]
    ),
    "opaque-through-symlink.tar": build([sym("s", "../sentinel"), f("s/.wh..wh..opq", b"")]),
    # A whiteout of a symlink removes the link, never its target.
    "whiteout-symlink.tar": build([sym("s", "../sentinel"), f(".wh.s", b"")]),
    # Used with a symlink `etc -> ../sentinel` planted in dest beforehand.
    "preexisting-symlink.tar": build([f("etc/passwd", b"pwned\n")]),
    "preexisting-symlink-dir-entry.tar": build([d("etc/"), f("etc/passwd", b"ok\n")]),
    # Names.
    "huge-names.tar": build(
        [
            f(DEEP + "/file", b"deep\n"),
            sym("longlink", "/" + "/".join([LONG] * 40)),  # ~4 KB, under PATH_MAX
            f("x" * 255, b"max component\n"),
        ]
    ),
    "huge-names-gnu.tar": build(
        [f("g/" + "n" * 200 + "/" + "m" * 200, b"gnu\n")], fmt=tarfile.GNU_FORMAT
    ),
    "component-too-long.tar": build([f("y" * 300, b"too long\n")]),
    # Deeper than cairn's 1024-component limit (bounds handles and recursion).
    "too-deep.tar": build([f("/".join(["a"] * 1100) + "/f", b"deep\n")]),
    # Special files.
    "device-node.tar": build(
        [
            info("null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
            info("sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
            info("fifo", tarfile.FIFOTYPE, mode=0o644),
        ]
    ),
    # Type replacement within one tar.
    "file-then-dir.tar": build([f("x", b"file\n"), d("x/"), f("x/y", b"child\n")]),
    "dir-then-file.tar": build([d("d/"), f("d/child", b"child\n"), f("d", b"now a file\n")]),
    # A non-directory naming the extraction root itself.
    "root-as-symlink.tar": build([sym(".", "/")]),
}

WHOLE = build([d("a/"), f("a/one", b"1" * 3000), f("a/two", b"2" * 10)])
# Cut inside the second header block.
CORPUS["truncated-header.tar"] = WHOLE[: 512 + 512 + 512 * 6 + 100]
# Cut inside a.one's data.
CORPUS["truncated-data.tar"] = WHOLE[: WHOLE.index(b"1" * 3000) + 1000]
# Cut exactly after the last entry: no end-of-archive blocks.
_end = WHOLE.index(b"2" * 10) + 512
CORPUS["truncated-boundary.tar"] = WHOLE[:_end]
# A header whose checksum does not match.
_bad = bytearray(build([f("ok", b"ok\n")]))
_bad[0] ^= 0x01
CORPUS["bad-checksum.tar"] = bytes(_bad)


def patch_header(data, offset, value):
    """Overwrite a header field and recompute the checksum, as a forger would."""
    b = bytearray(data)
    b[offset : offset + len(value)] = value
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b[:512])
    return bytes(b)


# A mode field that is not octal (checksum valid).
CORPUS["bad-mode.tar"] = patch_header(build([f("m", b"m\n")], fmt=tarfile.GNU_FORMAT), 100, b"zzzzzzz\0")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".tar") and name not in CORPUS:
            os.remove(os.path.join(OUT, name))
    for name, data in sorted(CORPUS.items()):
        with open(os.path.join(OUT, name), "wb") as fh:
            fh.write(data)
    print(f"wrote {len(CORPUS)} tars to {OUT}")


if __name__ == "__main__":
    main()
