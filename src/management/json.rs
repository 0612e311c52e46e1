//! Field tables, message properties and flags to and from JSON, as the management plugin
//! writes and reads them: plain JSON values (integers, strings, booleans, objects, arrays).

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::definitions::json::table_from_json;
use crate::{DeliveryMode, FieldTable, Properties};

pub(crate) use crate::definitions::json::table_to_json;

/// Reads a JSON object (or `null`, an empty table) as a field table; integers become
/// signed 64-bit values (`l`), as the management plugin reads them.
pub(crate) fn json_to_table(value: &Value) -> Result<FieldTable, ApiError> {
    match value {
        Value::Null => Ok(FieldTable::new()),
        Value::Object(map) => Ok(table_from_json(map)),
        // The plugin also accepts an empty list for "no arguments".
        Value::Array(a) if a.is_empty() => Ok(FieldTable::new()),
        other => Err(ApiError::bad_request(format!(
            "arguments must be a JSON object, not {other}"
        ))),
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
    fn tables_accept_null_and_empty_lists() {
        let table = json_to_table(&json!({"x-max-length": 10})).expect("a table");
        assert_eq!(table.get("x-max-length"), Some(&crate::FieldValue::I64(10)));
        assert!(json_to_table(&Value::Null).expect("empty").is_empty());
        assert!(json_to_table(&json!([])).expect("empty").is_empty());
        assert!(json_to_table(&json!("x")).is_err());
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
