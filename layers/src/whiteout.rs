//! OCI whiteouts: `.wh.<name>` and `.wh..wh..opq` encoding and decoding.
//!
//! A layer deletes `dir/name` from the layers below it with an empty regular
//! file `dir/.wh.name`, and hides *all* lower content of `dir` with the opaque
//! marker `dir/.wh..wh..opq` (image-spec `layer.md`, "Whiteouts").
//!
//! Whiteout entries are written exactly as containerd's `ChangeWriter` (and so
//! BuildKit) writes them: a regular file, size 0, **mode 0**, uid/gid 0,
//! mtime 0. Copying those bytes keeps our layers byte-identical to theirs for
//! the same change; the writer's epoch policy may still rewrite the mtime.
//!
//! This module is the one encoder of whiteouts in cairn: COPY/ADD layers use
//! [`whiteout_entry`]/[`opaque_entry`], and a RUN's capture (`cairn`'s
//! `sandbox::capture` and `sandbox::copy`, which describe entries in their
//! own wire format) names its whiteouts with [`whiteout_path`] and
//! [`opaque_path`] and gives them [`WHITEOUT_MODE`] and owner 0:0. The one
//! difference is deliberate and pinned by the RUN layer goldens: a RUN's
//! opaque marker carries its directory's owner, mode and mtime (what the
//! overlay upper directory says), not the zeros above.
//!
//! Decoding is strict: `.wh.` with no name, whiteouts of `.` or `..` and any
//! other name starting with `.wh..wh.` are rejected, because no valid image
//! can contain them and a lenient reader would let a hostile layer delete
//! something it did not name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::entry::{Entry, EntryKind, Source};

/// Prefix of every whiteout file name.
pub const PREFIX: &str = ".wh.";
/// File name of the opaque-directory marker.
pub const OPAQUE: &str = ".wh..wh..opq";
/// Mode of a whiteout file (owner 0:0), as containerd writes it.
pub const WHITEOUT_MODE: u32 = 0;
/// Reserved prefix: only [`OPAQUE`] may start with it.
const META_PREFIX: &str = ".wh..wh.";

/// What a whiteout file name means, relative to the directory it sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// Delete `name` (file, link or whole directory) from lower layers.
    Remove(&'a [u8]),
    /// Hide all lower-layer content of the containing directory.
    Opaque,
}

/// Why a name or path is not a valid whiteout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhiteoutError {
    /// `.wh.` with nothing after it.
    #[error("whiteout `{0}` names no file")]
    Empty(String),
    /// `.wh..` or `.wh...`.
    #[error("whiteout `{0}` targets `.` or `..`")]
    DotTarget(String),
    /// `.wh..wh.<x>` other than the opaque marker.
    #[error("whiteout `{0}` uses the reserved `.wh..wh.` prefix but is not the opaque marker `.wh..wh..opq`")]
    Reserved(String),
    /// The path to delete is not a valid layer path.
    #[error("cannot make a whiteout for `{path}`")]
    BadPath {
        /// The offending path.
        path: String,
        /// Why it is not acceptable.
        #[source]
        source: crate::entry::PathError,
    },
    /// The path to delete is itself a whiteout name.
    #[error("cannot make a whiteout for `{0}`: names starting with `.wh.` cannot exist in images")]
    WhiteoutOfWhiteout(String),
}

/// Decode one file name (a single path component, no `/`).
///
/// Returns `Ok(None)` for ordinary names, the whiteout meaning for valid
/// whiteout names and an error for malformed ones.
pub fn parse_name(name: &[u8]) -> Result<Option<Whiteout<'_>>, WhiteoutError> {
    let Some(target) = name.strip_prefix(PREFIX.as_bytes()) else {
        return Ok(None);
    };
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name == OPAQUE.as_bytes() {
        return Ok(Some(Whiteout::Opaque));
    }
    if name.starts_with(META_PREFIX.as_bytes()) {
        return Err(WhiteoutError::Reserved(shown()));
    }
    match target {
        b"" => Err(WhiteoutError::Empty(shown())),
        b"." | b".." => Err(WhiteoutError::DotTarget(shown())),
        _ => Ok(Some(Whiteout::Remove(target))),
    }
}

/// Split a layer path into (parent directory, whiteout meaning), or `None` if
/// its last component is not a whiteout. The parent of a top-level name is `""`.
pub fn parse_path(path: &[u8]) -> Result<Option<(&[u8], Whiteout<'_>)>, WhiteoutError> {
    let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&path[..0], path),
    };
    Ok(parse_name(name)?.map(|w| (parent, w)))
}

/// The path that the whiteout at `path` deletes (`a/.wh.b` → `a/b`); `None`
/// for an opaque marker, an invalid whiteout name or an ordinary path.
pub fn target(path: &str) -> Option<String> {
    let (parent, w) = parse_path(path.as_bytes()).ok()??;
    let Whiteout::Remove(name) = w else {
        return None;
    };
    let name = std::str::from_utf8(name).ok()?;
    Some(if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", std::str::from_utf8(parent).ok()?)
    })
}

/// The whiteout path that deletes `path` (`a/b` → `a/.wh.b`).
pub fn whiteout_path(path: &str) -> Result<String, WhiteoutError> {
    crate::entry::check_path(path).map_err(|source| WhiteoutError::BadPath {
        path: path.to_owned(),
        source,
    })?;
    let (parent, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    if name.starts_with(PREFIX) {
        return Err(WhiteoutError::WhiteoutOfWhiteout(path.to_owned()));
    }
    Ok(format!("{parent}{PREFIX}{name}"))
}

/// The opaque-marker path for directory `dir` (`""` is the layer root).
pub fn opaque_path(dir: &str) -> String {
    if dir.is_empty() {
        OPAQUE.to_owned()
    } else {
        format!("{dir}/{OPAQUE}")
    }
}

/// The entry that deletes `path` from lower layers (containerd's header shape).
pub fn whiteout_entry(path: &str) -> Result<Entry, WhiteoutError> {
    Ok(marker_entry(whiteout_path(path)?))
}

/// The entry that makes directory `dir` opaque.
pub fn opaque_entry(dir: &str) -> Result<Entry, WhiteoutError> {
    if !dir.is_empty() {
        crate::entry::check_path(dir).map_err(|source| WhiteoutError::BadPath {
            path: dir.to_owned(),
            source,
        })?;
    }
    Ok(marker_entry(opaque_path(dir)))
}

fn marker_entry(path: String) -> Entry {
    Entry {
        path,
        kind: EntryKind::File {
            size: 0,
            source: Source::Bytes(Arc::from(&[][..])),
        },
        mode: WHITEOUT_MODE,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: BTreeMap::new(),
    }
}

/// Whether `entry` is a whiteout or opaque marker (by name, as the spec
/// defines it; malformed whiteout names count as whiteouts too so that
/// callers never mistake them for ordinary files).
pub fn is_whiteout(entry: &Entry) -> bool {
    let name = entry.path.rsplit('/').next().unwrap_or("");
    name.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_valid_names() {
        assert_eq!(parse_name(b"foo"), Ok(None));
        assert_eq!(parse_name(b".whx"), Ok(None));
        assert_eq!(parse_name(b".wh.foo"), Ok(Some(Whiteout::Remove(b"foo"))));
        assert_eq!(
            parse_name(b".wh..hidden"),
            Ok(Some(Whiteout::Remove(b".hidden")))
        );
        assert_eq!(parse_name(b".wh...x"), Ok(Some(Whiteout::Remove(b"..x"))));
        assert_eq!(parse_name(OPAQUE.as_bytes()), Ok(Some(Whiteout::Opaque)));
    }

    #[test]
    fn rejects_malformed_names() {
        assert!(matches!(parse_name(b".wh."), Err(WhiteoutError::Empty(_))));
        assert!(matches!(
            parse_name(b".wh.."),
            Err(WhiteoutError::DotTarget(_))
        ));
        assert!(matches!(
            parse_name(b".wh..."),
            Err(WhiteoutError::DotTarget(_))
        ));
        for reserved in [
            &b".wh..wh."[..],
            b".wh..wh.foo",
            b".wh..wh..opqx",
            b".wh..wh..op",
        ] {
            assert!(
                matches!(parse_name(reserved), Err(WhiteoutError::Reserved(_))),
                "{:?}",
                String::from_utf8_lossy(reserved)
            );
        }
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path(b"a/b/.wh.c"),
            Ok(Some((&b"a/b"[..], Whiteout::Remove(b"c"))))
        );
        assert_eq!(
            parse_path(b".wh.top"),
            Ok(Some((&b""[..], Whiteout::Remove(b"top"))))
        );
        assert_eq!(
            parse_path(b"d/.wh..wh..opq"),
            Ok(Some((&b"d"[..], Whiteout::Opaque)))
        );
        assert_eq!(parse_path(b".wh.x/file"), Ok(None));
        assert!(parse_path(b"a/.wh.").is_err());
    }

    #[test]
    fn encodes_round_trip() {
        assert_eq!(whiteout_path("a/b").unwrap(), "a/.wh.b");
        assert_eq!(whiteout_path("top").unwrap(), ".wh.top");
        assert_eq!(opaque_path(""), ".wh..wh..opq");
        assert_eq!(opaque_path("x/y"), "x/y/.wh..wh..opq");
        for p in ["a/b", "top", "deep/er/.hidden"] {
            let w = whiteout_path(p).unwrap();
            let (parent, wh) = parse_path(w.as_bytes()).unwrap().unwrap();
            let Whiteout::Remove(name) = wh else {
                panic!("not a removal: {w}")
            };
            let rebuilt = if parent.is_empty() {
                String::from_utf8(name.to_vec()).unwrap()
            } else {
                format!(
                    "{}/{}",
                    String::from_utf8_lossy(parent),
                    String::from_utf8_lossy(name)
                )
            };
            assert_eq!(rebuilt, p);
        }
    }

    #[test]
    fn targets_of_whiteout_paths() {
        assert_eq!(target("a/.wh.b").as_deref(), Some("a/b"));
        assert_eq!(target(".wh.x").as_deref(), Some("x"));
        assert_eq!(target("a/.wh..wh..opq"), None);
        assert_eq!(target("a/b"), None);
        assert_eq!(target("a/.wh."), None);
        assert_eq!(
            target(&whiteout_path("d/e").unwrap()).as_deref(),
            Some("d/e")
        );
    }

    #[test]
    fn refuses_bad_targets() {
        assert!(whiteout_path("../x").is_err());
        assert!(whiteout_path("/abs").is_err());
        assert!(whiteout_path("").is_err());
        assert!(matches!(
            whiteout_path("a/.wh.b"),
            Err(WhiteoutError::WhiteoutOfWhiteout(_))
        ));
        assert!(opaque_entry("a/../b").is_err());
    }

    #[test]
    fn entries_have_containerd_shape() {
        let e = whiteout_entry("etc/motd").unwrap();
        assert_eq!(e.path, "etc/.wh.motd");
        assert_eq!((e.mode, e.uid, e.gid, e.mtime), (0, 0, 0, 0));
        assert!(matches!(e.kind, EntryKind::File { size: 0, .. }));
        assert!(is_whiteout(&e));
        let o = opaque_entry("etc/apk").unwrap();
        assert_eq!(o.path, "etc/apk/.wh..wh..opq");
        assert!(is_whiteout(&o));
        assert!(!is_whiteout(&Entry::dir("etc/.whx")));
        assert!(!is_whiteout(&Entry::dir(".wh.dir/child")));
    }
}
