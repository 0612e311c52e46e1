//! The frames of a publish (`basic.publish`, its content header, its body frames), read in
//! place from the connection's input: most of what a publishing client sends. They skip
//! `amq-protocol`'s frame value, which would allocate the method's two short strings and
//! a flag table per message and move a frame of several hundred bytes through each layer;
//! the content header's properties are still parsed by `amq-protocol`, once per distinct
//! encoding ([`HeaderCache`]): a publisher usually sends the same properties every time.
//!
//! Every other frame, and any of these that does not read cleanly, goes through
//! `amq-protocol`'s parser (`frames.rs`), which reports the error; the tests below check
//! that both read the same frames alike.

use amq_protocol::protocol::basic::parse_properties;

use super::convert::properties_from_wire;
use super::cursor::Cursor;
use super::failure::Failure;
use super::frames::{self, FRAME_END};
use crate::Properties;

/// A frame of a publish, read in place.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Publishing<'a> {
    /// `basic.publish`.
    Publish {
        /// The channel.
        channel: u16,
        /// The exchange.
        exchange: &'a str,
        /// The routing key.
        routing_key: &'a str,
        /// Return the message if it reaches no queue.
        mandatory: bool,
        /// Refused (540), as in RabbitMQ 3.
        immediate: bool,
    },
    /// A content header.
    Header {
        /// The channel.
        channel: u16,
        /// The content class (60, basic, is the only one).
        class_id: u16,
        /// The size of the body to follow.
        body_size: u64,
        /// The encoded properties (flags, then the values set).
        properties: &'a [u8],
        /// The whole frame, for the nesting check of its `headers` table.
        frame: &'a [u8],
    },
    /// A content body frame.
    Body {
        /// The channel.
        channel: u16,
        /// The bytes of the body it carries.
        payload: &'a [u8],
    },
}

/// Reads a complete frame (its size already checked) as a frame of a publish; `None` for
/// any other frame, for frames on channel 0 (an error the general path words), and for
/// one that does not read cleanly.
pub(crate) fn publishing(frame: &[u8]) -> Option<Publishing<'_>> {
    if frame.len() < 8 || frame.last() != Some(&FRAME_END) {
        return None;
    }
    let channel = u16::from_be_bytes([frame[1], frame[2]]);
    let payload = &frame[7..frame.len() - 1];
    if channel == 0 {
        return None;
    }
    match frame[0] {
        1 => publish(channel, payload),
        2 => {
            let mut r = Cursor(payload);
            let class_id = r.u16()?;
            let _weight = r.u16()?;
            let body_size = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
            Some(Publishing::Header {
                channel,
                class_id,
                body_size,
                properties: r.0,
                frame,
            })
        }
        3 => Some(Publishing::Body { channel, payload }),
        _ => None,
    }
}

/// Reads `basic.publish`: ticket, exchange, routing key, flags, and nothing after them.
fn publish(channel: u16, payload: &[u8]) -> Option<Publishing<'_>> {
    let mut r = Cursor(payload);
    if (r.u16()?, r.u16()?) != (60, 40) {
        return None;
    }
    let _ticket = r.u16()?;
    let exchange = std::str::from_utf8(r.short_bytes()?).ok()?;
    let routing_key = std::str::from_utf8(r.short_bytes()?).ok()?;
    let flags = r.take(1)?[0];
    if !r.0.is_empty() {
        return None;
    }
    Some(Publishing::Publish {
        channel,
        exchange,
        routing_key,
        mandatory: flags & 1 != 0,
        immediate: flags & 2 != 0,
    })
}

/// The properties of the last content header read on a connection, encoded and parsed.
#[derive(Debug, Default)]
pub(crate) struct HeaderCache {
    /// The encoding and what it parsed to.
    last: Option<(Vec<u8>, Properties)>,
}

impl HeaderCache {
    /// Returns the properties `encoded` (from the content header `frame`) stands for,
    /// parsing them only when they differ from the last ones.
    ///
    /// # Errors
    ///
    /// 502 SYNTAX_ERROR when they do not parse or nest tables too deep.
    pub(crate) fn properties(
        &mut self,
        encoded: &[u8],
        frame: &[u8],
    ) -> Result<Properties, Failure> {
        if let Some((last, properties)) = &self.last {
            if last.as_slice() == encoded {
                return Ok(properties.clone());
            }
        }
        frames::check_nesting(frame)?;
        let properties = match parse_properties(encoded) {
            Ok(([], parsed)) => properties_from_wire(&parsed),
            _ => return Err(frames::unparsable(2)),
        };
        self.last = Some((encoded.to_vec(), properties.clone()));
        Ok(properties)
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
    use amq_protocol::protocol::{basic, AMQPClass, BasicProperties};

    use super::*;
    use crate::amqp::frames::{decode, encode};
    use crate::FieldTable;

    fn publish_frame(exchange: &str, key: &str, mandatory: bool, immediate: bool) -> Vec<u8> {
        let publish = basic::Publish {
            exchange: exchange.into(),
            routing_key: key.into(),
            mandatory,
            immediate,
        };
        encode(&AMQPFrame::Method(
            3,
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
        ))
    }

    #[test]
    fn publishes_read_as_amq_protocol_reads_them() {
        for (exchange, key, mandatory, immediate) in [
            ("", "q", false, false),
            ("amq.topic", "a.b.c", true, false),
            ("x", &"k".repeat(255), false, true),
            ("ü", "", true, true),
        ] {
            let frame = publish_frame(exchange, key, mandatory, immediate);
            let Ok(AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Publish(p)))) =
                decode(&frame)
            else {
                panic!("amq-protocol cannot read its own publish");
            };
            assert_eq!(
                publishing(&frame),
                Some(Publishing::Publish {
                    channel: 3,
                    exchange: p.exchange.as_str(),
                    routing_key: p.routing_key.as_str(),
                    mandatory: p.mandatory,
                    immediate: p.immediate,
                })
            );
        }
    }

    #[test]
    fn headers_and_bodies_read_in_place() {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("text/plain".into())
            .with_headers(crate::amqp::convert::table_to_wire(
                &FieldTable::new().with("k", 1i32),
            ));
        let header = AMQPContentHeader {
            class_id: 60,
            body_size: 1 << 33,
            properties: properties.clone(),
        };
        let frame = encode(&AMQPFrame::Header(5, header));
        let Some(Publishing::Header {
            channel: 5,
            class_id: 60,
            body_size,
            properties: encoded,
            ..
        }) = publishing(&frame)
        else {
            panic!("not read as a header: {:?}", publishing(&frame));
        };
        assert_eq!(body_size, 1 << 33);
        let mut cache = HeaderCache::default();
        let want = properties_from_wire(&properties);
        assert_eq!(cache.properties(encoded, &frame).unwrap(), want);
        assert_eq!(cache.properties(encoded, &frame).unwrap(), want, "cached");

        let body = [3, 0, 5, 0, 0, 0, 2, b'h', b'i', FRAME_END];
        assert_eq!(
            publishing(&body),
            Some(Publishing::Body {
                channel: 5,
                payload: b"hi"
            })
        );
    }

    #[test]
    fn other_and_malformed_frames_go_to_the_general_parser() {
        let mut trailing = publish_frame("", "q", false, false);
        trailing.insert(trailing.len() - 1, 0);
        let size = u32::from_be_bytes(trailing[3..7].try_into().unwrap()) + 1;
        trailing[3..7].copy_from_slice(&size.to_be_bytes());
        assert_eq!(publishing(&trailing), None, "bytes after the flags");
        let mut bad_utf8 = publish_frame("", "q", false, false);
        let at = bad_utf8.len() - 3;
        bad_utf8[at] = 0xFF;
        assert_eq!(publishing(&bad_utf8), None, "a key that is not UTF-8");
        let on_zero = publish_frame("", "q", false, false);
        let mut on_zero = on_zero.clone();
        on_zero[1..3].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(publishing(&on_zero), None, "channel 0");
        let ack = encode(&AMQPFrame::Method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack::default())),
        ));
        assert_eq!(publishing(&ack), None);
        let mut no_end = publish_frame("", "q", false, false);
        *no_end.last_mut().unwrap() = 0;
        assert_eq!(publishing(&no_end), None);
        let mut cache = HeaderCache::default();
        assert!(
            cache.properties(&[0x80, 0], &[]).is_err(),
            "a truncated value"
        );
    }
}
