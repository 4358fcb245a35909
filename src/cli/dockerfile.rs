//! Reading the Dockerfile for `cairn build` and `cairn parse`: bytes that
//! are not UTF-8 get the position of the first bad byte and how to convert
//! the file; a missing file gets the hint that fits how it was named.

use anyhow::Context as _;
use std::io::Read as _;
use std::path::Path;

/// Read `path`; `given` says whether it came from `-f` (otherwise it is the
/// context's default `Dockerfile`).
pub fn read_file(path: &Path, given: bool) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = match (e.kind(), given) {
            (std::io::ErrorKind::NotFound, false) => {
                "the context has no Dockerfile: pass its path with -f FILE (or -f - for stdin)"
            }
            (std::io::ErrorKind::NotFound, true) => "check the path given to -f",
            _ => "check that the Dockerfile is a readable file",
        };
        crate::cli::hint::hint(
            anyhow::Error::new(e).context(format!("cannot read Dockerfile {}", path.display())),
            hint,
        )
    })?;
    decode(bytes, path)
}

/// Read the Dockerfile from stdin (`-f -`), shown as `label` in errors.
pub fn read_stdin(label: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the Dockerfile from stdin")?;
    decode(bytes, label)
}

/// `bytes` as text, or an error at the first byte that is not UTF-8.
pub fn decode(bytes: Vec<u8>, label: &Path) -> anyhow::Result<String> {
    let e = match String::from_utf8(bytes) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let bytes = e.as_bytes();
    let name = label.display();
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Err(crate::cli::hint::hint(
            anyhow::anyhow!("{name}: the Dockerfile is UTF-16 text; cairn reads UTF-8"),
            format!("convert it: `iconv -f UTF-16 -t UTF-8 {name} > Dockerfile.utf8`"),
        ));
    }
    let at = e.utf8_error().valid_up_to();
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    // Valid UTF-8 up to `at`: columns count characters, as elsewhere.
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Err(crate::cli::hint::hint(
        anyhow::anyhow!(
            "{name}:{line}:{col}: the Dockerfile is not UTF-8 text (byte 0x{:02x} there cannot start a character)",
            bytes[at]
        ),
        format!(
            "save it as UTF-8; from Latin-1: `iconv -f LATIN1 -t UTF-8 {name} > Dockerfile.utf8`"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_byte_is_located_and_utf16_named() {
        let p = Path::new("app/Dockerfile");
        assert_eq!(decode(b"FROM a\n".to_vec(), p).unwrap(), "FROM a\n");
        let err = decode(b"FROM a\nLABEL x=\"\xc3\xa9t\xe9\"\n".to_vec(), p).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("app/Dockerfile:2:12: the Dockerfile is not UTF-8 text (byte 0xe9"),
            "{text}"
        );
        let rendered = {
            let mut out = Vec::new();
            crate::error::render(err.as_ref(), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert!(rendered.contains("iconv -f LATIN1"), "{rendered}");
        assert!(!rendered.contains("-f FILE"), "{rendered}");
        let err = decode(b"\xff\xfeF\0R\0".to_vec(), p).unwrap_err();
        assert!(err.to_string().contains("UTF-16"), "{err}");
    }
}
