//! The inbox: where a queue puts the messages it hands to one consumer, and where a channel
//! puts the messages returned to its publisher. One implementation with two faces.
//!
//! - `waiters`: the tasks waiting on an inbox ([`Waiters`]).
//! - `signal`: a change counter threads wait on, for waiting on several inboxes at once
//!   ([`Signal`]).
//! - `receive`: the receiving family shared by [`Consumer`](crate::Consumer) and
//!   [`Returns`](crate::Returns): blocking (`recv`, `try_recv`, `recv_deadline`) and async
//!   (`poll_recv`, `recv_async`), through the [`Source`] trait.
//!
//! # Blocking and waking
//!
//! The items travel through a lock-free queue (an unbounded `crossbeam-channel`): while the
//! receiver keeps up, neither side takes a lock, and the sender and the receiver touch
//! different cache lines. Only waiting takes the inbox's lock: a thread that finds it empty
//! registers as a sleeper and waits on a condition variable; a task registers its
//! [`Waker`]. A sender looks at one atomic count of sleepers and tasks after each push (a
//! `SeqCst` fence on both sides, so that either the sender sees the waiter or the waiter,
//! looking again after registering, sees the item) and takes the lock only when someone
//! waits. Each arrival wakes one blocked thread and one task, oldest first (a thread and a
//! task racing for one item: the loser waits again). No runtime is involved: any executor's
//! wakers work.
//!
//! # Cancel safety
//!
//! An item leaves the inbox only in the same call that returns it, so dropping a pending
//! receive future loses nothing. A task that was woken for an item and is dropped before it
//! takes it passes the wake on to the next waiter, so no item waits while someone sleeps.
//!
//! # Closing
//!
//! Closing wakes every waiter. Receivers get what is left, then `Disconnected`; a consumer's
//! inbox is drained back into its queue as it closes ([`Inbox::close_and_drain`]). A push
//! racing a plain close may land just after it, and is received like the rest; pushes and
//! `close_and_drain` must be serialised by the caller (a queue pushes into and drains its
//! consumers' inboxes under its own lock), so nothing is left behind in a drained inbox.

mod receive;
mod signal;
mod waiters;

pub(crate) use receive::{
    poll_recv, recv, recv_async, recv_deadline, recv_timeout, try_recv, Source,
};
pub(crate) use signal::Signal;
pub(crate) use waiters::Slot;

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::{Backoff, CachePadded};

use waiters::Waiters;

use crate::sync::{Condvar, Mutex, MutexGuard};

/// An unbounded queue of items with blocking and async receivers; see the module docs.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    /// The sending end of the items' queue.
    tx: Sender<T>,
    /// The receiving end of the items' queue.
    rx: Receiver<T>,
    /// Threads blocked in a receive plus tasks registered, as of the last change under
    /// `state`'s lock: a sender takes the lock only when this is not zero.
    watchers: CachePadded<AtomicUsize>,
    /// No more items will come (set under `state`'s lock).
    closed: AtomicBool,
    /// Waiters.
    state: Mutex<State>,
    /// Wakes threads blocked in a receive.
    arrived: Condvar,
    /// Told of every arrival and of the close, for a thread waiting on several inboxes.
    signal: Option<Arc<Signal>>,
}

/// The locked part of an inbox: who waits.
#[derive(Debug, Default)]
struct State {
    /// Tasks waiting for an item.
    waiters: Waiters,
    /// Threads blocked in a receive.
    sleepers: usize,
}

impl State {
    /// The number of waiters, for [`Inbox::watchers`].
    fn watchers(&self) -> usize {
        self.sleepers + self.waiters.len()
    }
}

/// Whom an arrival or a close must wake, collected under the lock and woken after it.
struct Wake {
    /// Threads to notify: none, one, or all.
    threads: Threads,
    /// Tasks to wake.
    tasks: Tasks,
}

/// The tasks an arrival (one at most) or a close (all) wakes.
enum Tasks {
    One(Option<Waker>),
    All(Vec<Waker>),
}

/// How many blocked threads to notify.
#[derive(PartialEq, Eq)]
enum Threads {
    None,
    One,
    All,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox::with(None)
    }
}

impl<T> Inbox<T> {
    /// Creates an inbox that also bumps `signal` on every arrival and on its close.
    pub(crate) fn with_signal(signal: Arc<Signal>) -> Self {
        Inbox::with(Some(signal))
    }

    fn with(signal: Option<Arc<Signal>>) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Inbox {
            tx,
            rx,
            watchers: CachePadded::new(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            signal,
        }
    }

    /// Records the number of waiters after a change under the lock; the fence orders it
    /// before the receiver's second look at the queue.
    fn publish_watchers(&self, st: &State) {
        self.watchers.store(st.watchers(), Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Adds an item and wakes one waiter, or gives the item back if the inbox is closed.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(item);
        }
        // The inbox owns its receiver, so the send cannot fail.
        self.tx.send(item).map_err(|e| e.into_inner())?;
        fence(Ordering::SeqCst);
        if self.watchers.load(Ordering::Relaxed) > 0 {
            let mut st = self.state.lock();
            let wake = Wake {
                threads: if st.sleepers > 0 {
                    Threads::One
                } else {
                    Threads::None
                },
                tasks: Tasks::One(st.waiters.take_one()),
            };
            self.publish_watchers(&st);
            drop(st);
            self.wake(wake);
        } else if let Some(signal) = &self.signal {
            signal.notify();
        }
        Ok(())
    }

    /// Takes the oldest item if there is one.
    #[inline]
    fn pop(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// What a receiver that found no item says: `true` if none will come (closed; looked
    /// at again, as a push before the close may have landed after the first look).
    fn none_left(&self) -> Result<T, bool> {
        if self.closed.load(Ordering::Acquire) {
            self.pop().ok_or(true)
        } else {
            Err(false)
        }
    }

    /// Takes the oldest item without waiting: `Err(true)` if there is none and none will
    /// come (closed), `Err(false)` if there is none yet.
    pub(crate) fn try_pop(&self) -> Result<T, bool> {
        match self.pop() {
            Some(item) => Ok(item),
            None => self.none_left(),
        }
    }

    /// Takes the oldest item, blocking until one arrives or `deadline` passes: `Err(true)`
    /// once closed and empty, `Err(false)` on timeout.
    pub(crate) fn pop_deadline(&self, deadline: Option<Instant>) -> Result<T, bool> {
        // As crossbeam's receivers do, spin and yield a little before going to sleep: an
        // item often follows within a few hundred nanoseconds, and a sleep costs the sender
        // a wake-up call.
        let backoff = Backoff::new();
        loop {
            if let Some(item) = self.pop() {
                return Ok(item);
            }
            if backoff.is_completed() || self.closed.load(Ordering::Relaxed) {
                break;
            }
            backoff.snooze();
        }
        let mut st = self.state.lock();
        st.sleepers += 1;
        self.publish_watchers(&st);
        let got = loop {
            if let Some(item) = self.pop() {
                break Ok(item);
            }
            if self.closed.load(Ordering::Acquire) {
                break self.pop().ok_or(true);
            }
            if self.sleep(&mut st, deadline) {
                break self.try_pop();
            }
        };
        st.sleepers -= 1;
        self.publish_watchers(&st);
        got
    }

    /// Waits on the condition variable; returns `true` if `deadline` passed.
    fn sleep(&self, st: &mut MutexGuard<'_, State>, deadline: Option<Instant>) -> bool {
        match deadline {
            Some(deadline) => self.arrived.wait_until(st, deadline).timed_out(),
            None => {
                self.arrived.wait(st);
                false
            }
        }
    }

    /// Takes the oldest item, or registers the task of `cx` under `slot` to be woken when
    /// one arrives. `Ready(None)` once closed and empty.
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>, slot: &mut Slot) -> Poll<Option<T>> {
        if let Some(item) = self.pop() {
            if slot.is_some() {
                let mut st = self.state.lock();
                st.waiters.unregister(slot);
                self.publish_watchers(&st);
            }
            return Poll::Ready(Some(item));
        }
        let mut st = self.state.lock();
        st.waiters.register(slot, cx.waker());
        self.publish_watchers(&st);
        let got = match self.try_pop() {
            Ok(item) => Some(item),
            Err(false) => return Poll::Pending,
            Err(true) => None,
        };
        st.waiters.unregister(slot);
        self.publish_watchers(&st);
        Poll::Ready(got)
    }

    /// Withdraws the registration of `slot` (its future or stream is going away). If it had
    /// been woken for an item it never took, the wake passes to the next waiter.
    pub(crate) fn unregister(&self, slot: &mut Slot) {
        if slot.is_none() {
            return;
        }
        let mut st = self.state.lock();
        let was_woken = st.waiters.unregister(slot);
        self.publish_watchers(&st);
        if !was_woken || self.rx.is_empty() {
            return;
        }
        let wake = Wake {
            threads: Threads::None,
            tasks: Tasks::One(st.waiters.take_one()),
        };
        self.publish_watchers(&st);
        drop(st);
        self.wake(wake);
    }

    /// Closes the inbox: receivers get what is left, then nothing more.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        let wake = self.closing(&mut st);
        drop(st);
        self.wake(wake);
    }

    /// Closes the inbox and takes back every item still in it.
    pub(crate) fn close_and_drain(&self) -> Vec<T> {
        let mut st = self.state.lock();
        let wake = self.closing(&mut st);
        let items = self.rx.try_iter().collect();
        drop(st);
        self.wake(wake);
        items
    }

    fn closing(&self, st: &mut State) -> Wake {
        self.closed.store(true, Ordering::Release);
        let wake = Wake {
            threads: if st.sleepers > 0 {
                Threads::All
            } else {
                Threads::None
            },
            tasks: Tasks::All(st.waiters.take_all()),
        };
        self.publish_watchers(st);
        wake
    }

    fn wake(&self, wake: Wake) {
        match wake.threads {
            Threads::None => {}
            Threads::One => {
                self.arrived.notify_one();
            }
            Threads::All => {
                self.arrived.notify_all();
            }
        }
        match wake.tasks {
            Tasks::One(task) => {
                if let Some(task) = task {
                    task.wake();
                }
            }
            Tasks::All(tasks) => tasks.into_iter().for_each(Waker::wake),
        }
        if let Some(signal) = &self.signal {
            signal.notify();
        }
    }

    /// Returns the number of items waiting.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    /// Returns `true` if no item is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Returns the number of tasks waiting on this inbox.
    #[cfg(test)]
    fn waiting_tasks(&self) -> usize {
        self.state.lock().waiters.len()
    }
}

#[cfg(test)]
mod tests;
