//! Fetching a hit's blobs ahead of the step that reads them.
//!
//! A fresh runner's first miss in a stage (a source edit: `COPY . .`) is
//! followed by steps that read every layer below it (the `COPY`'s merged
//! view, a `RUN`'s lower directories), so the blobs the hits before it left
//! behind are all needed: the engine claims them at the miss
//! ([`Imports::claim_ahead`]) and fetches them on a few threads
//! ([`Imports::fetch_ahead`]) while the step hashes its context, instead of
//! one after the other when a step first reads each. Nothing is claimed
//! while steps hit, so a build whose every step hits still moves no layer.
//!
//! A claimed blob is fetched by its claimer only: a step that needs it
//! meanwhile ([`Imports::materialize`]) waits for that fetch, then finds it
//! in the store — verified against its digest, as every fetch is. A fetch
//! ahead that fails leaves the blob pending and refuses nothing: the step
//! that needs it fetches it again and reports why ([`super::Refused`]).
//! A layer unpacked ahead is unpacked once: `LayerDirs::ensure` lets one
//! caller per layer unpack it, the others wait and find the directory.

use super::Imports;
use crate::image::Layer;
use crate::registry::pull::BlobSink;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// What the fetches ahead of one build share.
#[derive(Default)]
pub struct Ahead {
    /// Claimed blobs not fetched yet, by digest.
    claims: Mutex<HashMap<String, Arc<Claim>>>,
    /// Blobs fetched ahead.
    fetched: AtomicUsize,
    /// Of those, unpacked as they downloaded.
    streamed: AtomicUsize,
    /// Fetches ahead running now, and the most at once.
    running: AtomicUsize,
    most: AtomicUsize,
}

/// A claimed blob: done once its claimer is through with it.
#[derive(Default)]
struct Claim {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Ends a claim however its fetch ends (an error, a panic), so that no step
/// waits for it forever.
struct Release<'a>(&'a Ahead, String);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let claim = self
            .0
            .claims
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&self.1));
        if let Some(c) = claim {
            if let Ok(mut done) = c.done.lock() {
                *done = true;
            }
            c.cv.notify_all();
        }
    }
}

impl Ahead {
    /// The summary's words (nothing when no blob was fetched ahead).
    pub fn summary(&self) -> String {
        match self.fetched.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(
                ", {n} fetched ahead of their step (at most {} at once, {} unpacked as they downloaded)",
                self.most.load(Ordering::Relaxed),
                self.streamed.load(Ordering::Relaxed)
            ),
        }
    }
}

impl Imports {
    /// Of `layers`, those whose blob a hit left behind and nobody claimed
    /// yet, now claimed by the caller, who must pass each to
    /// [`Imports::fetch_ahead`] (until then a step needing it waits).
    pub fn claim_ahead(&self, layers: &[Layer]) -> Vec<Layer> {
        let (Ok(pending), Ok(mut claims)) = (self.pending.lock(), self.ahead.claims.lock()) else {
            return Vec::new();
        };
        layers
            .iter()
            .filter(|l| {
                let d = l.digest.to_string();
                if !pending.contains_key(&d) || claims.contains_key(&d) {
                    return false;
                }
                claims.insert(d, Arc::default());
                true
            })
            .cloned()
            .collect()
    }

    /// Fetch claimed `layer` into `store` (not when `skip`: the step
    /// failed), its bytes also streamed into `sink`, and end the claim;
    /// whether its blob is in the store now.
    pub fn fetch_ahead(
        &self,
        layer: &Layer,
        store: &BlobStore,
        skip: bool,
        sink: Option<&mut dyn BlobSink>,
    ) -> bool {
        let _release = Release(&self.ahead, layer.digest.to_string());
        if skip {
            return false;
        }
        let now = self.ahead.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.ahead.most.fetch_max(now, Ordering::Relaxed);
        let fetched = self.fetch_pending(&layer.digest, store, true, sink);
        self.ahead.running.fetch_sub(1, Ordering::Relaxed);
        if matches!(fetched, Ok(true)) {
            self.ahead.fetched.fetch_add(1, Ordering::Relaxed);
        }
        store.contains(&layer.digest)
    }

    /// A blob fetched ahead was unpacked as it downloaded (for the summary).
    pub fn note_streamed(&self) {
        self.ahead.streamed.fetch_add(1, Ordering::Relaxed);
    }

    /// Wait until blob `d` is not claimed (its fetch ahead ended).
    pub(super) fn wait_ahead(&self, d: &Digest) {
        let claim = self
            .ahead
            .claims
            .lock()
            .ok()
            .and_then(|c| c.get(&d.to_string()).cloned());
        let Some(c) = claim else {
            return;
        };
        let Ok(mut done) = c.done.lock() else {
            return;
        };
        while !*done {
            done = match c.cv.wait(done) {
                Ok(d) => d,
                Err(_) => return,
            };
        }
    }
}
