//! Errors of the API, answered as RabbitMQ's management plugin answers them: a status code
//! and `{"error": ..., "reason": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::{Error, ReplyCode};

/// An error answered to an API request.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 404 `Object Not Found`: no such vhost, queue, exchange, binding or path.
    NotFound,
    /// 404 with a reason (as RabbitMQ answers a binding to a missing exchange).
    NotFoundBecause(String),
    /// 400 `bad_request` with a reason (a string, or RabbitMQ's list form).
    BadRequest(Value),
    /// 401 `not_authorised`: the broker refused the operation (`amq.*` names).
    AccessRefused,
    /// 401 `not_authorised` with RabbitMQ's reason: the user lacks the tag the request
    /// needs (`Not administrator user`, `Not management user`).
    NotAuthorised(&'static str),
    /// 500 with the broker's reason.
    Internal(String),
}

impl ApiError {
    /// A 400 with a text reason.
    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::BadRequest(Value::String(reason.into()))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let e = e.cause().cloned().unwrap_or(e);
        let text = e.to_string();
        // The management plugin gives the reply text without its code name.
        let reason = match text.split_once(" - ") {
            Some((_, reason)) => reason.to_owned(),
            None => text,
        };
        match e.reply_code() {
            ReplyCode::NOT_FOUND => ApiError::NotFoundBecause(reason),
            ReplyCode::ACCESS_REFUSED => ApiError::AccessRefused,
            ReplyCode::NOT_ALLOWED if matches!(e, Error::VhostNotFound { .. }) => {
                ApiError::NotFound
            }
            ReplyCode::PRECONDITION_FAILED
            | ReplyCode::RESOURCE_LOCKED
            | ReplyCode::NOT_ALLOWED
            | ReplyCode::COMMAND_INVALID
            | ReplyCode::NOT_IMPLEMENTED => ApiError::bad_request(reason),
            _ => ApiError::Internal(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, reason) = match self {
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Object Not Found",
                Value::from("Not Found"),
            ),
            ApiError::NotFoundBecause(reason) => {
                (StatusCode::NOT_FOUND, "not_found", Value::from(reason))
            }
            ApiError::BadRequest(reason) => (StatusCode::BAD_REQUEST, "bad_request", reason),
            ApiError::AccessRefused => (
                StatusCode::UNAUTHORIZED,
                "not_authorised",
                Value::from("Access refused."),
            ),
            ApiError::NotAuthorised(reason) => (
                StatusCode::UNAUTHORIZED,
                "not_authorised",
                Value::from(reason),
            ),
            ApiError::Internal(reason) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                Value::from(reason),
            ),
        };
        (
            status,
            axum::Json(json!({"error": error, "reason": reason})),
        )
            .into_response()
    }
}
