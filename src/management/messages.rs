//! Publishing to an exchange and getting from a queue, for debugging: what
//! `rabbitmqadmin publish` and `rabbitmqadmin get` call.

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use super::auth::ApiUser;
use super::error::ApiError;
use super::json::{self, json_to_properties, properties_to_json};
use super::request_body::Body;
use super::server::Api;
use super::topology::{blocking, channel};
use crate::{Delivery, GetOptions, Message, PublishOptions};

/// The most messages one `get` fetches.
const MAX_GET: u64 = 10_000;

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
        .route("/api/queues/{vhost}/{name}/get", post(get))
}

/// A required field missing from a body, in the plugin's words.
fn missing(key: &str) -> ApiError {
    ApiError::BadRequest(json!(format!("[{{key_missing,{key}}}]")))
}

/// `POST /api/exchanges/{vhost}/{name}/publish`: `{"routed": true}` when some queue took
/// the message.
async fn publish(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body = json::body(&body)?;
    let routing_key = json::text(&body, "routing_key")?
        .ok_or_else(|| missing("routing_key"))?
        .to_owned();
    let payload = json::text(&body, "payload")?.ok_or_else(|| missing("payload"))?;
    let payload =
        match json::text(&body, "payload_encoding")?.ok_or_else(|| missing("payload_encoding"))? {
            "string" => payload.as_bytes().to_vec(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown payload_encoding '{other}'"
                )))
            }
        };
    let properties = json_to_properties(
        body.get("properties")
            .ok_or_else(|| missing("properties"))?,
    )?;
    let exchange = if name == "amq.default" {
        String::new()
    } else {
        name
    };
    if api.broker.exchange_stats(&vhost, &exchange).is_err() {
        return Err(ApiError::NotFound);
    }
    let broker = api.broker.clone();
    blocking(move || {
        let ch = channel(&broker, &user, &vhost)?;
        let returns = ch.returns();
        let message = Message::with_properties(payload, properties);
        ch.basic_publish_with(
            &exchange,
            &routing_key,
            PublishOptions::mandatory(),
            message,
        )?;
        let routed = returns.try_recv().is_err();
        Ok(Json(json!({ "routed": routed })))
    })
    .await
}

/// What to do with each fetched message.
#[derive(Clone, Copy)]
enum AckMode {
    /// Ack, or with `false` requeue (after all are fetched).
    Ack(bool),
    /// Reject, requeueing or not.
    Reject(bool),
}

/// `POST /api/queues/{vhost}/{name}/get`: up to `count` messages, each with its payload
/// (as a string when it is UTF-8 and `encoding` is `auto`, base64 otherwise).
async fn get(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body = json::body(&body)?;
    let count = json::integer(&body, "count")?
        .ok_or_else(|| missing("count"))?
        .min(MAX_GET);
    let mode = match json::text(&body, "ackmode")?.ok_or_else(|| missing("ackmode"))? {
        "ack_requeue_true" => AckMode::Ack(false),
        "ack_requeue_false" => AckMode::Ack(true),
        "reject_requeue_true" => AckMode::Reject(true),
        "reject_requeue_false" => AckMode::Reject(false),
        other => return Err(ApiError::bad_request(format!("unknown ackmode '{other}'"))),
    };
    let base64_always = match json::text(&body, "encoding")?.ok_or_else(|| missing("encoding"))? {
        "auto" => false,
        "base64" => true,
        other => return Err(ApiError::bad_request(format!("unknown encoding '{other}'"))),
    };
    let truncate =
        json::integer(&body, "truncate")?.map(|t| usize::try_from(t).unwrap_or(usize::MAX));
    if api.broker.queue_stats(&vhost, &name).is_err() {
        // The plugin answers with the AMQP error, code name included.
        let error = crate::Error::QueueNotFound { vhost, queue: name };
        return Err(ApiError::NotFoundBecause(error.to_string()));
    }
    let broker = api.broker.clone();
    blocking(move || {
        let ch = channel(&broker, &user, &vhost)?;
        let mut fetched: Vec<Delivery> = Vec::new();
        while (fetched.len() as u64) < count {
            match ch.basic_get(&name, GetOptions::default())? {
                Some(d) => fetched.push(d),
                None => break,
            }
        }
        let messages: Vec<Value> = fetched
            .iter()
            .map(|d| message(d, base64_always, truncate))
            .collect();
        for d in fetched {
            match mode {
                AckMode::Ack(true) => d.ack()?,
                AckMode::Ack(false) => d.nack(true)?,
                AckMode::Reject(requeue) => d.reject(requeue)?,
            }
        }
        Ok(Json(Value::Array(messages)))
    })
    .await
}

/// One fetched message, as the plugin shows it.
fn message(d: &Delivery, base64_always: bool, truncate: Option<usize>) -> Value {
    let body = d.body();
    let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(text) if !base64_always => (text.to_owned(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    json!({
        "payload_bytes": body.len(),
        "redelivered": d.redelivered(),
        "exchange": d.exchange(),
        "routing_key": d.routing_key(),
        "message_count": d.message_count().unwrap_or(0),
        "properties": properties_to_json(d.properties()),
        "payload": payload,
        "payload_encoding": encoding,
    })
}
