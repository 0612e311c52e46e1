//! Publisher confirms: tracking the store writes of messages published in confirm mode.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::inner::ChannelInner;
use super::Channel;
use crate::store::Durable;
use crate::{Error, Result};

impl ChannelInner {
    /// Remembers the store write of a message published in confirm mode.
    pub(super) fn track_confirm(&self, durable: Durable) {
        if durable.is_finished() && durable.try_result().is_some_and(|r| r.is_ok()) {
            return;
        }
        let mut unconfirmed = self.unconfirmed.lock();
        if unconfirmed.len() >= 4096 {
            // Keep memory bounded for publishers that rarely wait: forget what is durable,
            // keep what failed (to report it) or is still pending.
            unconfirmed.retain(|d| d.try_result().is_none_or(|r| r.is_err()));
        }
        unconfirmed.push(durable);
    }

    /// Waits for every tracked store write; `Ok(None)` if `deadline` passes first.
    pub(super) fn wait_confirms(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        if !self.confirms.load(Ordering::Relaxed) {
            return Err(Error::precondition("channel is not in confirm mode"));
        }
        let pending = std::mem::take(&mut *self.unconfirmed.lock());
        for (i, durable) in pending.iter().enumerate() {
            let outcome = match deadline {
                None => Some(durable.wait()),
                Some(deadline) => {
                    durable.wait_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            match outcome {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(Error::Storage(e)),
                None => {
                    let mut unconfirmed = self.unconfirmed.lock();
                    let rest = pending.into_iter().skip(i);
                    let newer = std::mem::take(&mut *unconfirmed);
                    unconfirmed.extend(rest.chain(newer));
                    return Ok(None);
                }
            }
        }
        Ok(Some(true))
    }
}

impl Channel {
    /// Turns on publisher confirms for this channel.
    ///
    /// # Errors
    ///
    /// 504 if the channel is closed.
    pub fn confirm_select(&self) -> Result<()> {
        self.inner.run(|| {
            self.inner.confirms.store(true, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Waits until every message published on this channel since confirms were turned on is
    /// confirmed; returns `false` if the broker refused (nacked) any.
    ///
    /// # Durability
    ///
    /// On a persistent broker a persistent message routed to a durable queue is confirmed
    /// once its group commit is on disk (fsync'd); everything else is confirmed when it is
    /// enqueued, which has happened by the time `basic_publish` returns.
    ///
    /// # Errors
    ///
    /// 406 if confirms are not on (see [`confirm_select`](Self::confirm_select));
    /// [`Error::Storage`] if a message could not be written, so its confirm cannot be given.
    pub fn wait_for_confirms(&self) -> Result<bool> {
        self.inner.run(|| {
            let written = self.inner.wait_confirms(None)?.unwrap_or(true);
            Ok(written && !self.inner.nacked.swap(false, Ordering::AcqRel))
        })
    }

    /// Like [`wait_for_confirms`](Self::wait_for_confirms), but gives up after `timeout`:
    /// `None` if some confirm was still outstanding then (they stay tracked).
    ///
    /// # Errors
    ///
    /// As for [`wait_for_confirms`](Self::wait_for_confirms).
    pub fn wait_for_confirms_timeout(&self, timeout: Duration) -> Result<Option<bool>> {
        let deadline = Instant::now().checked_add(timeout).or(Some(Instant::now()));
        self.inner.run(|| {
            Ok(self
                .inner
                .wait_confirms(deadline)?
                .map(|written| written && !self.inner.nacked.swap(false, Ordering::AcqRel)))
        })
    }
}
