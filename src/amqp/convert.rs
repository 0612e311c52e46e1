//! Conversions between `amq-protocol` values and Warren's [`FieldTable`] and [`Properties`].

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable as WireTable, LongString,
    ShortString,
};
use bytes::Bytes;

use crate::{DeliveryMode, FieldTable, FieldValue, Properties};

/// Converts a table read from the wire.
pub(crate) fn table_from_wire(table: &WireTable) -> FieldTable {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_from_wire(v)))
        .collect()
}

/// Converts a table to send on the wire. Keys longer than a short string are dropped.
pub(crate) fn table_to_wire(table: &FieldTable) -> WireTable {
    let mut out = WireTable::default();
    for (k, v) in table {
        if let Ok(key) = ShortString::try_new(k.as_str()) {
            out.insert(key, value_to_wire(v));
        }
    }
    out
}

fn value_from_wire(value: &AMQPValue) -> FieldValue {
    match value {
        AMQPValue::Boolean(v) => FieldValue::Bool(*v),
        AMQPValue::ShortShortInt(v) => FieldValue::I8(*v),
        AMQPValue::ShortShortUInt(v) => FieldValue::U8(*v),
        AMQPValue::ShortInt(v) => FieldValue::I16(*v),
        AMQPValue::ShortUInt(v) => FieldValue::U16(*v),
        AMQPValue::LongInt(v) => FieldValue::I32(*v),
        AMQPValue::LongUInt(v) => FieldValue::U32(*v),
        AMQPValue::LongLongInt(v) => FieldValue::I64(*v),
        AMQPValue::Float(v) => FieldValue::F32(*v),
        AMQPValue::Double(v) => FieldValue::F64(*v),
        AMQPValue::DecimalValue(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => FieldValue::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(s) => FieldValue::String(s.to_owned()),
            Err(_) => FieldValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
        },
        AMQPValue::FieldArray(a) => {
            FieldValue::Array(a.as_slice().iter().map(value_from_wire).collect())
        }
        AMQPValue::Timestamp(t) => FieldValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => FieldValue::Table(table_from_wire(t)),
        AMQPValue::ByteArray(b) => FieldValue::Bytes(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::Void => FieldValue::Void,
    }
}

fn value_to_wire(value: &FieldValue) -> AMQPValue {
    match value {
        FieldValue::Bool(v) => AMQPValue::Boolean(*v),
        FieldValue::I8(v) => AMQPValue::ShortShortInt(*v),
        FieldValue::U8(v) => AMQPValue::ShortShortUInt(*v),
        FieldValue::I16(v) => AMQPValue::ShortInt(*v),
        FieldValue::U16(v) => AMQPValue::ShortUInt(*v),
        FieldValue::I32(v) => AMQPValue::LongInt(*v),
        FieldValue::U32(v) => AMQPValue::LongUInt(*v),
        FieldValue::I64(v) => AMQPValue::LongLongInt(*v),
        FieldValue::F32(v) => AMQPValue::Float(*v),
        FieldValue::F64(v) => AMQPValue::Double(*v),
        FieldValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        FieldValue::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        FieldValue::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.as_ref())),
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Table(t) => AMQPValue::FieldTable(table_to_wire(t)),
        FieldValue::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(value_to_wire).collect::<Vec<_>>(),
        )),
        FieldValue::Void => AMQPValue::Void,
    }
}

fn string(s: &Option<ShortString>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_owned())
}

fn short(s: &Option<String>) -> Option<ShortString> {
    s.as_ref()
        .and_then(|s| ShortString::try_new(s.as_str()).ok())
}

/// Converts the properties of a content header read from the wire.
pub(crate) fn properties_from_wire(p: &BasicProperties) -> Properties {
    Properties {
        content_type: string(p.content_type()),
        content_encoding: string(p.content_encoding()),
        headers: p.headers().as_ref().map(table_from_wire),
        delivery_mode: p.delivery_mode().map(DeliveryMode::from_u8),
        priority: *p.priority(),
        correlation_id: string(p.correlation_id()),
        reply_to: string(p.reply_to()),
        expiration: string(p.expiration()),
        message_id: string(p.message_id()),
        timestamp: *p.timestamp(),
        message_type: string(p.kind()),
        user_id: string(p.user_id()),
        app_id: string(p.app_id()),
        cluster_id: string(p.cluster_id()),
    }
}

/// Converts properties for a content header sent on the wire.
pub(crate) fn properties_to_wire(p: &Properties) -> BasicProperties {
    let mut out = BasicProperties::default();
    if let Some(v) = short(&p.content_type) {
        out = out.with_content_type(v);
    }
    if let Some(v) = short(&p.content_encoding) {
        out = out.with_content_encoding(v);
    }
    if let Some(v) = &p.headers {
        out = out.with_headers(table_to_wire(v));
    }
    if let Some(v) = p.delivery_mode {
        out = out.with_delivery_mode(v.as_u8());
    }
    if let Some(v) = p.priority {
        out = out.with_priority(v);
    }
    if let Some(v) = short(&p.correlation_id) {
        out = out.with_correlation_id(v);
    }
    if let Some(v) = short(&p.reply_to) {
        out = out.with_reply_to(v);
    }
    if let Some(v) = short(&p.expiration) {
        out = out.with_expiration(v);
    }
    if let Some(v) = short(&p.message_id) {
        out = out.with_message_id(v);
    }
    if let Some(v) = p.timestamp {
        out = out.with_timestamp(v);
    }
    if let Some(v) = short(&p.message_type) {
        out = out.with_type(v);
    }
    if let Some(v) = short(&p.user_id) {
        out = out.with_user_id(v);
    }
    if let Some(v) = short(&p.app_id) {
        out = out.with_app_id(v);
    }
    if let Some(v) = short(&p.cluster_id) {
        out = out.with_cluster_id(v);
    }
    out
}

/// Makes a short string of a name the broker produced (names are at most 255 bytes);
/// longer text is cut.
pub(crate) fn short_string(s: &str) -> ShortString {
    ShortString::try_new(super::failure::short_text(s)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip() {
        let table = FieldTable::new()
            .with("s", "text")
            .with("n", 7i32)
            .with("b", true)
            .with("t", FieldTable::new().with("x-match", "all"))
            .with("a", vec![FieldValue::I64(1), FieldValue::Void]);
        assert_eq!(table_from_wire(&table_to_wire(&table)), table);
    }

    #[test]
    fn properties_round_trip() {
        let mut p = Properties {
            content_type: Some("application/json".into()),
            delivery_mode: Some(DeliveryMode::Persistent),
            priority: Some(3),
            timestamp: Some(1_700_000_000),
            message_type: Some("kind".into()),
            ..Properties::default()
        };
        p.headers = Some(FieldTable::new().with("k", "v"));
        assert_eq!(properties_from_wire(&properties_to_wire(&p)), p);
    }
}
