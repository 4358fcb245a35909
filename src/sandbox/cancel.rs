//! Stopping RUN steps that are under way, from another thread: when one
//! platform of a multi-platform build fails, the others' RUN commands are
//! killed instead of running to their end (an emulated `next build` takes
//! minutes).
//!
//! The kill goes through the helper's lifeline (its stdin, see the module
//! doc of [`super`]): a running step registers its end of the pipe here;
//! [`Cancel::cancel`] closes every registered end, each helper sees EOF and
//! SIGKILLs its namespace root, and the step's pid 1 and command die with
//! it. Nothing is captured, so no layer and no cache record come of it; the
//! run directory goes as after any failed step. No pid is signalled from
//! here, so a reused pid can never be hit.

use std::collections::HashMap;
use std::process::ChildStdin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A cancellation shared by the clones of one value (one build's steps).
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    canceled: bool,
    next: u64,
    lifelines: HashMap<u64, ChildStdin>,
}

/// A running step's lifeline, held here until the step ends.
pub(crate) struct Registered<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Cancel {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panicking holder could break.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cancel: steps that start from now on do not run, running ones are killed.
    pub fn cancel(&self) {
        let lifelines = {
            let mut s = self.lock();
            s.canceled = true;
            std::mem::take(&mut s.lifelines)
        };
        // Closing the pipe is the kill signal.
        drop(lifelines);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_canceled(&self) -> bool {
        self.lock().canceled
    }

    /// Hold `lifeline` until the guard drops; `None` (the pipe closed, so
    /// the step is killed) when already canceled.
    pub(crate) fn register(&self, lifeline: ChildStdin) -> Option<Registered<'_>> {
        let mut s = self.lock();
        if s.canceled {
            return None;
        }
        s.next += 1;
        let id = s.next;
        s.lifelines.insert(id, lifeline);
        Some(Registered { cancel: self, id })
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let lifeline = self.cancel.lock().lifelines.remove(&self.id);
        drop(lifeline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command, Stdio};

    /// `cat` with a piped stdin ends when that pipe closes: a stand-in for
    /// the helper watching its lifeline.
    fn watcher() -> std::process::Child {
        Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn cancel_closes_the_registered_lifelines_and_refuses_new_ones() {
        let cancel = Cancel::default();
        let clone = cancel.clone();
        let mut child = watcher();
        let guard = cancel.register(child.stdin.take().unwrap());
        assert!(guard.is_some() && !cancel.is_canceled());
        clone.cancel();
        // EOF reached the watcher although the guard still lives.
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert!(cancel.is_canceled());
        drop(guard);
        let mut late = watcher();
        assert!(cancel.register(late.stdin.take().unwrap()).is_none());
        assert!(
            late.wait().unwrap().success(),
            "a late lifeline is closed at once"
        );
    }

    #[test]
    fn a_finished_step_leaves_nothing_registered() {
        let cancel = Cancel::default();
        let mut child = watcher();
        drop(cancel.register(child.stdin.take().unwrap()));
        assert!(child.wait().unwrap().success());
        assert!(cancel.lock().lifelines.is_empty());
    }
}
