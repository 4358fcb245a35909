//! Content digests: the `sha256:<hex>` identifiers of blobs (`Digest`) and of
//! uncompressed layer tars (`DiffId`), plus hashing adapters for streams.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Only sha256 is supported, as in the OCI image spec's required set.
    #[error("unsupported digest algorithm `{0}` (only sha256 is supported)")]
    Algorithm(String),
    /// The string has no `algorithm:` prefix.
    #[error("`{0}` is not a digest: expected `sha256:<64 hex digits>`")]
    Format(String),
    /// The encoded part is not 64 lowercase hex digits.
    #[error("`{0}` is not a sha256 digest: expected 64 lowercase hex digits")]
    Hex(String),
}

impl Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Self {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    /// Build from a 64-digit lowercase hex string.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest {
                hex: hex.to_owned(),
            })
        } else {
            Err(DigestError::Hex(hex.to_owned()))
        }
    }

    /// The algorithm name (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for humans: `sha256:` and the first 12 hex digits.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Format(s.to_owned()))?;
        if alg != "sha256" {
            return Err(DigestError::Algorithm(alg.to_owned()));
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Hex(s.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

/// The digest of a layer's *uncompressed* tar. A newtype so that a compressed
/// blob digest and a diff_id can never be swapped silently.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiffId(pub Digest);

impl DiffId {
    /// The underlying digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }
}

impl FromStr for DiffId {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(DiffId)
    }
}

impl fmt::Display for DiffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for DiffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiffId(sha256:{})", self.0.hex)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A mutable reference to the wrapped writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }

    /// The digest and length of what was written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts, and hashes, everything read through it — or only
/// counts, for a stream whose digest someone else already computes
/// ([`HashingReader::counting`]: a byte is hashed once).
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Some(Sha256::new()),
            len: 0,
        }
    }

    /// Wrap `inner`, counting without hashing.
    pub fn counting(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: None,
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest (`None` when made [`HashingReader::counting`]) and length
    /// of what was read, and the inner reader.
    pub fn finish(self) -> (Option<Digest>, u64, R) {
        (self.hasher.map(Digest::from_hasher), self.len, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_the_well_known_one() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_input() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::of(b""));
        assert!(matches!(
            "sha512:abcd".parse::<Digest>(),
            Err(DigestError::Algorithm(_))
        ));
        assert!(matches!(
            "abcd".parse::<Digest>(),
            Err(DigestError::Format(_))
        ));
        assert!(matches!(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse::<Digest>(),
            Err(DigestError::Hex(_))
        ));
    }

    #[test]
    fn hashing_writer_and_reader_agree_with_of() {
        let data = b"hello layers";
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(data).unwrap();
        let (d, n, inner) = w.finish();
        assert_eq!(
            (d.clone(), n, inner.as_slice()),
            (Digest::of(data), 12, &data[..])
        );
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().0, Some(d));
        let mut r = HashingReader::counting(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let (none, n, _) = r.finish();
        assert_eq!((none, n), (None, 12));
    }
}
