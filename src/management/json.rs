//! Field tables, message properties and flags to and from JSON, as the management plugin
//! writes and reads them: plain JSON values (integers, strings, booleans, objects, arrays).

use serde_json::{Map, Number, Value};

use super::error::ApiError;
use crate::{DeliveryMode, FieldTable, FieldValue, Properties};

/// Writes a field table as a JSON object.
pub(crate) fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.to_owned(), value_to_json(v)))
            .collect(),
    )
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

/// Reads a JSON object (or `null`, an empty table) as a field table; integers become
/// signed 64-bit values (`l`), as the management plugin reads them.
pub(crate) fn json_to_table(value: &Value) -> Result<FieldTable, ApiError> {
    match value {
        Value::Null => Ok(FieldTable::new()),
        Value::Object(map) => {
            let mut table = FieldTable::new();
            for (k, v) in map {
                table.insert(k.as_str(), json_to_value(v));
            }
            Ok(table)
        }
        // The plugin also accepts an empty list for "no arguments".
        Value::Array(a) if a.is_empty() => Ok(FieldTable::new()),
        other => Err(ApiError::bad_request(format!(
            "arguments must be a JSON object, not {other}"
        ))),
    }
}

fn json_to_value(value: &Value) -> FieldValue {
    match value {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::String(s.clone()),
        Value::Array(a) => FieldValue::Array(a.iter().map(json_to_value).collect()),
        Value::Object(_) => FieldValue::Table(json_to_table(value).unwrap_or_default()),
    }
}

/// Reads a boolean field of a request body: `true`/`false` or the strings `"true"` /
/// `"false"` (which `rabbitmqadmin` sends); `default` when absent.
pub(crate) fn flag(body: &Value, key: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(ApiError::BadRequest(Value::Array(vec![
            Value::from("not_boolean"),
            match other {
                Value::String(s) => Value::String(s.clone()),
                v => Value::String(v.to_string()),
            },
        ]))),
    }
}

/// Reads a string field of a request body; `None` when absent.
pub(crate) fn text<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a string, not {other}"
        ))),
    }
}

/// Reads an integer field that may come as a number or a string (`"count": "1"`).
pub(crate) fn integer(body: &Value, key: &str) -> Result<Option<u64>, ApiError> {
    let bad = || ApiError::bad_request(format!("{key} must be a non-negative integer"));
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// Parses a request body: empty means `{}`.
pub(crate) fn body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| ApiError::bad_request("not_json"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::bad_request("not_json"))
    }
}

/// Writes message properties as the management plugin does: only those set, and an empty
/// list (not an object) when none is.
pub(crate) fn properties_to_json(p: &Properties) -> Value {
    let mut map = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(key.to_owned(), value);
        }
    };
    put("content_type", p.content_type.clone().map(Value::from));
    put(
        "content_encoding",
        p.content_encoding.clone().map(Value::from),
    );
    put("priority", p.priority.map(Value::from));
    put("correlation_id", p.correlation_id.clone().map(Value::from));
    put("reply_to", p.reply_to.clone().map(Value::from));
    put("expiration", p.expiration.clone().map(Value::from));
    put("message_id", p.message_id.clone().map(Value::from));
    put("timestamp", p.timestamp.map(Value::from));
    put("type", p.message_type.clone().map(Value::from));
    put("user_id", p.user_id.clone().map(Value::from));
    put("app_id", p.app_id.clone().map(Value::from));
    put("cluster_id", p.cluster_id.clone().map(Value::from));
    put(
        "delivery_mode",
        p.delivery_mode.map(|m| Value::from(m.as_u8())),
    );
    put("headers", p.headers.as_ref().map(table_to_json));
    if map.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(map)
    }
}

/// Reads the `properties` of a publish request.
pub(crate) fn json_to_properties(value: &Value) -> Result<Properties, ApiError> {
    let map = match value {
        Value::Object(map) => map,
        Value::Array(a) if a.is_empty() => return Ok(Properties::default()),
        _ => return Err(ApiError::bad_request("properties must be a JSON object")),
    };
    let mut p = Properties::default();
    for (key, v) in map {
        let text = || -> Result<String, ApiError> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "property {key} must be a string"
                ))),
            }
        };
        let number = || -> Result<u64, ApiError> {
            match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| ApiError::bad_request(format!("property {key} must be an integer")))
        };
        match key.as_str() {
            "content_type" => p.content_type = Some(text()?),
            "content_encoding" => p.content_encoding = Some(text()?),
            "correlation_id" => p.correlation_id = Some(text()?),
            "reply_to" => p.reply_to = Some(text()?),
            "expiration" => p.expiration = Some(text()?),
            "message_id" => p.message_id = Some(text()?),
            "type" => p.message_type = Some(text()?),
            "user_id" => p.user_id = Some(text()?),
            "app_id" => p.app_id = Some(text()?),
            "cluster_id" => p.cluster_id = Some(text()?),
            "timestamp" => p.timestamp = Some(number()?),
            "priority" => {
                let n = number()?;
                p.priority = Some(u8::try_from(n).map_err(|_| {
                    ApiError::bad_request("property priority must be between 0 and 255")
                })?);
            }
            "delivery_mode" => {
                let n = number()?;
                p.delivery_mode = Some(DeliveryMode::from_u8(u8::try_from(n).unwrap_or(0)));
            }
            "headers" => p.headers = Some(json_to_table(v)?),
            other => return Err(ApiError::bad_request(format!("unknown property '{other}'"))),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_round_trip() {
        let value =
            json!({"x-max-length": 10, "s": "a", "b": true, "nested": {"f": 1.5}, "a": [1, "x"]});
        let table = json_to_table(&value).expect("a table");
        assert_eq!(table.get("x-max-length"), Some(&FieldValue::I64(10)));
        assert_eq!(table_to_json(&table), value);
    }

    #[test]
    fn flags_accept_strings() {
        let body = json!({"durable": "true", "auto_delete": false, "bad": "maybe"});
        assert!(flag(&body, "durable", false).expect("ok"));
        assert!(!flag(&body, "auto_delete", true).expect("ok"));
        assert!(flag(&body, "missing", true).expect("ok"));
        assert!(flag(&body, "bad", true).is_err());
    }

    #[test]
    fn properties_round_trip() {
        let value = json!({"delivery_mode": 2, "headers": {"h": 1}, "content_type": "text/plain"});
        let p = json_to_properties(&value).expect("properties");
        assert_eq!(p.delivery_mode, Some(DeliveryMode::Persistent));
        assert_eq!(properties_to_json(&p), value);
        assert_eq!(properties_to_json(&Properties::default()), json!([]));
    }
}
