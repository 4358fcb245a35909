//! File names that are not UTF-8, carried without loss in `String` paths.
//!
//! Layer paths ([`crate::Entry::path`], link targets) are `String`s, but a
//! Linux file name is any bytes but `/` and NUL, and tar stores those bytes
//! verbatim. A name is therefore held as a string in which every byte that is
//! not part of valid UTF-8 becomes the code point `U+10FF00 + byte` (the top
//! of plane 16, private use); the tar writer and anything that touches the
//! host turn it back into the exact bytes ([`to_bytes`], [`to_os`]).
//!
//! The mapping is injective, so two names never meet as one path or one cache
//! key: a name that really contains one of those 256 code points has each of
//! that character's four UTF-8 bytes escaped the same way. Every other UTF-8
//! name is its own encoding, so nothing that already worked changes
//! (no digest, no cache key). Patterns match the encoded form, where one
//! escaped byte is one character, as Go's `filepath.Match` treats an invalid
//! byte as one rune. Entries sort by the encoded string: for a name that is
//! not UTF-8 that is not quite its byte order (a stray byte sorts after every
//! UTF-8 character), but it is the one order the walk, the writer and the
//! indexes all use.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The first of the 256 code points that stand for raw bytes.
const BASE: u32 = 0x10_FF00;

fn escaped(b: u8) -> char {
    // BASE + 0..=255 stays within U+10FFFF and is never a surrogate.
    char::from_u32(BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn is_escape(c: char) -> bool {
    u32::from(c) >= BASE
}

/// `bytes` as a path string (the module docs' encoding).
pub fn from_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(is_escape) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                out.extend(c.encode_utf8(&mut buf).bytes().map(escaped));
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().copied().map(escaped));
    }
    Cow::Owned(out)
}

/// A host name or path as a path string.
pub fn from_os(name: &OsStr) -> Cow<'_, str> {
    from_bytes(name.as_bytes())
}

/// The exact bytes a path string stands for.
pub fn to_bytes(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(is_escape) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_escape(c) {
            out.push((u32::from(c) - BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The host name a path string stands for.
pub fn to_os(s: &str) -> Cow<'_, OsStr> {
    match to_bytes(s) {
        Cow::Borrowed(b) => Cow::Borrowed(OsStr::from_bytes(b)),
        Cow::Owned(v) => Cow::Owned(std::ffi::OsString::from_vec(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names_are_their_own_encoding() {
        for s in ["", "a/b.txt", "café/naïve", "日本/語", "\u{10FEFF}"] {
            assert!(matches!(from_bytes(s.as_bytes()), Cow::Borrowed(b) if b == s));
            assert!(matches!(to_bytes(s), Cow::Borrowed(b) if b == s.as_bytes()));
        }
    }

    #[test]
    fn every_byte_string_round_trips_and_distinct_ones_stay_distinct() {
        let cases: Vec<Vec<u8>> = vec![
            b"caf\xe9.txt".to_vec(),
            b"caf\xe8.txt".to_vec(),
            b"\xff\xfe".to_vec(),
            b"\xc3".to_vec(),
            // A name holding a reserved code point, and the escaped byte it must not be confused with.
            "x\u{10FFE9}".as_bytes().to_vec(),
            b"x\xe9".to_vec(),
        ];
        let mut seen = std::collections::HashSet::new();
        for c in &cases {
            let s = from_bytes(c);
            assert_eq!(&*to_bytes(&s), c.as_slice(), "{c:?}");
            assert!(seen.insert(s.into_owned()), "{c:?} collides");
        }
        assert_eq!(from_bytes(b"caf\xe9.txt"), "caf\u{10FFE9}.txt");
    }
}
