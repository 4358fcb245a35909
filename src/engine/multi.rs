//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): one image
//! per target platform, joined into one OCI image index.
//!
//! What does not depend on the target platform is done once: every platform
//! builds in one [`Session`], so the context is walked (with its
//! `.dockerignore`) and its files hashed once; a step two platforms share (a
//! `FROM --platform=$BUILDPLATFORM` stage, cross-compilation) has the same
//! cache key on both and runs once — the other platform waits for it if it
//! gets there at the same time ([`super::in_flight`]) and then hits the
//! cache; a COPY whose files are the same on every platform writes its layer
//! once and the others reuse it by content ([`super::layer_reuse`]).
//!
//! Platforms build at the same time, up to [`jobs`] at once: an emulated
//! RUN is CPU-bound on one core for long stretches (`next build` under QEMU),
//! and the native platform's build fits beside it. The images, and so the
//! index, do not depend on the order (each image is a function of its
//! inputs; entries go in `--platform` order). Progress names each step's
//! platform (`#12 [linux/arm64 builder 3/5] RUN …`), step ids are unique
//! across platforms, and a warning every platform raises is shown once.
//! Every platform's plan is checked (base platforms, RUN emulation) before
//! the first one starts. When one fails, the others are canceled
//! ([`Session::cancel`]): no new platform or step starts and running RUN
//! commands are killed (nothing of them is cached); the error is that of the
//! platform that failed first, the others' cancellations are not errors of
//! their own.

use super::bases::ImageSource;
use super::build::{build_in, preflight, BuildResult};
use super::request::BuildRequest;
use super::session::Session;
use super::Error;
use crate::frontend::Platform;
use crate::image::manifest::{Descriptor, OCI_INDEX};
use crate::report::{Event, Reporter};
use cairn_layers::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `CAIRN_PLATFORM_JOBS=N`: how many platforms build at once (default: the
/// CPUs, at most the platforms; 1 builds them one after another).
pub const JOBS_ENV: &str = crate::env::CAIRN_PLATFORM_JOBS;

/// `--annotation` levels that only an index has (buildx's types), and the
/// platform-specific manifest ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexAnnotations {
    /// `manifest[P]:K=V`: on the image manifest of platform P only (the
    /// unqualified ones are the request's `annotations`, on every manifest).
    pub manifest: Vec<(Platform, String, String)>,
    /// `index:K=V`: on the index.
    pub index: BTreeMap<String, String>,
    /// `manifest-descriptor[P]:K=V`: on the index's entry for each platform
    /// (`None`: every platform).
    pub manifest_descriptor: Vec<(Option<Platform>, String, String)>,
    /// `index-descriptor:K=V`: on the index's descriptor where one is
    /// written (an OCI layout's `index.json`, the local store, `--metadata-file`).
    pub index_descriptor: BTreeMap<String, String>,
}

/// The images of a multi-platform build and the index naming them.
#[derive(Clone, Debug)]
pub struct IndexResult {
    /// Canonical index bytes.
    pub index_raw: Vec<u8>,
    /// The index digest (what is pushed and tagged).
    pub index_digest: Digest,
    /// One image per platform, in `--platform` order.
    pub images: Vec<BuildResult>,
    /// Annotations of the index's own descriptor (`index-descriptor:`).
    pub descriptor_annotations: BTreeMap<String, String>,
    /// Wall time of each platform's build, in `--platform` order.
    pub wall: Vec<Duration>,
    /// Context walks and context files hashed, for all platforms together.
    pub context_reads: (usize, usize),
}

impl IndexResult {
    /// The index's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            OCI_INDEX,
            self.index_digest.clone(),
            self.index_raw.len() as u64,
        );
        if !self.descriptor_annotations.is_empty() {
            d.annotations = Some(self.descriptor_annotations.clone());
        }
        d
    }

    /// The image built for `p`.
    pub fn image(&self, p: &Platform) -> Option<&BuildResult> {
        self.images.iter().find(|r| &r.platform == p)
    }

    /// Where the time went, per platform, and what the context cost: the
    /// summary line of a multi-platform build.
    pub fn summary(&self, elapsed: Duration) -> String {
        let run: Duration = self.images.iter().map(|r| r.run_command_time).sum();
        let per: Vec<String> = self
            .images
            .iter()
            .zip(&self.wall)
            .map(|(r, w)| {
                format!(
                    "{} {} ({:.2}s, RUN {:.2}s)",
                    r.platform,
                    r.manifest_digest,
                    w.as_secs_f64(),
                    r.run_command_time.as_secs_f64()
                )
            })
            .collect();
        let (walks, hashed) = self.context_reads;
        format!(
            "built {} platforms in {:.2}s (RUN commands {:.2}s): {}; context walked {walks}×, context files hashed: {hashed}",
            self.images.len(),
            elapsed.as_secs_f64(),
            run.as_secs_f64(),
            per.join(", ")
        )
    }
}

/// The index of `images` (entries in the given order) with `ann`, stored in `store`.
pub fn index(
    images: Vec<BuildResult>,
    ann: &IndexAnnotations,
    store: &cairn_layers::blob_store::BlobStore,
) -> Result<IndexResult, Error> {
    let manifests: Vec<Descriptor> = images
        .iter()
        .map(|r| {
            let mut d = r.descriptor();
            let mine: BTreeMap<String, String> = ann
                .manifest_descriptor
                .iter()
                .filter(|(p, _, _)| p.as_ref().is_none_or(|p| *p == r.platform))
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect();
            if !mine.is_empty() {
                d.annotations = Some(mine);
            }
            d
        })
        .collect();
    // No `annotations` field without annotations: unannotated digests do not change.
    let index_raw = crate::image::mutate::index(manifests, &ann.index)
        .map_err(Error::ImageJson)?
        .bytes;
    let index_digest = store.put_bytes(&index_raw)?;
    Ok(IndexResult {
        index_raw,
        index_digest,
        images,
        descriptor_annotations: ann.index_descriptor.clone(),
        wall: Vec::new(),
        context_reads: (0, 0),
    })
}

/// How many platforms build at once: `CAIRN_PLATFORM_JOBS`, else the CPUs;
/// at most `platforms`, at least 1.
pub fn jobs(platforms: usize) -> Result<usize, Error> {
    let asked = match std::env::var(JOBS_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(Error::BadJobs {
                    var: JOBS_ENV,
                    value: v,
                })?
        }
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Ok(asked.clamp(1, platforms.max(1)))
}

/// Build `req` for each of `platforms` (at least two, distinct), up to
/// [`jobs`] at once, and join the images into an index in the cache's blob store.
pub fn build_platforms(
    req: &BuildRequest,
    platforms: &[Platform],
    ann: &IndexAnnotations,
    images: &dyn ImageSource,
    reporter: &dyn Reporter,
) -> Result<IndexResult, Error> {
    let jobs = jobs(platforms.len())?;
    let for_platform = |p: &Platform| {
        let mut annotations = req.annotations.clone();
        for (_, k, v) in ann.manifest.iter().filter(|(q, _, _)| q == p) {
            annotations.insert(k.clone(), v.clone());
        }
        BuildRequest {
            platform: Some(p.clone()),
            annotations,
            ..req.clone()
        }
    };
    let mut planned = Vec::with_capacity(platforms.len());
    for p in platforms {
        let r = for_platform(p);
        let plan = preflight(&r).map_err(|e| in_platform(p, e))?;
        planned.push((p, r, plan));
    }
    let session = Session::open(req, reporter)?;
    let shared = Shared::default();
    let next = AtomicUsize::new(0);
    // The platform that failed first: its error is the build's.
    let first_failed = OnceLock::new();
    let results: Vec<Mutex<Option<Built>>> = planned.iter().map(|_| Mutex::new(None)).collect();
    reporter.event(Event::Info(format!(
        "building {} platforms, {jobs} at a time",
        platforms.len()
    )));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((p, r, (df, plan))) = planned.get(i) else {
                    break;
                };
                if first_failed.get().is_some() {
                    break;
                }
                let rep = PlatformReporter::new(reporter, p, &shared);
                let started = Instant::now();
                let out =
                    build_in(&session, r, (df, plan), images, &rep).map_err(|e| in_platform(p, e));
                if out.is_err() && first_failed.set(i).is_ok() {
                    cancel_others(&session, p, platforms, reporter);
                }
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some((out, started.elapsed()));
                }
            });
        }
    });
    session.save();
    if let Some(&i) = first_failed.get() {
        let failed = results
            .into_iter()
            .nth(i)
            .and_then(|s| s.into_inner().ok().flatten());
        return match failed {
            Some((Err(e), _)) => Err(e),
            _ => Err(Error::PlatformNoError(Box::new(platforms[i].clone()))),
        };
    }
    let mut out = Vec::with_capacity(platforms.len());
    let mut wall = Vec::with_capacity(platforms.len());
    for (slot, p) in results.into_iter().zip(platforms) {
        let done = slot.into_inner().ok().flatten();
        match done {
            Some((r, w)) => {
                out.push(r?);
                wall.push(w);
            }
            None => return Err(Error::PlatformNotBuilt(Box::new(p.clone()))),
        }
    }
    let mut ix = index(out, ann, &session.store)?;
    ix.wall = wall;
    ix.context_reads = session.context_reads();
    Ok(ix)
}

/// `e` in the build for platform `p`.
fn in_platform(p: &Platform, e: Error) -> Error {
    Error::Platform {
        platform: Box::new(p.clone()),
        source: Box::new(e),
    }
}

/// `failed` failed: stop the other platforms of the session, and say so.
fn cancel_others(session: &Session, failed: &Platform, all: &[Platform], reporter: &dyn Reporter) {
    session.cancel.cancel();
    let others: Vec<String> = all
        .iter()
        .filter(|p| *p != failed)
        .map(Platform::to_string)
        .collect();
    reporter.event(Event::Info(format!(
        "platform {failed} failed: canceling {}",
        others.join(", ")
    )));
}

/// One platform's outcome and its wall time.
type Built = (Result<BuildResult, Error>, Duration);

/// Step ids and warnings across the platforms of one build.
#[derive(Default)]
struct Shared {
    next_id: AtomicUsize,
    warned: Mutex<HashSet<String>>,
}

/// One platform's progress: its steps renumbered build-wide and labelled
/// with the platform, warnings shown once for all platforms.
struct PlatformReporter<'a> {
    inner: &'a dyn Reporter,
    platform: String,
    shared: &'a Shared,
    ids: Mutex<HashMap<usize, usize>>,
}

impl<'a> PlatformReporter<'a> {
    fn new(inner: &'a dyn Reporter, p: &Platform, shared: &'a Shared) -> Self {
        PlatformReporter {
            inner,
            platform: p.to_string(),
            shared,
            ids: Mutex::default(),
        }
    }

    /// The build-wide id of this platform's step `id` (a new one for a new step).
    fn id(&self, id: usize) -> usize {
        let Ok(mut ids) = self.ids.lock() else {
            return id;
        };
        *ids.entry(id)
            .or_insert_with(|| self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

impl Reporter for PlatformReporter<'_> {
    fn event(&self, event: Event) {
        let event = match event {
            Event::StepStart {
                id,
                stage,
                index,
                total,
                text,
            } => Event::StepStart {
                id: self.id(id),
                stage: format!("{} {stage}", self.platform),
                index,
                total,
                text,
            },
            Event::StepCached { id } => Event::StepCached { id: self.id(id) },
            Event::StepMiss { id, reason } => Event::StepMiss {
                id: self.id(id),
                reason,
            },
            Event::StepOutput { id, line } => Event::StepOutput {
                id: self.id(id),
                line,
            },
            Event::StepDone { id, elapsed } => Event::StepDone {
                id: self.id(id),
                elapsed,
            },
            Event::RunTimes { id, times } => Event::RunTimes {
                id: self.id(id),
                times,
            },
            Event::Warning(w) => {
                let first = self
                    .shared
                    .warned
                    .lock()
                    .map_or(true, |mut seen| seen.insert(w.clone()));
                if !first {
                    return;
                }
                Event::Warning(w)
            }
            other => other,
        };
        self.inner.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Recorder;

    #[test]
    fn platform_steps_get_build_wide_ids_and_labels_and_warnings_show_once() {
        let rec = Recorder::default();
        let shared = Shared::default();
        let amd = PlatformReporter::new(&rec, &Platform::parse("linux/amd64").unwrap(), &shared);
        let arm = PlatformReporter::new(&rec, &Platform::parse("linux/arm64").unwrap(), &shared);
        let start = |r: &PlatformReporter, id| {
            r.event(Event::StepStart {
                id,
                stage: "builder".into(),
                index: 1,
                total: 2,
                text: "RUN x".into(),
            })
        };
        start(&amd, 1);
        start(&arm, 1);
        arm.event(Event::StepCached { id: 1 });
        amd.event(Event::StepOutput {
            id: 1,
            line: "hi".into(),
        });
        for r in [&amd, &arm] {
            r.event(Event::Warning("same".into()));
        }
        let events = rec.0.lock().unwrap();
        let shown: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        assert!(shown[0].contains("id: 1") && shown[0].contains("linux/amd64 builder"));
        assert!(shown[1].contains("id: 2") && shown[1].contains("linux/arm64 builder"));
        assert!(shown[2].contains("StepCached { id: 2 }"), "{shown:?}");
        assert!(shown[3].contains("id: 1") && shown[3].contains("hi"));
        assert_eq!(shown.iter().filter(|s| s.contains("same")).count(), 1);
    }

    #[test]
    fn platform_jobs_come_from_the_environment_or_the_cpus() {
        // Only this test sets the variable.
        std::env::set_var(JOBS_ENV, "1");
        assert_eq!(jobs(2).unwrap(), 1);
        std::env::set_var(JOBS_ENV, "8");
        assert_eq!(jobs(3).unwrap(), 3, "at most one job per platform");
        std::env::set_var(JOBS_ENV, "zero");
        let e = format!("{:#}", jobs(2).unwrap_err());
        assert!(e.contains("CAIRN_PLATFORM_JOBS=\"zero\""), "{e}");
        std::env::remove_var(JOBS_ENV);
        assert!(jobs(2).unwrap() >= 1);
    }
}
