//! [`Durable`] tickets, the [`Tracker`] that completes them, and [`DurableSet`]s of tickets
//! waited for together.
//!
//! Every submitted write gets a sequence number. The writer completes writes in sequence
//! order, a whole group commit at a time, so the tracker only needs a watermark ("every
//! write up to here is finished") plus the rare failed ranges. A ticket is therefore an
//! [`Arc`] and a number: no allocation per write. Threads wait on a condition variable;
//! tasks register a [`Waker`] under the sequence number they wait for, woken by the writer
//! thread when its commit finishes (no runtime involved).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::StoreError;

/// A function run once a write is finished, with its outcome.
pub(crate) type Callback = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A ticket for one submitted write: finished once the write is on disk or has failed.
///
/// Dropping a ticket does not cancel the write; it only means nobody waits for it.
#[derive(Clone)]
#[must_use = "a write is only known to be durable once its ticket completes"]
pub(crate) struct Durable {
    /// Where the outcome comes from.
    inner: Inner,
}

/// The two kinds of tickets.
#[derive(Clone)]
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

    #[cfg_attr(
        not(feature = "wire"),
        allow(dead_code, reason = "for the wire's confirms")
    )]
    /// Returns the number of the write if it was queued to a writer (whether or not it has
    /// finished); `None` for a ticket made finished.
    pub(crate) fn pending_seq(&self) -> Option<u64> {
        match &self.inner {
            Inner::Ready(_) => None,
            Inner::Pending { seq, .. } => Some(*seq),
        }
    }

    /// Returns the outcome if the write is finished, without blocking.
    pub(crate) fn try_result(&self) -> Option<Result<(), StoreError>> {
        match &self.inner {
            Inner::Ready(result) => Some(result.clone()),
            Inner::Pending { tracker, seq } => tracker.state.lock().outcome(*seq),
        }
    }

    /// Blocks until the write is on disk.
    ///
    /// # Errors
    ///
    /// The error of the group commit the write was part of, or [`StoreError::Closed`] if the
    /// store stopped before writing it.
    ///
    /// A write of the group this thread has open ([`WriteGroup`](super::WriteGroup)) is not
    /// waited for: it is written with the group, whose end ticket tells.
    pub(crate) fn wait(&self) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Ready(result) => result.clone(),
            Inner::Pending { tracker, seq } if super::group::within_open(tracker, *seq) => Ok(()),
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
        if super::group::within_open(tracker, *seq) {
            return Some(Ok(()));
        }
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

    /// Returns the outcome once the write is finished; until then registers the task of `cx`
    /// to be woken when it is.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        match &self.inner {
            Inner::Ready(result) => Poll::Ready(result.clone()),
            Inner::Pending { tracker, seq } => {
                let mut state = tracker.state.lock();
                if let Some(outcome) = state.outcome(*seq) {
                    return Poll::Ready(outcome);
                }
                let wakers = state.wakers.entry(*seq).or_default();
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
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
    /// Tasks waiting for a write, by its sequence number.
    wakers: BTreeMap<u64, Vec<Waker>>,
}

impl fmt::Debug for TrackerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerState")
            .field("finished", &self.finished)
            .field("failures", &self.failures)
            .field("stopped", &self.stopped)
            .field("callbacks", &self.callbacks.len())
            .field("wakers", &self.wakers.len())
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
        let (ready, woken) = {
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
            let later_wakers = state.wakers.split_off(&(last + 1));
            (
                std::mem::replace(&mut state.callbacks, later),
                std::mem::replace(&mut state.wakers, later_wakers),
            )
        };
        self.finished.notify_all();
        woken.into_values().flatten().for_each(Waker::wake);
        self.run(ready);
    }

    /// Records that the writer stopped: pending and later writes fail with
    /// [`StoreError::Closed`].
    pub(crate) fn stop(&self) {
        let (orphans, woken) = {
            let mut state = self.state.lock();
            state.stopped = true;
            (
                std::mem::take(&mut state.callbacks),
                std::mem::take(&mut state.wakers),
            )
        };
        self.finished.notify_all();
        woken.into_values().flatten().for_each(Waker::wake);
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

/// Tickets waited for together: a channel's unconfirmed publishes.
///
/// Writes finish in order, so waiting for all of them is waiting for the highest one, once;
/// then one look at the tracker tells whether any of them failed. The set keeps sequence
/// numbers only (8 bytes a ticket), and forgets those already durable when it grows, so a
/// publisher that rarely waits holds little.
#[derive(Debug, Default)]
pub(crate) struct DurableSet {
    /// The tracker of the store the pending writes went to.
    tracker: Option<Arc<Tracker>>,
    /// Writes not known to be finished, in no particular order.
    pending: Vec<u64>,
    /// The highest of `pending`.
    last: u64,
    /// The first failure among tickets already finished when they joined or were pruned.
    failed: Option<StoreError>,
}

/// How many pending writes a set holds before it forgets the finished ones.
const PRUNE_AT: usize = 4096;

impl DurableSet {
    /// Adds a ticket.
    pub(crate) fn push(&mut self, durable: Durable) {
        match durable.inner {
            Inner::Ready(Ok(())) => {}
            Inner::Ready(Err(error)) => {
                self.failed.get_or_insert(error);
            }
            Inner::Pending { tracker, seq } => {
                // One broker has one store, so every ticket of a set has the same tracker.
                self.tracker.get_or_insert(tracker);
                self.pending.push(seq);
                self.last = self.last.max(seq);
                if self.pending.len() >= PRUNE_AT {
                    self.prune();
                }
            }
        }
    }

    /// Returns `true` if no ticket is outstanding or unreported.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.failed.is_none()
    }

    /// Returns a ticket that finishes once every pending write of the set has (the highest
    /// one) with that write's number, or `None` if none is pending.
    pub(crate) fn last_ticket(&self) -> Option<(Durable, u64)> {
        let tracker = self.tracker.as_ref().filter(|_| !self.pending.is_empty())?;
        Some((Durable::pending(Arc::clone(tracker), self.last), self.last))
    }

    /// Removes the writes up to `through` (all finished) and every failure recorded so far,
    /// and returns their outcome: the first error among them, if any.
    pub(crate) fn settle_through(&mut self, through: u64) -> Result<(), StoreError> {
        let mut outcome = self.failed.take().map_or(Ok(()), Err);
        if let Some(tracker) = &self.tracker {
            let state = tracker.state.lock();
            let quick = state.failures.is_empty() && !state.stopped;
            self.pending.retain(|&seq| {
                if seq > through {
                    return true;
                }
                if !quick && outcome.is_ok() {
                    if let Some(Err(error)) = state.outcome(seq) {
                        outcome = Err(error);
                    }
                }
                false
            });
        }
        if self.pending.is_empty() {
            self.last = 0;
        }
        outcome
    }

    #[cfg_attr(
        not(feature = "wire"),
        allow(dead_code, reason = "for the wire's confirms")
    )]
    /// Says whether write `seq` of this set's store is known to have failed.
    pub(crate) fn failed(&self, seq: u64) -> bool {
        self.tracker
            .as_ref()
            .is_some_and(|t| matches!(t.state.lock().outcome(seq), Some(Err(_))))
    }

    /// Forgets the writes that finished well; keeps the first failure.
    fn prune(&mut self) {
        let Some(tracker) = &self.tracker else { return };
        let state = tracker.state.lock();
        let failed = &mut self.failed;
        self.pending.retain(|&seq| match state.outcome(seq) {
            None => true,
            Some(Ok(())) => false,
            Some(Err(error)) => {
                failed.get_or_insert(error);
                false
            }
        });
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

    #[test]
    fn a_set_waits_for_its_highest_ticket_and_reports_only_its_own_failures() {
        let tracker = Arc::new(Tracker::default());
        let ticket = |seq| Durable::pending(tracker.clone(), seq);
        let mut set = DurableSet::default();
        assert!(set.is_empty() && set.last_ticket().is_none());
        for seq in [3, 1, 6] {
            set.push(ticket(seq));
        }
        set.push(Durable::done());
        let (last, through) = set.last_ticket().expect("pending");
        assert_eq!(through, 6);
        assert!(last.try_result().is_none());
        // Write 2 (another channel's) fails; ours succeed.
        tracker.finish(1, 1, Ok(()));
        tracker.finish(2, 2, Err(StoreError::corrupt("not ours")));
        tracker.finish(3, 6, Ok(()));
        assert!(last.wait().is_ok());
        assert!(set.settle_through(6).is_ok());
        assert!(set.is_empty());
        // A failure of one of ours is reported once.
        set.push(ticket(7));
        set.push(ticket(8));
        tracker.finish(7, 7, Err(StoreError::corrupt("ours")));
        tracker.finish(8, 8, Ok(()));
        assert!(matches!(
            set.settle_through(8),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(set.is_empty());
        set.push(Durable::failed(StoreError::Closed));
        assert!(!set.is_empty());
        assert!(matches!(set.settle_through(0), Err(StoreError::Closed)));
    }

    #[test]
    fn a_pending_ticket_wakes_its_task_when_the_commit_finishes() {
        use std::task::Wake;
        struct Flag(std::sync::atomic::AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let tracker = Arc::new(Tracker::default());
        let ticket = Durable::pending(tracker.clone(), 2);
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        assert!(ticket.poll(&mut cx).is_pending());
        assert!(
            ticket.poll(&mut cx).is_pending(),
            "polled twice, registered once"
        );
        tracker.finish(1, 1, Ok(()));
        assert!(!flag.0.load(Ordering::SeqCst));
        tracker.finish(2, 2, Ok(()));
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(matches!(ticket.poll(&mut cx), Poll::Ready(Ok(()))));
    }
}
