//! The routes over the wire listener's clients: connections (listed, shown, closed with
//! `DELETE` as RabbitMQ does, 320 `CONNECTION_FORCED - Closed via management plugin`),
//! their channels and their consumers, in the management plugin's JSON shapes, per vhost
//! or all.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::ApiUser;
use super::error::ApiError;
use super::json::table_to_json;
use super::query;
use super::server::Api;
use super::visibility;
use crate::amqp::{ChannelView, Tracked};

/// The routes that do not need permissions in a vhost.
pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/connections", get(list_connections))
        .route(
            "/api/connections/{name}",
            get(get_connection).delete(close_connection),
        )
        .route("/api/connections/{name}/channels", get(connection_channels))
        .route("/api/channels", get(list_channels))
        .route("/api/channels/{name}", get(get_channel))
        .route("/api/consumers", get(list_consumers))
        // As in RabbitMQ, a vhost's consumers need no permissions in it: the listing shows
        // only those the user sees anyway.
        .route("/api/consumers/{vhost}", get(list_consumers))
}

/// The per-vhost listings, for users with permissions in the vhost (see `visibility`).
pub(super) fn vhost_routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/vhosts/{vhost}/connections", get(list_connections))
        .route("/api/vhosts/{vhost}/channels", get(list_channels))
}

/// The listing parameters.
type Params = Query<HashMap<String, String>>;

/// The vhost of a per-vhost listing (`None` for the listing of all).
type InVhost = Option<Path<String>>;

/// The user a connection logged in as (`None` during its handshake).
fn owner(t: &Tracked) -> Option<&str> {
    t.login.get().map(|l| l.user.as_str())
}

/// The open connections `user` sees (see [`visibility::sees_client`]), of one vhost (404
/// if there is no such vhost) or all.
fn connections(api: &Api, user: &ApiUser, vhost: &InVhost) -> Result<Vec<Arc<Tracked>>, ApiError> {
    let vhost = vhost.as_ref().map(|Path(v)| v.as_str());
    if let Some(v) = vhost {
        if !api.broker.vhosts().iter().any(|known| known == v) {
            return Err(ApiError::NotFound);
        }
    }
    let all = api.wire.registry.connections();
    Ok(all
        .into_iter()
        .filter(|t| vhost.is_none_or(|v| t.login.get().is_some_and(|l| l.vhost == v)))
        .filter(|t| visibility::sees_client(user, owner(t)))
        .collect())
}

/// The open connection named `name`: 404 if there is none, RabbitMQ's 401 `User not
/// authorised to access object` if it is another user's and `user` may not see it.
fn connection_named(api: &Api, user: &ApiUser, name: &str) -> Result<Arc<Tracked>, ApiError> {
    let t = api.wire.registry.find(name).ok_or(ApiError::NotFound)?;
    if visibility::sees_client(user, owner(&t)) {
        Ok(t)
    } else {
        Err(ApiError::NotAuthorised(visibility::NOT_OBJECT))
    }
}

// ---- connections ----

/// A connection as the management plugin shows it.
fn connection(api: &Api, t: &Tracked) -> Value {
    let login = t.login.get();
    let user = login.map(|l| l.user.as_str());
    let (received, sent) = t.octets();
    let tls = t.tls.as_ref();
    json!({
        "auth_mechanism": login.map(|l| l.auth_mechanism.as_str()),
        "channel_max": login.map(|l| l.channel_max),
        "channels": t.channels.lock().len(),
        "client_properties": login.map_or(json!({}), |l| table_to_json(&l.client_properties)),
        "connected_at": t.connected_at,
        "frame_max": login.map(|l| l.frame_max),
        "host": t.local.ip().to_string(),
        "name": t.name,
        "node": api.node,
        "peer_cert_issuer": Value::Null,
        "peer_cert_subject": Value::Null,
        "peer_cert_validity": Value::Null,
        "peer_host": t.peer.ip().to_string(),
        "peer_port": t.peer.port(),
        "port": t.local.port(),
        "protocol": "AMQP 0-9-1",
        "recv_oct": received,
        "recv_oct_details": {"rate": 0.0},
        "send_oct": sent,
        "send_oct_details": {"rate": 0.0},
        "send_pend": 0,
        "ssl": tls.is_some(),
        "ssl_cipher": tls.map(|s| s.cipher.as_str()),
        "ssl_hash": Value::Null,
        "ssl_key_exchange": Value::Null,
        "ssl_protocol": tls.map(|s| s.protocol.as_str()),
        "state": "running",
        "timeout": login.map(|l| l.heartbeat),
        "type": "network",
        "user": user,
        "user_who_performed_action": user,
        "vhost": login.map(|l| l.vhost.as_str()),
    })
}

async fn list_connections(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    vhost: InVhost,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = connections(&api, &user, &vhost)?
        .iter()
        .map(|t| connection(&api, t))
        .collect();
    Ok(Json(query::listing(items, &q)?))
}

async fn get_connection(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let t = connection_named(&api, &user, &name)?;
    Ok(Json(query::object(connection(&api, &t), &q)))
}

/// Closes a connection as RabbitMQ's plugin does: the client gets `connection.close` 320
/// `CONNECTION_FORCED - Closed via management plugin`. A user may close its own
/// connections, an administrator any (a `monitoring` user sees others' but may not close
/// them: 401 `User not authorised to access object`).
async fn close_connection(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = connection_named(&api, &user, &name)?;
    if !user.is_administrator() && owner(&t) != Some(user.name.as_str()) {
        return Err(ApiError::NotAuthorised(visibility::NOT_OBJECT));
    }
    tracing::info!(connection = %t.name, "closing a connection at the management API's request");
    t.force_close();
    Ok(StatusCode::NO_CONTENT)
}

async fn connection_channels(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let t = connection_named(&api, &user, &name)?;
    let items = t.channels().iter().map(|c| channel(&api, &t, c)).collect();
    Ok(Json(query::listing(items, &q)?))
}

// ---- channels ----

/// A channel's name: its connection's, then its number in brackets.
fn channel_name(t: &Tracked, number: u16) -> String {
    format!("{} ({number})", t.name)
}

/// A channel as the management plugin shows it.
fn channel(api: &Api, t: &Tracked, c: &ChannelView) -> Value {
    let login = t.login.get();
    let user = login.map(|l| l.user.as_str());
    json!({
        "acks_uncommitted": 0,
        "confirm": c.confirm.load(Ordering::Relaxed),
        "connection_details": {
            "name": t.name,
            "peer_host": t.peer.ip().to_string(),
            "peer_port": t.peer.port(),
        },
        "consumer_count": c.consumers.lock().len(),
        "global_prefetch_count": 0,
        "messages_unacknowledged": c.channel.unacked_count(),
        "messages_uncommitted": 0,
        "messages_unconfirmed": 0,
        "name": channel_name(t, c.number),
        "node": api.node,
        "number": c.number,
        "prefetch_count": c.prefetch_count.load(Ordering::Relaxed),
        "state": "running",
        "transactional": c.transactional.load(Ordering::Relaxed),
        "user": user,
        "user_who_performed_action": user,
        "vhost": login.map(|l| l.vhost.as_str()),
    })
}

/// Every channel of `connections`, with its connection.
fn channels(connections: &[Arc<Tracked>]) -> Vec<(&Tracked, Arc<ChannelView>)> {
    connections
        .iter()
        .flat_map(|t| t.channels().into_iter().map(move |c| (&**t, c)))
        .collect()
}

async fn list_channels(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    vhost: InVhost,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let connections = connections(&api, &user, &vhost)?;
    let items = channels(&connections)
        .iter()
        .map(|(t, c)| channel(&api, t, c))
        .collect();
    Ok(Json(query::listing(items, &q)?))
}

async fn get_channel(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let connections = api.wire.registry.connections();
    let found = channels(&connections)
        .into_iter()
        .find(|(t, c)| channel_name(t, c.number) == name);
    let (t, c) = found.ok_or(ApiError::NotFound)?;
    if !visibility::sees_client(&user, owner(t)) {
        return Err(ApiError::NotAuthorised(visibility::NOT_OBJECT));
    }
    Ok(Json(query::object(channel(&api, t, &c), &q)))
}

// ---- consumers ----

/// The consumers of `connections`, as the management plugin shows them.
fn consumers(api: &Api, connections: &[Arc<Tracked>]) -> Vec<Value> {
    let mut items = Vec::new();
    for (t, c) in channels(connections) {
        let login = t.login.get();
        let vhost = login.map(|l| l.vhost.as_str());
        let details = json!({
            "connection_name": t.name,
            "name": channel_name(t, c.number),
            "node": api.node,
            "number": c.number,
            "peer_host": t.peer.ip().to_string(),
            "peer_port": t.peer.port(),
            "user": login.map(|l| l.user.as_str()),
        });
        for (tag, consumer) in c.consumers.lock().iter() {
            items.push(json!({
                "ack_required": consumer.ack_required,
                "active": true,
                "activity_status": "up",
                "arguments": table_to_json(&consumer.arguments),
                "channel_details": details,
                "consumer_tag": tag,
                "exclusive": consumer.exclusive,
                "prefetch_count": consumer.prefetch_count,
                "queue": {"name": consumer.queue, "vhost": vhost},
            }));
        }
    }
    items
}

async fn list_consumers(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    vhost: InVhost,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = consumers(&api, &connections(&api, &user, &vhost)?);
    Ok(Json(query::listing(items, &q)?))
}
