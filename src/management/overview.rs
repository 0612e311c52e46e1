//! The routes about the node: overview, nodes, whoami, the aliveness test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::ApiUser;
use super::error::ApiError;
use super::objects;
use super::query;
use super::server::Api;
use super::system::System;
use super::topology::blocking;
use super::visibility;
use crate::definitions::RABBITMQ_VERSION;
use crate::{FieldTable, GetOptions, Message, QueueDeclareOptions};

/// The exchange kinds every vhost offers.
const EXCHANGE_TYPES: [(&str, &str); 5] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
    ("x-delayed-message", "Delayed Message Exchange"),
];

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{node}", get(node))
        .route("/api/whoami", get(whoami))
        .route("/api/extensions", get(|| async { Json(json!([])) }))
}

/// The aliveness test, for users with permissions in the vhost (see `visibility`).
pub(super) fn vhost_routes() -> Router<Arc<Api>> {
    Router::new().route("/api/aliveness-test/{vhost}", get(aliveness))
}

/// The listeners, as RabbitMQ lists them: AMQP, AMQP over TLS (`amqp/ssl`), HTTP.
fn listeners(api: &Api) -> Value {
    let listener = |protocol: &str, addr: SocketAddr| json!({"node": api.node, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port()});
    let mut list = vec![listener("amqp", api.amqp_addr)];
    for addr in api.wire.tls_addrs.lock().iter() {
        list.push(listener("amqp/ssl", *addr));
    }
    list.push(listener("http", api.http_addr));
    Value::Array(list)
}

fn exchange_types() -> Value {
    EXCHANGE_TYPES
        .iter()
        .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
        .collect()
}

/// The overview. A `management` or `policymaker` user gets the totals of the vhosts it has
/// permissions in and of its own connections, without the node's `listeners`,
/// `contexts`, `node` and the consumer count, as RabbitMQ shows it to them; `monitoring`
/// and `administrator` users get the whole broker.
async fn overview(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let broker = &api.broker;
    let whole = user.is_monitor();
    let vhosts = if whole {
        broker.vhosts()
    } else {
        visibility::vhosts_of(broker, &user)
    };
    let (mut queues, mut exchanges, mut consumers) = (0, 0, 0);
    for vhost in &vhosts {
        let list = broker.list_queues(vhost).unwrap_or_default();
        consumers += list.iter().map(|q| q.consumers).sum::<usize>();
        queues += list.len();
        exchanges += broker.list_exchanges(vhost).map_or(0, |e| e.len());
    }
    let (message_stats, queue_totals) =
        objects::totals(broker, &api.rates, (!whole).then_some(&vhosts[..]));
    let clients: Vec<_> = (api.wire.registry.connections().into_iter())
        .filter(|t| visibility::sees_client(&user, t.login.get().map(|l| l.user.as_str())))
        .collect();
    let channels: usize = clients.iter().map(|t| t.channels.lock().len()).sum();
    let mut object_totals = json!({
        "channels": channels,
        "connections": clients.len(),
        "exchanges": exchanges,
        "queues": queues,
    });
    let mut overview = json!({
        "management_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": api.node,
        "rates_mode": "basic",
        "disable_stats": false,
        "enable_queue_totals": false,
        "exchange_types": exchange_types(),
        "message_stats": message_stats,
        "queue_totals": queue_totals,
        "statistics_db_event_queue": 0,
    });
    if whole {
        object_totals["consumers"] = json!(consumers);
        overview["node"] = json!(api.node);
        overview["listeners"] = listeners(&api);
        overview["contexts"] = json!([
            {"node": api.node, "description": "RabbitMQ Management", "path": "/", "port": api.http_addr.port().to_string()},
        ]);
    }
    overview["object_totals"] = object_totals;
    Json(query::object(overview, &q))
}

fn node_json(api: &Api) -> Value {
    let sys = System::now();
    let stats = api.broker.stats();
    json!({
        "name": api.node,
        "type": "disc",
        "running": true,
        "os_pid": sys.pid.to_string(),
        "mem_used": sys.resident_bytes,
        "mem_limit": stats.memory_high_watermark.map_or(sys.memory_limit_bytes, |w| w as u64),
        "mem_alarm": stats.memory_alarm,
        "disk_free_limit": stats.disk_free_limit,
        "disk_free": stats.disk_free,
        "disk_free_alarm": stats.disk_alarm,
        "fd_used": sys.fds_open,
        "fd_total": sys.fds_limit,
        "sockets_used": api.wire.connection_count(),
        "sockets_total": sys.fds_limit,
        "processors": sys.processors,
        "uptime": u64::try_from(api.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "partitions": [],
        "applications": [{"name": "warren", "description": "Warren", "version": env!("CARGO_PKG_VERSION")}],
    })
}

/// The nodes: `monitoring` and `administrator` users only (401 `Not monitor user`).
async fn nodes(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    user.require_monitor()?;
    Ok(Json(query::listing(vec![node_json(&api)], &q)?))
}

async fn node(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require_monitor()?;
    if name != api.node {
        return Err(ApiError::NotFound);
    }
    Ok(Json(node_json(&api)))
}

async fn whoami(Extension(user): Extension<ApiUser>) -> Json<Value> {
    Json(json!({"name": user.name, "tags": user.tags}))
}

/// Declares `aliveness-test` in the vhost, publishes a message to it and gets it back, as
/// RabbitMQ's aliveness test does (which needs permissions in the vhost, even of an
/// administrator: 401 `Access refused.`).
async fn aliveness(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !api.broker.vhosts().contains(&vhost) {
        return Err(ApiError::NotFound);
    }
    visibility::may_write(&api.broker, &user, &vhost)?;
    let broker = api.broker.clone();
    blocking(move || {
        let ch = broker.connect(&vhost)?.open_channel()?;
        ch.queue_declare(
            "aliveness-test",
            QueueDeclareOptions::default(),
            FieldTable::new(),
        )?;
        ch.basic_publish("", "aliveness-test", Message::new("test_message"))?;
        match ch.basic_get("aliveness-test", GetOptions::no_ack())? {
            Some(d) if d.body().as_ref() == b"test_message" => Ok(Json(json!({"status": "ok"}))),
            _ => Ok(Json(
                json!({"status": "failed", "reason": "the test message did not come back"}),
            )),
        }
    })
    .await
}
