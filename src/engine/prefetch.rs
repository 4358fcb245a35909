//! A step that misses on a fresh runner reads the layers below it — its
//! merged view (`COPY`), its lower directories (`RUN`) — whose blobs the
//! remote cache hits before it left behind. [`around_miss`] fetches them on
//! [`WORKERS`] threads, biggest first, while the step does its own work
//! (hashing its context, writing its layer), and, when a `RUN` follows in the
//! stage, unpacks them too — as their bytes arrive, in one pass with the
//! download (`LayerDirs::ensure_streamed`) — so the `RUN` finds its lower
//! directories ready.
//! Only at a miss: a build whose every step hits moves no layer (see
//! `crate::cache::remote::prefetch`, which also says how a failed fetch
//! ahead is left to the step that needs the blob).

use super::ctx::BuildCtx;
use crate::cache::remote::BlobSink;
use crate::image::Layer;
use crate::sandbox::layer_dirs::Streamed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Blobs fetched (and unpacked) at once: the registry serves several
/// streams, the unpacks share the machine with the step.
const WORKERS: usize = 3;

/// Run `work` (a missed step) while the blobs of `layers` that remote hits
/// left behind are fetched, and, with `unpack`, unpacked into their layer
/// directories. Returns once both are done; when `work` fails, what has not
/// started is skipped.
pub fn around_miss<T, E>(
    ctx: &BuildCtx,
    layers: &[Layer],
    unpack: bool,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let imports = &ctx.req.cache_from;
    if imports.is_empty() {
        return work();
    }
    let missing: Vec<Layer> = layers
        .iter()
        .filter(|l| ctx.layer_dirs.unpacked(l).is_none())
        .cloned()
        .collect();
    let mut claimed = imports.claim_ahead(&missing);
    if claimed.is_empty() {
        return work();
    }
    // The biggest first: it is the longest to fetch and to unpack.
    claimed.sort_by_key(|l| std::cmp::Reverse(l.size));
    let workers = claimed.len().min(WORKERS);
    let queue = Mutex::new(claimed.into_iter());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(l) = queue.lock().ok().and_then(|mut q| q.next()) {
                    let skip = stop.load(Ordering::Relaxed);
                    let fetch = |sink: Option<&mut dyn BlobSink>| {
                        imports.fetch_ahead(&l, &ctx.store, skip, sink)
                    };
                    if !unpack || skip {
                        fetch(None);
                        continue;
                    }
                    // Unpacked as it downloads. A failure is the step's
                    // to report: it fetches and unpacks the layer again
                    // when it reads it.
                    let done = ctx.layer_dirs.ensure_streamed(&l, &ctx.store, fetch);
                    if matches!(done, Ok(Streamed::Streamed(_))) {
                        imports.note_streamed();
                    }
                }
            });
        }
        let out = work();
        if out.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        out
    })
}
