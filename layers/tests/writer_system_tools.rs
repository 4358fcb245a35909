//! Layers read back by the system's own tools: GNU `tar -tvv --numeric-owner`,
//! `gzip -t`, and `zcat | sha256sum` must equal the diff_id.

mod support;

use cairn_layers::blob_store::BlobStore;
use cairn_layers::{write_layer, Compression, Layer, LayerOptions};
use std::io::Write;
use std::process::{Command, Stdio};

fn run(cmd: &str, args: &[&str], stdin: &[u8]) -> (String, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{cmd} {args:?} failed: {e}");
    (o, e)
}

fn write(entries: Vec<cairn_layers::Entry>) -> (tempfile::TempDir, BlobStore, Layer) {
    let t = tempfile::tempdir().unwrap();
    let store = BlobStore::open(t.path()).unwrap();
    let layer = write_layer(entries, &LayerOptions::new(support::POLICY), &store).unwrap();
    (t, store, layer)
}

#[test]
fn gzip_and_sha256sum_agree_with_the_layer() {
    for entries in [support::small(), support::multiblock()] {
        let (_t, store, layer) = write(entries);
        let blob = store.path(&layer.digest);
        assert_eq!(
            layer.media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(std::fs::metadata(&blob).unwrap().len(), layer.size);
        let (_, _) = run("gzip", &["-t", blob.to_str().unwrap()], b"");
        let gz = std::fs::read(&blob).unwrap();
        let (tar, _) = run("sh", &["-c", "zcat | sha256sum"], &gz);
        assert_eq!(
            format!("sha256:{}", tar.split_whitespace().next().unwrap()),
            layer.diff_id.to_string()
        );
        let (sum, _) = run("sha256sum", &[blob.to_str().unwrap()], b"");
        assert!(sum.starts_with(layer.digest.hex()));
        let (n, _) = run("sh", &["-c", "zcat | wc -c"], &gz);
        assert_eq!(n.trim().parse::<u64>().unwrap(), layer.uncompressed_size);
    }
}

#[test]
fn gnu_tar_lists_every_field() {
    let (_t, store, layer) = write(support::small());
    assert_eq!(layer.entries, 19);
    let gz = std::fs::read(store.path(&layer.digest)).unwrap();
    let (listing, stderr) = run("tar", &["-tvvz", "--numeric-owner", "-f", "-"], &gz);
    assert!(stderr.is_empty(), "GNU tar complained: {stderr}");
    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 19, "{listing}");
    let line = |name: &str| -> String {
        lines
            .iter()
            .find(|l| l.get(5) == Some(&name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"))
            .join(" ")
    };
    let y = "y".repeat(90);
    let expected = [
        ("bin/", "drwxr-xr-x 0/0 0 1970-01-01 00:00 bin/"),
        ("bin/ping", "-rwsr-xr-x 0/0 15 1970-01-01 00:00 bin/ping"),
        ("dev/null", "crw-rw-rw- 0/0 1,3 2023-11-14 22:13 dev/null"),
        ("dev/sda", "brw-rw---- 0/6 8,0 2023-11-14 22:13 dev/sda"),
        (
            "etc/.wh.old",
            "---------- 0/0 0 1970-01-01 00:00 etc/.wh.old",
        ),
        (
            "etc/hostname",
            "-rw-r--r-- 1000/1000 6 2001-09-09 01:46 etc/hostname",
        ),
        (
            "etc/hostname.link",
            "hrw-r--r-- 0/0 0 2023-11-14 22:13 etc/hostname.link link to etc/hostname",
        ),
        (
            "etc/ünïcødé-日本.txt",
            "-rw-r--r-- 0/0 8 1970-01-01 00:00 etc/ünïcødé-日本.txt",
        ),
        ("run.fifo", "prw------- 0/0 0 2023-11-14 22:13 run.fifo"),
        ("var/tmp/", "drwxrwxrwt 0/0 0 2023-11-14 22:13 var/tmp/"),
    ];
    for (name, want) in expected {
        assert_eq!(line(name), want);
    }
    let long_x = format!("long/{}", "x".repeat(120));
    assert!(line(&long_x).starts_with("-rw-r--r-- 0/0 9 "));
    let split = format!("long/{y}/{}", "z".repeat(50));
    assert!(line(&split).starts_with("-rw-r--r-- 0/0 12 "));
    let link = line("usr/lib64");
    assert!(
        link.ends_with(&format!("usr/lib64 -> /{}/lib", "t".repeat(200))),
        "{link}"
    );
    // Only the allowlisted xattr, which GNU tar decodes with --xattrs.
    let (xattrs, _) = run(
        "tar",
        &[
            "-tvvz",
            "--xattrs",
            "--xattrs-include=*",
            "-f",
            "-",
            "bin/ping",
        ],
        &gz,
    );
    assert!(xattrs.contains("x: 8 security.capability"), "{xattrs}");
    assert!(!xattrs.contains("selinux"), "{xattrs}");
}

#[test]
fn uncompressed_layers_are_plain_tar() {
    let t = tempfile::tempdir().unwrap();
    let store = BlobStore::open(t.path()).unwrap();
    let opts = LayerOptions {
        compression: Compression::None,
        ..LayerOptions::new(support::POLICY)
    };
    let layer = write_layer(support::small(), &opts, &store).unwrap();
    assert_eq!(layer.media_type, "application/vnd.oci.image.layer.v1.tar");
    let tar = std::fs::read(store.path(&layer.digest)).unwrap();
    let (names, _) = run("tar", &["-tf", "-"], &tar);
    let names: Vec<&str> = names.lines().collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
    assert_eq!(names, sorted, "entries come out byte-sorted");
}

#[test]
fn gnu_tar_extracts_what_was_written() {
    use cairn_layers::{sort_entries, Entry, EntryKind, Source};
    use std::os::unix::fs::PermissionsExt;
    let src = tempfile::tempdir().unwrap();
    let mut entries = vec![Entry::dir("app"), Entry::dir("app/lib")];
    for (i, name) in [
        "app/a.js",
        "app/lib/b.bin",
        "app/lib/c d.txt",
        "app/z-é.txt",
    ]
    .iter()
    .enumerate()
    {
        let data = support::noise(1000 + i * 70_000, i as u32 + 3);
        let host = src.path().join(format!("f{i}"));
        std::fs::write(&host, &data).unwrap();
        entries.push(Entry {
            kind: EntryKind::File {
                size: data.len() as u64,
                source: Source::Path(host),
            },
            mode: if i == 1 { 0o755 } else { 0o640 },
            ..Entry::dir(*name)
        });
    }
    entries.push(Entry {
        kind: EntryKind::Symlink {
            target: "lib/b.bin".into(),
        },
        mode: 0o777,
        ..Entry::dir("app/link")
    });
    entries.push(Entry {
        kind: EntryKind::Hardlink {
            target: "app/a.js".into(),
        },
        ..Entry::dir("app/zz-hard.js")
    });
    sort_entries(&mut entries);
    let (_t, store, layer) = write(entries);
    let out = tempfile::tempdir().unwrap();
    let blob = store.path(&layer.digest);
    run(
        "tar",
        &[
            "-xzf",
            blob.to_str().unwrap(),
            "-C",
            out.path().to_str().unwrap(),
            "--numeric-owner",
        ],
        b"",
    );
    let root = out.path().join("app");
    for (i, name) in ["a.js", "lib/b.bin", "lib/c d.txt", "z-é.txt"]
        .iter()
        .enumerate()
    {
        let got = std::fs::read(root.join(name)).unwrap();
        assert_eq!(
            got,
            support::noise(1000 + i * 70_000, i as u32 + 3),
            "{name}"
        );
        let mode = std::fs::metadata(root.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, if i == 1 { 0o755 } else { 0o640 }, "{name}");
    }
    assert_eq!(
        std::fs::read_link(root.join("link")).unwrap(),
        std::path::Path::new("lib/b.bin")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root.join("zz-hard.js")).unwrap().ino(),
        std::fs::metadata(root.join("a.js")).unwrap().ino(),
        "hardlink extracted as the same inode"
    );
}
