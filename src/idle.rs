//! [`Broker::wait_idle`]: waiting until no message is in flight, for tests of asynchronous
//! flows (see `docs/testing.md`).

use std::time::{Duration, Instant};

use crate::{Broker, Error, Result};

impl Broker {
    /// Blocks until no message is in flight in the broker, or `timeout` passes.
    ///
    /// A message is in flight while the broker still has something to do with it on its
    /// own, that is, while it is
    /// - ready in a queue that has a consumer with prefetch credit (about to be dispatched,
    ///   or being read back from disk for it);
    /// - in a consumer's inbox, not yet received by the application (`recv`, a `Stream`,
    ///   [`Channel::wait`](crate::Channel::wait)); once received it is the application's,
    ///   acked or not;
    /// - due: a message whose TTL has passed at the head of its queue, a delayed message
    ///   whose delay has ended, a queue whose `x-expires` has passed (`wait_idle` fires
    ///   these itself, at the clock's current time: with a
    ///   [`ManualClock`](crate::ManualClock), what is due at the time it was set to);
    /// - between queues: a dead letter being routed through its dead-letter exchange, a
    ///   delayed message being released;
    /// - in a [wire listener](Broker::serve)'s connection: read from the client and not yet
    ///   handled, or encoded for the client and not yet written to its socket.
    ///
    /// Nothing else counts: a message ready in a queue without consumers (or whose consumers
    /// are out of credit) waits for the application, and a timer due later (a TTL that has
    /// not passed) is not in flight. Publishes and acks on other threads count once the call
    /// has returned there (on the wire: once the server has read them; a publisher waits
    /// for its confirms to know that).
    ///
    /// `wait_idle` waits on the broker's own notifications (a dead letter lands, a socket
    /// drains, a consumer or queue goes), and looks again every millisecond for inboxes
    /// that consumers emptied: taking a message from an inbox does not notify, so that
    /// deliveries pay nothing for this test facility.
    ///
    /// # Examples
    ///
    /// A consumer on another thread; `wait_idle` returns once it has received every message:
    ///
    /// ```
    /// use std::time::Duration;
    /// use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// let ch = broker.connect("/")?.open_channel()?;
    /// ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())?;
    /// let consumer = ch.basic_consume("jobs", ConsumeOptions::default())?;
    /// let worker = std::thread::spawn(move || {
    ///     let mut done = 0;
    ///     while let Ok(d) = consumer.recv() {
    ///         d.ack().unwrap();
    ///         done += 1;
    ///         if done == 3 {
    ///             break;
    ///         }
    ///     }
    /// });
    /// for n in 0..3 {
    ///     ch.basic_publish("", "jobs", Message::new(format!("job {n}")))?;
    /// }
    /// broker.wait_idle(Duration::from_secs(10))?;
    /// assert_eq!(broker.queue_stats("/", "jobs")?.messages_ready, 0);
    /// # worker.join().unwrap();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotIdle`] when `timeout` passes first, listing what is still busy (e.g.
    /// `queue 'jobs' in vhost '/': 3 in consumer inboxes, not yet received`);
    /// [`Error::BrokerClosed`] once the broker is closed.
    pub fn wait_idle(&self, timeout: Duration) -> Result<()> {
        if self.is_closed() {
            return Err(Error::BrokerClosed);
        }
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .unwrap_or_else(|| start + Duration::from_secs(1 << 32));
        let vhosts = || self.all_vhosts();
        let fire = || vhosts().iter().for_each(|v| v.run_timers());
        let check = || self.busy();
        let quiet = &self.settings().quiet;
        quiet
            .wait_until(deadline, fire, check)
            .map_err(|busy| Error::NotIdle {
                waited: start.elapsed(),
                busy,
            })
    }

    /// Describes what is in flight now (empty when nothing is).
    fn busy(&self) -> Vec<String> {
        let mut busy = Vec::new();
        let transit = self.settings().quiet.in_transit();
        if transit > 0 {
            busy.push(format!(
                "{transit} operation(s) moving messages between queues (dead-lettering, \
                 delayed messages, timers, page-ins)"
            ));
        }
        for vhost in self.all_vhosts() {
            vhost.busy(&mut busy);
        }
        for service in self.live_services() {
            service.busy(&mut busy);
        }
        busy
    }
}
