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
//! An inbox is a `VecDeque` behind one short lock. A thread that finds it empty waits on a
//! condition variable; a task registers its [`Waker`]. Each arrival wakes one blocked thread
//! and one task, oldest first (a thread and a task racing for one item: the loser waits
//! again). No runtime is involved: any executor's wakers work.
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
//! inbox is drained back into its queue as it closes ([`Inbox::close_and_drain`]).

mod receive;
mod signal;
mod waiters;

pub(crate) use receive::{
    poll_recv, recv, recv_async, recv_deadline, recv_timeout, try_recv, Source,
};
pub(crate) use signal::Signal;
pub(crate) use waiters::Slot;

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use waiters::Waiters;

use crate::sync::{Condvar, Mutex, MutexGuard};

/// An unbounded queue of items with blocking and async receivers; see the module docs.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    /// Items and waiters.
    state: Mutex<State<T>>,
    /// Wakes threads blocked in a receive.
    arrived: Condvar,
    /// Told of every arrival and of the close, for a thread waiting on several inboxes.
    signal: Option<Arc<Signal>>,
}

/// The locked part of an inbox.
#[derive(Debug)]
struct State<T> {
    /// Items in arrival order.
    items: VecDeque<T>,
    /// No more items will come.
    closed: bool,
    /// Tasks waiting for an item.
    waiters: Waiters,
    /// Threads blocked in a receive.
    sleepers: usize,
}

/// Whom an arrival or a close must wake, collected under the lock and woken after it.
struct Wake {
    /// Threads to notify: none, one, or all.
    threads: Threads,
    /// Tasks to wake.
    tasks: Vec<Waker>,
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
        Inbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                waiters: Waiters::default(),
                sleepers: 0,
            }),
            arrived: Condvar::new(),
            signal,
        }
    }

    /// Adds an item and wakes one waiter, or gives the item back if the inbox is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(item);
        }
        st.items.push_back(item);
        let wake = Wake {
            threads: if st.sleepers > 0 {
                Threads::One
            } else {
                Threads::None
            },
            tasks: st.waiters.take_one().into_iter().collect(),
        };
        drop(st);
        self.wake(wake);
        Ok(())
    }

    /// Takes the oldest item without waiting: `Err(true)` if there is none and none will
    /// come (closed), `Err(false)` if there is none yet.
    pub(crate) fn try_pop(&self) -> Result<T, bool> {
        let mut st = self.state.lock();
        st.items.pop_front().ok_or(st.closed)
    }

    /// Takes the oldest item, blocking until one arrives or `deadline` passes: `Err(true)`
    /// once closed and empty, `Err(false)` on timeout.
    pub(crate) fn pop_deadline(&self, deadline: Option<Instant>) -> Result<T, bool> {
        let mut st = self.state.lock();
        loop {
            if let Some(item) = st.items.pop_front() {
                return Ok(item);
            }
            if st.closed {
                return Err(true);
            }
            st.sleepers += 1;
            let timed_out = self.sleep(&mut st, deadline);
            st.sleepers -= 1;
            if timed_out {
                return st.items.pop_front().ok_or(st.closed);
            }
        }
    }

    /// Waits on the condition variable; returns `true` if `deadline` passed.
    fn sleep(&self, st: &mut MutexGuard<'_, State<T>>, deadline: Option<Instant>) -> bool {
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
        let mut st = self.state.lock();
        if let Some(item) = st.items.pop_front() {
            st.waiters.unregister(slot);
            return Poll::Ready(Some(item));
        }
        if st.closed {
            st.waiters.unregister(slot);
            return Poll::Ready(None);
        }
        st.waiters.register(slot, cx.waker());
        Poll::Pending
    }

    /// Withdraws the registration of `slot` (its future or stream is going away). If it had
    /// been woken for an item it never took, the wake passes to the next waiter.
    pub(crate) fn unregister(&self, slot: &mut Slot) {
        if slot.is_none() {
            return;
        }
        let mut st = self.state.lock();
        let was_woken = st.waiters.unregister(slot);
        if !was_woken || st.items.is_empty() {
            return;
        }
        let wake = Wake {
            threads: Threads::None,
            tasks: st.waiters.take_one().into_iter().collect(),
        };
        drop(st);
        self.wake(wake);
    }

    /// Closes the inbox: receivers get what is left, then nothing more.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        let wake = Self::closing(&mut st);
        drop(st);
        self.wake(wake);
    }

    /// Closes the inbox and takes back every item still in it.
    pub(crate) fn close_and_drain(&self) -> Vec<T> {
        let mut st = self.state.lock();
        let items = st.items.drain(..).collect();
        let wake = Self::closing(&mut st);
        drop(st);
        self.wake(wake);
        items
    }

    fn closing(st: &mut State<T>) -> Wake {
        st.closed = true;
        Wake {
            threads: if st.sleepers > 0 {
                Threads::All
            } else {
                Threads::None
            },
            tasks: st.waiters.take_all(),
        }
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
        for task in wake.tasks {
            task.wake();
        }
        if let Some(signal) = &self.signal {
            signal.notify();
        }
    }

    /// Returns the number of items waiting.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    /// Returns `true` if no item is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.lock().items.is_empty()
    }

    /// Returns the number of tasks waiting on this inbox.
    #[cfg(test)]
    fn waiting_tasks(&self) -> usize {
        self.state.lock().waiters.len()
    }
}

#[cfg(test)]
mod tests;
