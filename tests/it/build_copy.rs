//! COPY/ADD edge cases through the real `cairn build`, each image written as
//! an OCI layout and its layers read back with the `tar` crate.

use crate::support::http::{respond, Server};
use crate::support::{cairn, ok, run, testdata};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

/// One member of a layer tar.
#[derive(Clone, Debug)]
pub struct Member {
    /// `f` file, `d` dir, `l` symlink, `h` hard link.
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Link target (symlinks and hard links).
    pub link: String,
    pub data: Vec<u8>,
}

impl Member {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A layer: path (no trailing `/`) → member.
pub type Layer = BTreeMap<String, Member>;

/// Write `files` (path, body) under `root`; a path ending in `/` is a directory.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, body) in files {
        let p = root.join(rel);
        if rel.ends_with('/') {
            fs::create_dir_all(&p).unwrap();
            continue;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
}

/// `cairn build CONTEXT -o type=oci,dest=OUT` with a cache under `home`.
pub fn build_in(home: &Path, ctx: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = crate::support::build_command(home, ctx, "cache", "plain");
    c.arg("-o")
        .arg(format!("type=oci,dest={},tar=false", out.display()))
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH");
    run(c, "")
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The layers of the image `digest` in `layout`, bottom first.
pub fn layers(layout: &Path, digest: &str) -> Vec<Layer> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(layout, digest)).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| read_layer(&blob(layout, l["digest"].as_str().unwrap())))
        .collect()
}

fn read_layer(p: &Path) -> Layer {
    let f = fs::File::open(p).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Layer::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let h = e.header().clone();
        let t = h.entry_type();
        let kind = if t.is_dir() {
            'd'
        } else if t.is_symlink() {
            'l'
        } else if t.is_hard_link() {
            'h'
        } else {
            'f'
        };
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(
            path,
            Member {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                link,
                data,
            },
        );
    }
    out
}

/// All layers applied in order (no whiteouts in these tests).
pub fn merged(ls: &[Layer]) -> Layer {
    let mut m = Layer::new();
    for l in ls {
        m.extend(l.clone());
    }
    m
}

/// Build and return (digest, layers); panics with stderr on failure.
fn build_ok(t: &Path, ctx: &Path, extra: &[&str]) -> (String, Vec<Layer>) {
    let out = t.join("out");
    let _ = fs::remove_dir_all(&out);
    let o = build_in(t, ctx, &out, extra);
    let digest = ok(&o);
    let ls = layers(&out, &digest);
    (digest, ls)
}

fn build_err(t: &Path, ctx: &Path) -> String {
    let o = build_in(t, ctx, &t.join("out"), &[]);
    assert!(!o.status.success(), "build should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn get<'a>(m: &'a Layer, p: &str) -> &'a Member {
    m.get(p)
        .unwrap_or_else(|| panic!("`{p}` missing; have {:?}", m.keys().collect::<Vec<_>>()))
}

#[test]
fn sources_wildcards_directories_and_destination_rules() {
    let t = tempfile::tempdir().unwrap();
    let (digest, ls) = build_ok(t.path(), &testdata("build/copy-rules"), &[]);
    let m = merged(&ls);
    for p in ["app/a.json", "app/b.json", "multi/a.json", "multi/c.txt"] {
        assert_eq!(get(&m, p).kind, 'f', "{p}");
    }
    assert!(
        !m.contains_key("app/c.txt"),
        "the wildcard matched only *.json"
    );
    assert_eq!(get(&m, "contents/sub/x.txt").text(), "x\n");
    assert!(
        !m.contains_key("contents/dir"),
        "a directory source copies its contents"
    );
    assert_eq!(get(&m, "file-dest").kind, 'f', "no trailing slash: a file");
    assert_eq!(get(&m, "file-dest").text(), "c\n");
    assert_eq!(get(&m, "dir-dest").kind, 'd');
    assert_eq!(get(&m, "dir-dest/c.txt").text(), "c\n");
    assert_eq!(get(&m, "app/rel/c.txt").text(), "c\n", "WORKDIR-relative");
    assert_eq!(get(&m, "app/renamed.txt").text(), "c\n");
    // New files get the build epoch, and a second build gives the same digest.
    let (again, _) = build_ok(t.path(), &testdata("build/copy-rules"), &["--no-cache"]);
    assert_eq!(digest, again);
}

#[test]
fn symlinks_hardlinks_and_never_reading_outside_the_context() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[
            ("real.txt", "real\n"),
            ("d/f", "shared\n"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY link.txt /followed.txt\nCOPY d /d/\nCOPY evil /evil\nCOPY ../../real.txt /up.txt\nCOPY escape/passwd /esc.txt\n",
            ),
        ],
    );
    symlink("real.txt", ctx.join("link.txt")).unwrap();
    symlink("../real.txt", ctx.join("d/inner")).unwrap();
    fs::hard_link(ctx.join("d/f"), ctx.join("d/h")).unwrap();
    symlink("/etc/passwd", ctx.join("evil")).unwrap();
    symlink("/etc/passwd", ctx.join("d/abs")).unwrap();
    // A directory symlink out of the context resolves inside it (to /etc → ctx/etc).
    symlink("/etc", ctx.join("escape")).unwrap();
    write_tree(&ctx, &[("etc/passwd", "context's own passwd\n")]);
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    let followed = get(&m, "followed.txt");
    assert_eq!((followed.kind, followed.text().as_str()), ('f', "real\n"));
    let inner = get(&m, "d/inner");
    assert_eq!((inner.kind, inner.link.as_str()), ('l', "../real.txt"));
    let (f, h) = (get(&m, "d/f"), get(&m, "d/h"));
    assert_eq!(f.kind, 'f');
    assert_eq!((h.kind, h.link.as_str()), ('h', "d/f"), "hard link kept");
    let abs = get(&m, "d/abs");
    assert_eq!(
        (abs.kind, abs.link.as_str()),
        ('l', "/etc/passwd"),
        "a symlink to outside inside a copied directory is kept as the link it is"
    );
    assert_eq!(
        get(&m, "evil").text(),
        "context's own passwd\n",
        "a top-level symlink source is followed inside the context (chroot semantics), never to the host"
    );
    assert_eq!(get(&m, "up.txt").text(), "real\n", "../ is neutralised");
    assert_eq!(get(&m, "esc.txt").text(), "context's own passwd\n");

    // A link to a host file the context does not have is not found, never read.
    symlink("/etc/hostname", ctx.join("host")).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY host /h\n").unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(
        err.contains("`host` is a symlink to `/etc/hostname`, which is not in the build context"),
        "{err}"
    );
}

#[test]
fn from_stage_by_name_and_index_heredocs_and_dockerignore_scope() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[
            (".dockerignore", "**/secret.txt\n"),
            ("secret.txt", "not sent\n"),
            (
                "Dockerfile",
                "FROM scratch AS one\nCOPY <<EOF /gen/secret.txt\nmade in stage\nEOF\nCOPY <<A <<B /gen/\nfirst\nA\nsecond\nB\n\nFROM scratch\nCOPY --from=one /gen/secret.txt /by-name.txt\nCOPY --from=0 /gen /by-index/\n",
            ),
        ],
    );
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    assert_eq!(get(&m, "by-name.txt").text(), "made in stage\n");
    assert_eq!(
        get(&m, "by-index/secret.txt").text(),
        "made in stage\n",
        ".dockerignore never applies to --from"
    );
    assert_eq!(get(&m, "by-index/A").text(), "first\n");
    assert_eq!(get(&m, "by-index/B").text(), "second\n");

    // From the context, the ignored file is an error that says why.
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY secret.txt /\n").unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(
        err.contains("excluded from the build context by .dockerignore")
            && err.contains("**/secret.txt")
            && err.contains("cairn context ls --explain secret.txt"),
        "{err}"
    );
}

#[test]
fn chown_by_name_and_number_and_chmod_octal_and_symbolic() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[
            ("passwd", "root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n"),
            ("group", "root:x:0:\nstaff:x:50:\n"),
            ("f", "f\n"),
            ("tree/exe", "#!/bin/sh\n"),
            ("tree/plain", "p\n"),
            (
                "Dockerfile",
                "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\n\
                 COPY --chown=app:staff f /f1\nCOPY --chown=1234 f /f2\nCOPY --chown=7:8 f /f3\n\
                 COPY --chmod=u=rwX,go=rX tree /m/\nCOPY --chmod=+x f /fx\nCOPY --chmod=750 f /f750\n",
            ),
        ],
    );
    fs::set_permissions(ctx.join("tree/exe"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(ctx.join("tree/plain"), fs::Permissions::from_mode(0o600)).unwrap();
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    let ids = |p: &str| (get(&m, p).uid, get(&m, p).gid);
    assert_eq!(
        ids("f1"),
        (1001, 50),
        "names from the stage's own passwd/group"
    );
    assert_eq!(ids("f2"), (1234, 1234), "user only: gid = uid");
    assert_eq!(ids("f3"), (7, 8));
    let mode = |p: &str| get(&m, p).mode;
    assert_eq!(mode("m/exe"), 0o755, "X keeps executables executable");
    assert_eq!(mode("m/plain"), 0o644);
    assert_eq!(mode("fx") & 0o111, 0o111);
    assert_eq!(mode("f750"), 0o750);

    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY passwd /etc/passwd\nCOPY --chown=nobody f /f\n",
    )
    .unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(err.contains("nobody"), "{err}");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY --chmod=u+q f /f\n",
    )
    .unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(err.contains("invalid chmod parameter"), "{err}");

    // A passwd the build itself wrote from a heredoc (read from memory, not unpacked).
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch
COPY <<EOF /etc/passwd
web:x:2002:2003::/:/bin/sh
EOF
         COPY --chown=web f /f
",
    )
    .unwrap();
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    assert_eq!((get(&m, "f").uid, get(&m, "f").gid), (2002, 2003));
}

#[test]
fn exclude_parents_and_link_destinations() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[
            ("docs/a.md", "a\n"),
            ("docs/keep.txt", "k\n"),
            ("docs/sub/b.md", "b\n"),
            ("src/app/x.js", "x\n"),
            ("src/app/y.js", "y\n"),
            ("src/lib/a.js", "a\n"),
            ("x.txt", "x\n"),
            ("links/", ""),
            (
                "Dockerfile",
                "FROM scratch\nCOPY --exclude=**/*.md docs /docs/\n\
                 COPY --parents ./src/./app/*.js /p/\nCOPY --parents src/lib/a.js /q/\nCOPY --parents **/a.js /g/\n\
                 COPY links/ /\nCOPY x.txt /app/followed.txt\nCOPY --link x.txt /app/linked.txt\n",
            ),
        ],
    );
    symlink("/target", ctx.join("links/app")).unwrap();
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    assert!(m.contains_key("docs/keep.txt"));
    assert!(!m.contains_key("docs/a.md") && !m.contains_key("docs/sub/b.md"));
    assert_eq!(
        get(&m, "p/app/x.js").text(),
        "x\n",
        "parents after the /./ pivot"
    );
    assert!(m.contains_key("p/app/y.js") && !m.contains_key("p/src"));
    assert_eq!(get(&m, "q/src/lib/a.js").text(), "a\n");
    assert_eq!(get(&m, "g/src/lib/a.js").text(), "a\n", "** with --parents");
    assert!(!m.contains_key("g/src/app/x.js"));
    // The image has /app -> /target.
    let n = ls.len();
    let linked = &ls[n - 1];
    assert!(
        linked.contains_key("app/linked.txt") && linked.get("app").is_some_and(|e| e.kind == 'd'),
        "--link never follows the previous state's symlinks: {:?}",
        linked.keys().collect::<Vec<_>>()
    );
    let followed = &ls[n - 2];
    assert!(
        followed.contains_key("target/followed.txt"),
        "without --link the destination follows /app -> /target: {:?}",
        followed.keys().collect::<Vec<_>>()
    );
}

/// A gzip tar of `members` (path, mode, uid, body); `None` body = directory.
fn tgz(members: &[(&str, u32, u64, Option<&str>)], gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, mode, uid, body) in members {
        let mut h = tar::Header::new_ustar();
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(1);
        match body {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, p, d.as_bytes()).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
        }
    }
    let raw = b.into_inner().unwrap();
    if !gzip {
        return raw;
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &raw).unwrap();
    e.finish().unwrap()
}

/// A file server: `/files/*.tgz` answers `archive`, other `/files/NAME`
/// and `/` the current body; anything else 404.
fn file_server(body: Arc<Mutex<Vec<u8>>>, archive: Vec<u8>) -> Server {
    Server::start(move |req, conn| {
        if req.target.starts_with("/files/") && req.target.ends_with(".tgz") {
            respond(conn, 200, &[], &archive);
        } else if req.target.starts_with("/files/") || req.target == "/" {
            let b = body.lock().unwrap().clone();
            respond(conn, 200, &[], &b);
        } else {
            respond(conn, 404, &[], b"not found");
        }
    })
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn add_extracts_local_archives_by_content() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[
            ("notarchive.tar.gz", "just text\n"),
            (
                "Dockerfile",
                "FROM scratch\nADD app.tgz /opt/\nADD data.bin /raw\nADD notarchive.tar.gz /n/\nADD --unpack=false keep.tgz /k/\n",
            ),
        ],
    );
    let members = [
        ("pkg/", 0o750, 5, None),
        ("pkg/index.js", 0o644, 5, Some("module.exports = 1;\n")),
        ("pkg/bin", 0o755, 0, Some("#!/bin/sh\n")),
    ];
    fs::write(ctx.join("app.tgz"), tgz(&members, true)).unwrap();
    fs::write(ctx.join("keep.tgz"), tgz(&members, true)).unwrap();
    fs::write(ctx.join("data.bin"), tgz(&members, false)).unwrap();
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    let idx = get(&m, "opt/pkg/index.js");
    assert_eq!((idx.text().as_str(), idx.uid), ("module.exports = 1;\n", 5));
    assert_eq!(get(&m, "opt/pkg").mode, 0o750);
    assert_eq!(get(&m, "opt/pkg/bin").mode, 0o755);
    assert_eq!(
        get(&m, "raw/pkg/index.js").kind,
        'f',
        "an uncompressed tar named .bin is still an archive, extracted into the destination"
    );
    assert_eq!(get(&m, "n/notarchive.tar.gz").text(), "just text\n");
    assert_eq!(
        get(&m, "k/keep.tgz").kind,
        'f',
        "--unpack=false copies as is"
    );
    assert!(!m.contains_key("k/pkg"));

    // bzip2, xz and zstd too.
    let raw = tgz(&members, false);
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    std::io::Write::write_all(&mut bz, &raw).unwrap();
    fs::write(ctx.join("a.bz"), bz.finish().unwrap()).unwrap();
    let mut xz = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
    std::io::Write::write_all(&mut xz, &raw).unwrap();
    fs::write(ctx.join("a.xz"), xz.finish().unwrap()).unwrap();
    fs::write(
        ctx.join("a.zst"),
        zstd::stream::encode_all(&raw[..], 3).unwrap(),
    )
    .unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nADD a.bz /bz/\nADD a.xz /xz/\nADD a.zst /zst/\n",
    )
    .unwrap();
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    assert_eq!(get(&m, "bz/pkg/index.js").text(), "module.exports = 1;\n");
    assert_eq!(get(&m, "xz/pkg/index.js").text(), "module.exports = 1;\n");
    assert_eq!(get(&m, "zst/pkg/index.js").text(), "module.exports = 1;\n");
}

/// A `.tar.gz` of several gzip members (what `pigz`, or `cat a.gz b.gz`,
/// makes) is extracted whole, not cut after its first member.
#[test]
fn add_extracts_every_member_of_a_multi_member_gzip() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[("Dockerfile", "FROM scratch\nADD app.tar.gz /opt/\n")],
    );
    let raw = tgz(
        &[
            ("first.txt", 0o644, 0, Some("in the first member\n")),
            ("second.txt", 0o644, 0, Some("in the second member\n")),
        ],
        false,
    );
    // Cut after the first file's header and data block.
    let (a, b) = raw.split_at(1024);
    let mut gz = Vec::new();
    for part in [a, b] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, part).unwrap();
        gz.extend(e.finish().unwrap());
    }
    fs::write(ctx.join("app.tar.gz"), gz).unwrap();
    let (_, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    assert_eq!(get(&m, "opt/first.txt").text(), "in the first member\n");
    assert_eq!(get(&m, "opt/second.txt").text(), "in the second member\n");
}

#[test]
fn add_downloads_urls_with_checksums_and_keys_on_content() {
    let t = tempfile::tempdir().unwrap();
    let body = Arc::new(Mutex::new(b"version one\n".to_vec()));
    let archive = tgz(&[("pkg/index.js", 0o644, 0, Some("x\n"))], true);
    let srv = file_server(body.clone(), archive);
    let ctx = t.path().join("ctx");
    let base = format!("http://{}", srv.addr());
    let sum = sha256_hex(b"version one\n");
    write_tree(
        &ctx,
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nADD {base}/files/hello.txt /dl/\nADD --checksum=sha256:{sum} {base}/files/hello.txt /dl2/named.txt\nADD {base}/ /u/\nADD {base}/files/a.tgz /tgz/\nADD --unpack=true {base}/files/a.tgz /untgz/\n"
            ),
        )],
    );
    let (d1, ls) = build_ok(t.path(), &ctx, &[]);
    let m = merged(&ls);
    let f = get(&m, "dl/hello.txt");
    assert_eq!((f.text().as_str(), f.mode), ("version one\n", 0o600));
    assert_eq!(get(&m, "dl2/named.txt").text(), "version one\n");
    assert_eq!(get(&m, "u/__unnamed__").kind, 'f');
    assert_eq!(
        get(&m, "tgz/a.tgz").kind,
        'f',
        "URLs are not unpacked by default"
    );
    assert_eq!(get(&m, "untgz/pkg/index.js").text(), "x\n", "--unpack=true");

    // Unchanged remote content: every step cached.
    let out = build_in(t.path(), &ctx, &t.path().join("out"), &[]);
    let (d2, warm) = (ok(&out), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(d1, d2);
    assert!(!warm.contains("cache miss"), "{warm}");

    // A changed remote file invalidates the steps without a checksum, and
    // fails the one whose checksum no longer matches, naming both digests.
    *body.lock().unwrap() = b"version two\n".to_vec();
    let out = build_in(t.path(), &ctx, &t.path().join("out"), &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("cache miss: url") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(
        err.contains(&sum) && err.contains(&sha256_hex(b"version two\n")),
        "{err}"
    );
}

#[test]
fn add_refuses_git_and_copy_refuses_urls() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    write_tree(
        &ctx,
        &[(
            "Dockerfile",
            "FROM scratch\nADD https://github.com/example/repo.git#main /src\n",
        )],
    );
    let err = build_err(t.path(), &ctx);
    assert!(
        err.contains("git repository is not supported") && err.contains("hint:"),
        "{err}"
    );
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY https://example.com/x.txt /x\n",
    )
    .unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(err.contains("source can't be a URL for COPY"), "{err}");
    // A failed download never prints the URL's credentials.
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nADD http://user:hunter2@127.0.0.1:1/f.txt?token=tok3n /f\n",
    )
    .unwrap();
    let err = build_err(t.path(), &ctx);
    let shown = err.replace(
        "ADD http://user:hunter2@127.0.0.1:1/f.txt?token=tok3n /f",
        "",
    );
    assert!(
        shown.contains("downloading http://127.0.0.1:1/f.txt"),
        "{err}"
    );
    assert!(
        !shown.contains("hunter2") && !shown.contains("tok3n"),
        "{err}"
    );
    fs::write(ctx.join("f"), "f").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 f /f\n",
    )
    .unwrap();
    let err = build_err(t.path(), &ctx);
    assert!(
        err.contains("checksum requires HTTP(S) or Git sources"),
        "{err}"
    );
}

/// The same context named and spelled differently (`cairn build appA` in one
/// directory, `cairn build ./link/` through a symlink to `appB` in another)
/// gives the same image, the same build record and the same step keys: no key
/// or record holds the context directory's name or the path to it.
#[test]
fn the_context_directory_name_never_enters_keys_or_records() {
    let t = tempfile::tempdir().unwrap();
    let mut layouts = Vec::new();
    for (parent, name, spelled) in [("one", "appA", "appA"), ("two", "appB", "./link/")] {
        let dir = t.path().join(parent);
        let ctx = dir.join(name);
        fs::create_dir_all(ctx.join("src")).unwrap();
        fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY src/ /app/\n").unwrap();
        fs::write(ctx.join("src/a.txt"), "same bytes\n").unwrap();
        symlink(name, dir.join("link")).unwrap();
        let out = t.path().join(format!("{parent}-out"));
        let mut c = cairn(t.path());
        c.current_dir(&dir).args([
            "build",
            "--cache-dir",
            &t.path()
                .join(format!("{parent}-cache"))
                .display()
                .to_string(),
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            spelled,
        ]);
        ok(&run(c, ""));
        layouts.push(out);
    }
    let blobs = |d: &Path| -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(d.join("blobs/sha256"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (blobs(&layouts[0]), blobs(&layouts[1]));
    for (name, bytes) in &a {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("appA"),
            "blob {name} names the context directory: {text}"
        );
    }
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the image or its record differs between the two directories"
    );
    assert_eq!(
        fs::read(layouts[0].join("index.json")).unwrap(),
        fs::read(layouts[1].join("index.json")).unwrap()
    );
}
