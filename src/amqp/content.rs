//! Reassembly of published content: a `basic.publish` method, then one content header
//! frame, then body frames until the announced size is reached.

use std::sync::Arc;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::basic::Publish;

use super::convert;
use super::failure::{Failure, MethodId};
use crate::alarm::{Alarms, Reservation};
use crate::{Message, ReplyCode};

/// A publish waiting for its content.
#[derive(Debug)]
pub(crate) struct Assembly {
    /// The method that announced the content.
    pub(crate) publish: Publish,
    /// The largest body accepted (`WireOptions::max_message_size`).
    max_size: u64,
    /// The content header, once it has arrived, and the body size it announced.
    header: Option<(u64, AMQPContentHeader)>,
    /// The body so far.
    body: Vec<u8>,
    /// The memory the body takes while it is incomplete (its buffer's capacity: it grows
    /// by doubling, never to the size announced, which a client could inflate), charged to
    /// the memory alarm. A body that arrives in one frame is never charged here.
    arriving: Option<Reservation>,
}

impl Assembly {
    /// Starts assembling the content of `publish`, whose body may be `max_size` bytes.
    pub(crate) fn new(publish: Publish, max_size: u64) -> Self {
        Assembly {
            publish,
            max_size,
            header: None,
            body: Vec::new(),
            arriving: None,
        }
    }

    /// Takes the content header; returns the message if the body is empty.
    ///
    /// # Errors
    ///
    /// 505 for a second header or another class; 406 (soft) for an oversize body, refused
    /// as soon as its header announces it (RabbitMQ reads the whole body first).
    pub(crate) fn header(
        &mut self,
        header: AMQPContentHeader,
        alarms: &Arc<Alarms>,
    ) -> Result<Option<Message>, Failure> {
        if self.header.is_some() || header.class_id != 60 {
            return Err(unexpected("content body"));
        }
        let size = header.body_size;
        if size > self.max_size {
            return Err(Failure::Channel {
                code: ReplyCode::PRECONDITION_FAILED,
                text: format!(
                    "PRECONDITION_FAILED - message size {size} is larger than configured max size {}",
                    self.max_size
                ),
                // basic.publish, as RabbitMQ names it.
                method: MethodId {
                    class: 60,
                    method: 40,
                },
            });
        }
        self.header = Some((size, header));
        Ok(self.finish(alarms))
    }

    /// Takes a body frame; returns the message once the body is complete.
    ///
    /// # Errors
    ///
    /// 505 for a body before the header; 501 for more bytes than announced.
    pub(crate) fn body(
        &mut self,
        chunk: Vec<u8>,
        alarms: &Arc<Alarms>,
    ) -> Result<Option<Message>, Failure> {
        let Some((size, _)) = &self.header else {
            return Err(unexpected("content header"));
        };
        if self.body.len() as u64 + chunk.len() as u64 > *size {
            return Err(Failure::hard(
                ReplyCode::FRAME_ERROR,
                "content body larger than announced in its header",
            ));
        }
        if self.body.is_empty() {
            // Most bodies fit one frame: keep its buffer rather than copy it.
            self.body = chunk;
        } else {
            self.body.extend_from_slice(&chunk);
        }
        Ok(self.finish(alarms))
    }

    /// Returns the message if its body is complete; otherwise charges what the body holds
    /// so far to the memory alarm.
    fn finish(&mut self, alarms: &Arc<Alarms>) -> Option<Message> {
        let (size, header) = self.header.as_ref()?;
        if (self.body.len() as u64) < *size {
            self.arriving
                .get_or_insert_with(|| alarms.reserve())
                .set(self.body.capacity());
            return None;
        }
        // Charged as a message from here on.
        self.arriving = None;
        let properties = convert::properties_from_wire(&header.properties);
        Some(Message::with_properties(
            std::mem::take(&mut self.body),
            properties,
        ))
    }
}

/// The hard error for a frame that breaks the method/header/body order.
pub(crate) fn unexpected(expected: &str) -> Failure {
    Failure::hard(
        ReplyCode::UNEXPECTED_FRAME,
        format_args!("expected {expected} for class 60, got another frame instead"),
    )
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::BasicProperties;

    use super::*;

    fn alarms() -> Arc<Alarms> {
        Alarms::new(usize::MAX, u64::MAX)
    }

    fn header(size: u64) -> AMQPContentHeader {
        AMQPContentHeader {
            class_id: 60,
            body_size: size,
            properties: BasicProperties::default().with_delivery_mode(2),
        }
    }

    #[test]
    fn body_frames_are_joined() {
        let alarms = alarms();
        let mut a = Assembly::new(Publish::default(), 1 << 20);
        assert!(a.header(header(5), &alarms).unwrap().is_none());
        assert!(a.body(b"he".to_vec(), &alarms).unwrap().is_none());
        let msg = a.body(b"llo".to_vec(), &alarms).unwrap().expect("complete");
        assert_eq!(msg.body().as_ref(), b"hello");
        assert!(msg.properties().is_persistent());
    }

    #[test]
    fn empty_body_needs_no_body_frame() {
        let alarms = alarms();
        let mut a = Assembly::new(Publish::default(), 1 << 20);
        assert!(a.header(header(0), &alarms).unwrap().is_some());
    }

    #[test]
    fn an_oversize_body_is_refused_at_its_header() {
        let alarms = alarms();
        let mut a = Assembly::new(Publish::default(), 4);
        match a.header(header(5), &alarms) {
            Err(Failure::Channel { code, text, method }) => {
                assert_eq!(code, ReplyCode::PRECONDITION_FAILED);
                assert_eq!(
                    text,
                    "PRECONDITION_FAILED - message size 5 is larger than configured max size 4"
                );
                assert_eq!((method.class, method.method), (60, 40));
            }
            other => panic!("{other:?}"),
        }
        let mut a = Assembly::new(Publish::default(), 4);
        assert!(a.header(header(4), &alarms).unwrap().is_none());
    }

    #[test]
    fn order_and_size_are_checked() {
        let alarms = alarms();
        let mut a = Assembly::new(Publish::default(), 1 << 20);
        assert!(a.body(b"x".to_vec(), &alarms).is_err());
        let mut a = Assembly::new(Publish::default(), 1 << 20);
        a.header(header(1), &alarms).unwrap();
        assert!(a.body(b"xy".to_vec(), &alarms).is_err());
    }

    #[test]
    fn an_incomplete_body_is_charged_until_it_is_complete_or_dropped() {
        let alarms = alarms();
        let used = || alarms.snapshot().memory_used;
        let mut a = Assembly::new(Publish::default(), 1 << 20);
        a.header(header(300_000), &alarms).unwrap();
        assert_eq!(used(), 0, "nothing allocated for an announced size");
        assert!(a.body(vec![1; 200_000], &alarms).unwrap().is_none());
        assert!(used() >= 200_000);
        assert!(a.body(vec![2; 100_000], &alarms).unwrap().is_some());
        assert_eq!(used(), 0, "given back once the message is whole");

        let mut b = Assembly::new(Publish::default(), 1 << 20);
        b.header(header(10), &alarms).unwrap();
        b.body(vec![1; 5], &alarms).unwrap();
        assert!(used() > 0);
        drop(b);
        assert_eq!(used(), 0, "given back when the publish is abandoned");

        let mut c = Assembly::new(Publish::default(), 1 << 20);
        c.header(header(3), &alarms).unwrap();
        let before = used();
        assert!(c.body(vec![1; 3], &alarms).unwrap().is_some());
        assert_eq!(
            (before, used()),
            (0, 0),
            "a one-frame body is never charged here"
        );
    }
}
