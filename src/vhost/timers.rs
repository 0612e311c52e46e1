//! The vhost's timers: message TTL at queue heads, queue expiry (`x-expires`) and the end of
//! delayed messages' delays.
//!
//! Timers start with the first queue or message that needs them. A clock that can notify
//! ([`ManualClock`](crate::ManualClock)) runs the sweep synchronously each time it is moved;
//! otherwise a background thread runs it every [`TICK`]. Either way the sweep holds only a
//! weak reference to the vhost, so a dropped broker stops it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::VHost;
use crate::clock::ClockHook;
use crate::queue::Queue;

/// How often the background sweep runs with a clock that cannot notify.
const TICK: Duration = Duration::from_millis(20);

/// Keeps a vhost's timer sweep alive.
pub(crate) struct Timers {
    /// The hook a notifying clock calls; the clock holds it weakly.
    _hook: Option<Arc<ClockHook>>,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Timers { .. }")
    }
}

impl VHost {
    /// Starts the timers of the vhost if they are not running yet.
    pub(crate) fn ensure_timers(&self) {
        self.timers.get_or_init(|| {
            let vhost = &self.me;
            let weak = Weak::clone(vhost);
            let hook: Arc<ClockHook> = Arc::new(move || {
                if let Some(vhost) = weak.upgrade() {
                    vhost.run_timers();
                }
            });
            if self.settings.clock.on_advance(Arc::downgrade(&hook)) {
                return Timers { _hook: Some(hook) };
            }
            let weak = Weak::clone(vhost);
            // Without a thread the timers still run at every queue operation; a failed
            // spawn only makes expiry lazier.
            let _ = std::thread::Builder::new()
                .name("warren-timers".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(vhost) => vhost.run_timers(),
                        None => break,
                    }
                });
            Timers { _hook: None }
        });
    }

    /// Routes delayed messages that are due, expires messages at the heads of queues with
    /// TTLs and deletes expired queues.
    pub(crate) fn run_timers(&self) {
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
