//! [`Durable`] tickets and the [`Tracker`] that completes them.
//!
//! Every submitted write gets a sequence number. The writer completes writes in sequence
//! order, a whole group commit at a time, so the tracker only needs a watermark ("every
//! write up to here is finished") plus the rare failed ranges. A ticket is therefore an
//! [`Arc`] and a number: no allocation per write.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::StoreError;

/// A function run once a write is finished, with its outcome.
pub(crate) type Callback = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A ticket for one submitted write: finished once the write is on disk or has failed.
///
/// Dropping a ticket does not cancel the write; it only means nobody waits for it.
#[must_use = "a write is only known to be durable once its ticket completes"]
pub(crate) struct Durable {
    /// Where the outcome comes from.
    inner: Inner,
}

/// The two kinds of tickets.
enum Inner {
    /// Already finished when it was made (the null store, a write that could not be queued).
    Ready(Result<(), StoreError>),
    /// Finished when the tracker's watermark reaches `seq`.
    Pending {
        /// The tracker of the store the write went to.
        tracker: Arc<Tracker>,
        /// The write's sequence number.
        seq: u64,
    },
}

impl Durable {
    /// Returns a ticket that is already durable.
    pub(crate) fn done() -> Self {
        Durable {
            inner: Inner::Ready(Ok(())),
        }
    }

    /// Returns a ticket that has already failed.
    pub(crate) fn failed(error: StoreError) -> Self {
        Durable {
            inner: Inner::Ready(Err(error)),
        }
    }

    /// Returns a ticket for write `seq` of the store that `tracker` belongs to.
    pub(crate) fn pending(tracker: Arc<Tracker>, seq: u64) -> Self {
        Durable {
            inner: Inner::Pending { tracker, seq },
        }
    }

    /// Returns the outcome if the write is finished, without blocking.
    pub(crate) fn try_result(&self) -> Option<Result<(), StoreError>> {
        match &self.inner {
            Inner::Ready(result) => Some(result.clone()),
            Inner::Pending { tracker, seq } => tracker.state.lock().outcome(*seq),
        }
    }

    /// Returns `true` if the write is finished (durable or failed).
    pub(crate) fn is_finished(&self) -> bool {
        self.try_result().is_some()
    }

    /// Blocks until the write is on disk.
    ///
    /// # Errors
    ///
    /// The error of the group commit the write was part of, or [`StoreError::Closed`] if the
    /// store stopped before writing it.
    pub(crate) fn wait(&self) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Ready(result) => result.clone(),
            Inner::Pending { tracker, seq } => {
                let mut state = tracker.state.lock();
                loop {
                    if let Some(outcome) = state.outcome(*seq) {
                        return outcome;
                    }
                    tracker.finished.wait(&mut state);
                }
            }
        }
    }

    /// Blocks until the write is finished or `timeout` has passed; `None` on timeout.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), StoreError>> {
        let Inner::Pending { tracker, seq } = &self.inner else {
            return self.try_result();
        };
        let deadline = Instant::now() + timeout;
        let mut state = tracker.state.lock();
        loop {
            if let Some(outcome) = state.outcome(*seq) {
                return Some(outcome);
            }
            if tracker
                .finished
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.outcome(*seq);
            }
        }
    }

    /// Runs `callback` with the outcome once the write is finished: at once if it already is,
    /// otherwise on the writer thread right after the commit.
    ///
    /// This is how a channel in confirm mode sends `basic.ack` without a thread per message.
    /// The callback must be short and must not block on the store.
    #[allow(
        dead_code,
        reason = "for per-message confirms over the wire; tested here"
    )]
    pub(crate) fn on_finished(
        self,
        callback: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) {
        match self.inner {
            Inner::Ready(result) => callback(result),
            Inner::Pending { tracker, seq } => {
                let mut state = tracker.state.lock();
                match state.outcome(seq) {
                    Some(outcome) => {
                        drop(state);
                        callback(outcome);
                    }
                    None => state
                        .callbacks
                        .entry(seq)
                        .or_default()
                        .push(Box::new(callback)),
                }
            }
        }
    }
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Ready(result) => f.debug_tuple("Durable").field(result).finish(),
            Inner::Pending { seq, .. } => f.debug_struct("Durable").field("seq", seq).finish(),
        }
    }
}

/// The completion state shared by a store's writer and all tickets of that store.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// The watermark, failures and callbacks.
    state: Mutex<TrackerState>,
    /// Signalled whenever the watermark moves.
    finished: Condvar,
}

/// What the tracker knows. Sequence numbers start at 1.
#[derive(Default)]
struct TrackerState {
    /// Every write with `seq <= finished` is finished.
    finished: u64,
    /// Failed ranges `first -> (last, error)`, contiguous failures merged (the first error of
    /// a run is kept: it is the cause, later ones are usually its echo).
    failures: BTreeMap<u64, (u64, StoreError)>,
    /// Set when the writer stopped: writes after `finished` will never be written.
    stopped: bool,
    /// Callbacks waiting for a write, by its sequence number.
    callbacks: BTreeMap<u64, Vec<Callback>>,
}

impl fmt::Debug for TrackerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerState")
            .field("finished", &self.finished)
            .field("failures", &self.failures)
            .field("stopped", &self.stopped)
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

impl TrackerState {
    /// Returns the outcome of write `seq`, or `None` while it is pending.
    fn outcome(&self, seq: u64) -> Option<Result<(), StoreError>> {
        if seq > self.finished {
            return self.stopped.then_some(Err(StoreError::Closed));
        }
        match self.failures.range(..=seq).next_back() {
            Some((_, (last, error))) if seq <= *last => Some(Err(error.clone())),
            _ => Some(Ok(())),
        }
    }
}

impl Tracker {
    /// Marks writes `first..=last` finished with `result`, wakes their waiters and runs their
    /// callbacks (outside the lock).
    pub(crate) fn finish(&self, first: u64, last: u64, result: Result<(), StoreError>) {
        let ready = {
            let mut state = self.state.lock();
            if let Err(error) = result {
                let merged = match state.failures.iter_mut().next_back() {
                    Some((_, (prev_last, _))) if *prev_last + 1 == first => {
                        *prev_last = last;
                        true
                    }
                    _ => false,
                };
                if !merged {
                    state.failures.insert(first, (last, error));
                }
            }
            state.finished = state.finished.max(last);
            let later = state.callbacks.split_off(&(last + 1));
            std::mem::replace(&mut state.callbacks, later)
        };
        self.finished.notify_all();
        self.run(ready);
    }

    /// Records that the writer stopped: pending and later writes fail with
    /// [`StoreError::Closed`].
    pub(crate) fn stop(&self) {
        let orphans = {
            let mut state = self.state.lock();
            state.stopped = true;
            std::mem::take(&mut state.callbacks)
        };
        self.finished.notify_all();
        self.run(orphans);
    }

    /// Runs callbacks with the outcome of their write.
    fn run(&self, callbacks: BTreeMap<u64, Vec<Callback>>) {
        for (seq, list) in callbacks {
            let outcome = self
                .state
                .lock()
                .outcome(seq)
                .unwrap_or(Err(StoreError::Closed));
            for callback in list {
                callback(outcome.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn watermark_failures_and_callbacks() {
        let tracker = Arc::new(Tracker::default());
        let ticket = |seq| Durable::pending(tracker.clone(), seq);
        assert!(ticket(1).try_result().is_none());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        ticket(3).on_finished(move |r| {
            assert!(r.is_err());
            c.fetch_add(1, Ordering::SeqCst);
        });
        tracker.finish(1, 2, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        tracker.finish(3, 4, Err(StoreError::corrupt("x")));
        tracker.finish(5, 5, Err(StoreError::Closed));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(ticket(2).wait().is_ok());
        assert!(matches!(ticket(5).wait(), Err(StoreError::Corrupt { .. })));
        assert!(ticket(6).wait_timeout(Duration::from_millis(1)).is_none());
        tracker.stop();
        assert!(matches!(ticket(6).wait(), Err(StoreError::Closed)));
        assert!(Durable::done().wait().is_ok());
    }
}
