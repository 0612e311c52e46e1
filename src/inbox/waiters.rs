//! The tasks waiting on an inbox: each registration has a key, so that a future that is
//! dropped can take its waker back, and a woken one that gives up can pass the wake on.

use std::collections::VecDeque;
use std::task::Waker;

/// A registration: `None` until the first time its owner waits.
pub(crate) type Slot = Option<u64>;

/// Tasks waiting for an item, woken one at a time in the order they registered.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// Registered wakers by key, oldest first.
    list: VecDeque<(u64, Waker)>,
    /// The next key to hand out.
    next_key: u64,
}

impl Waiters {
    /// Registers (or refreshes) the waker of `slot`.
    pub(crate) fn register(&mut self, slot: &mut Slot, waker: &Waker) {
        if let Some(key) = *slot {
            if let Some((_, current)) = self.list.iter_mut().find(|(k, _)| *k == key) {
                if !current.will_wake(waker) {
                    current.clone_from(waker);
                }
                return;
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        *slot = Some(key);
        self.list.push_back((key, waker.clone()));
    }

    /// Removes the registration of `slot`. Returns `true` if it had been taken by a wake
    /// (its owner was woken for an item it may not have received).
    pub(crate) fn unregister(&mut self, slot: &mut Slot) -> bool {
        let Some(key) = slot.take() else {
            return false;
        };
        match self.list.iter().position(|(k, _)| *k == key) {
            Some(at) => {
                self.list.remove(at);
                false
            }
            None => true,
        }
    }

    /// Takes the waker of the oldest waiter, to be woken once the lock is released.
    pub(crate) fn take_one(&mut self) -> Option<Waker> {
        self.list.pop_front().map(|(_, waker)| waker)
    }

    /// Takes every waker (the inbox closed).
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.list.drain(..).map(|(_, waker)| waker).collect()
    }

    /// Returns the number of registered tasks.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}
