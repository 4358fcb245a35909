//! Work done once when several threads of one invocation want it at the same
//! time: a step key two platforms of a multi-platform build reach together
//! (a `FROM --platform=$BUILDPLATFORM` stage, a COPY whose layer has the same
//! bytes), a context file two COPY steps hash together. The first claimant
//! does the work; the others wait for its claim to end and then find the
//! result in the cache (or the memo) instead of doing it again.
//!
//! No deadlock: a holder of a step key claims at most a content key or a
//! file path below it, and those never claim anything.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Keys being worked on.
#[derive(Default)]
pub struct InFlight {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// A claimed key, released on drop.
pub struct Claim<'a> {
    set: &'a InFlight,
    key: String,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        // The set holds no invariant a panicking holder could break.
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claim `key`, waiting while another thread holds it.
    pub fn claim(&self, key: &str) -> Claim<'_> {
        let mut busy = self.lock();
        while busy.contains(key) {
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(key.to_owned());
        Claim {
            set: self,
            key: key.to_owned(),
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
        self.set.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_claimants_of_a_key_do_the_work_once() {
        let set = InFlight::default();
        let done = Mutex::new(HashSet::new());
        let runs = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for key in ["a", "b", "a", "c"] {
                        let _c = set.claim(key);
                        if done.lock().unwrap().contains(key) {
                            continue;
                        }
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        done.lock().unwrap().insert(key);
                    }
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 3, "each key worked on once");
        assert!(set.lock().is_empty(), "every claim released");
    }
}
