//! Deterministic parallel gzip: one gzip member whose bytes depend only on the
//! input, never on the thread count or timing.
//!
//! The uncompressed stream is cut at fixed offsets into [`GZIP_BLOCK`]-byte
//! blocks (the last may be shorter). Each block is deflated on its own by a
//! fresh raw-deflate stream (no dictionary from the previous block, like
//! `pigz --independent`) ending in a sync flush, so blocks are byte-aligned
//! and concatenate into one valid deflate stream; a final empty fixed-Huffman
//! block (`03 00`) ends it. CRC-32s of the blocks are combined in order.
//!
//! Threads: the caller's thread fills blocks, `threads` workers deflate them,
//! and one collector puts results back in order, hashes the uncompressed
//! blocks (the diff_id) and writes the compressed bytes on (the blob writer
//! hashes those). Buffers circulate through a fixed pool, so memory stays at
//! about `2 × (2 × threads + 2)` MiB whatever the stream length.

use crate::digest::{Digest, HashingWriter};
use flate2::{Compress, Crc, FlushCompress};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Uncompressed bytes per independently deflated block. Part of the format:
/// changing it changes every gzip layer digest.
pub const GZIP_BLOCK: usize = 1 << 20;

/// Go `compress/gzip` and flate2 with no header fields set: no name, mtime 0,
/// XFL 0 (default level), OS 255 "unknown".
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A final (BFINAL=1) empty block with fixed Huffman codes.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

type Pair = (Vec<u8>, Vec<u8>);

struct Job {
    index: u64,
    input: Vec<u8>,
    output: Vec<u8>,
}

struct Done {
    index: u64,
    input: Vec<u8>,
    output: Vec<u8>,
    crc: Crc,
    result: io::Result<()>,
}

/// What [`ParallelGzip::finish`] returns.
pub struct GzipOutput<W> {
    /// The destination after the gzip trailer was written and flushed.
    pub inner: W,
    /// sha256 of the uncompressed input.
    pub uncompressed_digest: Digest,
    /// Length of the uncompressed input.
    pub uncompressed_len: u64,
}

struct Collected<W> {
    inner: W,
    digest: Digest,
    len: u64,
    blocks: u64,
}

/// A `Write` that gzips into `W` on worker threads (see the module docs).
pub struct ParallelGzip<W: Write + Send + 'static> {
    current: Pair,
    next_index: u64,
    jobs: Option<Sender<Job>>,
    free: Receiver<Pair>,
    workers: Vec<JoinHandle<()>>,
    collector: Option<JoinHandle<io::Result<Collected<W>>>>,
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    /// Start the pipeline: `threads` deflate workers (0 = available parallelism).
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Done>();
        let (free_tx, free_rx) = channel::<Pair>();
        for _ in 0..2 * threads + 1 {
            // Ignored: the receiver is alive in this scope.
            let _ = free_tx.send((Vec::new(), Vec::new()));
        }
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                std::thread::spawn(move || work(&rx, &tx, level))
            })
            .collect();
        drop(done_tx);
        let collector = std::thread::spawn(move || collect(inner, done_rx, free_tx));
        ParallelGzip {
            current: (Vec::with_capacity(GZIP_BLOCK), Vec::new()),
            next_index: 0,
            jobs: Some(job_tx),
            free: free_rx,
            workers,
            collector: Some(collector),
        }
    }

    /// Hand the current block to the workers; with `refill`, wait for a free buffer.
    fn dispatch(&mut self, refill: bool) -> io::Result<()> {
        let (input, output) = std::mem::take(&mut self.current);
        let job = Job {
            index: self.next_index,
            input,
            output,
        };
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent {
            return Err(self.fail());
        }
        self.next_index += 1;
        if refill {
            match self.free.recv() {
                Ok((mut input, output)) => {
                    input.clear();
                    input.reserve(GZIP_BLOCK);
                    self.current = (input, output);
                }
                Err(_) => return Err(self.fail()),
            }
        }
        Ok(())
    }

    /// Stop all threads and collect the result.
    fn shutdown(&mut self) -> io::Result<Collected<W>> {
        self.jobs = None;
        let mut panicked = false;
        for w in self.workers.drain(..) {
            panicked |= w.join().is_err();
        }
        let collected = match self.collector.take() {
            Some(c) => c
                .join()
                .map_err(|_| io::Error::other("gzip collector thread panicked"))?,
            None => return Err(io::Error::other("gzip pipeline already stopped")),
        }?;
        if panicked || collected.blocks != self.next_index {
            return Err(io::Error::other(format!(
                "gzip pipeline lost blocks: wrote {} of {}",
                collected.blocks, self.next_index
            )));
        }
        Ok(collected)
    }

    /// The pipeline stopped early: the error that stopped it.
    fn fail(&mut self) -> io::Error {
        match self.shutdown() {
            Err(e) => e,
            Ok(_) => io::Error::other("gzip pipeline stopped unexpectedly"),
        }
    }

    /// Compress what is left, write the trailer, and return the destination
    /// with the uncompressed digest and length.
    pub fn finish(mut self) -> io::Result<GzipOutput<W>> {
        if !self.current.0.is_empty() {
            self.dispatch(false)?;
        }
        let c = self.shutdown()?;
        Ok(GzipOutput {
            inner: c.inner,
            uncompressed_digest: c.digest,
            uncompressed_len: c.len,
        })
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (GZIP_BLOCK - self.current.0.len()).min(buf.len());
        self.current.0.extend_from_slice(&buf[..n]);
        if self.current.0.len() == GZIP_BLOCK {
            self.dispatch(true)?;
        }
        Ok(n)
    }

    /// A no-op: block boundaries are fixed by offset, never by flushes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        if self.collector.is_some() {
            // Abandoned (an entry failed): stop the threads; the result is discarded.
            let _ = self.shutdown();
        }
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, done: &Sender<Done>, level: u32) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let Job {
            index,
            input,
            mut output,
        } = job;
        output.clear();
        let level = if looks_incompressible(&input) {
            0
        } else {
            level
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            deflate_block(&input, &mut output, level)
        }))
        .unwrap_or_else(|_| Err(io::Error::other("deflate worker panicked")));
        let mut crc = Crc::new();
        crc.update(&input);
        let d = Done {
            index,
            input,
            output,
            crc,
            result,
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

/// Whether `block`'s byte histogram is so flat that deflate would gain next
/// to nothing. The measure is the collision sum `256·Σcᵢ² / n²`: 1.0 for
/// uniform bytes, ~1.1 for compressed data with tar headers between files,
/// 10 and more for text and code. Part of the format (it decides stored vs
/// deflated blocks): changing it changes gzip layer digests.
pub fn looks_incompressible(block: &[u8]) -> bool {
    // Small blocks (the tail of a stream) are cheap to deflate anyway.
    if block.len() < 64 * 1024 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in block {
        counts[b as usize] += 1;
    }
    let sum_sq: u128 = counts.iter().map(|&c| u128::from(c) * u128::from(c)).sum();
    let n = block.len() as u128;
    // 256·Σc² / n² ≤ 1.25  ⇔  1024·Σc² ≤ 5·n²
    1024 * sum_sq <= 5 * n * n
}

/// Deflate `input` as a fresh raw stream ending in a sync flush.
fn deflate_block(input: &[u8], out: &mut Vec<u8>, level: u32) -> io::Result<()> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    out.reserve(input.len() + input.len() / 16 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let consumed = usize::try_from(c.total_in()).map_err(io::Error::other)?;
        c.compress_vec(&input[consumed..], out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // zlib contract: the flush is complete once output space is left over.
        if c.total_in() == input.len() as u64 && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

fn collect<W: Write>(
    mut inner: W,
    done: Receiver<Done>,
    free: Sender<Pair>,
) -> io::Result<Collected<W>> {
    inner.write_all(&GZIP_HEADER)?;
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut crc = Crc::new();
    let mut plain = HashingWriter::new(io::sink());
    for d in done {
        pending.insert(d.index, d);
        while let Some(d) = pending.remove(&next) {
            d.result?;
            plain.write_all(&d.input)?;
            crc.combine(&d.crc);
            inner.write_all(&d.output)?;
            next += 1;
            // Ignored: the producer may already be done and gone.
            let _ = free.send((d.input, d.output));
        }
    }
    inner.write_all(&FINAL_EMPTY_BLOCK)?;
    inner.write_all(&crc.sum().to_le_bytes())?;
    // ISIZE is the length modulo 2^32 (RFC 1952).
    inner.write_all(&(plain.len() as u32).to_le_bytes())?;
    inner.flush()?;
    let (digest, len, _) = plain.finish();
    Ok(Collected {
        inner,
        digest,
        len,
        blocks: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: usize) -> (Vec<u8>, Digest) {
        let mut g = ParallelGzip::new(Vec::new(), 6, threads);
        // Odd write sizes: the block cuts must not depend on them.
        for c in data.chunks(77_777) {
            g.write_all(c).unwrap();
        }
        let out = g.finish().unwrap();
        assert_eq!(out.uncompressed_len, data.len() as u64);
        (out.inner, out.uncompressed_digest)
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_u32;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 3 == 0 {
                    (x & 0xff) as u8
                } else {
                    b"layer "[i % 6]
                }
            })
            .collect()
    }

    #[test]
    fn output_is_valid_gzip_and_independent_of_thread_count() {
        let data = sample(3 * GZIP_BLOCK + 12_345);
        let (one, d1) = gz(&data, 1);
        let (four, d4) = gz(&data, 4);
        assert_eq!(one, four, "thread count changed the bytes");
        assert_eq!(d1, Digest::of(&data));
        assert_eq!(d4, d1);
        assert_eq!(&one[..10], &GZIP_HEADER);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    fn random(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 11) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_are_stored_and_text_is_deflated() {
        let noise = random(GZIP_BLOCK, 7);
        assert!(looks_incompressible(&noise));
        assert!(!looks_incompressible(&sample(GZIP_BLOCK)));
        assert!(!looks_incompressible(&vec![0u8; GZIP_BLOCK]));
        // Noise with tar-like zero padding between "files" still counts as noise.
        let mut padded = Vec::new();
        for c in noise.chunks(25_000) {
            padded.extend_from_slice(c);
            padded.extend_from_slice(&[0u8; 600]);
        }
        padded.truncate(GZIP_BLOCK);
        assert!(looks_incompressible(&padded));
        // Stored: output ≈ input plus 5 bytes per 64 KiB stored block.
        let (out, d) = gz(&noise, 2);
        assert_eq!(d, Digest::of(&noise));
        assert!(out.len() < noise.len() + 200, "{}", out.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, noise);
        // A mixed stream: one stored block between deflated ones, one valid member.
        let mut mixed = sample(GZIP_BLOCK);
        mixed.extend_from_slice(&noise);
        mixed.extend_from_slice(&sample(GZIP_BLOCK / 2));
        let (one, _) = gz(&mixed, 1);
        let (three, _) = gz(&mixed, 3);
        assert_eq!(one, three);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, mixed);
    }

    #[test]
    fn empty_and_exact_block_inputs() {
        for len in [0, GZIP_BLOCK, 2 * GZIP_BLOCK] {
            let data = sample(len);
            let (out, _) = gz(&data, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), len);
            assert_eq!(back, data);
        }
    }

    /// Blocks its first write until released.
    struct Gate(Option<Receiver<()>>, Vec<u8>);
    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(rx) = self.0.take() {
                let _ = rx.recv();
            }
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_destination_stalls_the_producer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (release, gate) = channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&accepted);
        let data = sample(12 * GZIP_BLOCK);
        let expected = Digest::of(&data);
        let producer = std::thread::spawn(move || {
            let mut g = ParallelGzip::new(Gate(Some(gate), Vec::new()), 6, 2);
            for c in data.chunks(64 * 1024) {
                g.write_all(c).unwrap();
                seen.fetch_add(c.len(), Ordering::SeqCst);
            }
            g.finish().unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        // The pool holds 2 × threads + 1 buffers plus the one being filled.
        let stalled_at = accepted.load(Ordering::SeqCst);
        assert!(
            stalled_at <= 7 * GZIP_BLOCK,
            "producer ran ahead: {stalled_at} bytes"
        );
        release.send(()).unwrap();
        let out = producer.join().unwrap();
        assert_eq!(out.uncompressed_digest, expected);
        assert_eq!(out.uncompressed_len, 12 * GZIP_BLOCK as u64);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out.inner.1[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(Digest::of(&back), expected);
    }

    struct FailingSink;
    impl Write for FailingSink {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_destination_surfaces_its_error_without_hanging() {
        let mut g = ParallelGzip::new(FailingSink, 6, 2);
        let data = sample(GZIP_BLOCK);
        let mut err = None;
        for _ in 0..64 {
            if let Err(e) = g.write_all(&data) {
                err = Some(e);
                break;
            }
        }
        let err = match err {
            Some(e) => e,
            None => g.finish().err().unwrap(),
        };
        assert!(err.to_string().contains("disk full"), "{err}");
    }
}
