//! Step-granularity scheduling: every stage of the plan runs on its own
//! thread from the start; what it reads of another stage (its `FROM`, a
//! `COPY --from`, a `RUN --mount from=`) waits for that stage in one shared
//! completion table, at the step that needs it — not for a whole group of
//! stages. A stage also publishes its state after each step, which a
//! waiting `COPY --from` may work ahead on ([`super::speculate`]).
//!
//! A failed stage wakes every waiter: they stop (and the stages still
//! running stop at their next step), and the build reports the failing
//! stage's own error, never a waiter's.

use super::state::ImageState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// The completion table of one build's stages.
pub struct Table<R> {
    /// Finished stages by index (what tells a stage finished); set once,
    /// before its waiters are woken, so a reader keeps a plain reference for
    /// the rest of the build.
    results: Vec<OnceLock<R>>,
    state: Mutex<State>,
    changed: Condvar,
    /// Layers a `COPY --from` wrote ahead, by (consumer stage, step k).
    pub(super) ahead: Mutex<BTreeMap<(usize, usize), MadeAhead>>,
    /// The changes each layer read makes, by digest: checking a chain made
    /// ahead walks the source stage's later layers once, not once a step.
    pub(super) touches: Mutex<BTreeMap<cairn_layers::Digest, Arc<Touches>>>,
}

/// Every member of a layer as the path it changes and how.
pub type Touches = Vec<(String, super::fs::Touch)>;

/// A COPY layer made ahead ([`super::speculate`]), and what it was made from.
pub struct MadeAhead {
    /// The step's 0-based position in its stage.
    pub(super) k: usize,
    /// The stage read.
    pub(super) stage: usize,
    /// The consumer's layers it was planned onto.
    pub(super) below: Vec<cairn_layers::Digest>,
    /// The layers of the stage read it was planned from.
    pub(super) read: Vec<cairn_layers::Digest>,
    /// The source paths (clean, relative to the stage's root; a glob's
    /// directory) whose subtree and ancestors the layer depends on.
    pub(super) protected: Vec<String>,
    /// `--parents`: the ancestors' own metadata are copied too.
    pub(super) parents: bool,
    /// The step as planned (instruction and expanded spec).
    pub(super) fingerprint: String,
    /// The layer.
    pub(super) layer: crate::image::Layer,
}

#[derive(Default)]
struct State {
    /// A stage failed: waiters and running stages stop.
    failed: bool,
    /// Stages that stopped because another one failed (their error is not shown).
    stopped: BTreeSet<usize>,
    /// Each running stage's state after its last finished step, with a
    /// generation that grows with each step (and when it becomes busy).
    progress: BTreeMap<usize, (u64, ImageState)>,
    /// Stages working on a step that missed the cache (the only time worth
    /// making a layer ahead: a stage of hits finishes at once), each with
    /// its filesystem key at the end when that step already decides it.
    busy: BTreeMap<usize, Option<cairn_layers::Digest>>,
}

/// What a stage being waited for is at.
pub enum Seen<'t, R> {
    /// Finished.
    Done(&'t R),
    /// Failed (the waiter stops).
    Failed,
    /// Still running; its state after its last finished step while it works
    /// on a cache miss (`None`: not busy, or no step finished yet) and a
    /// generation that grows with each change.
    Running(u64, Option<Box<ImageState>>),
}

impl<R> Table<R> {
    /// A table for a plan of `stages` stages.
    pub fn new(stages: usize) -> Table<R> {
        Table {
            results: (0..stages).map(|_| OnceLock::new()).collect(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            ahead: Mutex::new(BTreeMap::new()),
            touches: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking stage thread never holds this lock across user work:
        // the state stays consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view that stage `me` reads other stages through.
    pub fn view(&self, me: usize) -> Done<'_, R> {
        Done { table: self, me }
    }

    /// Stage `i` finished with `result`.
    pub fn finish(&self, i: usize, result: R) {
        if let Some(slot) = self.results.get(i) {
            let _ = slot.set(result);
        }
        let mut s = self.lock();
        s.progress.remove(&i);
        drop(s);
        self.changed.notify_all();
    }

    /// Stage `i` failed (or panicked): everyone waiting stops.
    pub fn fail(&self, i: usize) {
        let mut s = self.lock();
        s.failed = true;
        s.progress.remove(&i);
        drop(s);
        self.changed.notify_all();
    }

    /// Stage `i` is at `image` after one more step.
    pub fn publish(&self, i: usize, image: &ImageState) {
        let mut s = self.lock();
        let generation = s.progress.get(&i).map_or(1, |(g, _)| g + 1);
        s.progress.insert(i, (generation, image.clone()));
        s.busy.remove(&i);
        drop(s);
        self.changed.notify_all();
    }

    /// Stage `i` works on a step that missed the cache; `final_key`: the
    /// stage's filesystem key once it finished, when this step decides it
    /// (keyed by its inputs, and no later step changes the filesystem).
    pub fn busy(&self, i: usize, final_key: Option<cairn_layers::Digest>) {
        let mut s = self.lock();
        s.busy.insert(i, final_key);
        if let Some((g, _)) = s.progress.get_mut(&i) {
            *g += 1;
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Whether stage `i` stopped because another one failed.
    pub fn stopped(&self, i: usize) -> bool {
        self.lock().stopped.contains(&i)
    }

    /// The finished stages' results, by index.
    pub fn into_results(self) -> BTreeMap<usize, R> {
        self.results
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.into_inner()?)))
            .collect()
    }

    fn seen(&self, s: &State, i: usize) -> Seen<'_, R> {
        if let Some(r) = self.results.get(i).and_then(OnceLock::get) {
            return Seen::Done(r);
        }
        if s.failed {
            return Seen::Failed;
        }
        match s.progress.get(&i) {
            Some((g, image)) if s.busy.contains_key(&i) => {
                Seen::Running(*g, Some(Box::new(image.clone())))
            }
            Some((g, _)) => Seen::Running(*g, None),
            None => Seen::Running(0, None),
        }
    }
}

/// Stage `me`'s view of the table: a wait for another stage is made here.
pub struct Done<'t, R> {
    /// The table.
    pub table: &'t Table<R>,
    /// The stage reading.
    pub me: usize,
}

impl<R> Clone for Done<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Done<'_, R> {}

impl<'t, R> Done<'t, R> {
    /// Stage `i` once it finished; `None` when a stage failed before it
    /// did (this stage then stops: see [`Done::stop`]).
    pub fn get(&self, i: &usize) -> Option<&'t R> {
        let mut s = self.table.lock();
        loop {
            match self.table.seen(&s, *i) {
                Seen::Done(r) => return Some(r),
                Seen::Failed => {
                    s.stopped.insert(self.me);
                    return None;
                }
                Seen::Running(..) => {
                    s = self
                        .table
                        .changed
                        .wait(s)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// Stage `i` now: finished, failed, or running at a state.
    pub fn peek(&self, i: usize) -> Seen<'t, R> {
        let s = self.table.lock();
        self.table.seen(&s, i)
    }

    /// Wait until stage `i` finishes, a stage fails, or `i` publishes a
    /// state newer than generation `after`.
    pub fn wait_past(&self, i: usize, after: u64) -> Seen<'t, R> {
        let mut s = self.table.lock();
        loop {
            match self.table.seen(&s, i) {
                Seen::Running(g, _) if g <= after => {
                    s = self
                        .table
                        .changed
                        .wait(s)
                        .unwrap_or_else(|p| p.into_inner());
                }
                other => return other,
            }
        }
    }

    /// Stage `i`'s filesystem key once it finishes, when the step it works
    /// on already decides it ([`Table::busy`]).
    pub fn final_key(&self, i: usize) -> Option<cairn_layers::Digest> {
        self.table.lock().busy.get(&i).cloned().flatten()
    }

    /// Whether this stage must stop before its next step (another stage
    /// failed); if so it is marked as stopped.
    pub fn stop(&self) -> bool {
        let mut s = self.table.lock();
        if s.failed {
            s.stopped.insert(self.me);
        }
        s.failed
    }

    /// This stage is at `image` after one more step.
    pub fn publish(&self, image: &ImageState) {
        self.table.publish(self.me, image);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageState {
        ImageState {
            image: crate::image::Image::new(Default::default(), Vec::new(), String::new()),
            fs_key: cairn_layers::Digest::of(b"x"),
            base: None,
        }
    }

    #[test]
    fn a_waiter_gets_the_stage_once_it_finishes() {
        let t = Table::new(2);
        std::thread::scope(|s| {
            let h = s.spawn(|| t.view(1).get(&0).cloned());
            t.finish(0, "done");
            assert_eq!(h.join().unwrap(), Some("done"));
        });
        assert!(!t.stopped(1));
    }

    #[test]
    fn a_failed_stage_wakes_its_waiters_which_stop() {
        let t: Table<()> = Table::new(3);
        std::thread::scope(|s| {
            let h = s.spawn(|| t.view(1).get(&0).is_none());
            t.fail(0);
            assert!(h.join().unwrap());
        });
        assert!(t.stopped(1));
        assert!(!t.stopped(0));
        // A stage still running stops at its next step.
        assert!(t.view(2).stop());
        assert!(t.stopped(2));
    }

    #[test]
    fn published_states_wake_a_waiter_with_a_newer_generation() {
        let t = Table::new(2);
        assert!(matches!(t.view(1).peek(0), Seen::Running(0, None)));
        t.view(0).publish(&image());
        // Not busy on a miss: nothing worth working ahead on.
        assert!(matches!(t.view(1).peek(0), Seen::Running(1, None)));
        t.busy(0, None);
        assert!(matches!(
            t.view(1).wait_past(0, 1),
            Seen::Running(2, Some(_))
        ));
        assert_eq!(t.view(1).final_key(0), None);
        let key = cairn_layers::Digest::of(b"k");
        t.busy(0, Some(key.clone()));
        assert_eq!(t.view(1).final_key(0), Some(key));
        // Known only while that step works.
        t.view(0).publish(&image());
        assert_eq!(t.view(1).final_key(0), None);
        t.finish(0, ());
        assert!(matches!(t.view(1).wait_past(0, 4), Seen::Done(_)));
    }
}
