//! Snapshots: the layer of a RUN, COPY or ADD step that no output exports,
//! made straight into its layer directory — never written as a blob during
//! the build (which steps: `engine::snapshot`).
//!
//! [`LayerDirs::snapshot`] streams the tar of the step's entries through a
//! pipe into an unpack (in this process for root, else the user-namespace
//! helper reading a FIFO): the stream is hashed on the way (its diff_id, the
//! directory's name, as for any unpacked layer), files of a RUN's upper
//! dir are moved in as donors (the step's own, or those a `COPY --from`
//! reads in that RUN's blob; claimed, so each goes to one directory), and
//! no byte reaches the disk but the directory itself. The tar writer opens
//! each file before its header goes out, so a donor moved on seeing the
//! header is still read whole.
//!
//! A build that exports such a step later (`--target` of its stage, a
//! `--cache-to mode=max`) gets its bytes from [`LayerDirs::serialize`]: the
//! directory walked back into entries and written as the plain tar, which
//! must hash to the recorded digest (the blob a build without snapshots
//! wrote), else it is refused.

use super::{utf8, Error, Form, LayerDirs};
use crate::image::Layer;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::digest::HashingWriter;
use cairn_layers::unpack::{Donors, HashedBy, UnpackOptions, WhiteoutMode};
use cairn_layers::{DiffId, Digest, Entry, LayerWriter, MtimePolicy};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Bytes buffered between the tar writer and the pipe.
const STREAM_BUF: usize = 1 << 20;

impl LayerDirs {
    /// Whether this process can make snapshots: it makes layer directories
    /// with owners (root, or in the sandbox's user namespace).
    pub fn snapshots_possible(&self) -> bool {
        self.form().form != Form::Unowned
    }

    /// Make the layer of `entries` (sorted, see `layer_write::normalize`)
    /// with mtimes by `mtime` as a layer directory, without a blob; returns
    /// its diff_id and tar size (a plain blob's digest and size).
    pub fn snapshot(&self, entries: &[Entry], mtime: MtimePolicy) -> Result<(DiffId, u64), Error> {
        let root = self.root().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|source| Error::CreateDir {
            path: root.clone(),
            source,
        })?;
        let (staged, _lock) = super::locked_staging(&root)?;
        let donors = self.claim(self.donors_among(entries));
        let donors = (!donors.is_empty()).then(|| Arc::new(donors));
        let made = match self.form().form {
            Form::Unowned => Err(Error::NoOwners),
            _ => self.stream(entries, mtime, &staged, donors),
        };
        if made.is_ok() {
            whiteout_times(entries, mtime, &staged);
        }
        let (digest, size) = match made {
            Ok(d) => d,
            Err(e) => {
                let _ = self.remove(&staged);
                return Err(e);
            }
        };
        let dest = root.join(digest.hex());
        if let Err(source) = std::fs::rename(&staged, &dest) {
            let _ = self.remove(&staged);
            // Another step or build made the same layer first: theirs is it.
            if !dest.is_dir() {
                return Err(Error::MoveSnapshot { dest, source });
            }
        }
        crate::cache::usage::touch_layer(&self.layout, &digest);
        Ok((DiffId(digest), size))
    }

    /// The donors among `donors` no other unpack was handed, now this
    /// snapshot's: a `COPY --from` layer's files (members of a RUN layer's
    /// blob) are offered to that RUN layer's unpack too.
    fn claim(&self, donors: Donors) -> Donors {
        let Ok(mut claimed) = self.claimed.lock() else {
            return Donors::new();
        };
        donors
            .into_iter()
            .filter(|(_, file)| claimed.insert(file.clone()))
            .collect()
    }

    /// Write the plain blob of layer `l` (a stage layer whose blob is not
    /// in `store`) from its directory into `store`; an error when the
    /// directory does not give `l.digest` back.
    pub fn serialize(&self, l: &Layer, store: &BlobStore) -> Result<(), Error> {
        let dir = self.path(l);
        if !dir.is_dir() {
            return Err(Error::NoLayer(l.digest.clone()));
        }
        let done = match self.form().form {
            Form::Userns { single } => (|| {
                let mut args = vec![
                    "tar".to_owned(),
                    utf8(&dir)?,
                    utf8(store.root())?,
                    "--expect".to_owned(),
                    l.digest.to_string(),
                ];
                if single {
                    args.push("--owner-xattr".into());
                }
                self.in_userns(&args)
            })(),
            _ => tar_of_dir(&dir, store, &l.digest, false),
        };
        done.map_err(|e| Error::Serialize {
            digest: l.digest.clone(),
            dir,
            source: Box::new(e),
        })
    }

    /// Unpack the tar of `entries` into `staged` as it is written.
    fn stream(
        &self,
        entries: &[Entry],
        mtime: MtimePolicy,
        staged: &Path,
        donors: Option<Arc<Donors>>,
    ) -> Result<(Digest, u64), Error> {
        let opts = UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            preserve_ownership: true,
            owner_xattr: None,
            donors,
            expect_diff_id: None,
            // write_tar hashes the stream.
            hashed_by: HashedBy::Caller { digest: None },
        };
        let (unpacked, written) = std::thread::scope(|s| {
            let unpacking = self.start_unpack(s, staged, opts)?;
            let written = write_tar(entries, mtime, &unpacking.out);
            Ok::<_, Error>((unpacking.wait(), written))
        })?;
        let unpacked = unpacked.map_err(|e| match self.form().form {
            Form::Userns { .. } => Error::UnpackSnapshotInUserns(Box::new(e)),
            _ => Error::UnpackSnapshot(Box::new(e)),
        });
        both(unpacked, written)
    }
}

/// Give the whiteouts in `staged` the mtimes of their tar entries (an
/// unpack leaves a whiteout device's as it was made), so the directory
/// walks back into the tar it was made from ([`LayerDirs::serialize`]).
/// Their owner is this process's user in every form.
fn whiteout_times(entries: &[Entry], mtime: MtimePolicy, staged: &Path) {
    for e in entries {
        let Some(target) = cairn_layers::whiteout::target(&e.path) else {
            continue;
        };
        let p = staged.join(cairn_layers::raw_name::to_os(&target));
        let t = rustix::fs::Timespec {
            tv_sec: i64::try_from(mtime.apply(e.mtime)).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let times = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        // Below a directory of another owner without search permission
        // (rootless) it stays as made: the snapshot serves this build all
        // the same, and a later serialization refuses it (digest check).
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
}

/// The stream's result: the writer's (diff_id, size) once the unpack
/// succeeded; when both failed, both causes (one side's failure ends the
/// other with a broken pipe or a truncated stream).
fn both(
    unpacked: Result<(), Error>,
    written: Result<(Digest, u64), Error>,
) -> Result<(Digest, u64), Error> {
    match (unpacked, written) {
        (Ok(()), w) => w,
        (Err(u), Ok(_)) => Err(u),
        (Err(u), Err(w)) => Err(Error::Both {
            unpacked: Box::new(u),
            written: Box::new(w),
        }),
    }
}

/// Write the tar of `entries` into `out` (then closed), hashing it.
fn write_tar(
    entries: &[Entry],
    mtime: MtimePolicy,
    out: impl Write,
) -> Result<(Digest, u64), Error> {
    let sink = HashingWriter::new(std::io::BufWriter::with_capacity(STREAM_BUF, out));
    let mut w = LayerWriter::new(sink, mtime);
    for e in entries {
        w.append(e)?;
    }
    let (digest, size, _out) = w.finish()?.finish();
    Ok((digest, size))
}

/// Write the plain tar of layer directory `dir` into `store`, committed only
/// if it hashes to `expect`.
pub(super) fn tar_of_dir(
    dir: &Path,
    store: &BlobStore,
    expect: &Digest,
    recorded_owners: bool,
) -> Result<(), Error> {
    let wire =
        crate::sandbox::capture::layer_dir_entries(dir, recorded_owners).map_err(Error::Walk)?;
    let entries: Vec<Entry> = wire.into_iter().map(|e| e.into_entry(dir)).collect();
    let mut w = LayerWriter::new(store.writer()?, MtimePolicy::Clamp(u64::MAX));
    for e in &entries {
        w.append(e)?;
    }
    w.finish()?.commit(Some(expect)).map_err(Error::Changed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::layout::CacheLayout;

    #[test]
    fn a_snapshot_claims_its_donors_so_no_unpack_takes_them_again() {
        let t = tempfile::tempdir().unwrap();
        let dirs = LayerDirs::new(&CacheLayout::new(t.path())).unwrap();
        let upper = t.path().join("sandbox/runs/run-x/upper");
        let donors = |names: &[&str]| -> Donors {
            names
                .iter()
                .map(|n| (format!("app/{n}"), upper.join(n)))
                .collect()
        };
        // The RUN layer's blob is offered its files; a COPY --from of it
        // made as a snapshot claims the two it copies.
        let run_layer = Digest::of(b"run layer");
        dirs.offer_donors(&run_layer, donors(&["a", "b", "c"]));
        let mine = dirs.claim(donors(&["a", "b"]));
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert!(dirs.claim(donors(&["a"])).is_empty(), "claimed twice");
        let left = dirs.claim_donors(&run_layer).unwrap();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["app/c"]);
    }
}
