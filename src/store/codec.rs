//! The one place records become bytes and bytes become records.
//!
//! A stored value is one format-version byte ([`RECORD_VERSION`]), the record in bincode 2's
//! standard configuration (through serde), and a CRC-32 of the record's [`RecordKey`] and of
//! everything before it:
//!
//! ```text
//! +---------+---------------------------+----------------------------------+
//! | version | bincode 2 record          | CRC-32 (IEEE) of key + version + |
//! | 1 byte  |                           | record, 4 bytes little-endian    |
//! +---------+---------------------------+----------------------------------+
//! ```
//!
//! The checksum covers the key so that a value found under another key (a flipped bit in a
//! key, a page of one table read as another's) fails it just as a flipped bit in the value
//! does. Decoding checks the version, then the checksum, then the bincode: a newer version is
//! [`StoreError::UnsupportedFormat`], anything unreadable is [`StoreError::Corrupt`] naming the
//! record; neither panics.
//!
//! Format 1 records (version byte `1`, no checksum) are read only by the migration of a
//! format-1 database ([`decode_v1`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The format version written in front of every record. Bump it when a record's layout
/// changes, and teach the migration to read the old one.
pub(crate) const RECORD_VERSION: u8 = 2;

/// The record version of format-1 databases: no checksum.
const RECORD_VERSION_1: u8 = 1;

/// The largest record [`decode`] accepts (a message body included). The limit also stops a
/// garbled length prefix from asking for an absurd allocation.
const MAX_RECORD_BYTES: usize = 512 * 1024 * 1024;

/// Bytes of the checksum at the end of a record.
const CHECKSUM_BYTES: usize = 4;

/// The bincode configuration of every record.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// The table and key a record is stored under; part of its checksum and of error texts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RecordKey<'a> {
    /// A vhost, by name.
    Vhost(&'a str),
    /// An exchange: vhost and name.
    Exchange(&'a str, &'a str),
    /// A queue: vhost and name.
    Queue(&'a str, &'a str),
    /// A binding: vhost, source, destination, destination is an exchange, routing key and
    /// encoded arguments.
    Binding(&'a str, &'a str, &'a str, bool, &'a str, &'a [u8]),
    /// A message, by id.
    Message(u64),
    /// A queue entry: vhost, queue, position.
    Entry(&'a str, &'a str, u64),
    /// The reference count of a message, by id.
    Refs(u64),
    /// The commit record.
    Commit,
    /// A policy: vhost and name.
    Policy(&'a str, &'a str),
    /// A row of the `auth` table: kind and two names.
    Auth(&'a str, &'a str, &'a str),
}

impl RecordKey<'_> {
    /// Feeds the key into a checksum: a tag per table, then each part (strings with their
    /// length first, so that no two keys feed the same bytes).
    fn feed(&self, crc: &mut crc32fast::Hasher) {
        let text = |crc: &mut crc32fast::Hasher, s: &[u8]| {
            crc.update(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
            crc.update(s);
        };
        match *self {
            RecordKey::Vhost(name) => {
                crc.update(&[1]);
                text(crc, name.as_bytes());
            }
            RecordKey::Exchange(vhost, name) | RecordKey::Queue(vhost, name) => {
                let tag = if matches!(self, RecordKey::Exchange(..)) {
                    2
                } else {
                    3
                };
                crc.update(&[tag]);
                text(crc, vhost.as_bytes());
                text(crc, name.as_bytes());
            }
            RecordKey::Binding(vhost, source, destination, to_exchange, key, arguments) => {
                crc.update(&[4]);
                for part in [vhost, source, destination] {
                    text(crc, part.as_bytes());
                }
                crc.update(&[u8::from(to_exchange)]);
                text(crc, key.as_bytes());
                text(crc, arguments);
            }
            RecordKey::Message(id) => {
                crc.update(&[5]);
                crc.update(&id.to_le_bytes());
            }
            RecordKey::Entry(vhost, queue, seq) => {
                crc.update(&[6]);
                text(crc, vhost.as_bytes());
                text(crc, queue.as_bytes());
                crc.update(&seq.to_le_bytes());
            }
            RecordKey::Refs(id) => {
                crc.update(&[7]);
                crc.update(&id.to_le_bytes());
            }
            RecordKey::Commit => crc.update(&[8]),
            RecordKey::Policy(vhost, name) => {
                crc.update(&[9]);
                text(crc, vhost.as_bytes());
                text(crc, name.as_bytes());
            }
            RecordKey::Auth(kind, first, second) => {
                crc.update(&[10]);
                for part in [kind, first, second] {
                    text(crc, part.as_bytes());
                }
            }
        }
    }

    /// The checksum of `bytes` stored under this key.
    fn checksum(&self, bytes: &[u8]) -> u32 {
        let mut crc = crc32fast::Hasher::new();
        self.feed(&mut crc);
        crc.update(bytes);
        crc.finalize()
    }
}

impl fmt::Display for RecordKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordKey::Vhost(name) => write!(f, "vhost '{name}'"),
            RecordKey::Exchange(vhost, name) => write!(f, "exchange '{name}' in vhost '{vhost}'"),
            RecordKey::Queue(vhost, name) => write!(f, "queue '{name}' in vhost '{vhost}'"),
            RecordKey::Binding(vhost, source, destination, _, key, _) => write!(
                f,
                "binding '{source}' -> '{destination}' (key '{key}') in vhost '{vhost}'"
            ),
            RecordKey::Message(id) => write!(f, "message {id}"),
            RecordKey::Entry(vhost, queue, seq) => {
                write!(f, "entry {seq} of queue '{queue}' in vhost '{vhost}'")
            }
            RecordKey::Refs(id) => write!(f, "reference count of message {id}"),
            RecordKey::Commit => f.write_str("commit record"),
            RecordKey::Policy(vhost, name) => write!(f, "policy '{name}' in vhost '{vhost}'"),
            RecordKey::Auth(kind, first, second) => write!(f, "{kind} '{first}' '{second}'"),
        }
    }
}

/// Encodes a record stored under `key`: version byte, bincode, checksum.
///
/// # Errors
///
/// [`StoreError::Backend`] if serde refuses the value (not expected for the record types).
pub(crate) fn encode<T: Serialize>(key: RecordKey<'_>, record: &T) -> Result<Vec<u8>, StoreError> {
    encode_sized(key, record, 64)
}

/// [`encode`] into a buffer of `capacity` bytes to begin with (a message's body length plus
/// a little, so that encoding it never reallocates).
///
/// # Errors
///
/// As for [`encode`].
pub(crate) fn encode_sized<T: Serialize>(
    key: RecordKey<'_>,
    record: &T,
    capacity: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(capacity);
    bytes.push(RECORD_VERSION);
    bincode::serde::encode_into_std_write(record, &mut bytes, config())
        .map_err(|e| StoreError::Backend(std::sync::Arc::new(e)))?;
    let checksum = key.checksum(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    Ok(bytes)
}

/// Encodes a value that is part of a key (binding arguments): bincode only, since the key is
/// covered by the checksum of its record.
pub(crate) fn encode_key_part<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, config())
        .map_err(|e| StoreError::Backend(std::sync::Arc::new(e)))
}

/// Decodes a record written by [`encode`] under the same `key`.
///
/// # Errors
///
/// [`StoreError::UnsupportedFormat`] for a newer version byte; [`StoreError::Corrupt`], naming
/// the record, for a value too short to hold a checksum, version `0` or `1`, a checksum that
/// does not match, bytes bincode cannot read, or bytes left over after the record.
pub(crate) fn decode<T: DeserializeOwned>(
    key: RecordKey<'_>,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let corrupt = |what: &str| StoreError::corrupt(format!("{key}: {what}"));
    if bytes.len() < 1 + CHECKSUM_BYTES {
        return Err(corrupt("record too short"));
    }
    match bytes[0] {
        RECORD_VERSION => {}
        found if found > RECORD_VERSION => {
            return Err(StoreError::UnsupportedFormat {
                found: found.into(),
                supported: RECORD_VERSION.into(),
            })
        }
        found => return Err(corrupt(&format!("record with format version {found}"))),
    }
    let (body, stored) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    if key.checksum(body) != stored {
        return Err(corrupt("checksum mismatch"));
    }
    decode_payload(&body[1..]).map_err(|e| corrupt(&e))
}

/// Decodes a record of a format-1 database (version byte `1`, no checksum), for the migration.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if the bytes are not a format-1 record of type `T`.
pub(crate) fn decode_v1<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION_1, payload)) => decode_payload(payload).map_err(StoreError::corrupt),
        Some((found, _)) => Err(StoreError::corrupt(format!(
            "format-1 database with a record of version {found}"
        ))),
        None => Err(StoreError::corrupt("empty record")),
    }
}

/// Decodes bincode that must fill `payload` exactly.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let (record, read) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| format!("undecodable record: {e}"))?;
    if read != payload.len() {
        return Err(format!(
            "{} stray bytes after a record",
            payload.len() - read
        ));
    }
    Ok(record)
}

/// Packs a message's reference count with a checksum of the message id and the count into one
/// `u64` (count in the low half), so that a damaged count is found, not trusted.
pub(crate) fn pack_refs(id: u64, count: u32) -> u64 {
    let checksum = RecordKey::Refs(id).checksum(&count.to_le_bytes());
    u64::from(checksum) << 32 | u64::from(count)
}

/// Unpacks a value written by [`pack_refs`] for message `id`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if its checksum does not match.
pub(crate) fn unpack_refs(id: u64, packed: u64) -> Result<u32, StoreError> {
    let count = packed as u32;
    if pack_refs(id, count) == packed {
        Ok(count)
    } else {
        Err(StoreError::corrupt(format!(
            "{}: checksum mismatch",
            RecordKey::Refs(id)
        )))
    }
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

    /// The key most tests store under.
    const KEY: RecordKey<'static> = RecordKey::Message(42);

    /// Asserts that a record survives encode + decode unchanged.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(record: T) {
        let bytes = encode(KEY, &record).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<T>(KEY, &bytes).unwrap(), record);
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
        let mut bytes = encode(KEY, &VhostRecord { name: "/".into() }).unwrap();
        bytes[0] = RECORD_VERSION + 1;
        assert!(matches!(
            decode::<VhostRecord>(KEY, &bytes),
            Err(StoreError::UnsupportedFormat {
                found: 3,
                supported: 2
            })
        ));
    }

    #[test]
    fn garbage_is_corrupt() {
        let good = encode(KEY, &sample_message()).unwrap();
        let cases: [&[u8]; 4] = [
            &[],
            &[0, 1, 2, 3, 4, 5],
            &good[..good.len() / 2],
            &[2, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ];
        for bytes in cases {
            assert!(matches!(
                decode::<MessageRecord>(KEY, bytes),
                Err(StoreError::Corrupt { .. })
            ));
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            decode::<MessageRecord>(KEY, &long),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_caught_and_so_is_another_key() {
        let good = encode(KEY, &sample_message()).unwrap();
        for bit in 0..good.len() * 8 {
            let mut bytes = good.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(decode::<MessageRecord>(KEY, &bytes).is_err(), "bit {bit}");
        }
        let err = decode::<MessageRecord>(RecordKey::Message(43), &good).unwrap_err();
        assert!(
            err.to_string().contains("message 43: checksum mismatch"),
            "{err}"
        );
        let entry = encode(RecordKey::Entry("/", "q", 1), &MessageId(1)).unwrap();
        assert!(decode::<MessageId>(RecordKey::Entry("/", "q", 3), &entry).is_err());
        assert!(decode::<MessageId>(RecordKey::Entry("/", "r", 1), &entry).is_err());
    }

    #[test]
    fn format_1_records_are_read_only_by_the_migration() {
        let mut v1 = vec![1u8];
        v1.extend(
            bincode::serde::encode_to_vec(&VhostRecord { name: "/".into() }, config()).unwrap(),
        );
        assert_eq!(decode_v1::<VhostRecord>(&v1).unwrap().name, "/");
        assert!(decode::<VhostRecord>(RecordKey::Vhost("/"), &v1).is_err());
    }

    #[test]
    fn reference_counts_carry_a_checksum() {
        let packed = pack_refs(9, 3);
        assert_eq!(unpack_refs(9, packed).unwrap(), 3);
        assert!(unpack_refs(8, packed).is_err());
        assert!(unpack_refs(9, packed ^ 1).is_err());
        assert!(unpack_refs(9, packed ^ (1 << 40)).is_err());
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<MessageRecord>(KEY, &bytes);
            let _ = decode::<ExchangeRecord>(KEY, &bytes);
            let _ = decode_v1::<MessageRecord>(&bytes);
        }
    }
}
