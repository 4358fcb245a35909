//! Layer compression and the diff_id: [`LayerSink`] takes the uncompressed
//! tar stream, hashes it (diff_id) and writes the compressed bytes on.
//!
//! Gzip is produced by [`crate::pgzip`]: pinned `flate2` 1.1.11 with the
//! pure-Rust `zlib-rs` 0.6.8 backend at level [`GZIP_LEVEL`], the uncompressed
//! stream cut into fixed [`crate::pgzip::GZIP_BLOCK`] blocks, header bytes as
//! Go's `compress/gzip` and flate2 write them. Upgrading either crate, the
//! level or the block size changes layer digests (not diff_ids): the golden
//! test in `layers/tests/writer_golden.rs` fails and must be re-blessed.
//! zlib-rs picks SIMD variants at run time only for functions with identical
//! results (`compare256`, `slide_hash`, CRC-32), so the bytes do not depend on
//! the CPU. Go's deflate makes different bytes, so gzip digests never match
//! Docker's; diff_ids can (see the Go vector test).

use crate::digest::{DiffId, HashingWriter};
use crate::pgzip::ParallelGzip;
use std::io::{self, Write};

/// The deflate level used for every gzip layer: the flate2/zlib/Go default.
/// On the `just bench-layers` tree, level 6 gives 92.7 MB (GNU `gzip -6`:
/// 92.1 MB) for ~7 CPU-seconds; level 5 would cost ~40% less CPU for a 2.9%
/// larger blob. Changing it changes every gzip digest (re-bless `digests.txt`).
pub const GZIP_LEVEL: u32 = 6;

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Blob compression of a layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar: the blob digest equals the diff_id.
    None,
    /// Gzip, deterministic and parallel (see the module docs).
    #[default]
    Gzip,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_TAR,
            Compression::Gzip => MEDIA_TYPE_TAR_GZIP,
        }
    }
}

/// What a finished [`LayerSink`] knows.
pub struct SinkOutput<W> {
    /// sha256 of the uncompressed stream.
    pub diff_id: DiffId,
    /// Length of the uncompressed stream.
    pub uncompressed_size: u64,
    /// The destination, holding the compressed bytes.
    pub inner: W,
}

/// Uncompressed bytes in, compressed bytes out to `W`, diff_id computed on the way.
pub enum LayerSink<W: Write + Send + 'static> {
    /// No compression.
    Plain(HashingWriter<W>),
    /// Parallel gzip.
    Gzip(ParallelGzip<W>),
}

impl<W: Write + Send + 'static> LayerSink<W> {
    /// A sink writing to `inner`; `threads` deflate workers (0 = available parallelism).
    pub fn new(inner: W, compression: Compression, threads: usize) -> Self {
        match compression {
            Compression::None => LayerSink::Plain(HashingWriter::new(inner)),
            Compression::Gzip => LayerSink::Gzip(ParallelGzip::new(inner, GZIP_LEVEL, threads)),
        }
    }

    /// Flush everything and return the diff_id, the uncompressed size and `inner`.
    pub fn finish(self) -> io::Result<SinkOutput<W>> {
        match self {
            LayerSink::Plain(mut h) => {
                h.flush()?;
                let (d, n, inner) = h.finish();
                Ok(SinkOutput {
                    diff_id: DiffId(d),
                    uncompressed_size: n,
                    inner,
                })
            }
            LayerSink::Gzip(g) => {
                let done = g.finish()?;
                Ok(SinkOutput {
                    diff_id: DiffId(done.uncompressed_digest),
                    uncompressed_size: done.uncompressed_len,
                    inner: done.inner,
                })
            }
        }
    }
}

impl<W: Write + Send + 'static> Write for LayerSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LayerSink::Plain(h) => h.write(buf),
            LayerSink::Gzip(g) => g.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            LayerSink::Plain(h) => h.flush(),
            // Block boundaries are fixed by offset; a flush must not cut a block early.
            LayerSink::Gzip(_) => Ok(()),
        }
    }
}
