//! Reuse of a layer by what it holds. A COPY whose step key missed because an
//! earlier step or its source stage changed often plans exactly the entries
//! of a layer written before (the `public/` assets, a `package.json`). Those
//! entries, file contents by digest, key a second cache record; a hit reuses
//! that blob instead of writing and compressing the same bytes again. The tar
//! and gzip bytes are a function of the entries alone, so the reused blob is
//! the one a fresh write would produce.

use super::cache::{Inputs, Lookup, RecordKind, StepRecord, CONTENT_RECORD_MARK};
use super::ctx::BuildCtx;
use super::layer_write::{self, Index};
use super::step::error::{Error, Result};
use crate::image::Layer;
use crate::report::Event;
use cairn_layers::digest::HashingWriter;
use cairn_layers::{Digest, Entry, EntryKind, MtimePolicy, Source};
use std::io;
use std::path::{Path, PathBuf};

/// Names the layer encoding (tar headers, entry order, pgzip blocks and
/// levels): a record made by another encoding never matches.
const LAYER_FORMAT: &str = "tar-go-pax sorted; pgzip 1MiB zlib-rs L6, flat blocks stored";

/// What a content lookup needs to know about the step.
pub struct Step<'a> {
    /// Progress id.
    pub id: usize,
    /// The step's position (`Dockerfile|stage|index`), to explain misses.
    pub slot: &'a str,
    /// The instruction as shown.
    pub instruction: &'a str,
    /// The stage's index (whether its layers are exported).
    pub stage: usize,
}

/// How a layer is made on a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Make {
    /// A blob in the store (`layer_write`).
    Blob,
    /// A layer directory without a blob (`engine::snapshot`): only where
    /// [`super::snapshot::wanted`] allows it.
    Snapshot,
}

/// Write `entries` as a layer, or reuse the layer an earlier build wrote
/// with the same entries and contents.
pub fn write_or_reuse(
    ctx: &BuildCtx,
    step: &Step,
    entries: Vec<Entry>,
    mtime: MtimePolicy,
    index: Index,
) -> Result<Layer> {
    make_or_reuse(ctx, step, entries, mtime, index, Make::Blob)
}

/// [`write_or_reuse`], the layer made as `make` says on a miss. The record
/// is the same either way (a snapshot's descriptor is the plain blob's).
pub fn make_or_reuse(
    ctx: &BuildCtx,
    step: &Step,
    mut entries: Vec<Entry>,
    mtime: MtimePolicy,
    index: Index,
    make: Make,
) -> Result<Layer> {
    layer_write::normalize(&mut entries);
    let inputs = content_inputs(ctx, step.instruction, &entries, mtime)?;
    let slot = format!("{}#content", step.slot);
    // The same files written by another platform at this moment: wait for
    // its layer instead of writing the same bytes again.
    let _claim = ctx.session.in_flight.claim(&inputs.key().to_string());
    if !ctx.req.no_cache {
        // A snapshot's record is present while its directory is (its blob
        // made first when this build exports the stage).
        let present = |l: &Layer| super::snapshot::present(ctx, step.stage, l);
        let found = match ctx.cache.lookup(&inputs, &slot, present) {
            Lookup::Hit(rec) => Some((rec, "")),
            Lookup::Miss(_) => {
                remote_lookup(ctx, step, &inputs, &slot)?.map(|r| (r, " (registry cache)"))
            }
        };
        if let Some((desc, from)) = found.and_then(|(r, from)| Some((r.layer?, from))) {
            // A layer made ahead (id 0) has no step line yet.
            if step.id != 0 {
                ctx.reporter.event(Event::StepOutput {
                    id: step.id,
                    line: format!(
                        "same files as an earlier build{from}: layer {} reused",
                        crate::progress::short_digest(&desc.digest.to_string())
                    ),
                });
            }
            let _ = ctx.cache.touch_slot(&slot, &inputs.key());
            if index == Index::Keep {
                layer_write::remember(ctx, &desc, entries, mtime);
            }
            return Ok(desc);
        }
    }
    let desc = match make {
        Make::Blob => layer_write::write_normalized(ctx, entries, mtime, index, step.stage)?,
        Make::Snapshot => {
            let desc = super::snapshot::make_normalized(ctx, &entries, mtime)?;
            if index == Index::Keep {
                layer_write::remember(ctx, &desc, entries, mtime);
            }
            desc
        }
    };
    let rec = StepRecord {
        kind: RecordKind::Content,
        key: inputs.key().to_string(),
        inputs,
        layer: Some(desc.clone()),
    };
    ctx.store_record(&rec, &slot)?;
    Ok(desc)
}

/// The layer-by-content record of `inputs` in the `--cache-from` caches
/// (a fresh runner's), kept in the local cache (its blob is fetched when
/// needed, as a step hit's).
fn remote_lookup(
    ctx: &BuildCtx,
    step: &Step,
    inputs: &Inputs,
    slot: &str,
) -> Result<Option<StepRecord>> {
    let imports = &ctx.req.cache_from;
    let Some(remote_slot) = crate::cache::remote::slot_of_local(step.slot) else {
        return Ok(None);
    };
    if imports.is_empty() {
        return Ok(None);
    }
    let warn = |w: String| ctx.reporter.event(Event::Warning(w));
    let rec = imports.lookup_content(&remote_slot, inputs, &warn)?;
    if let Some(r) = &rec {
        if let Err(e) = ctx.cache.store(r, slot) {
            warn(format!(
                "keeping an imported record in the local cache: {e}"
            ));
        }
    }
    Ok(rec)
}

/// The inputs that determine a layer's bytes: the encoding, the mtime
/// policy, and every entry (path, type, mode, owner, xattrs, content digest).
/// `entries` must be normalized (sorted, no duplicate paths).
pub fn content_inputs(
    ctx: &BuildCtx,
    instruction: &str,
    entries: &[Entry],
    mtime: MtimePolicy,
) -> Result<Inputs> {
    let context_root = ctx
        .req
        .context
        .canonicalize()
        .unwrap_or_else(|_| ctx.req.context.clone());
    let mut inputs = Inputs::default();
    inputs.push(CONTENT_RECORD_MARK, LAYER_FORMAT);
    inputs.push("instruction", instruction.to_owned());
    inputs.push(
        "mtime",
        match mtime {
            MtimePolicy::Set(t) => format!("set {t}"),
            MtimePolicy::Clamp(t) => format!("clamp {t}"),
        },
    );
    for e in entries {
        let mut value = format!("{:o} {}:{}", e.mode, e.uid, e.gid);
        match &e.kind {
            EntryKind::File { size, source } => {
                let digest = match source {
                    Source::Bytes(b) => Digest::of(b).to_string(),
                    Source::Path(p) => {
                        file_digest(ctx, &context_root, p).map_err(|source| Error::ReadFile {
                            path: p.clone(),
                            source,
                        })?
                    }
                    range @ Source::Range { path, offset } => {
                        let compute = || match remote_digest_at(ctx, path, *offset) {
                            Some(d) => Ok(d),
                            None => hash(range.open(*size)?),
                        };
                        match blob_member_key(ctx, path, *offset) {
                            Some(key) => ctx.file_digests().digest(&key, compute),
                            None => compute(),
                        }
                        .map_err(|source| Error::ReadFile {
                            path: path.clone(),
                            source,
                        })?
                    }
                };
                value.push_str(&format!(" file {size} {digest}"));
            }
            EntryKind::Dir => value.push_str(" dir"),
            EntryKind::Symlink { target } => value.push_str(&format!(" symlink {target}")),
            EntryKind::Hardlink { target } => value.push_str(&format!(" hardlink {target}")),
            EntryKind::CharDevice { major, minor } => {
                value.push_str(&format!(" char {major},{minor}"))
            }
            EntryKind::BlockDevice { major, minor } => {
                value.push_str(&format!(" block {major},{minor}"))
            }
            EntryKind::Fifo => value.push_str(" fifo"),
        }
        // Only mtimes the policy keeps can change the bytes.
        if !matches!(mtime, MtimePolicy::Set(_)) {
            value.push_str(&format!(" mtime {}", mtime.apply(e.mtime)));
        }
        for (k, v) in &e.xattrs {
            value.push_str(&format!(" xattr {k}={}", hex(v)));
        }
        inputs.push(format!("file /{}", e.path), value);
    }
    Ok(inputs)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Context files through the build's digest cache (already hashed for the
/// step keys); files of unpacked layer directories (named by their diff_id,
/// never changed) through the memo of immutable files; anything else is read.
fn file_digest(ctx: &BuildCtx, context_root: &PathBuf, p: &Path) -> io::Result<String> {
    if p.starts_with(context_root) {
        return ctx.context_hashes().digest(p);
    }
    let compute = || hash(std::fs::File::open(p)?);
    match p.strip_prefix(ctx.layer_dirs.root()) {
        Ok(rel) => ctx
            .file_digests()
            .digest(&format!("dir:{}", rel.display()), || {
                // `<diff_id hex>/<member>`: a fresh runner has the file
                // index of a layer a remote hit made.
                let mut parts = rel.iter();
                let layer = parts.next().and_then(|l| l.to_str());
                let member = parts.as_path().to_str();
                match layer
                    .zip(member)
                    .and_then(|(l, m)| remote_digest(ctx, l, m))
                {
                    Some(d) => Ok(d),
                    None => compute(),
                }
            }),
        Err(_) => compute(),
    }
}

fn remote_digest(ctx: &BuildCtx, layer: &str, member: &str) -> Option<String> {
    let imports = &ctx.req.cache_from;
    if imports.is_empty() {
        return None;
    }
    let warn = |w: String| ctx.reporter.event(Event::Warning(w));
    imports.member_digest(layer, member, &warn)
}

/// The digest of the member at `offset` of the plain-tar blob `blob` from
/// the file index of the remote hit that made it, if any.
fn remote_digest_at(ctx: &BuildCtx, blob: &Path, offset: u64) -> Option<String> {
    let imports = &ctx.req.cache_from;
    if imports.is_empty() {
        return None;
    }
    let name = blob.file_name()?.to_str()?;
    let digest: Digest = format!("sha256:{name}").parse().ok()?;
    let members = || {
        let Some(fs) = ctx
            .written
            .lock()
            .ok()
            .and_then(|w| w.get(&digest).cloned())
        else {
            return Vec::new();
        };
        fs.entries()
            .filter_map(|e| match &e.kind {
                EntryKind::File {
                    source: Source::Range { offset, .. },
                    ..
                } => Some((*offset, e.path.clone())),
                _ => None,
            })
            .collect()
    };
    let warn = |w: String| ctx.reporter.event(Event::Warning(w));
    imports.member_digest_at(name, offset, members, &warn)
}

/// The memo key of the member at `offset` of a blob of the store (blobs are
/// named by their digest, so the key names the bytes).
fn blob_member_key(ctx: &BuildCtx, blob: &Path, offset: u64) -> Option<String> {
    let name = blob.file_name()?.to_str()?;
    let digest: cairn_layers::Digest = format!("sha256:{name}").parse().ok()?;
    (ctx.store.path(&digest) == blob).then(|| format!("blob:{name}@{offset}"))
}

fn hash(mut r: impl io::Read) -> io::Result<String> {
    let mut h = HashingWriter::new(io::sink());
    io::copy(&mut r, &mut h)?;
    Ok(h.finish().0.to_string())
}
