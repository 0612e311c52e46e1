//! The one place records become bytes and bytes become records.
//!
//! A stored value is one format-version byte ([`RECORD_VERSION`]) followed by the record in
//! bincode 2's standard configuration (through serde). Decoding checks the version first:
//! a newer version is [`StoreError::UnsupportedFormat`], anything unreadable is
//! [`StoreError::Corrupt`]; neither panics.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The format version written in front of every record. Bump it when a record's layout
/// changes, and teach [`decode`] to read the old one.
pub(crate) const RECORD_VERSION: u8 = 1;

/// The largest record [`decode`] accepts (a message body included). The limit also stops a
/// garbled length prefix from asking for an absurd allocation.
const MAX_RECORD_BYTES: usize = 512 * 1024 * 1024;

/// The bincode configuration of every record.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes a record, version byte first.
///
/// # Errors
///
/// [`StoreError::Backend`] if serde refuses the value (not expected for the record types).
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![RECORD_VERSION];
    bincode::serde::encode_into_std_write(record, &mut bytes, config())
        .map_err(|e| StoreError::Backend(std::sync::Arc::new(e)))?;
    Ok(bytes)
}

/// Decodes a record written by [`encode`].
///
/// # Errors
///
/// [`StoreError::UnsupportedFormat`] for a newer version byte, [`StoreError::Corrupt`] for an
/// empty value, version `0`, bytes bincode cannot read, or bytes left over after the record.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let (&version, payload) = bytes
        .split_first()
        .ok_or_else(|| StoreError::corrupt("empty record"))?;
    match version {
        RECORD_VERSION => {}
        0 => return Err(StoreError::corrupt("record with format version 0")),
        found => {
            return Err(StoreError::UnsupportedFormat {
                found: found.into(),
                supported: RECORD_VERSION.into(),
            })
        }
    }
    let (record, read) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| StoreError::corrupt(format!("undecodable record: {e}")))?;
    if read != payload.len() {
        return Err(StoreError::corrupt(format!(
            "{} stray bytes after a record",
            payload.len() - read
        )));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::store::records::{
        BindingRecord, EntryRecord, ExchangeRecord, MessageId, MessageRecord, QueueRecord,
        VhostRecord,
    };
    use crate::{DeliveryMode, FieldTable, FieldValue, Properties};

    /// Asserts that a record survives encode + decode unchanged.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(record: T) {
        let bytes = encode(&record).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<T>(&bytes).unwrap(), record);
    }

    /// A table with one value of every kind, nested.
    fn rich_table() -> FieldTable {
        FieldTable::new()
            .with("b", true)
            .with("i", -5i32)
            .with("l", i64::MIN)
            .with("d", 2.5f64)
            .with("s", "text")
            .with("x", Bytes::from_static(b"\0\xff"))
            .with("t", FieldTable::new().with("inner", 1u8))
            .with("a", vec![FieldValue::from(1i16), FieldValue::from("two")])
    }

    /// A message with every property set.
    fn sample_message() -> MessageRecord {
        MessageRecord {
            exchange: "sorting_room".into(),
            routing_key: "jason".into(),
            properties: Properties {
                content_type: Some("application/json".into()),
                headers: Some(rich_table()),
                delivery_mode: Some(DeliveryMode::Persistent),
                priority: Some(3),
                expiration: Some("60000".into()),
                timestamp: Some(1_700_000_000),
                ..Properties::default()
            },
            body: Bytes::from_static(br#"{"id": "0111"}"#),
            expires_at_ms: Some(1_700_000_060_000),
        }
    }

    #[test]
    fn every_record_round_trips() {
        round_trip(VhostRecord { name: "/".into() });
        round_trip(ExchangeRecord {
            vhost: "/".into(),
            name: "sorting_room".into(),
            kind: "direct".into(),
            durable: true,
            auto_delete: false,
            internal: true,
            arguments: rich_table(),
        });
        round_trip(QueueRecord {
            vhost: "/".into(),
            name: "po_box".into(),
            durable: true,
            auto_delete: true,
            exclusive: false,
            arguments: FieldTable::new().with("x-max-length", 10),
        });
        round_trip(BindingRecord {
            vhost: "v".into(),
            source: "e".into(),
            destination: "q".into(),
            destination_is_exchange: false,
            routing_key: "a.#".into(),
            arguments: FieldTable::new().with("x-match", "any"),
        });
        round_trip(sample_message());
        round_trip(EntryRecord {
            message_id: MessageId(7),
            delivered: true,
        });
    }

    #[test]
    fn newer_version_is_unsupported() {
        let mut bytes = encode(&VhostRecord { name: "/".into() }).unwrap();
        bytes[0] = RECORD_VERSION + 1;
        assert!(matches!(
            decode::<VhostRecord>(&bytes),
            Err(StoreError::UnsupportedFormat {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn garbage_is_corrupt() {
        let good = encode(&sample_message()).unwrap();
        let cases: [&[u8]; 4] = [
            &[],
            &[0, 1, 2],
            &good[..good.len() / 2],
            &[1, 0xff, 0xff, 0xff],
        ];
        for bytes in cases {
            assert!(matches!(
                decode::<MessageRecord>(bytes),
                Err(StoreError::Corrupt { .. })
            ));
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            decode::<MessageRecord>(&long),
            Err(StoreError::Corrupt { .. })
        ));
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<MessageRecord>(&bytes);
            let _ = decode::<ExchangeRecord>(&bytes);
        }
    }
}
