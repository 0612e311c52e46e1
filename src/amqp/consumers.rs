//! The consumers of one connection, served by its task: each `basic.consume` is a
//! [`Consumer`] polled through its async face, never a thread.
//!
//! A consumer whose inbox gets a delivery wakes its own waker, which puts the consumer's
//! key on the connection's ready list and wakes the connection task; the task then polls
//! only the consumers on that list. So a poll costs what is ready, not the number of
//! consumers (a connection may hold tens of thousands), and nothing is allocated per
//! delivery.
//!
//! # Backpressure
//!
//! The task takes deliveries only while its outbox has room; a consumer left unpolled
//! keeps its deliveries in its inbox (and, under a prefetch limit, in its queue).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;

use crate::sync::{FastHash, Mutex};
use crate::{Consumer, Delivery};

/// How many deliveries one consumer may hand over in a row before the others get a turn.
const TURN: usize = 64;

/// Identifies one `basic.consume` of a connection (tags may be reused after a cancel).
pub(crate) type ConsumerKey = u64;

/// What a consumer produced.
#[derive(Debug)]
pub(crate) enum Event {
    /// A delivery, to be sent as `basic.deliver` on the consumer's channel.
    Delivery {
        /// The consumer.
        key: ConsumerKey,
        /// Its channel number.
        channel: u16,
        /// The delivery.
        delivery: Delivery,
    },
    /// The consumer ended: cancelled by the client, or by the server (its queue was
    /// deleted), or its channel closed.
    Ended {
        /// The consumer.
        key: ConsumerKey,
        /// Its channel number.
        channel: u16,
    },
}

/// The ready list shared with the consumers' wakers.
#[derive(Debug, Default)]
struct Ready {
    /// Keys of consumers woken since the last poll, and the connection task's waker.
    state: Mutex<(Vec<ConsumerKey>, Option<Waker>)>,
}

/// The waker of one consumer.
#[derive(Debug)]
struct Signal {
    /// The consumer.
    key: ConsumerKey,
    /// Set while the key is on the ready list, so that it is listed once.
    listed: AtomicBool,
    /// The list.
    ready: Arc<Ready>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.listed.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = {
            let mut state = self.ready.state.lock();
            state.0.push(self.key);
            state.1.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// One consumer being served.
#[derive(Debug)]
struct Feed {
    /// The channel number.
    channel: u16,
    /// The consumer.
    consumer: Consumer,
    /// Its waker.
    signal: Arc<Signal>,
    /// The waker made from `signal`.
    waker: Waker,
}

/// The consumers of one connection.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    /// Consumers by key.
    feeds: HashMap<ConsumerKey, Feed, FastHash>,
    /// Woken consumers.
    ready: Arc<Ready>,
    /// Keys taken from the ready list and not yet polled.
    due: Vec<ConsumerKey>,
}

impl Consumers {
    /// Starts serving `consumer` as `key`; its deliveries go out on `channel`.
    pub(crate) fn add(&mut self, key: ConsumerKey, channel: u16, consumer: Consumer) {
        let signal = Arc::new(Signal {
            key,
            listed: AtomicBool::new(false),
            ready: Arc::clone(&self.ready),
        });
        let waker = Waker::from(Arc::clone(&signal));
        self.feeds.insert(
            key,
            Feed {
                channel,
                consumer,
                signal,
                waker,
            },
        );
        // Polled once at once: it may have deliveries already, and it registers its waker.
        self.due.push(key);
    }

    /// Returns the number of consumers served.
    pub(crate) fn len(&self) -> usize {
        self.feeds.len()
    }

    /// Stops serving `key` (its consumer is dropped, which cancels it if it is not yet).
    pub(crate) fn remove(&mut self, key: ConsumerKey) {
        self.feeds.remove(&key);
    }

    /// Takes events from ready consumers into `events` until `budget` says stop (it is
    /// given each delivery's body size and returns `false` when the outbox would be full).
    /// Pending when nothing is ready.
    pub(crate) fn poll_events(
        &mut self,
        cx: &mut Context<'_>,
        events: &mut Vec<Event>,
        mut budget: impl FnMut(usize) -> bool,
    ) -> Poll<()> {
        if self.due.is_empty() {
            let mut state = self.ready.state.lock();
            std::mem::swap(&mut self.due, &mut state.0);
            if self.due.is_empty() {
                state.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        while let Some(key) = self.due.pop() {
            let Some(feed) = self.feeds.get_mut(&key) else {
                continue;
            };
            feed.signal.listed.store(false, Ordering::Release);
            let mut consumer_cx = Context::from_waker(&feed.waker);
            let mut turn = 0;
            loop {
                if turn == TURN {
                    // Its turn is over; it goes to the back of the list.
                    feed.signal.wake_by_ref();
                    break;
                }
                match Pin::new(&mut feed.consumer).poll_next(&mut consumer_cx) {
                    Poll::Ready(Some(delivery)) => {
                        turn += 1;
                        let more = budget(delivery.body().len());
                        events.push(Event::Delivery {
                            key,
                            channel: feed.channel,
                            delivery,
                        });
                        if !more {
                            // Not necessarily drained: poll it again next time.
                            self.due.push(key);
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(None) => {
                        events.push(Event::Ended {
                            key,
                            channel: feed.channel,
                        });
                        self.feeds.remove(&key);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        if events.is_empty() {
            // Every listed consumer was empty (woken spuriously): wait for the next.
            let mut state = self.ready.state.lock();
            if state.0.is_empty() {
                state.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}
