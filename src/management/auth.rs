//! Who may use the API: HTTP basic auth against the users the broker accepts.
//!
//! The broker's users ([`Broker::add_user`](crate::Broker::add_user)), checked with
//! [`Broker::authenticate`](crate::Broker::authenticate); their tags say what the API lets
//! them do. Every check goes through [`Auth`].

use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// The realm RabbitMQ names in its `WWW-Authenticate` challenge.
const REALM: &str = "Basic realm=\"RabbitMQ Management\"";

/// A user the API knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiUser {
    /// The user name.
    pub(crate) name: String,
    /// RabbitMQ's user tags (`administrator`, `monitoring`, ...).
    pub(crate) tags: Vec<String>,
}

/// The users that may log in: the broker's.
#[derive(Clone, Debug)]
pub(crate) struct Auth {
    /// The broker whose users these are.
    broker: crate::Broker,
}

impl Auth {
    pub(crate) fn new(broker: crate::Broker) -> Self {
        Auth { broker }
    }

    /// Returns the user a request authenticates as, or the 401 to answer.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<ApiUser, Response> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(challenge(None));
        };
        let credentials = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok());
        let accepted = credentials
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .and_then(|(user, password)| self.authenticate(user, password));
        match accepted {
            Some(user) => Ok(user),
            None => {
                let name = credentials
                    .as_deref()
                    .and_then(|c| c.split_once(':'))
                    .map(|(u, _)| u.to_owned())
                    .unwrap_or_default();
                tracing::warn!(user = %name, "management API login refused");
                Err(challenge(Some("Login failed")))
            }
        }
    }

    /// Checks a user name and password.
    fn authenticate(&self, user: &str, password: &str) -> Option<ApiUser> {
        self.broker
            .authenticate(user, password)
            .ok()
            .map(|u| ApiUser {
                name: u.name,
                tags: u.tags,
            })
    }

    /// Returns every user (for `/api/users`).
    pub(crate) fn users(&self) -> Vec<ApiUser> {
        self.broker
            .users()
            .into_iter()
            .map(|u| ApiUser {
                name: u.name,
                tags: u.tags,
            })
            .collect()
    }

    /// Returns the `(user, configure, write, read)` permissions of a vhost.
    pub(crate) fn permissions(&self, vhost: &str) -> Vec<(String, String, String, String)> {
        self.broker
            .permissions()
            .into_iter()
            .filter(|p| p.vhost == vhost)
            .map(|p| {
                let q = p.permissions;
                (p.user, q.configure, q.write, q.read)
            })
            .collect()
    }
}

/// RabbitMQ's 401: an empty body without credentials, a JSON reason with wrong ones.
fn challenge(reason: Option<&str>) -> Response {
    let mut response = match reason {
        None => StatusCode::UNAUTHORIZED.into_response(),
        Some(reason) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "not_authorized", "reason": reason})),
        )
            .into_response(),
    };
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    response
}
