//! The routes over users and permissions: listings, one object, and the `PUT` / `DELETE`
//! that `rabbitmqadmin declare user` / `declare permission` (and `delete`) use. All of them
//! need the `administrator` tag, as in RabbitMQ.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::ApiUser;
use super::error::ApiError;
use super::json;
use super::query;
use super::request_body::Body;
use super::server::Api;
use super::topology::{blocking, put_status};
use crate::{HashingAlgorithm, PasswordHash, Permissions, User};

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/users", get(users))
        .route(
            "/api/users/{user}",
            get(user).put(put_user).delete(delete_user),
        )
        .route("/api/users/{user}/permissions", get(user_permissions))
        .route("/api/permissions", get(permissions))
        .route("/api/vhosts/{vhost}/permissions", get(vhost_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permission)
                .put(put_permission)
                .delete(delete_permission),
        )
}

/// The listing parameters.
type Params = Query<HashMap<String, String>>;

/// A user as RabbitMQ's API shows it: an empty `password_hash` for a user without a
/// password.
fn user_json(user: &User) -> Value {
    let hash = user.password_hash.as_ref();
    json!({
        "name": user.name,
        "password_hash": hash.map(PasswordHash::to_base64).unwrap_or_default(),
        "hashing_algorithm": hash.map_or(HashingAlgorithm::Sha256, PasswordHash::algorithm).name(),
        "tags": user.tags,
        "limits": {},
    })
}

async fn users(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    me.require_administrator()?;
    let users = api.broker.users().iter().map(user_json).collect();
    Ok(Json(query::listing(users, &q)?))
}

async fn user(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    me.require_administrator()?;
    let user = api.broker.user(&name).ok_or(ApiError::NotFound)?;
    Ok(Json(query::object(user_json(&user), &q)))
}

/// Reads the `tags` of a user body: a comma-separated string (what `rabbitmqadmin` sends)
/// or a list of strings; required, as in RabbitMQ 3.10.
fn tags(body: &Value) -> Result<Vec<String>, ApiError> {
    let split = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match body.get("tags") {
        None | Some(Value::Null) => Err(ApiError::bad_request("tags_not_present")),
        Some(Value::String(text)) => Ok(split(text)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::trim)
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .collect(),
        Some(other) => Err(ApiError::bad_request(format!(
            "tags must be a string or a list, not {other}"
        ))),
    }
}

/// Reads the password of a user body: `password` (hashed here), or `password_hash` with an
/// optional `hashing_algorithm` (RabbitMQ's base64 form), or neither (a user who cannot log
/// in with a password; an empty `password_hash` means the same).
fn password(body: &Value) -> Result<Option<PasswordHash>, ApiError> {
    let password = json::text(body, "password")?;
    let hash = json::text(body, "password_hash")?;
    match (password, hash) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "both_password_and_password_hash_are_provided",
        )),
        (Some(password), None) => Ok(Some(PasswordHash::new(password))),
        (None, Some("")) | (None, None) => Ok(None),
        (None, Some(hash)) => {
            let algorithm = match json::text(body, "hashing_algorithm")? {
                Some(name) => HashingAlgorithm::from_name(name)?,
                None => HashingAlgorithm::Sha256,
            };
            Ok(Some(PasswordHash::from_base64(algorithm, hash)?))
        }
    }
}

/// Creates a user (201) or replaces an existing one's password and tags (204).
async fn put_user(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    me.require_administrator()?;
    let body = json::body(&body)?;
    let tags = tags(&body)?;
    let hash = password(&body)?;
    let broker = api.broker.clone();
    let existed = broker.user(&name).is_some();
    blocking(move || Ok(broker.add_user_with_hash(&name, hash, tags)?)).await?;
    Ok(put_status(existed))
}

async fn delete_user(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    me.require_administrator()?;
    let broker = api.broker.clone();
    if broker.user(&name).is_none() {
        return Err(ApiError::NotFound);
    }
    blocking(move || Ok(broker.delete_user(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn permission_json(user: &str, vhost: &str, p: &Permissions) -> Value {
    json!({"user": user, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

/// Every permission for which `keep(vhost, user)` holds.
fn permissions_where(api: &Api, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    api.broker
        .permissions()
        .iter()
        .filter(|p| keep(&p.vhost, &p.user))
        .map(|p| permission_json(&p.user, &p.vhost, &p.permissions))
        .collect()
}

async fn permissions(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    me.require_administrator()?;
    Ok(Json(query::listing(
        permissions_where(&api, |_, _| true),
        &q,
    )?))
}

async fn vhost_permissions(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path(vhost): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    me.require_administrator()?;
    if !api.broker.vhosts().contains(&vhost) {
        return Err(ApiError::NotFound);
    }
    let items = permissions_where(&api, |v, _| v == vhost);
    Ok(Json(query::listing(items, &q)?))
}

async fn user_permissions(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path(user): Path<String>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    me.require_administrator()?;
    if api.broker.user(&user).is_none() {
        return Err(ApiError::NotFound);
    }
    let items = permissions_where(&api, |_, u| u == user);
    Ok(Json(query::listing(items, &q)?))
}

async fn permission(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    me.require_administrator()?;
    let p = api
        .broker
        .user_permissions(&user, &vhost)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(permission_json(&user, &vhost, &p)))
}

/// Sets a user's permissions in a vhost: 201 when the user had none there, 204 when they
/// are replaced. `configure`, `write` and `read` are all required (RabbitMQ's
/// `[{key_missing,read}]` names those absent).
async fn put_permission(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path((vhost, user)): Path<(String, String)>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    me.require_administrator()?;
    let body = json::body(&body)?;
    let mut missing = Vec::new();
    let mut pattern = |key: &str| -> Result<String, ApiError> {
        let value = json::text(&body, key)?;
        if value.is_none() {
            missing.push(format!("{{key_missing,{key}}}"));
        }
        Ok(value.unwrap_or_default().to_owned())
    };
    let permissions = Permissions::new(pattern("configure")?, pattern("write")?, pattern("read")?);
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!("[{}]", missing.join(","))));
    }
    let broker = api.broker.clone();
    if broker.user(&user).is_none() || !broker.vhosts().contains(&vhost) {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    let existed = broker.user_permissions(&user, &vhost).is_some();
    blocking(move || Ok(broker.set_permissions(&user, &vhost, permissions)?)).await?;
    Ok(put_status(existed))
}

async fn delete_permission(
    State(api): State<Arc<Api>>,
    Extension(me): Extension<ApiUser>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    me.require_administrator()?;
    let broker = api.broker.clone();
    if broker.user_permissions(&user, &vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    blocking(move || Ok(broker.clear_permissions(&user, &vhost)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}
