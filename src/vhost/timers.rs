//! The vhost's timers: message TTL at queue heads, queue expiry (`x-expires`) and the end of
//! delayed messages' delays.
//!
//! Timers start with the first queue or message that needs them. A clock that can notify
//! ([`ManualClock`](crate::ManualClock)) runs the sweep synchronously each time it is moved;
//! otherwise a background thread runs it every [`TICK`]. The thread holds only a weak
//! reference to the vhost, and [`Timers`] stops and joins it when the broker closes or the
//! vhost is dropped, so no timer thread outlives its broker.

use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::VHost;
use crate::clock::ClockHook;
use crate::queue::Queue;
use crate::sync::Mutex;

/// How often the background sweep runs with a clock that cannot notify.
const TICK: Duration = Duration::from_millis(20);

/// Keeps a vhost's timer sweep alive, and stops it.
pub(crate) struct Timers {
    /// The hook a notifying clock calls; the clock holds it weakly.
    _hook: Option<Arc<ClockHook>>,
    /// The sweep thread and what stops it (dropping the sender), until stopped.
    thread: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl Timers {
    /// Timers that never run: those of a vhost whose broker has closed.
    fn stopped() -> Timers {
        Timers {
            _hook: None,
            thread: Mutex::new(None),
        }
    }

    /// Stops the sweep thread, if any, and waits for it to end (unless this is that thread,
    /// which then ends by itself once it returns to its loop).
    pub(crate) fn stop(&self) {
        let Some((stop, handle)) = self.thread.lock().take() else {
            return;
        };
        drop(stop);
        if handle.thread().id() != thread::current().id() {
            let _ = handle.join();
        }
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Timers { .. }")
    }
}

impl VHost {
    /// Starts the timers of the vhost if they are not running yet (never once the broker
    /// has closed).
    pub(crate) fn ensure_timers(&self) {
        self.timers.get_or_init(|| {
            if self.settings.is_closed() {
                return Timers::stopped();
            }
            let vhost = &self.me;
            let weak = Weak::clone(vhost);
            let hook: Arc<ClockHook> = Arc::new(move || {
                if let Some(vhost) = weak.upgrade() {
                    vhost.run_timers();
                }
            });
            if self.settings.clock.on_advance(Arc::downgrade(&hook)) {
                return Timers {
                    _hook: Some(hook),
                    thread: Mutex::new(None),
                };
            }
            let weak = Weak::clone(vhost);
            let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
            // Without a thread the timers still run at every queue operation; a failed
            // spawn only makes expiry lazier.
            let thread = thread::Builder::new()
                .name("warren-timers".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                        match weak.upgrade() {
                            Some(vhost) => vhost.run_timers(),
                            None => break,
                        }
                    }
                })
                .ok()
                .map(|handle| (stop, handle));
            Timers {
                _hook: None,
                thread: Mutex::new(thread),
            }
        });
    }

    /// Stops the timers for good: the sweep thread ends and none starts again.
    pub(crate) fn stop_timers(&self) {
        self.timers.get_or_init(Timers::stopped).stop();
    }

    /// Routes delayed messages that are due, expires messages at the heads of queues with
    /// TTLs and deletes expired queues.
    pub(crate) fn run_timers(&self) {
        if self.settings.is_closed() {
            return;
        }
        // Released delayed messages and dead letters are between queues while it runs.
        let _transit = self.settings.quiet.transit();
        self.release_delayed();
        let timed: Vec<Arc<Queue>> = self
            .queues
            .iter()
            .filter(|q| q.is_timed())
            .map(|q| Arc::clone(&q))
            .collect();
        for queue in timed {
            let (expired, fallout) = queue.run_timers();
            self.absorb(&queue, fallout);
            if expired {
                self.drop_queue(&queue);
            }
        }
    }
}
