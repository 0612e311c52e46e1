//! Who may use the API: HTTP basic auth against the users the broker accepts.
//!
//! The broker's users ([`Broker::add_user`](crate::Broker::add_user)), checked with
//! [`Broker::authenticate`](crate::Broker::authenticate), as RabbitMQ's plugin checks them:
//! a user needs one of the management tags to log in at all, `administrator` to manage
//! users, vhosts and permissions ([`ApiUser::require_administrator`]), and a loopback-only
//! user must come from a loopback address. What a logged-in user may see is
//! `visibility`'s business. The server slows failed logins per address with
//! the wire listener's [`LoginThrottle`](crate::LoginThrottle). Every check goes through
//! [`Auth`].

use std::net::IpAddr;

use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::error::ApiError;
use crate::amqp::is_loopback;

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

impl ApiUser {
    /// Whether the user has `tag`.
    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// `administrator`: sees and manages everything.
    pub(crate) fn is_administrator(&self) -> bool {
        self.has("administrator")
    }

    /// `monitoring` or `administrator`: sees every vhost, connection, channel and consumer,
    /// and the node.
    pub(crate) fn is_monitor(&self) -> bool {
        self.has("monitoring") || self.is_administrator()
    }

    /// `policymaker` or `administrator`: may read and change policies.
    pub(crate) fn is_policymaker(&self) -> bool {
        self.has("policymaker") || self.is_administrator()
    }

    /// RabbitMQ's 401 `Not administrator user` unless the user has the `administrator`
    /// tag: what managing users, vhosts and permissions needs.
    pub(crate) fn require_administrator(&self) -> Result<(), ApiError> {
        if self.is_administrator() {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("Not administrator user"))
        }
    }

    /// RabbitMQ's 401 `Not monitor user` unless the user has the `monitoring` or
    /// `administrator` tag: what reading the node (`/api/nodes`) needs.
    pub(crate) fn require_monitor(&self) -> Result<(), ApiError> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::NotAuthorised("Not monitor user"))
        }
    }
}

/// The tags that let a user log in to the API at all (RabbitMQ's management user tags).
const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No `Authorization` header.
    NoCredentials,
    /// Unreadable credentials, an unknown user or a wrong password.
    LoginFailed,
    /// A loopback-only user (`WireOptions::loopback_users`) from another address.
    LoopbackOnly,
    /// The user has none of the management tags.
    NotManagementUser,
}

impl Refused {
    /// `true` for refusals that count as failed logins (and slow the address down).
    pub(crate) fn is_failed_login(&self) -> bool {
        matches!(self, Refused::LoginFailed | Refused::LoopbackOnly)
    }

    /// RabbitMQ's 401 for it.
    pub(crate) fn into_response(self) -> Response {
        match self {
            Refused::NoCredentials => challenge(None),
            Refused::LoginFailed => challenge(Some(("not_authorized", "Login failed"))),
            Refused::LoopbackOnly => challenge(Some((
                "not_authorised",
                "User can only log in via localhost",
            ))),
            Refused::NotManagementUser => {
                challenge(Some(("not_authorised", "Not management user")))
            }
        }
    }
}

/// The users that may log in: the broker's.
#[derive(Clone, Debug)]
pub(crate) struct Auth {
    /// The broker whose users these are.
    broker: crate::Broker,
    /// Users who may log in only from a loopback address (the wire listener's
    /// [`loopback_users`](crate::WireOptions::loopback_users)).
    loopback_users: Vec<String>,
}

impl Auth {
    pub(crate) fn new(broker: crate::Broker, loopback_users: Vec<String>) -> Self {
        Auth {
            broker,
            loopback_users,
        }
    }

    /// Returns the user a request from `peer` authenticates as, or why it is refused.
    pub(crate) fn check(&self, headers: &HeaderMap, peer: IpAddr) -> Result<ApiUser, Refused> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(Refused::NoCredentials);
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
        let (name, password) = credentials
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .unwrap_or_default();
        let refused = match self.broker.authenticate(name, password) {
            Err(_) => Refused::LoginFailed,
            Ok(user) if !is_loopback(peer) && self.loopback_users.contains(&user.name) => {
                Refused::LoopbackOnly
            }
            Ok(user)
                if !user
                    .tags
                    .iter()
                    .any(|t| MANAGEMENT_TAGS.contains(&t.as_str())) =>
            {
                Refused::NotManagementUser
            }
            Ok(user) => {
                return Ok(ApiUser {
                    name: user.name,
                    tags: user.tags,
                })
            }
        };
        tracing::warn!(user = %name, %peer, reason = ?refused, "management API login refused");
        Err(refused)
    }
}

/// RabbitMQ's 401: an empty body without credentials, a JSON error and reason otherwise.
fn challenge(reason: Option<(&str, &str)>) -> Response {
    let mut response = match reason {
        None => StatusCode::UNAUTHORIZED.into_response(),
        Some((error, reason)) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": error, "reason": reason})),
        )
            .into_response(),
    };
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    response
}
