//! Alpine packages: apk's database `/lib/apk/db/installed`.
//!
//! The database is a list of paragraphs separated by blank lines, one line
//! per field, `X:value` (apk-tools `doc/apk-package.5`): `P` name, `V`
//! version, `A` architecture, `o` origin (the source package), `L` license,
//! `C` the package identity (`Q1` + base64 of a SHA-1). Fields we do not use
//! (files `F`/`R`, `Z` file checksums …) are skipped.

use base64::Engine as _;

/// One installed Alpine package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApkPackage {
    /// `P`.
    pub name: String,
    /// `V`.
    pub version: String,
    /// `A`.
    pub arch: Option<String>,
    /// `o`.
    pub origin: Option<String>,
    /// `L`.
    pub license: Option<String>,
    /// `C`, decoded to hex when it is a `Q1` SHA-1.
    pub sha1: Option<String>,
}

/// Parse the database; paragraphs without a name and version are skipped.
pub fn parse_installed(text: &str) -> Vec<ApkPackage> {
    let mut out = Vec::new();
    let mut cur = ApkPackage::default();
    let mut flush = |cur: &mut ApkPackage| {
        let p = std::mem::take(cur);
        if !p.name.is_empty() && !p.version.is_empty() {
            out.push(p);
        }
    };
    for line in text.lines() {
        if line.is_empty() {
            flush(&mut cur);
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().to_owned();
        match k {
            "P" => cur.name = v,
            "V" => cur.version = v,
            "A" => cur.arch = Some(v),
            "o" => cur.origin = Some(v),
            "L" => cur.license = Some(v),
            "C" => cur.sha1 = q1_to_hex(&v),
            _ => {}
        }
    }
    flush(&mut cur);
    out
}

/// `Q1<base64 sha1>` → hex.
fn q1_to_hex(c: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(c.strip_prefix("Q1")?)
        .ok()?;
    (raw.len() == 20).then(|| hex::encode(raw))
}

/// The purl of an Alpine package (purl-spec `apk` type; namespace `alpine`).
pub fn purl(p: &ApkPackage, distro_version: Option<&str>) -> String {
    let mut q = Vec::new();
    if let Some(a) = &p.arch {
        q.push(format!("arch={}", super::purl_escape(a)));
    }
    if let Some(d) = distro_version {
        q.push(format!("distro=alpine-{}", super::purl_escape(d)));
    }
    let mut s = format!(
        "pkg:apk/alpine/{}@{}",
        super::purl_escape(&p.name),
        super::purl_escape(&p.version)
    );
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "C:Q1n7Dw+ugG/3I6Y+IeyhtrkQKsQn4=\nP:musl\nV:1.2.5-r10\nA:x86_64\nS:409\nI:671744\nT:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa\nt:1739000000\nc:abc\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1abc=\n\nP:broken\n\nC:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:busybox\nV:1.37.0-r19\nA:x86_64\nL:GPL-2.0-only\no:busybox\n";

    #[test]
    fn parses_paragraphs() {
        let p = parse_installed(DB);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].name, "musl");
        assert_eq!(p[0].version, "1.2.5-r10");
        assert_eq!(p[0].license.as_deref(), Some("MIT"));
        assert_eq!(p[0].origin.as_deref(), Some("musl"));
        assert_eq!(
            p[0].sha1.as_deref(),
            Some("9fb0f0fae806ff723a63e21eca1b6b9102ac427e")
        );
        assert_eq!(p[1].name, "busybox");
        assert_eq!(
            purl(&p[1], Some("3.23.0")),
            "pkg:apk/alpine/busybox@1.37.0-r19?arch=x86_64&distro=alpine-3.23.0"
        );
    }
}
