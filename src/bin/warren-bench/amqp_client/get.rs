//! `basic.get`, for the tests of `warren-server` that read back what survived a restart.

use std::io;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, AMQPClass};

use super::{other_frame, unexpected, Client};

/// A message fetched with [`Client::basic_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Got {
    /// The body.
    pub(crate) body: Vec<u8>,
    /// Whether it was delivered before.
    pub(crate) redelivered: bool,
}

impl Client {
    /// Fetches one message from `queue` (acknowledged on delivery with `no_ack`); `None` when
    /// the queue is empty.
    pub(crate) fn basic_get(&mut self, queue: &str, no_ack: bool) -> io::Result<Option<Got>> {
        let get = basic::Get {
            queue: queue.into(),
            no_ack,
        };
        self.method(AMQPClass::Basic(basic::AMQPMethod::Get(get)))?;
        let redelivered = match self.next_method()? {
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => return Ok(None),
            AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)) => ok.redelivered,
            other => return Err(unexpected("basic.get-ok", &other)),
        };
        let size = match self.frame()? {
            AMQPFrame::Header(_, header) => header.body_size,
            other => return Err(other_frame("content header", &other)),
        };
        let mut body = Vec::new();
        while (body.len() as u64) < size {
            match self.frame()? {
                AMQPFrame::Body(_, chunk) => body.extend_from_slice(&chunk),
                other => return Err(other_frame("content body", &other)),
            }
        }
        Ok(Some(Got { body, redelivered }))
    }
}
