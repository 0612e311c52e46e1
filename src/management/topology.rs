//! The routes over vhosts, exchanges, queues and bindings: listings, one object, and the
//! `PUT` / `DELETE` / `POST` that `rabbitmqadmin declare` and `delete` use.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::Value;

use super::auth::ApiUser;
use super::error::ApiError;
use super::json::{self, flag, json_to_table};
use super::objects;
use super::query;
use super::request_body::Body;
use super::server::Api;
use super::visibility;
use crate::{
    Broker, Channel, DestinationKind, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind,
    QueueDeclareOptions, QueueDeleteOptions,
};

/// The routes that do not name a vhost, or need `administrator` before anything else.
pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/vhosts", get(list_vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(get_vhost).put(put_vhost).delete(delete_vhost),
        )
        .route("/api/exchanges", get(list_exchanges))
        .route("/api/queues", get(list_queues))
        .route("/api/bindings", get(list_bindings))
}

/// The routes in a vhost, for users with permissions in it (see `visibility`).
pub(super) fn vhost_routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/exchanges/{vhost}", get(list_exchanges_in))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(get_exchange).put(put_exchange).delete(delete_exchange),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(exchange_bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(exchange_bindings_destination),
        )
        .route("/api/queues/{vhost}", get(list_queues_in))
        .route(
            "/api/queues/{vhost}/{name}",
            get(get_queue).put(put_queue).delete(delete_queue),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(purge_queue))
        .route("/api/queues/{vhost}/{name}/bindings", get(queue_bindings))
        .route("/api/bindings/{vhost}", get(list_bindings_in))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(bindings_between).post(create_binding),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(get_binding).delete(delete_binding),
        )
}

/// The listing parameters.
type Params = Query<HashMap<String, String>>;

/// Runs broker calls that may wait (a declare waits for the disk in a persistent broker)
/// on the runtime's blocking threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// RabbitMQ's answer to a PUT: 201 for what it created, 204 for what it replaced.
pub(crate) fn put_status(existed: bool) -> StatusCode {
    if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }
}

/// A channel in `vhost` for one request of `user`, who must have permissions there
/// ([`visibility::may_write`]); 404 `vhost_not_found` if there is no such vhost.
pub(crate) fn channel(broker: &Broker, user: &ApiUser, vhost: &str) -> Result<Channel, ApiError> {
    visibility::may_write(broker, user, vhost)?;
    let connection = broker
        .connect(vhost)
        .map_err(|_| ApiError::NotFoundBecause("vhost_not_found".to_owned()))?;
    Ok(connection.open_channel()?)
}

/// The vhosts a listing covers: one (404 if there is no such vhost), or all that `user`
/// sees.
fn vhosts(api: &Api, user: &ApiUser, vhost: Option<&str>) -> Result<Vec<String>, ApiError> {
    match vhost {
        None => Ok(visibility::vhosts_of(&api.broker, user)),
        Some(v) if api.broker.vhosts().iter().any(|a| a == v) => Ok(vec![v.to_owned()]),
        Some(_) => Err(ApiError::NotFound),
    }
}

/// The name the API uses for the default exchange.
fn exchange_name(name: &str) -> &str {
    if name == "amq.default" {
        ""
    } else {
        name
    }
}

// ---- vhosts ----

async fn list_vhosts(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let items = visibility::listed_vhosts(&api.broker, &user)
        .iter()
        .filter_map(|v| objects::vhost(&api.broker, &api.rates, &api.node, v).ok())
        .collect();
    Ok(Json(query::listing(items, &q)?))
}

/// One vhost: `administrator` only, as in RabbitMQ 3.10 (others are listed theirs).
async fn get_vhost(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    user.require_administrator()?;
    let value = objects::vhost(&api.broker, &api.rates, &api.node, &vhost)
        .map_err(|_| ApiError::NotFound)?;
    Ok(Json(query::object(value, &q)))
}

async fn put_vhost(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    user.require_administrator()?;
    json::body(&body)?;
    let existed = api.broker.vhosts().contains(&vhost);
    let broker = api.broker.clone();
    blocking(move || {
        broker.add_vhost(&vhost)?;
        // As RabbitMQ's API: whoever creates a vhost gets full permissions in it.
        if !existed {
            broker.set_permissions(&user.name, &vhost, crate::Permissions::full())?;
        }
        Ok(())
    })
    .await?;
    Ok(put_status(existed))
}

/// Deletes a vhost with everything in it (204), as `rabbitmqadmin delete vhost` asks.
async fn delete_vhost(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
) -> Result<StatusCode, ApiError> {
    user.require_administrator()?;
    if !api.broker.vhosts().contains(&vhost) {
        return Err(ApiError::NotFound);
    }
    let broker = api.broker.clone();
    blocking(move || Ok(broker.delete_vhost(&vhost)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- exchanges ----

fn exchanges_of(api: &Api, user: &ApiUser, vhost: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    for v in vhosts(api, user, vhost)? {
        // A vhost deleted meanwhile has no exchanges.
        for e in api.broker.list_exchanges(&v).unwrap_or_default() {
            items.push(objects::exchange(&api.rates, &user.name, &v, &e));
        }
    }
    Ok(items)
}

async fn list_exchanges(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(exchanges_of(&api, &user, None)?, &q)?))
}

async fn list_exchanges_in(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(
        exchanges_of(&api, &user, Some(&vhost))?,
        &q,
    )?))
}

async fn get_exchange(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let e = api
        .broker
        .exchange_stats(&vhost, exchange_name(&name))
        .map_err(|_| ApiError::NotFound)?;
    Ok(Json(query::object(
        objects::exchange(&api.rates, &user.name, &vhost, &e),
        &q,
    )))
}

async fn put_exchange(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let body = json::body(&body)?;
    let kind = json::text(&body, "type")?
        .ok_or_else(|| ApiError::BadRequest(serde_json::json!("[{key_missing,type}]")))?
        .to_owned();
    let options = ExchangeDeclareOptions {
        durable: flag(&body, "durable", false)?,
        auto_delete: flag(&body, "auto_delete", false)?,
        internal: flag(&body, "internal", false)?,
        ..ExchangeDeclareOptions::default()
    };
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    let existed = api.broker.exchange_stats(&vhost, &name).is_ok();
    let broker = api.broker.clone();
    blocking(move || {
        let kind = ExchangeKind::from_name(&kind);
        channel(&broker, &user, &vhost)?.exchange_declare(&name, kind, options, arguments)?;
        Ok(())
    })
    .await?;
    Ok(put_status(existed))
}

async fn delete_exchange(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<StatusCode, ApiError> {
    if api
        .broker
        .exchange_stats(&vhost, exchange_name(&name))
        .is_err()
    {
        return Err(ApiError::NotFound);
    }
    let options = ExchangeDeleteOptions {
        if_unused: q.get("if-unused").is_some_and(|v| v == "true"),
    };
    let broker = api.broker.clone();
    blocking(move || Ok(channel(&broker, &user, &vhost)?.exchange_delete(&name, options)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- queues ----

fn queues_of(api: &Api, user: &ApiUser, vhost: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    for v in vhosts(api, user, vhost)? {
        // A vhost deleted meanwhile has no queues.
        for queue in api.broker.list_queues(&v).unwrap_or_default() {
            items.push(objects::queue(&api.rates, &api.node, &v, &queue));
        }
    }
    Ok(items)
}

async fn list_queues(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(queues_of(&api, &user, None)?, &q)?))
}

async fn list_queues_in(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(
        queues_of(&api, &user, Some(&vhost))?,
        &q,
    )?))
}

async fn get_queue(
    State(api): State<Arc<Api>>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let stats = api
        .broker
        .queue_stats(&vhost, &name)
        .map_err(|_| ApiError::NotFound)?;
    Ok(Json(query::object(
        objects::queue(&api.rates, &api.node, &vhost, &stats),
        &q,
    )))
}

async fn put_queue(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let body = json::body(&body)?;
    let options = QueueDeclareOptions {
        durable: flag(&body, "durable", false)?,
        auto_delete: flag(&body, "auto_delete", false)?,
        ..QueueDeclareOptions::default()
    };
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    let existed = api.broker.queue_stats(&vhost, &name).is_ok();
    let broker = api.broker.clone();
    blocking(move || {
        channel(&broker, &user, &vhost)?.queue_declare(&name, options, arguments)?;
        Ok(())
    })
    .await?;
    Ok(put_status(existed))
}

async fn delete_queue(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<StatusCode, ApiError> {
    if api.broker.queue_stats(&vhost, &name).is_err() {
        return Err(ApiError::NotFound);
    }
    let options = QueueDeleteOptions {
        if_unused: q.get("if-unused").is_some_and(|v| v == "true"),
        if_empty: q.get("if-empty").is_some_and(|v| v == "true"),
    };
    let broker = api.broker.clone();
    blocking(move || {
        Ok(channel(&broker, &user, &vhost)?
            .queue_delete(&name, options)
            .map(drop)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge_queue(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if api.broker.queue_stats(&vhost, &name).is_err() {
        return Err(ApiError::NotFound);
    }
    let broker = api.broker.clone();
    blocking(move || {
        Ok(channel(&broker, &user, &vhost)?
            .queue_purge(&name)
            .map(drop)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- bindings ----

fn bindings_of(api: &Api, user: &ApiUser, vhost: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    for v in vhosts(api, user, vhost)? {
        // A vhost deleted meanwhile has no bindings.
        items.extend(objects::bindings(&api.broker, &v).unwrap_or_default());
    }
    Ok(items)
}

/// The bindings of a vhost that match `keep`.
fn bindings_where(
    api: &Api,
    vhost: &str,
    keep: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, ApiError> {
    if !api.broker.vhosts().iter().any(|v| v == vhost) {
        return Err(ApiError::NotFound);
    }
    Ok(objects::bindings(&api.broker, vhost)?
        .into_iter()
        .filter(keep)
        .collect())
}

async fn list_bindings(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(bindings_of(&api, &user, None)?, &q)?))
}

async fn list_bindings_in(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(
        bindings_of(&api, &user, Some(&vhost))?,
        &q,
    )?))
}

async fn queue_bindings(
    State(api): State<Arc<Api>>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if api.broker.queue_stats(&vhost, &name).is_err() {
        return Err(ApiError::NotFound);
    }
    let items = bindings_where(&api, &vhost, |b| {
        b["destination_type"] == "queue" && b["destination"] == name.as_str()
    })?;
    Ok(Json(query::listing(items, &q)?))
}

async fn exchange_bindings_source(
    State(api): State<Arc<Api>>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let name = exchange_name(&name).to_owned();
    if api.broker.exchange_stats(&vhost, &name).is_err() {
        return Err(ApiError::NotFound);
    }
    let items = bindings_where(&api, &vhost, |b| b["source"] == name.as_str())?;
    Ok(Json(query::listing(items, &q)?))
}

async fn exchange_bindings_destination(
    State(api): State<Arc<Api>>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    if api.broker.exchange_stats(&vhost, &name).is_err() {
        return Err(ApiError::NotFound);
    }
    let items = bindings_where(&api, &vhost, |b| {
        b["destination_type"] == "exchange" && b["destination"] == name.as_str()
    })?;
    Ok(Json(query::listing(items, &q)?))
}

/// `q` or `e` in a binding path.
fn destination_kind(kind: &str) -> Result<&'static str, ApiError> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::NotFound),
    }
}

/// The bindings from `source` to `destination` in a vhost.
fn between(
    api: &Api,
    vhost: &str,
    source: &str,
    kind: &str,
    destination: &str,
) -> Result<Vec<Value>, ApiError> {
    let kind = destination_kind(kind)?;
    let source = exchange_name(source);
    bindings_where(api, vhost, |b| {
        b["source"] == source && b["destination_type"] == kind && b["destination"] == destination
    })
}

async fn bindings_between(
    State(api): State<Arc<Api>>,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query::listing(
        between(&api, &vhost, &source, &kind, &destination)?,
        &q,
    )?))
}

async fn get_binding(
    State(api): State<Arc<Api>>,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    between(&api, &vhost, &source, &kind, &destination)?
        .into_iter()
        .find(|b| b["properties_key"] == props.as_str())
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn create_binding(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let kind = destination_kind(&kind)?;
    let body = json::body(&body)?;
    let routing_key = json::text(&body, "routing_key")?.unwrap_or("").to_owned();
    let arguments = json_to_table(body.get("arguments").unwrap_or(&Value::Null))?;
    let location = objects::properties_key(&routing_key, &arguments);
    let broker = api.broker.clone();
    blocking(move || {
        let ch = channel(&broker, &user, &vhost)?;
        match kind {
            "queue" => ch.queue_bind(&destination, &source, &routing_key, arguments)?,
            _ => ch.exchange_bind(&destination, &source, &routing_key, arguments)?,
        }
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, [(LOCATION, location)]).into_response())
}

async fn delete_binding(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let kind = destination_kind(&kind)?;
    let source = exchange_name(&source).to_owned();
    let binding = api
        .broker
        .list_bindings(&vhost)
        .map_err(|_| ApiError::NotFound)?
        .into_iter()
        .find(|b| {
            b.source == source
                && b.destination_kind.as_str() == kind
                && b.destination == destination
                && objects::properties_key(&b.routing_key, &b.arguments) == props
        })
        .ok_or(ApiError::NotFound)?;
    let broker = api.broker.clone();
    blocking(move || {
        let ch = channel(&broker, &user, &vhost)?;
        let (key, arguments) = (&binding.routing_key, binding.arguments.clone());
        match binding.destination_kind {
            DestinationKind::Queue => ch.queue_unbind(&destination, &source, key, arguments)?,
            _ => ch.exchange_unbind(&destination, &source, key, arguments)?,
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
