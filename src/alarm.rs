//! Resource alarms, as RabbitMQ raises them: the memory high watermark and the disk free
//! limit. While one is on, publishers are held back — an in-process publish blocks (or
//! awaits, or fails at once for `try_basic_publish`), a wire connection that publishes is
//! sent `connection.blocked` and its socket is not read — while consumers and acks keep
//! flowing, so that the broker can drain below the limit.
//!
//! Memory is accounted, not measured: every message the broker holds (ready in a queue, in
//! a consumer's inbox, delivered and unacknowledged, delayed or dead-lettered) carries a
//! [`Charge`] of its body and routing key plus a fixed overhead, taken once per published
//! message (shared by the queues it reaches) and given back when the last copy goes.
//!
//! # Charging without contention
//!
//! A publisher and a consumer on two threads would otherwise both write the count of bytes
//! held, and the reference count of the alarms each charge points to, for every message:
//! two cache lines passed back and forth between their cores per message, which costs more
//! than the rest of a delivery. So each thread charges from a [`Lease`] of its own: bytes
//! taken from the count a [`chunk`](Alarms::chunk) at a time, and references to the alarms
//! cloned many at a time. The consumer gives each charge back as it goes, on lines the
//! publisher now rarely touches. The count of bytes held then includes what threads have
//! leased and not yet spent — at most a chunk per thread, a thousandth of the watermark —
//! which [`snapshot`](Alarms::snapshot) subtracts (each lease publishes its balance); a
//! thread's lease goes back when the thread ends or charges another broker's messages.
//!
//! A leaf module: envelopes (below the queues) carry charges, the settings hold the
//! [`Alarms`], and nothing here knows queues, vhosts or the wire.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

/// What one held message costs beyond its body and routing information: its queue entry,
/// envelope, charge and allocator slack (an estimate).
pub(crate) const MESSAGE_OVERHEAD: usize = 256;

/// The most a thread leases at once (see [`Lease`]); a thousandth of the watermark when
/// that is less, so that small watermarks are charged exactly.
const MAX_CHUNK: usize = 64 << 10;

/// How many references to the alarms a lease clones at once.
const REFS_PER_REFILL: usize = 64;

thread_local! {
    /// This thread's lease on the alarms of the broker it last charged for.
    static LEASE: RefCell<Option<Lease>> = const { RefCell::new(None) };
}

/// The disk monitor's stop signal and thread.
type Monitor = (crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>);

/// How often a persistent broker measures the free space under its data directory.
#[cfg(feature = "persistence")]
const DISK_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A resource whose alarm holds publishers back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// Messages held in memory are above the memory high watermark.
    Memory,
    /// Free disk space under the data directory is below the disk free limit (persistent
    /// brokers, persistent messages).
    Disk,
}

impl Resource {
    /// RabbitMQ's words for it in `connection.blocked` ("low on memory", "low on disk").
    pub fn reason(self) -> &'static str {
        match self {
            Resource::Memory => "low on memory",
            Resource::Disk => "low on disk",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The alarms of one broker and the publishers waiting for them to clear.
pub(crate) struct Alarms {
    /// Bytes charged by the messages held.
    used: CachePadded<AtomicUsize>,
    /// The memory high watermark in bytes (`usize::MAX`: none).
    limit: usize,
    /// The memory alarm is on.
    memory: AtomicBool,
    /// The disk alarm is on.
    disk: AtomicBool,
    /// Free bytes last seen under the data directory (`u64::MAX`: not measured).
    disk_free: AtomicU64,
    /// The disk free limit in bytes.
    disk_limit: u64,
    /// Bumped by every change of an alarm, so that watchers see changes they slept through.
    epoch: AtomicU64,
    /// Publishers held back now: threads and tasks waiting, wire connections blocked.
    blocked: AtomicUsize,
    /// Set when the broker closes: nothing is held back any more.
    closed: AtomicBool,
    /// Taken to change an alarm and to wait for one.
    lock: Mutex<Vec<Weak<Watch>>>,
    /// The disk monitor: dropping the sender stops it at once; the handle joins it.
    monitor: Mutex<Option<Monitor>>,
    /// Blocked threads wait here.
    cleared: Condvar,
    /// How many bytes a thread leases at once; charges of this size or more are taken
    /// from `used` directly.
    chunk: usize,
    /// The unspent balance of each thread's lease (see [`Lease`]).
    leases: Mutex<Vec<Weak<AtomicUsize>>>,
}

impl Alarms {
    /// Alarms at `memory_limit` bytes held (`usize::MAX`: none) and `disk_limit` free bytes.
    pub(crate) fn new(memory_limit: usize, disk_limit: u64) -> Arc<Alarms> {
        Arc::new(Alarms {
            used: CachePadded::new(AtomicUsize::new(0)),
            limit: memory_limit,
            memory: AtomicBool::new(false),
            disk: AtomicBool::new(false),
            disk_free: AtomicU64::new(u64::MAX),
            disk_limit,
            epoch: AtomicU64::new(0),
            blocked: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Vec::new()),
            cleared: Condvar::new(),
            monitor: Mutex::new(None),
            chunk: MAX_CHUNK.min(memory_limit / 1000),
            leases: Mutex::new(Vec::new()),
        })
    }

    /// Starts a thread that measures the free space of the file system holding `dir` every
    /// second (RabbitMQ measures every 10 s, then more often as space runs out) and sets
    /// the disk alarm from it. It ends when the alarms are dropped.
    #[cfg(feature = "persistence")]
    pub(crate) fn monitor_disk(self: &Arc<Self>, dir: std::path::PathBuf) -> std::io::Result<()> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let alarms = Arc::downgrade(self);
        let measure = move || {
            rustix::fs::statvfs(&dir)
                .ok()
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        };
        if let Some(free) = measure() {
            self.set_disk_free(free);
        }
        let thread = std::thread::Builder::new()
            .name("warren-disk-monitor".into())
            .spawn(move || loop {
                match stopped.recv_timeout(DISK_CHECK_INTERVAL) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(alarms) = alarms.upgrade() else {
                    return;
                };
                if let Some(free) = measure() {
                    alarms.set_disk_free(free);
                }
            })?;
        *self.monitor.lock() = Some((stop, thread));
        Ok(())
    }

    /// Closes the alarms with their broker: publishers waiting are released (their publish
    /// then fails, the broker being closed), and the disk monitor, if one runs, is stopped
    /// and joined.
    pub(crate) fn close(&self) {
        {
            let mut watches = self.lock.lock();
            self.closed.store(true, Ordering::SeqCst);
            self.changed(&mut watches);
        }
        let monitor = self.monitor.lock().take();
        if let Some((stop, thread)) = monitor {
            drop(stop);
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    /// Charges a message of `bytes` (body and routing information) to the memory held,
    /// from this thread's lease (see the module docs).
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        let bytes = bytes + MESSAGE_OVERHEAD;
        if bytes < self.chunk {
            // Fails only while the thread is being torn down.
            if let Ok(charge) = LEASE.try_with(|lease| self.charge_leased(lease, bytes)) {
                return charge;
            }
        }
        self.add(bytes);
        Charge {
            alarms: Some(Arc::clone(self)),
            bytes,
        }
    }

    /// Charges `bytes` (less than a chunk) from the thread's lease, taking a new lease when
    /// it was on another broker's alarms.
    fn charge_leased(self: &Arc<Self>, lease: &RefCell<Option<Lease>>, bytes: usize) -> Charge {
        let mut lease = lease.borrow_mut();
        let lease = match &mut *lease {
            Some(lease) if Arc::ptr_eq(&lease.alarms, self) => lease,
            other => other.insert(Lease::new(self)),
        };
        if lease.balance < bytes {
            self.add(self.chunk);
            lease.balance += self.chunk;
        }
        lease.balance -= bytes;
        lease.published.store(lease.balance, Ordering::Relaxed);
        let alarms = match lease.refs.pop() {
            Some(alarms) => alarms,
            None => {
                lease
                    .refs
                    .extend(std::iter::repeat_with(|| Arc::clone(self)).take(REFS_PER_REFILL));
                Arc::clone(self)
            }
        };
        Charge {
            alarms: Some(alarms),
            bytes,
        }
    }

    /// Registers the published balance of a new lease.
    fn register_lease(&self, published: &Arc<AtomicUsize>) {
        let mut leases = self.leases.lock();
        leases.retain(|l| l.strong_count() > 0);
        leases.push(Arc::downgrade(published));
    }

    /// Returns what live leases hold unspent.
    fn leased(&self) -> usize {
        self.leases
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|l| l.load(Ordering::Relaxed))
            .sum()
    }

    /// Starts a [`Reservation`]: memory that grows while a message arrives, charged as it
    /// grows (nothing yet).
    #[cfg(feature = "wire")]
    pub(crate) fn reserve(self: &Arc<Self>) -> Reservation {
        Reservation {
            alarms: Arc::clone(self),
            bytes: 0,
        }
    }

    /// Takes `bytes` more.
    fn add(&self, bytes: usize) {
        let used = self.used.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if used > self.limit && !self.memory.load(Ordering::SeqCst) {
            self.settle_memory();
        }
    }

    /// Gives `bytes` back.
    fn release(&self, bytes: usize) {
        let used = self.used.fetch_sub(bytes, Ordering::SeqCst) - bytes;
        if used <= self.limit && self.memory.load(Ordering::SeqCst) {
            self.settle_memory();
        }
    }

    /// Sets the memory alarm to what the bytes held say, under the lock. The alarm is
    /// stored before the count is read again, and the count is updated before the alarm is
    /// read (both sequentially consistent), so a change that races with this one is seen
    /// by one of the two.
    fn settle_memory(&self) {
        let mut watches = self.lock.lock();
        loop {
            let over = self.used.load(Ordering::SeqCst) > self.limit;
            let was = self.memory.swap(over, Ordering::SeqCst);
            if was != over {
                self.changed(&mut watches);
                if over {
                    tracing::warn!(
                        used = self.used.load(Ordering::Relaxed),
                        watermark = self.limit,
                        "memory alarm on: publishers are held back"
                    );
                } else {
                    tracing::info!(watermark = self.limit, "memory alarm cleared");
                }
            }
            if (self.used.load(Ordering::SeqCst) > self.limit) == over {
                return;
            }
        }
    }

    /// Records the free space last measured under the data directory and sets the disk
    /// alarm from it.
    #[cfg(any(feature = "persistence", test))]
    pub(crate) fn set_disk_free(&self, free: u64) {
        self.disk_free.store(free, Ordering::Relaxed);
        let low = free < self.disk_limit;
        if self.disk.load(Ordering::SeqCst) == low {
            return;
        }
        let mut watches = self.lock.lock();
        if self.disk.swap(low, Ordering::SeqCst) != low {
            self.changed(&mut watches);
            if low {
                tracing::warn!(
                    free,
                    limit = self.disk_limit,
                    "disk alarm on: persistent publishers are held back"
                );
            } else {
                tracing::info!(free, limit = self.disk_limit, "disk alarm cleared");
            }
        }
    }

    /// Wakes every waiter after an alarm changed (called under the lock).
    fn changed(&self, watches: &mut Vec<Weak<Watch>>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cleared.notify_all();
        watches.retain(|w| match w.upgrade() {
            Some(watch) => {
                watch.wake();
                true
            }
            None => false,
        });
    }

    /// Returns the alarm that holds back a publish of a message (`persistent`: one the
    /// disk alarm concerns), if one does.
    pub(crate) fn holding(&self, persistent: bool) -> Option<Resource> {
        if self.closed.load(Ordering::SeqCst) {
            None
        } else if self.memory.load(Ordering::SeqCst) {
            Some(Resource::Memory)
        } else if persistent && self.disk.load(Ordering::SeqCst) {
            Some(Resource::Disk)
        } else {
            None
        }
    }

    /// Returns the alarms on now, memory first.
    pub(crate) fn on(&self) -> Vec<Resource> {
        let mut on = Vec::new();
        if self.memory.load(Ordering::SeqCst) {
            on.push(Resource::Memory);
        }
        if self.disk.load(Ordering::SeqCst) {
            on.push(Resource::Disk);
        }
        on
    }

    /// Returns the number of alarm changes so far.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Blocks the calling thread while an alarm holds a publish of this kind back, until
    /// `deadline` if one is given. Returns the alarm still on at the deadline.
    pub(crate) fn wait(
        self: &Arc<Self>,
        persistent: bool,
        deadline: Option<Instant>,
    ) -> Option<Resource> {
        self.holding(persistent)?;
        let _blocked = self.count_blocked();
        let mut watches = self.lock.lock();
        // Alarms change under the lock, so a change cannot slip between a look and a wait.
        while self.holding(persistent).is_some() {
            match deadline {
                Some(deadline) => {
                    if self.cleared.wait_until(&mut watches, deadline).timed_out() {
                        return self.holding(persistent);
                    }
                }
                None => self.cleared.wait(&mut watches),
            }
        }
        None
    }

    /// Registers a watch, woken at every change of an alarm until it is dropped.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch::default());
        self.lock.lock().push(Arc::downgrade(&watch));
        watch
    }

    /// Counts a publisher as held back until the guard is dropped.
    pub(crate) fn count_blocked(self: &Arc<Self>) -> BlockedGuard {
        self.blocked.fetch_add(1, Ordering::Relaxed);
        BlockedGuard(Arc::clone(self))
    }

    /// Returns a snapshot for statistics: bytes held, the watermark (`None`: no limit), free
    /// disk bytes (`None`: not measured), the disk free limit, and publishers held back.
    pub(crate) fn snapshot(&self) -> AlarmSnapshot {
        let free = self.disk_free.load(Ordering::Relaxed);
        AlarmSnapshot {
            memory_used: self
                .used
                .load(Ordering::SeqCst)
                .saturating_sub(self.leased()),
            memory_limit: (self.limit != usize::MAX).then_some(self.limit),
            disk_free: (free != u64::MAX).then_some(free),
            disk_limit: self.disk_limit,
            on: self.on(),
            blocked: self.blocked.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Alarms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alarms")
            .field("used", &self.used.load(Ordering::Relaxed))
            .field("limit", &self.limit)
            .field("on", &self.on())
            .finish_non_exhaustive()
    }
}

/// What [`Alarms::snapshot`] returns.
#[derive(Clone, Debug)]
pub(crate) struct AlarmSnapshot {
    /// Bytes charged by the messages held.
    pub(crate) memory_used: usize,
    /// The memory high watermark.
    pub(crate) memory_limit: Option<usize>,
    /// Free bytes under the data directory, when measured.
    pub(crate) disk_free: Option<u64>,
    /// The disk free limit.
    pub(crate) disk_limit: u64,
    /// The alarms on.
    pub(crate) on: Vec<Resource>,
    /// Publishers held back now.
    pub(crate) blocked: usize,
}

/// Counts one held-back publisher while it lives.
#[derive(Debug)]
pub(crate) struct BlockedGuard(Arc<Alarms>);

impl Drop for BlockedGuard {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A task's registration for alarm changes: its latest waker.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    waker: Mutex<Option<Waker>>,
}

impl Watch {
    /// Remembers the waker of the task to wake at the next change.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock();
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
    }

    /// Waits (as a task) until the alarm epoch differs from `seen`.
    pub(crate) fn poll_change(
        &self,
        alarms: &Alarms,
        seen: u64,
        cx: &mut Context<'_>,
    ) -> Poll<u64> {
        let now = alarms.epoch();
        if now != seen {
            return Poll::Ready(now);
        }
        self.register(cx.waker());
        // A change between the first look and the registration would otherwise be missed.
        let now = alarms.epoch();
        if now != seen {
            Poll::Ready(now)
        } else {
            Poll::Pending
        }
    }
}

/// The memory a held message is charged, given back when it is dropped.
/// `Charge::default()` charges nothing.
///
/// One envelope carries it, and the envelope is shared (`Arc`) by every queue, inbox,
/// ledger and delivery that holds the message, so the charge is given back when the last of
/// them lets the message go. A charge is never copied: nothing is given back twice.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    /// Where it is given back (`None`: nothing charged).
    alarms: Option<Arc<Alarms>>,
    /// The bytes charged, overhead included.
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(alarms) = &self.alarms {
            alarms.release(self.bytes);
        }
    }
}

/// A thread's lease on one broker's alarms: bytes taken from the count held a chunk at a
/// time and references to the alarms cloned many at a time, from which the thread's
/// charges are made without writing a line other threads write (see the module docs).
struct Lease {
    /// The alarms leased from.
    alarms: Arc<Alarms>,
    /// References to hand to charges.
    refs: Vec<Arc<Alarms>>,
    /// Bytes taken and not yet charged.
    balance: usize,
    /// `balance`, for [`Alarms::snapshot`] to subtract.
    published: Arc<AtomicUsize>,
}

impl Lease {
    fn new(alarms: &Arc<Alarms>) -> Self {
        let published = Arc::new(AtomicUsize::new(0));
        alarms.register_lease(&published);
        Lease {
            alarms: Arc::clone(alarms),
            refs: Vec::new(),
            balance: 0,
            published,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.published.store(0, Ordering::Relaxed);
        self.alarms.release(self.balance);
    }
}

/// Memory charged while a message is still arriving — the body of a wire publish whose
/// frames are not all in — so that clients sending many large bodies at once raise the
/// memory alarm (and are blocked) like the messages they will become. Given back when
/// dropped: when the message is complete (it is then charged as a message) or its
/// connection goes.
#[cfg(feature = "wire")]
#[derive(Debug)]
pub(crate) struct Reservation {
    alarms: Arc<Alarms>,
    bytes: usize,
}

#[cfg(feature = "wire")]
impl Reservation {
    /// Charges `bytes` in all from now on (more or less than before).
    pub(crate) fn set(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.alarms.add(bytes - self.bytes);
        } else if bytes < self.bytes {
            self.alarms.release(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

#[cfg(feature = "wire")]
impl Drop for Reservation {
    fn drop(&mut self) {
        self.alarms.release(self.bytes);
    }
}

/// The memory a watermark given as a fraction applies to: the smallest of the machine's
/// memory (`/proc/meminfo`), the control group's limit (`memory.max`) and the process's
/// address-space limit (`RLIMIT_AS`, read from `/proc/self/limits`), where known.
pub(crate) fn total_memory() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut limits = Vec::new();
    if let Some(meminfo) = read("/proc/meminfo") {
        let total = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok());
        limits.extend(total.map(|kb| kb * 1024));
    }
    for path in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Some(n) = read(path).and_then(|s| s.trim().parse::<u64>().ok()) {
            limits.push(n);
        }
    }
    if let Some(limits_file) = read("/proc/self/limits") {
        let soft = limits_file
            .lines()
            .find_map(|l| l.strip_prefix("Max address space"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse::<u64>().ok());
        limits.extend(soft);
    }
    limits.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_raise_and_clear_the_memory_alarm() {
        let alarms = Alarms::new(3 * (100 + MESSAGE_OVERHEAD), u64::MAX);
        let a = alarms.charge(100);
        let b = alarms.charge(100);
        let c = alarms.charge(100);
        assert_eq!(alarms.holding(false), None);
        let d = alarms.charge(1);
        assert_eq!(alarms.holding(false), Some(Resource::Memory));
        let epoch = alarms.epoch();
        let e = alarms.charge(1);
        drop(d);
        assert_eq!(
            alarms.holding(false),
            Some(Resource::Memory),
            "still over the watermark"
        );
        drop(e);
        assert_eq!(alarms.holding(false), None);
        assert_ne!(alarms.epoch(), epoch);
        drop((a, b, c));
        assert_eq!(alarms.snapshot().memory_used, 0);
    }

    #[test]
    #[cfg(feature = "wire")]
    fn a_reservation_is_charged_as_it_grows_and_given_back_when_dropped() {
        let alarms = Alarms::new(1000, u64::MAX);
        let mut arriving = alarms.reserve();
        arriving.set(600);
        assert_eq!(alarms.snapshot().memory_used, 600);
        assert_eq!(alarms.holding(false), None);
        arriving.set(1200);
        assert_eq!(alarms.holding(false), Some(Resource::Memory));
        arriving.set(900);
        assert_eq!(alarms.snapshot().memory_used, 900);
        assert_eq!(alarms.holding(false), None);
        arriving.set(1001);
        assert_eq!(alarms.holding(false), Some(Resource::Memory));
        drop(arriving);
        assert_eq!(alarms.snapshot().memory_used, 0);
        assert_eq!(alarms.holding(false), None);
    }

    #[test]
    fn a_charge_is_given_back_once_when_dropped() {
        let alarms = Alarms::new(usize::MAX, u64::MAX);
        let used = || alarms.snapshot().memory_used;
        let charge = alarms.charge(100);
        let other = alarms.charge(10);
        assert_eq!(used(), 110 + 2 * MESSAGE_OVERHEAD);
        drop(charge);
        assert_eq!(used(), 10 + MESSAGE_OVERHEAD);
        drop(other);
        assert_eq!(used(), 0);
        let huge = alarms.charge(u32::MAX as usize + 1);
        assert_eq!(used(), u32::MAX as usize + 1 + MESSAGE_OVERHEAD);
        drop(huge);
        assert_eq!(used(), 0);
        drop(Charge::default());
        assert_eq!(used(), 0);
    }

    #[test]
    fn the_disk_alarm_holds_back_persistent_publishes_only() {
        let alarms = Alarms::new(usize::MAX, 1000);
        alarms.set_disk_free(999);
        assert_eq!(alarms.holding(false), None);
        assert_eq!(alarms.holding(true), Some(Resource::Disk));
        alarms.set_disk_free(1000);
        assert_eq!(alarms.holding(true), None);
    }

    #[test]
    fn a_blocked_thread_is_released_when_the_alarm_clears() {
        let alarms = Alarms::new(MESSAGE_OVERHEAD, u64::MAX);
        let big = alarms.charge(1);
        let waiter = {
            let alarms = Arc::clone(&alarms);
            std::thread::spawn(move || alarms.wait(false, None))
        };
        while alarms.snapshot().blocked == 0 {
            std::thread::yield_now();
        }
        drop(big);
        assert_eq!(waiter.join().unwrap(), None);
        let deadline = Instant::now() + std::time::Duration::from_millis(10);
        let _big = alarms.charge(1);
        assert_eq!(alarms.wait(false, Some(deadline)), Some(Resource::Memory));
    }

    #[test]
    fn total_memory_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(total_memory().is_some_and(|m| m > 0));
        }
    }
}
