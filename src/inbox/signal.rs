//! A counter that threads can wait on to change: how a thread waits for any of several
//! inboxes at once ([`Channel::wait`](crate::Channel::wait) over callback consumers).

use std::time::Instant;

use crate::sync::{Condvar, Mutex};

/// Wakes the threads waiting for a change; each change bumps a generation number.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// The number of changes so far.
    generation: Mutex<u64>,
    /// Signalled on every change.
    changed: Condvar,
}

impl Signal {
    /// Returns the current generation, to wait for a later one.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.lock()
    }

    /// Records a change and wakes every waiting thread.
    pub(crate) fn notify(&self) {
        *self.generation.lock() += 1;
        self.changed.notify_all();
    }

    /// Blocks until the generation moves past `seen` or `deadline` passes; returns `false`
    /// on timeout.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut generation = self.generation.lock();
        while *generation == seen {
            match deadline {
                Some(deadline) => {
                    if self
                        .changed
                        .wait_until(&mut generation, deadline)
                        .timed_out()
                    {
                        return *generation != seen;
                    }
                }
                None => self.changed.wait(&mut generation),
            }
        }
        true
    }
}
