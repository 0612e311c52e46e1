//! AMQP field tables: the typed key/value maps used for arguments and headers.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A value in a [`FieldTable`], one arm per AMQP 0-9-1 field type (as RabbitMQ reads them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FieldValue {
    /// `t`: a boolean.
    Bool(bool),
    /// `b`: a signed 8-bit integer.
    I8(i8),
    /// `B`: an unsigned 8-bit integer.
    U8(u8),
    /// `s`: a signed 16-bit integer.
    I16(i16),
    /// `u`: an unsigned 16-bit integer.
    U16(u16),
    /// `I`: a signed 32-bit integer.
    I32(i32),
    /// `i`: an unsigned 32-bit integer.
    U32(u32),
    /// `l`: a signed 64-bit integer.
    I64(i64),
    /// `f`: a 32-bit float.
    F32(f32),
    /// `d`: a 64-bit float.
    F64(f64),
    /// `D`: a decimal with `scale` digits after the point.
    Decimal {
        /// Number of decimal digits after the point.
        scale: u8,
        /// The unscaled value.
        value: u32,
    },
    /// `S`: a long string that is valid UTF-8.
    String(String),
    /// `x` (or a non-UTF-8 `S`): raw bytes.
    Bytes(Bytes),
    /// `T`: a timestamp in seconds since the Unix epoch.
    Timestamp(u64),
    /// `F`: a nested table.
    Table(FieldTable),
    /// `A`: an array of values.
    Array(Vec<FieldValue>),
    /// `V`: no value.
    Void,
}

impl fmt::Display for FieldValue {
    /// Writes the value the way RabbitMQ's error texts show it: strings without quotes,
    /// numbers and booleans plainly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::String(s) => f.write_str(s),
            FieldValue::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
            FieldValue::F32(v) => write!(f, "{v}"),
            FieldValue::F64(v) => write!(f, "{v}"),
            FieldValue::Decimal { scale, value } => write!(f, "{{{scale},{value}}}"),
            FieldValue::Table(t) => write!(f, "{t:?}"),
            FieldValue::Array(a) => write!(f, "{a:?}"),
            FieldValue::Void => f.write_str("void"),
            other => match other.as_i64() {
                Some(v) => write!(f, "{v}"),
                None => write!(f, "{other:?}"),
            },
        }
    }
}

impl FieldValue {
    /// Returns the value as an `i64` if it is an integer of any width.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            FieldValue::Timestamp(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Returns the value as an `f64` if it is a number of any type (RabbitMQ compares header
    /// values numerically across integer and float types).
    pub fn as_number(&self) -> Option<f64> {
        match *self {
            FieldValue::F32(v) => Some(v.into()),
            FieldValue::F64(v) => Some(v),
            FieldValue::Timestamp(_) => None,
            // Integers above 2^53 lose precision here; equal integers still compare equal.
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// Returns RabbitMQ's name for the value's type, as used in its error texts (e.g.
    /// `signedint`, `longstr`).
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Bool(_) => "bool",
            FieldValue::I8(_) => "byte",
            FieldValue::U8(_) => "unsignedbyte",
            FieldValue::I16(_) => "short",
            FieldValue::U16(_) => "unsignedshort",
            FieldValue::I32(_) => "signedint",
            FieldValue::U32(_) => "unsignedint",
            FieldValue::I64(_) => "long",
            FieldValue::F32(_) => "float",
            FieldValue::F64(_) => "double",
            FieldValue::Decimal { .. } => "decimal",
            FieldValue::String(_) => "longstr",
            FieldValue::Bytes(_) => "binary",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Table(_) => "table",
            FieldValue::Array(_) => "array",
            FieldValue::Void => "void",
        }
    }

    /// Returns the value as a string slice if it is a UTF-8 long string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::String(s) => Some(s),
            FieldValue::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Returns the value as a boolean if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// Returns the nested table if the value is one.
    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            FieldValue::Table(t) => Some(t),
            _ => None,
        }
    }

    /// Returns the elements if the value is an array.
    pub fn as_array(&self) -> Option<&[FieldValue]> {
        match self {
            FieldValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

macro_rules! field_value_from {
    ($($t:ty => $arm:ident),* $(,)?) => {
        $(impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$arm(v.into())
            }
        })*
    };
}

field_value_from! {
    bool => Bool, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, f32 => F32, f64 => F64, String => String, &str => String, Bytes => Bytes,
    FieldTable => Table, Vec<FieldValue> => Array,
}

/// An AMQP field table: string keys to typed [`FieldValue`]s, kept sorted by key.
///
/// Used for exchange, queue, binding and consumer arguments and for message headers.
///
/// # Examples
///
/// ```
/// use warrenmq::{FieldTable, FieldValue};
///
/// let mut args = FieldTable::new();
/// args.insert("x-max-length", 10);
/// assert_eq!(args.get("x-max-length").and_then(FieldValue::as_i64), Some(10));
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldTable(BTreeMap<String, FieldValue>);

impl FieldTable {
    /// Creates an empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a value, returning the one it replaced.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<FieldValue>,
    ) -> Option<FieldValue> {
        self.0.insert(key.into(), value.into())
    }

    /// Adds a value and returns the table, for building tables in one expression.
    #[must_use = "with returns the extended table"]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.insert(key, value);
        self
    }

    /// Returns the value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.get(key)
    }

    /// Removes and returns the value stored under `key`.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        self.0.remove(key)
    }

    /// Returns `true` if the table has an entry for `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns `true` if the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl fmt::Debug for FieldTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<FieldValue>> FromIterator<(K, V)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        FieldTable(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = (&'a String, &'a FieldValue);
    type IntoIter = std::collections::btree_map::Iter<'a, String, FieldValue>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
