//! Unpacking bytes as they are written: a layer's blob as it downloads
//! ([`LayerDirs::ensure_streamed`]), a snapshot as its tar is written
//! (`snapshot`).
//!
//! The unpack reads a pipe in this process (root, or no user namespace), or
//! a FIFO in the user-namespace helper, and writes a locked staging
//! directory. A download's bytes reach the unpack before they are verified:
//! the directory is renamed into place only when the download verified its
//! size and digest and told the sink so ([`BlobSink::finish`], before the
//! blob is committed), and the unpack succeeded; otherwise both the
//! directory and the blob are removed, and whoever needs the layer later
//! fetches and unpacks it the ordinary way (which reports why it failed).
//! A plain blob is hashed once, by the download (it is its own diff_id); a
//! compressed one's diff_id is hashed by the unpack, as always.

use super::{refused_image, Error, Form, LayerDirs};
use crate::image::Layer;
use crate::registry::pull::BlobSink;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::unpack::{unpack_auto, HashedBy, UnpackOptions, WhiteoutMode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

/// Bytes buffered between the pipe and the unpack.
const STREAM_BUF: usize = 1 << 20;

/// An unpack reading what is written to `out`.
pub(super) struct Unpacking<'scope> {
    /// The writing end (closing it ends the stream).
    pub out: std::fs::File,
    done: ScopedJoinHandle<'scope, Result<(), Error>>,
}

impl Unpacking<'_> {
    /// Close the stream and wait for the unpack's result.
    pub fn wait(self) -> Result<(), Error> {
        drop(self.out);
        self.done.join().unwrap_or_else(|_| Err(Error::Panicked))
    }
}

impl LayerDirs {
    /// Start unpacking into `staged` (with `opts`' whiteouts, owners by the
    /// form) what is written to the returned [`Unpacking`], on a thread of
    /// `s`. The unpack reads its input to the end, so the writer never sees
    /// the stream closed early unless the unpack failed.
    pub(super) fn start_unpack<'scope, 'env>(
        &'env self,
        s: &'scope Scope<'scope, 'env>,
        staged: &'env Path,
        opts: UnpackOptions,
    ) -> Result<Unpacking<'scope>, Error> {
        match self.form().form {
            Form::Userns { single } => self.start_helper(s, staged, opts, single),
            ref form => {
                let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(Error::CreatePipe)?;
                let opts = UnpackOptions {
                    preserve_ownership: *form == Form::Host,
                    ..opts
                };
                let done = s.spawn(move || {
                    let mut input =
                        std::io::BufReader::with_capacity(STREAM_BUF, std::fs::File::from(reader));
                    unpack_auto(&mut input, staged, &opts).map_err(refused_image)?;
                    let _ = std::io::copy(&mut input, &mut std::io::sink());
                    Ok(())
                });
                Ok(Unpacking {
                    out: std::fs::File::from(writer),
                    done,
                })
            }
        }
    }

    /// The user-namespace helper unpacks from a FIFO this process writes.
    fn start_helper<'scope, 'env>(
        &'env self,
        s: &'scope Scope<'scope, 'env>,
        staged: &'env Path,
        opts: UnpackOptions,
        single: bool,
    ) -> Result<Unpacking<'scope>, Error> {
        let tmp = tempfile::Builder::new()
            .prefix(".stream-")
            .tempdir_in(self.layout.dir(crate::cache::Bucket::Tmp))
            .map_err(Error::TempDir)?;
        let fifo = tmp.path().join("layer.tar");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|source| Error::CreateFifo {
            path: fifo.clone(),
            source,
        })?;
        let mut args = super::unpack_args(&fifo, staged, &opts, single)?;
        let list = self.donor_list(opts.donors.as_deref(), &mut args)?;
        let helper_done = Arc::new(AtomicBool::new(false));
        let done = {
            let helper_done = helper_done.clone();
            s.spawn(move || {
                let r = self.in_userns(&args);
                helper_done.store(true, Ordering::SeqCst);
                // Kept until the helper is through with them.
                drop((list, tmp));
                r
            })
        };
        match open_writer(&fifo, &helper_done) {
            Ok(out) => Ok(Unpacking { out, done }),
            Err(e) => {
                let _ = done.join();
                Err(e)
            }
        }
    }

    /// The unpacked directory of `l` (as [`LayerDirs::ensure`]), its blob
    /// fetched by `fetch` — given a sink, which it passes to the download
    /// ([`crate::registry::Registry::fetch_blob_to`]); true when the blob
    /// is in `store` after — and unpacked as it arrives (see the module
    /// doc). `fetch` is called exactly once.
    pub fn ensure_streamed(
        &self,
        l: &Layer,
        store: &BlobStore,
        fetch: impl FnOnce(Option<&mut dyn BlobSink>) -> bool,
    ) -> Result<Streamed, Error> {
        let dest = self.path(l);
        let gate = self.gate(l);
        let _unpacking = gate.lock();
        if dest.is_dir() || store.contains(&l.digest) {
            return match fetch(None) {
                true => self.ensure_gated(l, store).map(Streamed::Unpacked),
                false => Ok(Streamed::NotFetched),
            };
        }
        let root = self.root();
        std::fs::create_dir_all(root).map_err(|source| Error::CreateDir {
            path: root.to_path_buf(),
            source,
        })?;
        let (staged, _lock) = super::locked_staging(root)?;
        let opts = UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            preserve_ownership: true,
            owner_xattr: None,
            donors: self.claim_donors(&l.digest),
            expect_diff_id: Some(l.diff_id.clone()),
            // Verified by the download before `finish` is called.
            hashed_by: HashedBy::Caller {
                digest: Some(l.digest.clone()),
            },
        };
        let (fetched, unpacked) = std::thread::scope(|s| {
            let mut sink = Sink {
                dirs: self,
                scope: s,
                staged: &staged,
                opts: Some(opts),
                running: None,
                unpacked: None,
            };
            let fetched = fetch(Some(&mut sink));
            // A fetch that did not finish the sink: end the unpack.
            if let Some(u) = sink.running.take() {
                let _ = u.wait();
            }
            (fetched, sink.unpacked)
        });
        let published = match (fetched, unpacked) {
            (true, Some(true)) => match std::fs::rename(&staged, &dest) {
                Ok(()) => true,
                Err(_) if dest.is_dir() => false,
                Err(source) => {
                    let _ = self.remove(&staged);
                    return Err(Error::MoveUnpacked { dest, source });
                }
            },
            _ => false,
        };
        if !published {
            let _ = self.remove(&staged);
        }
        match (published, fetched) {
            (true, _) => {
                crate::cache::usage::touch_layer(&self.layout, l.diff_id.digest());
                Ok(Streamed::Streamed(dest))
            }
            // In the store but not streamed (a remote that copies, another
            // build's directory): the ordinary way.
            (false, true) => self.ensure_gated(l, store).map(Streamed::Unpacked),
            (false, false) => Ok(Streamed::NotFetched),
        }
    }
}

/// What [`LayerDirs::ensure_streamed`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Streamed {
    /// Unpacked as it downloaded, into this directory.
    Streamed(PathBuf),
    /// Not streamed (the blob was in the store, or the remote copies it),
    /// unpacked from the store the ordinary way.
    Unpacked(PathBuf),
    /// The blob could not be fetched: whoever needs it fetches it again
    /// and says why.
    NotFetched,
}

/// The download's side of [`LayerDirs::ensure_streamed`]: the unpack starts
/// with the first bytes.
struct Sink<'scope, 'env> {
    dirs: &'env LayerDirs,
    scope: &'scope Scope<'scope, 'env>,
    staged: &'env Path,
    opts: Option<UnpackOptions>,
    running: Option<Unpacking<'scope>>,
    /// Whether the unpack succeeded, once `finish` was called.
    unpacked: Option<bool>,
}

impl BlobSink for Sink<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.running.is_none() {
            let Some(opts) = self.opts.take() else {
                return Err(std::io::Error::other("the unpack could not start"));
            };
            let started = self
                .dirs
                .start_unpack(self.scope, self.staged, opts)
                .map_err(std::io::Error::other)?;
            self.running = Some(started);
        }
        match &mut self.running {
            Some(u) => u.out.write_all(bytes),
            None => Err(std::io::Error::other("the unpack could not start")),
        }
    }

    fn finish(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let result = match self.running.take() {
            Some(u) => u.wait(),
            None => Err(Error::Panicked),
        };
        self.unpacked = Some(result.is_ok());
        result.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    }
}

/// Open the FIFO `fifo` for writing once its reader has; an error when the
/// reader (the helper) ended without opening it.
pub(super) fn open_writer(fifo: &Path, reader_done: &AtomicBool) -> Result<std::fs::File, Error> {
    use rustix::fs::{fcntl_setfl, open, Mode, OFlags};
    loop {
        match open(
            fifo,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                fcntl_setfl(&fd, OFlags::empty()).map_err(Error::Fifo)?;
                return Ok(std::fs::File::from(fd));
            }
            // No reader yet.
            Err(rustix::io::Errno::NXIO) if !reader_done.load(Ordering::SeqCst) => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(source) => {
                return Err(Error::OpenFifo {
                    path: fifo.to_path_buf(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::tar_of;
    use super::*;
    use crate::cache::layout::CacheLayout;
    use crate::image::MediaType;
    use cairn_layers::{DiffId, Digest};

    fn layer(bytes: &[u8]) -> Layer {
        let d = Digest::of(bytes);
        Layer {
            digest: d.clone(),
            diff_id: DiffId(d),
            size: bytes.len() as u64,
            media_type: MediaType::from(crate::image::media_type::OCI_LAYER),
        }
    }

    /// The download's contract (`Registry::fetch_blob_to`): every byte to
    /// the sink, `finish` only when they hash to the layer's digest, the
    /// blob stored only then.
    fn download(
        served: &[u8],
        l: &Layer,
        store: &BlobStore,
        sink: Option<&mut dyn BlobSink>,
    ) -> bool {
        let Some(sink) = sink else {
            return false;
        };
        for chunk in served.chunks(7) {
            if sink.write(chunk).is_err() {
                return false;
            }
        }
        if Digest::of(served) != l.digest || sink.finish().is_err() {
            return false;
        }
        store.put_bytes(served).is_ok()
    }

    fn leftovers(dirs: &LayerDirs) -> Vec<String> {
        std::fs::read_dir(dirs.root())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_streamed_layer_is_published_only_when_its_bytes_verify() {
        if !rustix::process::geteuid().is_root() {
            // Unprivileged forms need the sandbox: tests/it covers them.
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dirs = LayerDirs::new(&CacheLayout::new(t.path())).unwrap();
        let store = BlobStore::open(t.path().join("store")).unwrap();
        let honest = tar_of("etc/motd", b"honest bytes");
        let l = layer(&honest);
        // A valid tar of the same size, other bytes: it unpacks fine, its
        // digest does not match. Neither the directory nor the blob stays.
        let forged = tar_of("etc/motd", b"forged bytes");
        assert_eq!(forged.len(), honest.len());
        let got = dirs
            .ensure_streamed(&l, &store, |s| download(&forged, &l, &store, s))
            .unwrap();
        assert_eq!(got, Streamed::NotFetched);
        assert!(!dirs.path(&l).exists(), "a forged layer was published");
        assert!(!store.contains(&l.digest) && !store.contains(&Digest::of(&forged)));
        assert_eq!(
            leftovers(&dirs),
            Vec::<String>::new(),
            "staging left behind"
        );

        // A tar cut short fails the unpack: nothing either.
        let cut = &honest[..700];
        let got = dirs
            .ensure_streamed(&l, &store, |s| download(cut, &l, &store, s))
            .unwrap();
        assert_eq!(got, Streamed::NotFetched);
        assert_eq!(leftovers(&dirs), Vec::<String>::new());

        // The honest bytes: published, blob kept.
        let got = dirs
            .ensure_streamed(&l, &store, |s| download(&honest, &l, &store, s))
            .unwrap();
        assert_eq!(got, Streamed::Streamed(dirs.path(&l)));
        assert_eq!(
            std::fs::read(dirs.path(&l).join("etc/motd")).unwrap(),
            b"honest bytes"
        );
        assert!(store.contains(&l.digest));
        // Once there, the fetch is told nothing to stream.
        let got = dirs.ensure_streamed(&l, &store, |s| s.is_none()).unwrap();
        assert_eq!(got, Streamed::Unpacked(dirs.path(&l)));
    }
}
