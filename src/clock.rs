//! Time as the broker sees it, so that time-dependent behaviour can be tested by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The source of wall-clock time for everything time-dependent in the broker (message TTL,
/// queue expiry, `x-death` times).
///
/// Time is milliseconds since the Unix epoch, so that absolute expiry times survive a
/// restart.
pub trait Clock: 'static + fmt::Debug + Send + Sync {
    /// Returns the current time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
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
}

impl ManualClock {
    /// Creates a clock set to the Unix epoch plus one day (so that times are never zero).
    pub fn new() -> Self {
        Self::starting_at(86_400_000)
    }

    /// Creates a clock set to the given milliseconds since the epoch.
    pub fn starting_at(millis: u64) -> Self {
        ManualClock { now: Arc::new(AtomicU64::new(millis)) }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the time, in milliseconds since the epoch.
    pub fn set_millis(&self, millis: u64) {
        self.now.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("now_millis", &self.now_millis()).finish()
    }
}
