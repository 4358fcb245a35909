//! Tar header blocks in exactly the bytes Go's `archive/tar` writes for
//! `Format: PAX` headers, which is what BuildKit/containerd layers contain.
//!
//! The format is chosen per entry, as Go does: a plain USTAR header (long
//! names split into `prefix`/`name` at a `/` when possible) whenever every
//! field fits; otherwise a PAX extended header (`x`, records sorted by key,
//! named `<dir>/PaxHeaders.0/<base>`, mode/uid/gid/mtime 0) followed by the
//! main header. GNU `L`/`K` long-name entries are never written. Why Go's
//! rules and not GNU's (as cargo uses): layers are consumed by Go tooling
//! (containerd, BuildKit, go-containerregistry), PAX is POSIX, and matching
//! Go's bytes lets our diff_ids be checked against Go-written vectors.
//!
//! Numbers are zero-padded octal ending in NUL; the checksum is six octal
//! digits, NUL, space; the magic is `ustar\0` + `00`.

/// One tar block.
pub(crate) const BLOCK: usize = 512;

const NAME: std::ops::Range<usize> = 0..100;
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: std::ops::Range<usize> = 157..257;
const MAGIC: std::ops::Range<usize> = 257..263;
const VERSION: std::ops::Range<usize> = 263..265;
const DEVMAJOR: std::ops::Range<usize> = 329..337;
const DEVMINOR: std::ops::Range<usize> = 337..345;
const PREFIX: std::ops::Range<usize> = 345..500;

/// The PAX record key prefix for extended attributes (star/GNU/Go convention).
pub(crate) const XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Everything that goes into one member's header, already normalized.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    /// Full member name, exact bytes (directories end in `/`).
    pub name: &'a [u8],
    /// Link target for symlinks and hardlinks, exact bytes, else empty.
    pub linkname: &'a [u8],
    /// Type flag byte (`0`, `1`, `2`, `3`, `4`, `5`, `6`).
    pub typeflag: u8,
    /// Permission bits (no type bits).
    pub mode: u32,
    /// Owner ids.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Data length following the header.
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Device numbers (0 unless a device).
    pub devmajor: u32,
    /// Device minor number.
    pub devminor: u32,
    /// Extended attributes written as `SCHILY.xattr.<name>` records.
    pub xattrs: &'a [(&'a str, &'a [u8])],
}

/// A header field that no tar format we write can hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unencodable {
    /// Field name.
    pub field: &'static str,
    /// Its value.
    pub value: u64,
}

fn octal_fits(width: usize, v: u64) -> bool {
    // width−1 octal digits plus the NUL terminator.
    let digits = (width - 1) as u32;
    digits >= 22 || v < 1u64 << (3 * digits)
}

/// Go's `formatOctal`: zero-padded octal leaving room for a NUL; 0 when it does not fit.
fn put_octal(b: &mut [u8], v: u64) {
    let v = if octal_fits(b.len(), v) { v } else { 0 };
    let s = format!("{:0width$o}", v, width = b.len() - 1);
    put_str(b, s.as_bytes());
}

/// Go's `formatString`: copy, NUL-terminate when shorter, and never leave a
/// truncated name ending in `/` (some readers would take it for a directory).
fn put_str(b: &mut [u8], s: &[u8]) {
    let n = s.len().min(b.len());
    b[..n].copy_from_slice(&s[..n]);
    if s.len() < b.len() {
        b[s.len()] = 0;
    }
    if s.len() > b.len() && b[b.len() - 1] == b'/' {
        let keep = s[..b.len() - 1]
            .iter()
            .rposition(|&c| c != b'/')
            .map_or(0, |i| i + 1);
        b[keep] = 0;
    }
}

/// Go's `toASCII`: drop every non-ASCII (and NUL) byte.
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&c| c < 0x80 && c != 0).collect()
}

/// Go's `splitUSTARPath`: split a long ASCII name into `prefix` (≤155) and `name` (≤100).
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME.len() || !name.is_ascii() {
        return None;
    } else if length > PREFIX.len() + 1 {
        length = PREFIX.len() + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let (nlen, plen) = (name.len() - i - 1, i);
    if i == 0 || nlen > NAME.len() || nlen == 0 || plen > PREFIX.len() {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `formatPAXRecord`: `"<len> <key>=<value>\n"` where `<len>` counts itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut size = base + base.to_string().len();
    if (base + size.to_string().len()) != size {
        size = base + size.to_string().len();
    }
    out.extend_from_slice(size.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Set magic/version and the checksum (Go `block.SetFormat` for USTAR/PAX).
fn seal(b: &mut [u8; BLOCK]) {
    b[MAGIC].copy_from_slice(b"ustar\0");
    b[VERSION].copy_from_slice(b"00");
    b[CHKSUM].fill(b' ');
    let sum: u64 = b.iter().map(|&c| u64::from(c)).sum();
    put_octal(&mut b[CHKSUM.start..CHKSUM.end - 1], sum);
    b[CHKSUM.end - 1] = b' ';
}

/// Go's `templateV7Plus` with the given name/linkname formatter.
fn main_block(h: &Header<'_>, name: &[u8], linkname: &[u8], prefix: &[u8]) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[TYPEFLAG] = h.typeflag;
    put_str(&mut b[NAME], name);
    put_str(&mut b[LINKNAME], linkname);
    put_octal(&mut b[MODE], u64::from(h.mode));
    put_octal(&mut b[UID], u64::from(h.uid));
    put_octal(&mut b[GID], u64::from(h.gid));
    put_octal(&mut b[SIZE], h.size);
    put_octal(&mut b[MTIME], h.mtime);
    put_octal(&mut b[DEVMAJOR], u64::from(h.devmajor));
    put_octal(&mut b[DEVMINOR], u64::from(h.devminor));
    put_str(&mut b[PREFIX], prefix);
    seal(&mut b);
    b
}

/// Encode `h` into `out`: either one USTAR block, or a PAX `x` header (block
/// plus padded records) followed by the main block. Data blocks are not included.
pub(crate) fn encode(h: &Header<'_>, out: &mut Vec<u8>) -> Result<(), Unencodable> {
    for (field, v) in [("devmajor", h.devmajor), ("devminor", h.devminor)] {
        if !octal_fits(DEVMAJOR.len(), u64::from(v)) {
            return Err(Unencodable {
                field,
                value: u64::from(v),
            });
        }
    }
    // Records each field needs when USTAR cannot hold it (Go `allowedFormats`).
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ustar = h.xattrs.is_empty();
    let long_or_unicode = |s: &[u8]| s.len() > NAME.len() || !s.is_ascii();
    if long_or_unicode(h.name) {
        pax.push(("path".into(), h.name.to_vec()));
        ustar &= split_ustar_path(h.name).is_some();
    }
    if long_or_unicode(h.linkname) {
        pax.push(("linkpath".into(), h.linkname.to_vec()));
        ustar = false;
    }
    for (key, width, v) in [
        ("uid", UID.len(), u64::from(h.uid)),
        ("gid", GID.len(), u64::from(h.gid)),
        ("size", SIZE.len(), h.size),
        ("mtime", MTIME.len(), h.mtime),
    ] {
        if !octal_fits(width, v) {
            pax.push((key.into(), v.to_string().into_bytes()));
            ustar = false;
        }
    }
    if ustar {
        let (prefix, name) = split_ustar_path(h.name).unwrap_or((b"", h.name));
        out.extend_from_slice(&main_block(h, name, h.linkname, prefix));
        return Ok(());
    }
    for (k, v) in h.xattrs {
        pax.push((format!("{XATTR_PREFIX}{k}"), v.to_vec()));
    }
    pax.sort();
    let mut data = Vec::new();
    for (k, v) in &pax {
        pax_record(&mut data, k, v);
    }
    // Go `writeRawFile`: only name/mode/uid/gid/size/mtime and the magic are set.
    let mut x = [0u8; BLOCK];
    x[TYPEFLAG] = b'x';
    let mut xname = to_ascii(&pax_header_name(h.name));
    xname.truncate(NAME.len());
    while xname.last() == Some(&b'/') {
        xname.pop();
    }
    put_str(&mut x[NAME], &xname);
    for f in [MODE, UID, GID, MTIME] {
        put_octal(&mut x[f], 0);
    }
    put_octal(&mut x[SIZE], data.len() as u64);
    seal(&mut x);
    out.extend_from_slice(&x);
    out.extend_from_slice(&data);
    out.resize(out.len().next_multiple_of(BLOCK), 0);
    out.extend_from_slice(&main_block(
        h,
        &to_ascii(h.name),
        &to_ascii(h.linkname),
        b"",
    ));
    Ok(())
}

/// Go: `path.Join(dir, "PaxHeaders.0", file)` for `dir, file := path.Split(name)`;
/// names are already clean, so joining only drops a directory's trailing `/`.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let (dir, file) = match name.iter().rposition(|&c| c == b'/') {
        Some(i) => name.split_at(i + 1),
        None => (&b""[..], name),
    };
    let mut s = [dir, b"PaxHeaders.0"].concat();
    if !file.is_empty() {
        s.push(b'/');
        s.extend_from_slice(file);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr<'a>(name: &'a str, linkname: &'a str) -> Header<'a> {
        Header {
            name: name.as_bytes(),
            linkname: linkname.as_bytes(),
            typeflag: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_700_000_000,
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        }
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", b"a");
        assert_eq!(v, b"9 path=a\n");
        // 98 bytes without the length: "100" would not fit in 100, so it becomes 101.
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'x'; 91]);
        assert_eq!(v.len(), 101);
        assert!(v.starts_with(b"101 path="));
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'x'; 89]);
        assert!(v.starts_with(b"98 path="), "{:?}", &v[..8]);
        assert_eq!(v.len(), 98);
    }

    #[test]
    fn split_follows_go() {
        let long = format!("{}/{}", "d".repeat(60), "f".repeat(60));
        let long = long.as_bytes();
        assert_eq!(
            split_ustar_path(long),
            Some((&long[..60], &long[61..])),
            "121 bytes split at the slash"
        );
        assert_eq!(split_ustar_path(b"short"), None);
        assert_eq!(split_ustar_path(&[b'x'; 120]), None, "no slash");
        let base_too_long = format!("d/{}", "f".repeat(101));
        assert_eq!(split_ustar_path(base_too_long.as_bytes()), None);
        let unicode = format!("{}/é", "d".repeat(110));
        assert_eq!(split_ustar_path(unicode.as_bytes()), None);
    }

    #[test]
    fn checksum_is_six_digits_nul_space() {
        let mut out = Vec::new();
        encode(&hdr("app/", ""), &mut out).unwrap();
        assert_eq!(out.len(), BLOCK);
        assert_eq!(out[CHKSUM.end - 2..CHKSUM.end], *b"\0 ");
        assert_eq!(&out[MAGIC], b"ustar\0");
        assert_eq!(&out[DEVMAJOR], b"0000000\0");
    }

    #[test]
    fn long_splittable_name_stays_ustar_unsplittable_goes_pax() {
        let long = format!("{}/{}", "d".repeat(60), "f".repeat(60));
        let mut out = Vec::new();
        encode(&hdr(&long, ""), &mut out).unwrap();
        assert_eq!(out.len(), BLOCK, "USTAR prefix split, no PAX header");
        assert_eq!(&out[PREFIX][..60], "d".repeat(60).as_bytes());

        let unsplittable = "f".repeat(150);
        let mut out = Vec::new();
        encode(&hdr(&unsplittable, ""), &mut out).unwrap();
        assert_eq!(
            out.len(),
            3 * BLOCK,
            "x header, one record block, main header"
        );
        assert_eq!(out[TYPEFLAG], b'x');
        assert_eq!(&out[..13], b"PaxHeaders.0/");
        assert_eq!(
            &out[DEVMAJOR], &[0u8; 8],
            "Go leaves x-header devices empty"
        );
    }

    #[test]
    fn pax_header_names_follow_go() {
        assert_eq!(pax_header_name(b"a/b/"), b"a/b/PaxHeaders.0");
        assert_eq!(pax_header_name(b"a/b"), b"a/PaxHeaders.0/b");
        assert_eq!(pax_header_name(b"b"), b"PaxHeaders.0/b");
    }

    #[test]
    fn a_name_that_is_not_utf8_keeps_its_bytes_in_the_path_record() {
        let mut h = hdr("", "");
        h.name = b"caf\xe9.txt";
        let mut out = Vec::new();
        encode(&h, &mut out).unwrap();
        assert_eq!(out[TYPEFLAG], b'x', "not ASCII: PAX, as Go writes it");
        assert!(out.windows(14).any(|w| w == b"path=caf\xe9.txt\n"));
        assert_eq!(&out[2 * BLOCK..2 * BLOCK + 8], b"caf.txt\0", "Go's toASCII");
    }

    #[test]
    fn oversized_numbers_use_pax_and_devices_error() {
        let mut h = hdr("big", "");
        h.uid = 3_000_000;
        let mut out = Vec::new();
        encode(&h, &mut out).unwrap();
        assert!(
            out.windows(12).any(|w| w == b"uid=3000000\n"),
            "pax uid record"
        );
        let mut h = hdr("huge", "");
        h.size = 10 << 30;
        h.mtime = 1 << 40;
        let mut out = Vec::new();
        encode(&h, &mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("size=10737418240\n"), "pax size record");
        assert!(text.contains("mtime=1099511627776\n"), "pax mtime record");
        assert_eq!(
            &out[2 * BLOCK + SIZE.start..2 * BLOCK + SIZE.end],
            b"00000000000\0"
        );
        let mut h = hdr("dev", "");
        h.devmajor = 3_000_000;
        assert_eq!(
            encode(&h, &mut Vec::new()),
            Err(Unencodable {
                field: "devmajor",
                value: 3_000_000
            })
        );
    }

    #[test]
    fn truncated_name_never_ends_in_slash() {
        let mut b = [0u8; 4];
        put_str(&mut b, b"ab//cd");
        assert_eq!(&b, b"ab\0/");
    }
}
