//! The frames of one delivery (`basic.deliver`, its content header, its body frames),
//! written straight into the outbox: the method's fields are copied from the delivery
//! without building `amq-protocol`'s owned method value (three short strings and a flag
//! table allocated per message), and the content header's properties are encoded by
//! `amq-protocol` once per distinct value and reused while the next deliveries carry the
//! same ones (a publisher usually sends the same properties with every message).
//!
//! Every other frame the server sends is encoded by `amq-protocol` (`frames.rs`); the tests
//! below check that these bytes are the ones it produces.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::gen_properties;

use super::convert::properties_to_wire;
use super::failure::short_text;
use super::frames::{push_body, FRAME_END};
use crate::Properties;

/// Frame type of a method frame.
const FRAME_METHOD: u8 = 1;
/// Frame type of a content header frame.
const FRAME_HEADER: u8 = 2;
/// The class `basic`.
const CLASS_BASIC: u16 = 60;
/// The method `basic.deliver`.
const METHOD_DELIVER: u16 = 60;

/// The fields of one `basic.deliver`.
#[derive(Debug)]
pub(crate) struct Deliver<'a> {
    /// The channel it goes out on.
    pub(crate) channel: u16,
    /// The consumer's tag.
    pub(crate) consumer_tag: &'a str,
    /// The delivery tag.
    pub(crate) delivery_tag: u64,
    /// Delivered before.
    pub(crate) redelivered: bool,
    /// The exchange the message was published to.
    pub(crate) exchange: &'a str,
    /// Its routing key.
    pub(crate) routing_key: &'a str,
}

/// The last properties encoded for a content header, and their encoding.
#[derive(Debug, Default)]
pub(crate) struct PropertiesCache {
    /// The properties and their bytes (flags word, then the values that are set).
    last: Option<(Properties, Vec<u8>)>,
}

impl PropertiesCache {
    /// Returns the encoding of `properties`, encoding them only if they differ from the
    /// last ones asked for.
    pub(crate) fn encode(&mut self, properties: &Properties) -> &[u8] {
        let hit = matches!(&self.last, Some((last, _)) if last == properties);
        if !hit {
            let wire = properties_to_wire(properties);
            let bytes = match gen_properties(&wire)(WriteContext::from(Vec::new())) {
                Ok(ctx) => ctx.into_inner().0,
                // Writing to a Vec cannot fail, and every string was cut to fit when made.
                Err(e) => unreachable!("encoding properties into memory failed: {e:?}"),
            };
            self.last = Some((properties.clone(), bytes));
        }
        self.last
            .as_ref()
            .map_or(&[], |(_, bytes)| bytes.as_slice())
    }
}

/// Appends `basic.deliver`, its content header with `properties` (encoded, as
/// [`PropertiesCache::encode`] returns them) and `body` in frames that fit `frame_max`.
pub(crate) fn push_delivery(
    out: &mut Vec<u8>,
    deliver: &Deliver<'_>,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let tag = short_text(deliver.consumer_tag);
    let exchange = short_text(deliver.exchange);
    let key = short_text(deliver.routing_key);
    // class, method, three short strings with their lengths, delivery tag, flags.
    let size = 4 + 3 + tag.len() + exchange.len() + key.len() + 8 + 1;
    out.reserve(size + 8 + 22 + properties.len() + body.len() + 8 + 8);
    frame_start(out, FRAME_METHOD, deliver.channel, size);
    out.extend_from_slice(&CLASS_BASIC.to_be_bytes());
    out.extend_from_slice(&METHOD_DELIVER.to_be_bytes());
    short_string(out, &tag);
    out.extend_from_slice(&deliver.delivery_tag.to_be_bytes());
    out.push(u8::from(deliver.redelivered));
    short_string(out, &exchange);
    short_string(out, &key);
    out.push(FRAME_END);
    // class, weight, body size, properties.
    frame_start(out, FRAME_HEADER, deliver.channel, 12 + properties.len());
    out.extend_from_slice(&CLASS_BASIC.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(properties);
    out.push(FRAME_END);
    push_body(out, deliver.channel, body, frame_max);
}

/// Appends a frame's type, channel and payload size.
fn frame_start(out: &mut Vec<u8>, kind: u8, channel: u16, size: usize) {
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    // A frame's payload is far below 4 GiB: its parts are short strings, a header's
    // properties fit a frame of the negotiated size.
    out.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
}

/// Appends a short string: its length in one byte, then its bytes (`s` was cut to 255).
fn short_string(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
}

#[cfg(test)]
mod tests {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, AMQPClass};

    use super::*;
    use crate::amqp::convert::short_string as short;
    use crate::amqp::frames::{decode_all, push_content};
    use crate::{DeliveryMode, FieldTable};

    /// What `amq-protocol` encodes for the same delivery.
    fn reference(d: &Deliver<'_>, p: &Properties, body: &[u8], frame_max: u32) -> Vec<u8> {
        let deliver = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: short(d.consumer_tag),
            delivery_tag: d.delivery_tag,
            redelivered: d.redelivered,
            exchange: short(d.exchange),
            routing_key: short(d.routing_key),
        }));
        let mut out = Vec::new();
        push_content(
            &mut out,
            d.channel,
            deliver,
            properties_to_wire(p),
            body,
            frame_max,
        );
        out
    }

    fn ours(d: &Deliver<'_>, cache: &mut PropertiesCache, p: &Properties, body: &[u8]) -> Vec<u8> {
        let mut out = vec![9, 9];
        push_delivery(&mut out, d, cache.encode(p), body, 4096);
        out.split_off(2)
    }

    #[test]
    fn deliveries_are_encoded_as_amq_protocol_encodes_them() {
        let long = "k".repeat(300);
        let full = Properties {
            content_type: Some("application/json".into()),
            headers: Some(FieldTable::new().with("x", 1i32).with("y", "z")),
            delivery_mode: Some(DeliveryMode::Persistent),
            priority: Some(4),
            correlation_id: Some("c".into()),
            timestamp: Some(1_700_000_000),
            ..Properties::default()
        };
        let plain = Properties::default();
        let mut cache = PropertiesCache::default();
        for (tag, exchange, key, redelivered, p, size) in [
            ("ctag", "", "q", false, &plain, 100),
            ("amq.ctag-x", "amq.topic", "a.b.c", true, &full, 0),
            ("t", "ex", long.as_str(), false, &full, 10_000),
            ("t", "ex", "k", true, &plain, 4088),
        ] {
            let d = Deliver {
                channel: 7,
                consumer_tag: tag,
                delivery_tag: 1 << 40 | 5,
                redelivered,
                exchange,
                routing_key: key,
            };
            let body = vec![3u8; size];
            let got = ours(&d, &mut cache, p, &body);
            assert_eq!(got, reference(&d, p, &body, 4096), "{tag} {key:.10} {size}");
            let frames = decode_all(&got);
            assert!(frames.iter().all(Result::is_ok), "{frames:?}");
            match &frames[0] {
                Ok(AMQPFrame::Method(7, AMQPClass::Basic(basic::AMQPMethod::Deliver(m)))) => {
                    assert_eq!(m.delivery_tag, 1 << 40 | 5);
                    assert_eq!(m.redelivered, redelivered);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_cache_encodes_again_when_the_properties_change() {
        let mut cache = PropertiesCache::default();
        let one = Properties {
            priority: Some(1),
            ..Properties::default()
        };
        let two = Properties {
            priority: Some(2),
            ..Properties::default()
        };
        let first = cache.encode(&one).to_vec();
        assert_eq!(cache.encode(&one), first.as_slice());
        let second = cache.encode(&two).to_vec();
        assert_ne!(first, second);
        assert_eq!(cache.encode(&one), first.as_slice());
    }
}
