//! Reassembly of published content: a `basic.publish` method, then one content header
//! frame, then body frames until the announced size is reached.

use std::sync::Arc;

use amq_protocol::protocol::basic::Publish;
use compact_str::CompactString;

use super::failure::{Failure, MethodId};
use crate::alarm::{Alarms, Reservation};
use crate::{Message, Properties, ReplyCode};

/// Where a publish goes, as its `basic.publish` said (names of up to 24 bytes are held
/// without an allocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Route {
    /// The exchange.
    pub(crate) exchange: CompactString,
    /// The routing key.
    pub(crate) routing_key: CompactString,
    /// Return the message if it reaches no queue.
    pub(crate) mandatory: bool,
}

impl From<&Publish> for Route {
    fn from(p: &Publish) -> Self {
        Route {
            exchange: p.exchange.as_str().into(),
            routing_key: p.routing_key.as_str().into(),
            mandatory: p.mandatory,
        }
    }
}

/// A publish waiting for its content.
#[derive(Debug)]
pub(crate) struct Assembly {
    /// Where it goes.
    pub(crate) route: Route,
    /// The largest body accepted (`WireOptions::max_message_size`).
    max_size: u64,
    /// The body size the content header announced, and its properties, once it arrived.
    header: Option<(u64, Properties)>,
    /// The body so far.
    body: Vec<u8>,
    /// The memory the body takes while it is incomplete (its buffer's capacity: it grows
    /// by doubling, never to the size announced, which a client could inflate), charged to
    /// the memory alarm. A body that arrives in one frame is never charged here.
    arriving: Option<Reservation>,
}

impl Assembly {
    /// Starts assembling the content of a publish to `route`, whose body may be
    /// `max_size` bytes.
    pub(crate) fn new(route: Route, max_size: u64) -> Self {
        Assembly {
            route,
            max_size,
            header: None,
            body: Vec::new(),
            arriving: None,
        }
    }

    /// Takes the content header (its class, the body size it announces and its
    /// properties); returns the message if the body is empty.
    ///
    /// # Errors
    ///
    /// 505 for a second header or another class; 406 (soft) for an oversize body, refused
    /// as soon as its header announces it (RabbitMQ reads the whole body first).
    pub(crate) fn header(
        &mut self,
        class_id: u16,
        size: u64,
        properties: Properties,
        alarms: &Arc<Alarms>,
    ) -> Result<Option<Message>, Failure> {
        if self.header.is_some() || class_id != 60 {
            return Err(unexpected("content body"));
        }
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
        self.header = Some((size, properties));
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
        let (size, _) = self.header.as_ref()?;
        if (self.body.len() as u64) < *size {
            self.arriving
                .get_or_insert_with(|| alarms.reserve())
                .set(self.body.capacity());
            return None;
        }
        // Charged as a message from here on.
        self.arriving = None;
        let (_, properties) = self.header.take()?;
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
    use super::*;
    use crate::DeliveryMode;

    fn alarms() -> Arc<Alarms> {
        Alarms::new(usize::MAX, u64::MAX)
    }

    /// Sends a persistent message's content header of `size` to `a`.
    fn header(
        a: &mut Assembly,
        size: u64,
        alarms: &Arc<Alarms>,
    ) -> Result<Option<Message>, Failure> {
        let properties = Properties {
            delivery_mode: Some(DeliveryMode::Persistent),
            ..Properties::default()
        };
        a.header(60, size, properties, alarms)
    }

    #[test]
    fn body_frames_are_joined() {
        let alarms = alarms();
        let mut a = Assembly::new(Route::default(), 1 << 20);
        assert!(header(&mut a, 5, &alarms).unwrap().is_none());
        assert!(a.body(b"he".to_vec(), &alarms).unwrap().is_none());
        let msg = a.body(b"llo".to_vec(), &alarms).unwrap().expect("complete");
        assert_eq!(msg.body().as_ref(), b"hello");
        assert!(msg.properties().is_persistent());
    }

    #[test]
    fn empty_body_needs_no_body_frame() {
        let alarms = alarms();
        let mut a = Assembly::new(Route::default(), 1 << 20);
        assert!(header(&mut a, 0, &alarms).unwrap().is_some());
    }

    #[test]
    fn an_oversize_body_is_refused_at_its_header() {
        let alarms = alarms();
        let mut a = Assembly::new(Route::default(), 4);
        match header(&mut a, 5, &alarms) {
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
        let mut a = Assembly::new(Route::default(), 4);
        assert!(header(&mut a, 4, &alarms).unwrap().is_none());
    }

    #[test]
    fn order_and_size_are_checked() {
        let alarms = alarms();
        let mut a = Assembly::new(Route::default(), 1 << 20);
        assert!(a.body(b"x".to_vec(), &alarms).is_err());
        let mut a = Assembly::new(Route::default(), 1 << 20);
        header(&mut a, 1, &alarms).unwrap();
        assert!(a.body(b"xy".to_vec(), &alarms).is_err());
    }

    #[test]
    fn an_incomplete_body_is_charged_until_it_is_complete_or_dropped() {
        let alarms = alarms();
        let used = || alarms.snapshot().memory_used;
        let mut a = Assembly::new(Route::default(), 1 << 20);
        header(&mut a, 300_000, &alarms).unwrap();
        assert_eq!(used(), 0, "nothing allocated for an announced size");
        assert!(a.body(vec![1; 200_000], &alarms).unwrap().is_none());
        assert!(used() >= 200_000);
        assert!(a.body(vec![2; 100_000], &alarms).unwrap().is_some());
        assert_eq!(used(), 0, "given back once the message is whole");

        let mut b = Assembly::new(Route::default(), 1 << 20);
        header(&mut b, 10, &alarms).unwrap();
        b.body(vec![1; 5], &alarms).unwrap();
        assert!(used() > 0);
        drop(b);
        assert_eq!(used(), 0, "given back when the publish is abandoned");

        let mut c = Assembly::new(Route::default(), 1 << 20);
        header(&mut c, 3, &alarms).unwrap();
        let before = used();
        assert!(c.body(vec![1; 3], &alarms).unwrap().is_some());
        assert_eq!(
            (before, used()),
            (0, 0),
            "a one-frame body is never charged here"
        );
    }
}
