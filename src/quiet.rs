//! Quiet: what [`Broker::wait_idle`](crate::Broker::wait_idle) waits on.
//!
//! A message is *in flight* while the broker still has something to do with it on its own:
//! it waits in a queue that has a consumer with credit, in a consumer's inbox not yet
//! received, in a wire connection's buffers, or it is between two queues (a dead letter on
//! its way to its dead-letter exchange's queues, a delayed message being released). Most of
//! that is visible in the queues and inboxes themselves; what travels outside them holds a
//! [`Transit`] guard for as long as it does.
//!
//! # Waking
//!
//! A waiter re-checks the broker whenever something that can end the busy state happens: a
//! [`Transit`] ends, a wire connection's buffers drain, a consumer or queue goes. Each of
//! those calls [`Quiet::notify`], which costs a fence and one load while no one waits; the
//! waiter registers before it looks (a `SeqCst` fence on both sides, as in the inbox), so a
//! change is either seen by the waiter's look or wakes it.
//!
//! A consumer taking a message from its inbox does not notify: that is the hot path of
//! every delivery, and a fence there would be paid by every application for a test
//! facility. The waiter looks again every [`RECHECK`] instead, so an inbox that empties is
//! seen within a millisecond.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::sync::{Condvar, Mutex};

/// How often a waiter looks again without a notification: what it takes to see a consumer
/// empty its inbox, which does not notify.
const RECHECK: Duration = Duration::from_millis(1);

/// The broker-wide count of messages in transit and the waiters of [`Broker::wait_idle`](crate::Broker::wait_idle).
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    /// Work in progress outside any queue or inbox (live [`Transit`] guards).
    transit: CachePadded<AtomicUsize>,
    /// Threads in [`Quiet::wait_until`]: notifiers take the lock only when this is not zero.
    waiters: CachePadded<AtomicUsize>,
    /// Bumped by every notification while someone waits.
    generation: Mutex<u64>,
    /// Wakes the waiters.
    changed: Condvar,
}

impl Quiet {
    /// Says that something that may end the busy state happened.
    #[inline]
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        *self.generation.lock() += 1;
        self.changed.notify_all();
    }

    /// Counts work in transit until the guard is dropped.
    pub(crate) fn transit(self: &Arc<Self>) -> Transit {
        self.transit.fetch_add(1, Ordering::SeqCst);
        Transit(Arc::clone(self))
    }

    /// Returns the number of live [`Transit`] guards.
    pub(crate) fn in_transit(&self) -> usize {
        self.transit.load(Ordering::SeqCst)
    }

    /// Calls `check` until it finds nothing busy (`Ok`), looking again after each
    /// notification and every [`RECHECK`], or until `deadline` (`Err` with what the last
    /// look found busy).
    /// `prepare` runs before each look: what it does may notify (it fires timers), `check`
    /// must not.
    pub(crate) fn wait_until(
        &self,
        deadline: Instant,
        mut prepare: impl FnMut(),
        mut check: impl FnMut() -> Vec<String>,
    ) -> Result<(), Vec<String>> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _registered = Registered(&self.waiters);
        loop {
            prepare();
            let seen = *self.generation.lock();
            let busy = check();
            if busy.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(busy);
            }
            let mut generation = self.generation.lock();
            let look_again = deadline.min(Instant::now() + RECHECK);
            while *generation == seen {
                if self
                    .changed
                    .wait_until(&mut generation, look_again)
                    .timed_out()
                {
                    break;
                }
            }
        }
    }
}

/// Unregisters a waiter, however the wait ends.
struct Registered<'a>(&'a AtomicUsize);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Work in transit outside any queue or inbox (dead letters being routed, a timer sweep):
/// the broker is not idle while one lives.
#[derive(Debug)]
#[must_use = "the transit ends when the guard is dropped"]
pub(crate) struct Transit(Arc<Quiet>);

impl Drop for Transit {
    fn drop(&mut self) {
        self.0.transit.fetch_sub(1, Ordering::SeqCst);
        self.0.notify();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_transit_ending_wakes_the_waiter() {
        let quiet = Arc::new(Quiet::default());
        let transit = quiet.transit();
        let waiter = {
            let quiet = Arc::clone(&quiet);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                quiet.wait_until(
                    deadline,
                    || {},
                    || match quiet.in_transit() {
                        0 => Vec::new(),
                        n => vec![format!("{n} in transit")],
                    },
                )
            })
        };
        drop(transit);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }

    #[test]
    fn the_deadline_reports_what_is_busy() {
        let quiet = Arc::new(Quiet::default());
        let _transit = quiet.transit();
        let deadline = Instant::now() + Duration::from_millis(10);
        let busy = quiet.wait_until(deadline, || {}, || vec![format!("{}", quiet.in_transit())]);
        assert_eq!(busy, Err(vec!["1".to_owned()]));
    }
}
