//! Field tables as JSON and back, as RabbitMQ writes arguments and policy definitions in its
//! definitions files and its management API: plain JSON values (integers, strings, booleans,
//! objects, arrays). Shared by the definitions import/export and the management API.

use serde_json::{Map, Number, Value};

use crate::{FieldTable, FieldValue};

/// Writes a field table as a JSON object.
pub(crate) fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(object_of(table))
}

/// Writes a field table as the map of a JSON object.
pub(crate) fn object_of(table: &FieldTable) -> Map<String, Value> {
    table
        .iter()
        .map(|(k, v)| (k.to_owned(), value_to_json(v)))
        .collect()
}

fn value_to_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => float(f64::from(*f)),
        FieldValue::F64(f) => float(*f),
        FieldValue::Decimal { scale, value } => {
            float(f64::from(*value) / 10f64.powi(i32::from(*scale)))
        }
        FieldValue::String(s) => Value::String(s.clone()),
        FieldValue::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        FieldValue::Timestamp(t) => Value::from(*t),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        FieldValue::Void => Value::Null,
        other => other.as_i64().map_or(Value::Null, Value::from),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Reads a JSON object as a field table; integers become signed 64-bit values (`l`), as
/// RabbitMQ reads them (it compares integer arguments by value, whatever their width).
pub(crate) fn table_from_json(object: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::new();
    for (k, v) in object {
        table.insert(k.as_str(), value_from_json(v));
    }
    table
}

fn value_from_json(value: &Value) -> FieldValue {
    match value {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::String(s.clone()),
        Value::Array(a) => FieldValue::Array(a.iter().map(value_from_json).collect()),
        Value::Object(map) => FieldValue::Table(table_from_json(map)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_round_trip() {
        let value =
            json!({"x-max-length": 10, "s": "a", "b": true, "nested": {"f": 1.5}, "a": [1, "x"]});
        let table = table_from_json(value.as_object().expect("an object"));
        assert_eq!(table.get("x-max-length"), Some(&FieldValue::I64(10)));
        assert_eq!(table.get("b"), Some(&FieldValue::Bool(true)));
        assert_eq!(table_to_json(&table), value);
    }
}
