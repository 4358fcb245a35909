//! Helpers shared by the layers integration tests (entry sets for the writer, tar builders for unpacking).
#![allow(dead_code)]

use cairn_layers::{sort_entries, Entry, EntryKind, MtimePolicy};
use std::collections::BTreeMap;

/// The SOURCE_DATE_EPOCH used by the fixed cases (2023-11-14T22:13:20Z).
pub const EPOCH: u64 = 1_700_000_000;
pub const POLICY: MtimePolicy = MtimePolicy::Clamp(EPOCH);

fn with(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        kind,
        mode,
        mtime: EPOCH + 1_000,
        ..Entry::dir(path)
    }
}

/// Every entry kind, long names (USTAR split and PAX), a non-ASCII name, a
/// long link target, an allowlisted and a dropped xattr, clamped and kept mtimes,
/// a whiteout, setuid/sticky bits, non-root owners.
pub fn small() -> Vec<Entry> {
    let mut ping = Entry::file_bytes("bin/ping", &b"\x7fELF fake ping\n"[..]);
    ping.mode = 0o4755;
    ping.xattrs = BTreeMap::from([
        (
            "security.capability".into(),
            vec![1, 0, 0, 2, 0, 0x20, 0, 0],
        ),
        (
            "security.selinux".into(),
            b"system_u:object_r:bin_t".to_vec(),
        ),
    ]);
    let mut hostname = Entry::file_bytes("etc/hostname", &b"cairn\n"[..]);
    hostname.mtime = 1_000_000_000;
    hostname.uid = 1000;
    hostname.gid = 1000;
    let mut whiteout = Entry::file_bytes("etc/.wh.old", &b""[..]);
    whiteout.mode = 0;
    let y = "y".repeat(90);
    let mut v = vec![
        Entry::dir("bin"),
        ping,
        Entry::dir("dev"),
        with(
            "dev/null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
        ),
        Entry {
            gid: 6,
            ..with(
                "dev/sda",
                EntryKind::BlockDevice { major: 8, minor: 0 },
                0o660,
            )
        },
        Entry::dir("etc"),
        whiteout,
        hostname,
        with(
            "etc/hostname.link",
            EntryKind::Hardlink {
                target: "etc/hostname".into(),
            },
            0o644,
        ),
        Entry::file_bytes("etc/ünïcødé-日本.txt", &b"unicode\n"[..]),
        Entry::dir("long"),
        Entry::file_bytes(format!("long/{}", "x".repeat(120)), &b"pax path\n"[..]),
        Entry::dir(format!("long/{y}")),
        Entry::file_bytes(
            format!("long/{y}/{}", "z".repeat(50)),
            &b"ustar split\n"[..],
        ),
        with("run.fifo", EntryKind::Fifo, 0o600),
        Entry::dir("usr"),
        with(
            "usr/lib64",
            EntryKind::Symlink {
                target: format!("/{}/lib", "t".repeat(200)),
            },
            0o777,
        ),
        Entry::dir("var"),
        with("var/tmp", EntryKind::Dir, 0o1777),
    ];
    sort_entries(&mut v);
    v
}

/// Deterministic bytes: xorshift noise interleaved with words, so they
/// compress a little, like real binaries.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let words: &[&[u8]] = &[b"const ", b"require(", b"module.exports", b" = ", b";\n"];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if x % 4 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(words[(x % 5) as usize]);
        }
    }
    out.truncate(len);
    out
}

/// More than two gzip blocks of data: exercises the block cutting.
pub fn multiblock() -> Vec<Entry> {
    vec![
        Entry::dir("data"),
        Entry::file_bytes("data/big.bin", noise(2 * 1024 * 1024 + 777, 7)),
        Entry::file_bytes("data/small.txt", noise(1000, 11)),
    ]
}

/// A tar of `(path, data)` members: paths ending in `/` are directories
/// (0755), the rest regular files (0644); uid/gid 0, mtime 100.
pub fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(100);
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
        } else {
            h.set_mode(0o644);
        }
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}
