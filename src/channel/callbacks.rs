//! Callback consumers: registered with `basic_consume_with`, run by `wait` on the
//! waiting thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inner::ChannelInner;
use super::{local_or, Channel};
use crate::consumer::{ConsumerLink, Delivery};
use crate::envelope::QueuedMessage;
use crate::queue::Return;
use crate::{ConsumeOptions, Result};

impl ChannelInner {
    /// Waits for one callback delivery and runs its callback. Returns `false` on timeout.
    pub(super) fn wait_until(self: &Arc<Self>, deadline: Option<Instant>) -> Result<bool> {
        loop {
            self.check_open()?;
            let seen = self.signal.generation();
            let links: Vec<Arc<ConsumerLink>> = self
                .consumers
                .lock()
                .values()
                .filter(|e| e.callback.is_some())
                .map(|e| Arc::clone(&e.link))
                .collect();
            let first = self.wait_cursor.fetch_add(1, Ordering::Relaxed);
            for step in 0..links.len() {
                let link = &links[(first + step) % links.len()];
                match link.inbox.try_pop() {
                    Ok(msg) => {
                        if self.dispatch_callback(link, msg) {
                            return Ok(true);
                        }
                    }
                    // Closed: the queue was deleted, the consumer is gone.
                    Err(true) => self.forget_consumer(link),
                    Err(false) => {}
                }
            }
            if !self.signal.wait_past(seen, deadline) {
                return Ok(false);
            }
        }
    }

    /// Removes the entry of a consumer whose queue went away (unless the tag has been
    /// reused by a newer consumer).
    fn forget_consumer(&self, link: &Arc<ConsumerLink>) {
        let mut consumers = self.consumers.lock();
        if consumers
            .get(&link.tag)
            .is_some_and(|e| Arc::ptr_eq(&e.link, link))
        {
            consumers.remove(&link.tag);
        }
    }

    /// Runs the callback of `link` on `msg`. A panicking callback does not unwind into the
    /// broker: its message goes back to the queue, marked redelivered.
    pub(super) fn dispatch_callback(
        self: &Arc<Self>,
        link: &Arc<ConsumerLink>,
        mut msg: QueuedMessage,
    ) -> bool {
        let callback = self
            .consumers
            .lock()
            .get(&link.tag)
            .and_then(|e| e.callback.clone());
        let Some(callback) = callback else {
            let fallout = link.queue.restore(vec![msg]);
            self.absorb(&link.queue, fallout);
            return false;
        };
        let kept = link.no_ack.then(|| msg.share());
        let Some(delivery) = self.accept(link, msg) else {
            return false;
        };
        let tag = delivery.delivery_tag();
        let outcome = catch_unwind(AssertUnwindSafe(|| (callback.lock())(delivery)));
        if outcome.is_err() {
            match kept {
                Some(mut msg) => {
                    // Settled on receipt, so its store entry is gone: the retry is transient.
                    msg.persisted = false;
                    link.queue.hold(1);
                    let fallout = link.queue.requeue(None, vec![msg], Return::Requeued);
                    self.absorb(&link.queue, fallout);
                }
                None => {
                    let pending = self.ledger.lock().take(tag, false);
                    if let Ok(pending) = pending {
                        self.requeue(pending, Return::Requeued);
                    }
                }
            }
        }
        true
    }
}

impl Channel {
    /// Subscribes to a queue with a callback, run by [`wait`](Self::wait) on the waiting
    /// thread (the py-amqp style). Returns the consumer tag.
    ///
    /// A callback that panics does not take the channel down: its delivery goes back to the
    /// queue, marked redelivered. A callback must not call `wait` on its own channel.
    ///
    /// # Errors
    ///
    /// As for [`basic_consume`](Self::basic_consume).
    pub fn basic_consume_with(
        &self,
        queue: &str,
        options: ConsumeOptions,
        callback: impl FnMut(Delivery) + Send + 'static,
    ) -> Result<String> {
        let inner = local_or!(self, r => r.consume(queue, &options, Some(Box::new(callback))).map(|(tag, _)| tag.to_string()));
        inner.run(|| {
            let link = inner.subscribe(queue, &options, Some(Box::new(callback)))?;
            Ok(link.tag.to_string())
        })
    }

    /// Blocks until one delivery for a callback consumer arrives and runs its callback.
    ///
    /// # Errors
    ///
    /// 504 once the channel is closed.
    pub fn wait(&self) -> Result<()> {
        let inner = local_or!(self, r => r.wait(None).map(drop));
        inner.wait_until(None).map(drop)
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`; returns `false` if no
    /// callback ran.
    ///
    /// # Errors
    ///
    /// 504 once the channel is closed.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        let inner = local_or!(self, r => r.wait(Instant::now().checked_add(timeout)));
        inner.wait_until(Instant::now().checked_add(timeout))
    }
}
