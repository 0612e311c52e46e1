//! Callback consumers: registered with `basic_consume_with`, run by `wait` on the
//! waiting thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inner::ChannelInner;
use super::Channel;
use crate::consumer::{ConsumerLink, Delivery};
use crate::envelope::QueuedMessage;
use crate::queue::Return;
use crate::sync::Select;
use crate::{ConsumeOptions, Result};

impl ChannelInner {
    /// Waits for one callback delivery and runs its callback. Returns `false` on timeout.
    pub(super) fn wait_until(self: &Arc<Self>, deadline: Option<Instant>) -> Result<bool> {
        loop {
            self.check_open()?;
            while self.wake_rx.try_recv().is_ok() {}
            let links: Vec<Arc<ConsumerLink>> = self
                .consumers
                .lock()
                .values()
                .filter(|e| e.callback.is_some())
                .map(|e| Arc::clone(&e.link))
                .collect();
            let mut select = Select::new();
            select.recv(&self.wake_rx);
            for link in &links {
                select.recv(&link.rx);
            }
            let op = match deadline {
                Some(deadline) => match select.select_deadline(deadline) {
                    Ok(op) => op,
                    Err(_) => return Ok(false),
                },
                None => select.select(),
            };
            let index = op.index();
            if index == 0 {
                let _ = op.recv(&self.wake_rx);
                continue;
            }
            let link = &links[index - 1];
            match op.recv(&link.rx) {
                Ok(msg) => {
                    if self.dispatch_callback(link, msg) {
                        return Ok(true);
                    }
                }
                // The queue was deleted: the consumer is gone.
                Err(_) => {
                    self.consumers.lock().remove(&link.tag);
                }
            }
        }
    }

    /// Runs the callback of `link` on `msg`. A panicking callback does not unwind into the
    /// broker: its message goes back to the queue, marked redelivered.
    pub(super) fn dispatch_callback(
        self: &Arc<Self>,
        link: &Arc<ConsumerLink>,
        msg: QueuedMessage,
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
        let kept = link.no_ack.then(|| msg.clone());
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
        self.inner.run(|| {
            let link = self
                .inner
                .subscribe(queue, &options, Some(Box::new(callback)))?;
            Ok(link.tag.to_string())
        })
    }

    /// Blocks until one delivery for a callback consumer arrives and runs its callback.
    ///
    /// # Errors
    ///
    /// 504 once the channel is closed.
    pub fn wait(&self) -> Result<()> {
        self.inner.wait_until(None).map(drop)
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`; returns `false` if no
    /// callback ran.
    ///
    /// # Errors
    ///
    /// 504 once the channel is closed.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.wait_until(Instant::now().checked_add(timeout))
    }
}
