//! Time as the broker sees it, so that time-dependent behaviour can be tested by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sync::Mutex;

/// A function a clock calls after it moves: the broker's timer sweep.
pub type ClockHook = dyn Fn() + Send + Sync;

/// The source of wall-clock time for everything time-dependent in the broker (message TTL,
/// queue expiry, `x-death` times).
///
/// Time is milliseconds since the Unix epoch, so that absolute expiry times survive a
/// restart.
pub trait Clock: 'static + fmt::Debug + Send + Sync {
    /// Returns the current time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Asks the clock to call `hook` every time it is moved by hand, once the move is done.
    /// Returns `false` if the clock moves on its own and cannot notify (the default): the
    /// broker then runs its timers from a background thread.
    ///
    /// The clock must hold the hook weakly and skip it once it is gone; the broker keeps it
    /// alive for as long as it needs it.
    fn on_advance(&self, hook: Weak<ClockHook>) -> bool {
        let _ = hook;
        false
    }
}

/// The operating system's clock. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to, for deterministic tests.
///
/// Clones share one time: keep a clone, hand another to
/// [`BrokerBuilder::clock`](crate::BrokerBuilder::clock), then [`advance`](Self::advance) it.
///
/// # Timers
///
/// Moving a `ManualClock` runs the timers of every broker that uses it, synchronously,
/// before [`advance`](Self::advance) or [`set_millis`](Self::set_millis) returns: messages
/// whose TTL has passed are removed from the heads of their queues (and dead-lettered), and
/// queues unused for their `x-expires` are deleted. A test therefore advances the clock
/// and looks at the result at once, with no sleep and no race. The broker starts no
/// background thread for a manual clock; with the [`SystemClock`] a background thread (that
/// ends with the broker) runs the same sweep every few milliseconds.
///
/// ```
/// use std::time::Duration;
/// use warrenmq::{Broker, FieldTable, ManualClock, Message, QueueDeclareOptions};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let clock = ManualClock::new();
/// let broker = Broker::builder().clock(clock.clone()).build()?;
/// let ch = broker.connect("/")?.open_channel()?;
/// let args = FieldTable::new().with("x-message-ttl", 1_000);
/// ch.queue_declare("q", QueueDeclareOptions::default(), args)?;
/// ch.basic_publish("", "q", Message::new("soon gone"))?;
/// clock.advance(Duration::from_millis(999));
/// assert_eq!(broker.queue_stats("/", "q")?.messages_ready, 1);
/// clock.advance(Duration::from_millis(1));
/// assert_eq!(broker.queue_stats("/", "q")?.messages_ready, 0);
/// # Ok(())
/// # }
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use warrenmq::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now_millis();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_millis(), start + 2_000);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    /// Milliseconds since the epoch, shared by all clones.
    now: Arc<AtomicU64>,
    /// Hooks to call after each move (brokers' timer sweeps), shared by all clones.
    hooks: Arc<Mutex<Vec<Weak<ClockHook>>>>,
}

impl ManualClock {
    /// Creates a clock set to the Unix epoch plus one day (so that times are never zero).
    pub fn new() -> Self {
        Self::starting_at(86_400_000)
    }

    /// Creates a clock set to the given milliseconds since the epoch.
    pub fn starting_at(millis: u64) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(millis)),
            hooks: Arc::default(),
        }
    }

    /// Moves time forward, then runs the timers of the brokers using this clock.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.fetch_add(ms, Ordering::SeqCst);
        self.run_hooks();
    }

    /// Sets the time, in milliseconds since the epoch, then runs the timers of the brokers
    /// using this clock.
    pub fn set_millis(&self, millis: u64) {
        self.now.store(millis, Ordering::SeqCst);
        self.run_hooks();
    }

    /// Calls every live hook, outside the lock (a hook may take broker locks).
    fn run_hooks(&self) {
        let hooks: Vec<Arc<ClockHook>> = {
            let mut hooks = self.hooks.lock();
            hooks.retain(|h| h.strong_count() > 0);
            hooks.iter().filter_map(Weak::upgrade).collect()
        };
        for hook in hooks {
            hook();
        }
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn on_advance(&self, hook: Weak<ClockHook>) -> bool {
        self.hooks.lock().push(hook);
        true
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now_millis", &self.now_millis())
            .finish()
    }
}
