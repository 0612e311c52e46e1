//! The routes over definitions and policies: `GET` / `POST /api/definitions[/{vhost}]`
//! (what `rabbitmqadmin export` and `import` use) and `/api/policies[/{vhost}[/{name}]]`
//! (`rabbitmqadmin declare policy`, `list policies`, `delete policy`). Definitions (which
//! carry password hashes) need the `administrator` tag; listing policies any management
//! user (of the vhosts it sees), one policy's `GET`, `PUT`, `DELETE` `policymaker`, as in
//! RabbitMQ.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::auth::ApiUser;
use super::error::ApiError;
use super::json::{self, json_to_table};
use super::query;
use super::request_body::Body;
use super::server::Api;
use super::topology::{blocking, put_status};
use super::visibility;
use crate::definitions::policy_json;
use crate::{Policy, PolicyApplyTo};

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/api/definitions",
            get(get_definitions).post(post_definitions),
        )
        .route(
            "/api/definitions/{vhost}",
            get(get_vhost_definitions).post(post_vhost_definitions),
        )
        .route("/api/policies", get(list_policies))
        .route(
            "/api/policies/{vhost}/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
}

/// The policies of a vhost, for users with permissions in it (see `visibility`).
pub(super) fn vhost_routes() -> Router<Arc<Api>> {
    Router::new().route("/api/policies/{vhost}", get(list_policies_in))
}

/// The listing parameters.
type Params = Query<HashMap<String, String>>;

/// 404 unless the vhost exists.
fn known_vhost(api: &Api, vhost: &str) -> Result<(), ApiError> {
    if api.broker.vhosts().iter().any(|v| v == vhost) {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

// ---- definitions ----

async fn get_definitions(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
) -> Result<Json<Value>, ApiError> {
    user.require_administrator()?;
    let broker = api.broker.clone();
    Ok(Json(
        blocking(move || Ok(broker.definitions_json(None)?)).await?,
    ))
}

async fn get_vhost_definitions(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    user.require_administrator()?;
    known_vhost(&api, &vhost)?;
    let broker = api.broker.clone();
    Ok(Json(
        blocking(move || Ok(broker.definitions_json(Some(&vhost))?)).await?,
    ))
}

/// Imports a file; 204 once applied, 400 naming the entry at fault (nothing imported).
async fn post_definitions(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    user.require_administrator()?;
    let broker = api.broker.clone();
    blocking(move || Ok(broker.import_definitions(&body[..]).map(drop)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn post_vhost_definitions(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    user.require_administrator()?;
    known_vhost(&api, &vhost)?;
    let broker = api.broker.clone();
    blocking(move || {
        Ok(broker
            .import_vhost_definitions(&vhost, &body[..])
            .map(drop)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- policies ----

/// What one policy's `GET`, `PUT` and `DELETE` need, as RabbitMQ checks it: the
/// `policymaker` (or `administrator`) tag and permissions in the vhost (or
/// `administrator`), else 401 `User not authorised to access object`.
fn may_manage_policies(api: &Api, user: &ApiUser, vhost: &str) -> Result<(), ApiError> {
    if !user.is_policymaker() {
        return Err(ApiError::NotAuthorised(visibility::NOT_OBJECT));
    }
    visibility::check_vhost(&api.broker, user, vhost, visibility::NOT_OBJECT)
}

/// The policies of a vhost as the API lists them, each with its `vhost`.
fn policies_of(api: &Api, vhost: &str) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    for policy in api.broker.list_policies(vhost)? {
        let mut item = policy_json(&policy);
        item["vhost"] = Value::from(vhost);
        items.push(item);
    }
    Ok(items)
}

/// Every policy of the vhosts the user sees: any management user may list them, as in
/// RabbitMQ.
async fn list_policies(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for vhost in visibility::vhosts_of(&api.broker, &user) {
        // A vhost deleted meanwhile has no policies.
        items.extend(policies_of(&api, &vhost).unwrap_or_default());
    }
    Ok(Json(query::listing(items, &q)?))
}

async fn list_policies_in(
    State(api): State<Arc<Api>>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    known_vhost(&api, &vhost)?;
    Ok(Json(query::listing(policies_of(&api, &vhost)?, &q)?))
}

async fn get_policy(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    may_manage_policies(&api, &user, &vhost)?;
    known_vhost(&api, &vhost)?;
    let policy = policies_of(&api, &vhost)?
        .into_iter()
        .find(|p| p["name"] == name.as_str())
        .ok_or(ApiError::NotFound)?;
    Ok(Json(query::object(policy, &q)))
}

/// Sets a policy: `{"pattern": ..., "definition": {...}, "priority": 0, "apply-to": "all"}`;
/// 201 when new, 204 when it replaced one.
async fn put_policy(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    may_manage_policies(&api, &user, &vhost)?;
    known_vhost(&api, &vhost)?;
    let body = json::body(&body)?;
    let missing = |key: &str| ApiError::BadRequest(Value::from(format!("[{{key_missing,{key}}}]")));
    let pattern = json::text(&body, "pattern")?
        .ok_or_else(|| missing("pattern"))?
        .to_owned();
    let definition = match body.get("definition") {
        None | Some(Value::Null) => return Err(missing("definition")),
        Some(value) => json_to_table(value)?,
    };
    let apply_to = match json::text(&body, "apply-to")? {
        None => PolicyApplyTo::All,
        Some(name) => PolicyApplyTo::from_name(name)?,
    };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_i64().and_then(|p| i32::try_from(p).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| ApiError::bad_request("priority must be an integer"))?;
    let existed = api
        .broker
        .list_policies(&vhost)?
        .iter()
        .any(|p| p.name == name);
    let policy = Policy::new(name, pattern, definition)
        .apply_to(apply_to)
        .priority(priority);
    let broker = api.broker.clone();
    blocking(move || Ok(broker.set_policy(&vhost, policy)?)).await?;
    Ok(put_status(existed))
}

async fn delete_policy(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    may_manage_policies(&api, &user, &vhost)?;
    known_vhost(&api, &vhost)?;
    let broker = api.broker.clone();
    blocking(move || {
        broker
            .clear_policy(&vhost, &name)
            .map_err(|e| match e.reply_code() {
                crate::ReplyCode::NOT_FOUND => ApiError::NotFound,
                _ => ApiError::from(e),
            })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
