//! A value threads and tasks can wait on until it satisfies a condition: the number of a
//! channel's publishes still waiting for their confirm, the outcome of one publish.

use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::sync::{Condvar, Mutex};

/// A value with blocked threads (condition variable) and tasks (wakers) waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Gate<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State<T> {
    value: T,
    wakers: Vec<Waker>,
}

impl<T: Clone> Gate<T> {
    pub(crate) fn new(value: T) -> Self {
        Gate {
            state: Mutex::new(State {
                value,
                wakers: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// Returns the value now.
    pub(crate) fn get(&self) -> T {
        self.state.lock().value.clone()
    }

    /// Changes the value and wakes every waiter; returns what `change` returned.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let mut st = self.state.lock();
        let result = change(&mut st.value);
        let wakers = std::mem::take(&mut st.wakers);
        drop(st);
        self.changed.notify_all();
        for w in wakers {
            w.wake();
        }
        result
    }

    /// Blocks until `ready` holds or `deadline` passes; returns the value and whether it
    /// holds.
    pub(crate) fn wait(&self, ready: impl Fn(&T) -> bool, deadline: Option<Instant>) -> (T, bool) {
        let mut st = self.state.lock();
        loop {
            if ready(&st.value) {
                return (st.value.clone(), true);
            }
            match deadline {
                Some(deadline) => {
                    if self.changed.wait_until(&mut st, deadline).timed_out() {
                        let ok = ready(&st.value);
                        return (st.value.clone(), ok);
                    }
                }
                None => self.changed.wait(&mut st),
            }
        }
    }

    /// The async face of [`wait`](Self::wait), without a deadline.
    pub(crate) fn poll(&self, ready: impl Fn(&T) -> bool, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.lock();
        if ready(&st.value) {
            return Poll::Ready(st.value.clone());
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
