//! File-level comparison of two layer indexes: every differing attribute of
//! every file, the cause class of each difference, known offenders named.

use super::tar_index::{index_layer, FileMeta, LayerIndex};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Why two things differ, as a class a person can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Only modification times differ.
    Timestamps,
    /// Same entries, different archive order.
    Order,
    /// uid/gid or user/group names differ.
    Ownership,
    /// Permission bits differ.
    Mode,
    /// Bytes, size, type or link targets differ; or a file exists on one side only.
    Content,
    /// Same uncompressed tar (diff_id), different compressed blob.
    Compression,
    /// The same deletion expressed with an opaque marker vs per-file whiteouts.
    WhiteoutStyle,
    /// xattrs, tar header format, device numbers.
    Metadata,
    /// The same JSON document: only the key order or the whitespace differ.
    #[serde(rename = "order-only")]
    JsonOrder,
}

impl Cause {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Timestamps => "timestamps only",
            Cause::Order => "entry order only",
            Cause::Ownership => "ownership",
            Cause::Mode => "mode",
            Cause::Content => "content",
            Cause::Compression => "compression only",
            Cause::WhiteoutStyle => "whiteout style",
            Cause::Metadata => "metadata",
            Cause::JsonOrder => "JSON key order or whitespace only",
        }
    }
}

/// One attribute that differs, with both values rendered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttrDiff {
    /// Attribute name: content, size, mode, uid, gid, uname, gname, mtime, type, link, hardlink, device, xattr:NAME, order, format.
    pub attr: String,
    /// Value in A.
    pub a: String,
    /// Value in B.
    pub b: String,
}

/// How a path differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both, with differences.
    Changed,
}

/// One differing path.
#[derive(Clone, Debug, Serialize)]
pub struct FileChange {
    /// The path.
    pub path: String,
    /// Added, removed or changed.
    pub change: ChangeKind,
    /// Every differing attribute (changed files).
    pub attrs: Vec<AttrDiff>,
    /// The cause class.
    pub cause: Cause,
    /// A known offender's explanation, when recognized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<String>,
    /// Differences inside a nested archive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nested: Vec<FileChange>,
    /// A unified diff of small text files (when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_diff: Option<String>,
}

/// The comparison of two layers' contents.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerComparison {
    /// Every differing path, sorted.
    pub changes: Vec<FileChange>,
    /// Same entries but different archive order.
    pub order_differs: bool,
    /// Counts per cause.
    pub causes: BTreeMap<Cause, usize>,
}

/// Options of a comparison.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// Produce unified diffs for small text files.
    pub text: bool,
    /// Ignore modification times.
    pub ignore_timestamps: bool,
    /// Ignore entry order.
    pub ignore_order: bool,
}

fn attr(attr: &str, a: impl ToString, b: impl ToString) -> AttrDiff {
    AttrDiff {
        attr: attr.to_owned(),
        a: a.to_string(),
        b: b.to_string(),
    }
}

fn opt(o: &Option<String>) -> String {
    o.clone().unwrap_or_else(|| "-".into())
}

/// Every differing attribute of one path present on both sides.
pub fn file_attrs(a: &FileMeta, b: &FileMeta, opts: &CompareOptions) -> Vec<AttrDiff> {
    let mut d = Vec::new();
    if a.kind != b.kind {
        d.push(attr("type", a.kind, b.kind));
    }
    if a.content != b.content {
        d.push(attr("content", opt(&a.content), opt(&b.content)));
    }
    if a.size != b.size {
        d.push(attr("size", a.size, b.size));
    }
    if a.link_target != b.link_target {
        d.push(attr("link", opt(&a.link_target), opt(&b.link_target)));
    }
    if a.hardlink != b.hardlink {
        d.push(attr("hardlink", opt(&a.hardlink), opt(&b.hardlink)));
    }
    if a.mode != b.mode {
        d.push(attr(
            "mode",
            format!("{:04o}", a.mode),
            format!("{:04o}", b.mode),
        ));
    }
    if a.uid != b.uid {
        d.push(attr("uid", a.uid, b.uid));
    }
    if a.gid != b.gid {
        d.push(attr("gid", a.gid, b.gid));
    }
    if a.uname != b.uname {
        d.push(attr("uname", &a.uname, &b.uname));
    }
    if a.gname != b.gname {
        d.push(attr("gname", &a.gname, &b.gname));
    }
    if a.device != b.device {
        d.push(attr(
            "device",
            format!("{:?}", a.device),
            format!("{:?}", b.device),
        ));
    }
    let keys: BTreeSet<&String> = a.xattrs.keys().chain(b.xattrs.keys()).collect();
    for k in keys {
        let (va, vb) = (a.xattrs.get(k), b.xattrs.get(k));
        if va != vb {
            let show = |v: Option<&Vec<u8>>| v.map_or("-".to_owned(), hex::encode);
            d.push(attr(&format!("xattr:{k}"), show(va), show(vb)));
        }
    }
    if a.format != b.format {
        d.push(attr("format", a.format, b.format));
    }
    if a.mtime != b.mtime && !opts.ignore_timestamps {
        d.push(attr("mtime", a.mtime, b.mtime));
    }
    d
}

/// The cause class of a set of attribute differences.
pub fn classify(attrs: &[AttrDiff]) -> Cause {
    let has = |names: &[&str]| attrs.iter().any(|a| names.contains(&a.attr.as_str()));
    if has(&["type", "content", "size", "link", "hardlink"]) {
        Cause::Content
    } else if has(&["mode"]) {
        Cause::Mode
    } else if has(&["uid", "gid", "uname", "gname"]) {
        Cause::Ownership
    } else if attrs.iter().all(|a| a.attr == "mtime") && !attrs.is_empty() {
        Cause::Timestamps
    } else {
        Cause::Metadata
    }
}

/// Known sources of non-reproducible files, by path (and content when needed).
pub fn known_offender(path: &str, a: Option<&FileMeta>, b: Option<&FileMeta>) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path == "etc/shadow" || path == "etc/shadow-" {
        if let (Some(a), Some(b)) = (a, b) {
            if shadow_differs_only_in_lastchg(a, b) {
                return Some("BusyBox adduser/addgroup write today's date (days since 1970) into /etc/shadow's last-change field: the layer changes from one day to the next".into());
            }
        }
        return Some("/etc/shadow differs (BusyBox adduser records the current day in it)".into());
    }
    if path.ends_with("lib/apk/db/scripts.tar") {
        return Some(
            "apk's lib/apk/db/scripts.tar records install-time mtimes of package scripts".into(),
        );
    }
    if path.ends_with(".next/BUILD_ID") {
        return Some(
            "Next.js writes a random BUILD_ID per build: set `generateBuildId` in next.config.js"
                .into(),
        );
    }
    if path.contains(".next/cache/") {
        return Some(
            "the Next.js build cache (.next/cache) ships in the image: exclude it from the COPY"
                .into(),
        );
    }
    if path.ends_with(".next/trace") {
        return Some("Next.js build timings (.next/trace) ship in the image".into());
    }
    if path.contains(".next/")
        && (name.ends_with("manifest.json")
            || name.ends_with("_buildManifest.js")
            || name.ends_with("_ssgManifest.js")
            || name.ends_with(".html")
            || name.ends_with(".rsc"))
    {
        return Some("Next.js output embedding the per-build BUILD_ID or preview/encryption keys (set `generateBuildId`, NEXT_SERVER_ACTIONS_ENCRYPTION_KEY)".into());
    }
    if path.contains("tmp/node-compile-cache/") {
        return Some("Node's module compile cache, which npm (>= 10.9) turns on: npm in a RUN leaves /tmp/node-compile-cache with random file names; set `ENV NODE_DISABLE_COMPILE_CACHE=1` before the RUN, or `rm -rf /tmp/node-compile-cache` in the same RUN".into());
    }
    if path.contains("dist/server/manifest_") && name.ends_with(".mjs") {
        return Some("Astro writes a random encryption `key` into its server manifest on every build: set ASTRO_KEY (from `astro create-key`) as a build secret or ARG".into());
    }
    if path.contains("node_modules/.vite/") {
        return Some("Vite's dependency-optimizer cache (node_modules/.vite) records a per-run browserHash: keep it out of the image (build in another stage, or `rm -rf node_modules/.vite`)".into());
    }
    if path.contains("node_modules/.vite-temp/") || name.contains(".timestamp-") {
        return Some("Vite's bundled config (vite.config.*.timestamp-TIME-RANDOM.mjs) left behind by an interrupted or concurrent build: delete it in the same RUN".into());
    }
    if path.contains(".npm/_logs/") {
        return Some(
            "npm debug logs left in the image: use `--mount=type=cache,target=/root/.npm`".into(),
        );
    }
    if path.contains(".npm/_cacache/") || path.contains("usr/local/share/.cache/yarn/") {
        return Some("a package-manager cache left in the image: use a cache mount".into());
    }
    None
}

const JSON_ORDER_HINT: &str = "the same JSON with its keys in another order or other whitespace: the tool writing it serializes an unordered map (Next.js pages-manifest.json is one); harmless at run time, but the digest changes: sort the keys when writing";

/// Only the bytes differ (not mode, owner or type), and both sides parse as
/// the same JSON value (object key order and whitespace do not count).
fn json_order_only(attrs: &[AttrDiff], a: &FileMeta, b: &FileMeta) -> bool {
    if !attrs
        .iter()
        .all(|d| matches!(d.attr.as_str(), "content" | "size" | "mtime"))
        || !attrs.iter().any(|d| d.attr == "content")
    {
        return false;
    }
    let (Some(x), Some(y)) = (&a.bytes, &b.bytes) else {
        return false;
    };
    match (
        serde_json::from_slice::<serde_json::Value>(x),
        serde_json::from_slice::<serde_json::Value>(y),
    ) {
        // serde_json's maps compare as sets of key-value pairs, order aside.
        (Ok(va), Ok(vb)) => va == vb,
        _ => false,
    }
}

fn shadow_differs_only_in_lastchg(a: &FileMeta, b: &FileMeta) -> bool {
    let (Some(x), Some(y)) = (&a.bytes, &b.bytes) else {
        return false;
    };
    let strip = |bytes: &Vec<u8>| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(':').collect();
                if f.len() > 2 {
                    f[2] = "";
                }
                f.join(":")
            })
            .collect()
    };
    strip(x) == strip(y)
}

fn is_archive(path: &str) -> bool {
    path.ends_with(".tar") || path.ends_with(".tar.gz") || path.ends_with(".tgz")
}

fn text_diff(path: &str, a: &FileMeta, b: &FileMeta) -> Option<String> {
    const MAX: usize = 64 * 1024;
    let (x, y) = (a.bytes.as_ref()?, b.bytes.as_ref()?);
    if x.len() > MAX || y.len() > MAX {
        return None;
    }
    let (x, y) = (std::str::from_utf8(x).ok()?, std::str::from_utf8(y).ok()?);
    let d = similar::TextDiff::from_lines(x, y);
    Some(
        d.unified_diff()
            .context_radius(2)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string(),
    )
}

/// Whiteout-style pairs: a directory made opaque on one side while the other
/// side lists per-file whiteouts in it.
fn whiteout_style_dirs(a: &LayerIndex, b: &LayerIndex) -> BTreeSet<String> {
    let opaque = |l: &LayerIndex| -> BTreeSet<String> {
        l.files
            .keys()
            .filter_map(|p| {
                p.strip_suffix(".wh..wh..opq")
                    .map(|d| d.trim_end_matches('/').to_owned())
            })
            .collect()
    };
    let per_file = |l: &LayerIndex| -> BTreeSet<String> {
        l.files
            .keys()
            .filter(|p| {
                let n = p.rsplit('/').next().unwrap_or(p);
                n.starts_with(".wh.") && n != ".wh..wh..opq"
            })
            .map(|p| {
                p.rsplit_once('/')
                    .map_or(String::new(), |(d, _)| d.to_owned())
            })
            .collect()
    };
    let (oa, ob, pa, pb) = (opaque(a), opaque(b), per_file(a), per_file(b));
    oa.intersection(&pb)
        .chain(ob.intersection(&pa))
        .cloned()
        .collect()
}

/// Compare two layers' contents.
pub fn compare_layers(a: &LayerIndex, b: &LayerIndex, opts: &CompareOptions) -> LayerComparison {
    let mut out = LayerComparison::default();
    let ws_dirs = whiteout_style_dirs(a, b);
    let in_ws_dir = |p: &str| {
        let (d, n) = p.rsplit_once('/').unwrap_or(("", p));
        n.starts_with(".wh.") && ws_dirs.contains(d)
    };
    let paths: BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    for p in paths {
        let (fa, fb) = (a.files.get(p), b.files.get(p));
        let mut change = match (fa, fb) {
            (Some(x), Some(y)) => {
                let attrs = file_attrs(x, y, opts);
                if attrs.is_empty() {
                    continue;
                }
                FileChange {
                    path: p.clone(),
                    change: ChangeKind::Changed,
                    cause: classify(&attrs),
                    attrs,
                    known: None,
                    nested: Vec::new(),
                    text_diff: None,
                }
            }
            (x, _) => FileChange {
                path: p.clone(),
                change: if x.is_some() {
                    ChangeKind::Removed
                } else {
                    ChangeKind::Added
                },
                attrs: Vec::new(),
                cause: if in_ws_dir(p) {
                    Cause::WhiteoutStyle
                } else {
                    Cause::Content
                },
                known: None,
                nested: Vec::new(),
                text_diff: None,
            },
        };
        change.known = known_offender(p, fa, fb);
        if let (Some(x), Some(y)) = (fa, fb) {
            if json_order_only(&change.attrs, x, y) {
                change.cause = Cause::JsonOrder;
                change.known = Some(JSON_ORDER_HINT.into());
            }
        }
        if let (Some(x), Some(y)) = (fa, fb) {
            if change.attrs.iter().any(|d| d.attr == "content") {
                if is_archive(p) {
                    if let (Some(bx), Some(by)) = (&x.bytes, &y.bytes) {
                        if let (Ok(ia), Ok(ib)) = (index_layer(&bx[..]), index_layer(&by[..])) {
                            change.nested = compare_layers(&ia, &ib, opts).changes;
                        }
                    }
                } else if opts.text {
                    change.text_diff = text_diff(p, x, y);
                }
            }
        }
        *out.causes.entry(change.cause).or_default() += 1;
        out.changes.push(change);
    }
    if !opts.ignore_order {
        let common = |l: &LayerIndex, other: &LayerIndex| -> Vec<String> {
            l.order
                .iter()
                .filter(|p| other.files.contains_key(*p))
                .cloned()
                .collect()
        };
        out.order_differs = common(a, b) != common(b, a);
        if out.order_differs {
            *out.causes.entry(Cause::Order).or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tar_index::tests::make_tar;
    use super::*;

    fn idx(files: &[(&str, &[u8], u32, u64, u64)]) -> LayerIndex {
        index_layer(&make_tar(files)[..]).unwrap()
    }

    #[test]
    fn mtime_only_is_timestamps() {
        let a = idx(&[("x", b"1", 0o644, 0, 1)]);
        let b = idx(&[("x", b"1", 0o644, 0, 2)]);
        let c = compare_layers(&a, &b, &CompareOptions::default());
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.changes[0].cause, Cause::Timestamps);
        assert_eq!(c.causes[&Cause::Timestamps], 1);
        let ignored = compare_layers(
            &a,
            &b,
            &CompareOptions {
                ignore_timestamps: true,
                ..Default::default()
            },
        );
        assert!(ignored.changes.is_empty());
    }

    #[test]
    fn every_attribute_is_reported_not_just_the_first() {
        let a = idx(&[("x", b"1", 0o644, 0, 1)]);
        let b = idx(&[("x", b"22", 0o755, 1000, 2)]);
        let c = compare_layers(&a, &b, &CompareOptions::default());
        let names: Vec<&str> = c.changes[0].attrs.iter().map(|d| d.attr.as_str()).collect();
        assert_eq!(names, ["content", "size", "mode", "uid", "gid", "mtime"]);
        assert_eq!(c.changes[0].cause, Cause::Content);
    }

    #[test]
    fn owner_mode_and_order_classes() {
        let a = idx(&[("a", b"1", 0o644, 0, 1), ("b", b"2", 0o644, 0, 1)]);
        let own = idx(&[("a", b"1", 0o644, 7, 1), ("b", b"2", 0o644, 0, 1)]);
        let mode = idx(&[("a", b"1", 0o600, 0, 1), ("b", b"2", 0o644, 0, 1)]);
        let order = idx(&[("b", b"2", 0o644, 0, 1), ("a", b"1", 0o644, 0, 1)]);
        let o = CompareOptions::default();
        assert_eq!(
            compare_layers(&a, &own, &o).changes[0].cause,
            Cause::Ownership
        );
        assert_eq!(compare_layers(&a, &mode, &o).changes[0].cause, Cause::Mode);
        let c = compare_layers(&a, &order, &o);
        assert!(c.order_differs && c.changes.is_empty());
        assert_eq!(c.causes[&Cause::Order], 1);
    }

    #[test]
    fn json_with_other_key_order_or_whitespace_is_order_only() {
        let p = "app/.next/server/pages-manifest.json";
        let a = idx(&[(p, br#"{"/_app":"a.js","/_error":"e.js"}"#, 0o644, 0, 1)]);
        let b = idx(&[(
            p,
            b"{\n  \"/_error\": \"e.js\",\n  \"/_app\": \"a.js\"\n}",
            0o644,
            0,
            2,
        )]);
        let c = compare_layers(&a, &b, &CompareOptions::default());
        assert_eq!(c.changes[0].cause, Cause::JsonOrder);
        assert!(c.changes[0].known.as_deref().unwrap().contains("key"));
        assert_eq!(c.causes[&Cause::JsonOrder], 1);
        // Another value, or a mode change beside the reorder, is not order-only.
        let v = idx(&[(p, br#"{"/_app":"b.js","/_error":"e.js"}"#, 0o644, 0, 1)]);
        let m = idx(&[(p, br#"{"/_error":"e.js","/_app":"a.js"}"#, 0o600, 0, 1)]);
        let o = CompareOptions::default();
        for other in [v, m] {
            let c = compare_layers(&a, &other, &o);
            assert_ne!(c.changes[0].cause, Cause::JsonOrder);
            assert!(c.changes[0]
                .known
                .as_deref()
                .unwrap_or("")
                .contains("BUILD_ID"));
        }
        let text = idx(&[("x.txt", b"hello", 0o644, 0, 1)]);
        let text2 = idx(&[("x.txt", b"hello ", 0o644, 0, 1)]);
        assert_eq!(
            compare_layers(&text, &text2, &o).changes[0].cause,
            Cause::Content
        );
    }

    #[test]
    fn random_tool_output_is_named() {
        for (path, word) in [
            (
                "tmp/node-compile-cache/v22.11.0-x64-1a2b/3c4d",
                "NODE_DISABLE_COMPILE_CACHE",
            ),
            ("app/dist/server/manifest_C2dRf1.mjs", "ASTRO_KEY"),
            ("app/node_modules/.vite/deps/_metadata.json", "browserHash"),
            (
                "app/vite.config.ts.timestamp-1733300000000-9f1e.mjs",
                "vite.config",
            ),
        ] {
            let k = known_offender(path, None, None).unwrap_or_default();
            assert!(k.contains(word), "{path}: {k}");
        }
        assert!(known_offender("app/dist/server/entry.mjs", None, None).is_none());
    }

    #[test]
    fn whiteout_style_is_recognized() {
        let a = idx(&[("etc/apk/.wh..wh..opq", b"", 0o644, 0, 0)]);
        let b = idx(&[("etc/apk/.wh.world", b"", 0o644, 0, 0)]);
        let c = compare_layers(&a, &b, &CompareOptions::default());
        assert!(
            c.changes.iter().all(|f| f.cause == Cause::WhiteoutStyle),
            "{:?}",
            c.changes
        );
    }

    #[test]
    fn shadow_lastchg_is_a_known_offender_and_text_diffs_work() {
        let a = idx(&[(
            "etc/shadow",
            b"root:*:20400:0:::::\nnextjs:!:20400:0:99999:7:::\n",
            0o640,
            0,
            0,
        )]);
        let b = idx(&[(
            "etc/shadow",
            b"root:*:20400:0:::::\nnextjs:!:20401:0:99999:7:::\n",
            0o640,
            0,
            0,
        )]);
        let c = compare_layers(
            &a,
            &b,
            &CompareOptions {
                text: true,
                ..Default::default()
            },
        );
        let f = &c.changes[0];
        assert!(
            f.known.as_deref().unwrap().contains("BusyBox adduser"),
            "{:?}",
            f.known
        );
        assert!(f.text_diff.as_deref().unwrap().contains("-nextjs:!:20400"));
    }

    #[test]
    fn nested_archives_are_compared_entry_by_entry() {
        let inner_a = make_tar(&[("pkg.post-install", b"echo", 0o755, 0, 100)]);
        let inner_b = make_tar(&[("pkg.post-install", b"echo", 0o755, 0, 200)]);
        let a = idx(&[("lib/apk/db/scripts.tar", &inner_a, 0o644, 0, 0)]);
        let b = idx(&[("lib/apk/db/scripts.tar", &inner_b, 0o644, 0, 0)]);
        let c = compare_layers(&a, &b, &CompareOptions::default());
        let f = &c.changes[0];
        assert!(f.known.as_deref().unwrap().contains("scripts.tar"));
        assert_eq!(f.nested.len(), 1);
        assert_eq!(f.nested[0].cause, Cause::Timestamps);
    }
}
