//! The receiving family shared by [`Consumer`](crate::Consumer) and
//! [`Returns`](crate::Returns): each is a [`Source`], and these functions give it the
//! crossbeam-style blocking calls and the async ones.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Inbox, Slot};
use crate::{RecvError, RecvTimeoutError, TryRecvError};

/// Something that receives from an inbox.
pub(crate) trait Source {
    /// What the inbox holds.
    type Raw;
    /// What a receive yields.
    type Item;

    /// Returns the inbox.
    fn inbox(&self) -> &Inbox<Self::Raw>;

    /// Turns an item taken from the inbox into what the receiver yields, or `None` if it
    /// must be skipped (the source put it back where it belongs).
    fn accept(&self, raw: Self::Raw) -> Option<Self::Item>;
}

/// An inbox is its own source: what goes in comes out.
impl<T> Source for Inbox<T> {
    type Raw = T;
    type Item = T;

    fn inbox(&self) -> &Inbox<T> {
        self
    }

    fn accept(&self, raw: T) -> Option<T> {
        Some(raw)
    }
}

/// Blocks until an item arrives; `RecvError` once the inbox is closed and empty.
pub(crate) fn recv<S: Source>(source: &S) -> Result<S::Item, RecvError> {
    recv_until(source, None).map_err(|_| RecvError)
}

/// Takes an item if one is waiting.
pub(crate) fn try_recv<S: Source>(source: &S) -> Result<S::Item, TryRecvError> {
    loop {
        match source.inbox().try_pop() {
            Ok(raw) => {
                if let Some(item) = source.accept(raw) {
                    return Ok(item);
                }
            }
            Err(true) => return Err(TryRecvError::Disconnected),
            Err(false) => return Err(TryRecvError::Empty),
        }
    }
}

/// Blocks until an item arrives or `timeout` passes.
pub(crate) fn recv_timeout<S: Source>(
    source: &S,
    timeout: Duration,
) -> Result<S::Item, RecvTimeoutError> {
    recv_until(source, Instant::now().checked_add(timeout))
}

/// Blocks until an item arrives or `deadline` is reached.
pub(crate) fn recv_deadline<S: Source>(
    source: &S,
    deadline: Instant,
) -> Result<S::Item, RecvTimeoutError> {
    recv_until(source, Some(deadline))
}

fn recv_until<S: Source>(
    source: &S,
    deadline: Option<Instant>,
) -> Result<S::Item, RecvTimeoutError> {
    loop {
        match source.inbox().pop_deadline(deadline) {
            Ok(raw) => {
                if let Some(item) = source.accept(raw) {
                    return Ok(item);
                }
            }
            Err(true) => return Err(RecvTimeoutError::Disconnected),
            Err(false) => return Err(RecvTimeoutError::Timeout),
        }
    }
}

/// Takes an item, or registers the task under `slot`; `Ready(None)` once closed and empty.
pub(crate) fn poll_recv<S: Source>(
    source: &S,
    cx: &mut Context<'_>,
    slot: &mut Slot,
) -> Poll<Option<S::Item>> {
    loop {
        match source.inbox().poll_pop(cx, slot) {
            Poll::Ready(Some(raw)) => {
                if let Some(item) = source.accept(raw) {
                    return Poll::Ready(Some(item));
                }
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Waits for an item without blocking the thread. Cancel-safe: see the module docs.
pub(crate) async fn recv_async<S: Source>(source: &S) -> Result<S::Item, RecvError> {
    let mut waiter = Waiter {
        inbox: source.inbox(),
        slot: None,
    };
    poll_fn(|cx| poll_recv(source, cx, &mut waiter.slot))
        .await
        .ok_or(RecvError)
}

/// The registration of one `recv_async` future, withdrawn when the future goes.
struct Waiter<'a, T> {
    inbox: &'a Inbox<T>,
    slot: Slot,
}

impl<T> Drop for Waiter<'_, T> {
    fn drop(&mut self) {
        self.inbox.unregister(&mut self.slot);
    }
}
