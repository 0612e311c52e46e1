//! What a logged-in user may see and touch, by its tags and permissions, as RabbitMQ
//! 3.10's management plugin decides it (asked of RabbitMQ itself; the differential test is
//! `visibility_matches_rabbitmq` in `interop/tests/management.rs`):
//!
//! - listings of queues, exchanges, bindings and policies cover the vhosts the user has
//!   permissions in (every vhost for an `administrator`; `monitoring` does not widen them);
//! - `/api/vhosts` lists every vhost to `monitoring` and `administrator` users, the
//!   permitted ones to the others;
//! - connections, channels and consumers of other users are seen only by `monitoring` and
//!   `administrator` users; a `management` or `policymaker` user sees its own;
//! - a URL naming a vhost the user has no permissions in answers 401 `User not authorised
//!   to access virtual host` ([`vhost_access`], the middleware of those routes), except for
//!   administrators, who read every vhost but may not change one they have no permissions
//!   in ([`may_write`]: 401 `Access refused.`). A vhost that does not exist passes the
//!   check, so the handler answers its 404.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::ApiUser;
use super::error::ApiError;
use super::server::Api;
use crate::Broker;

/// RabbitMQ's reason for a URL in a vhost the user has no permissions in.
pub(crate) const NOT_VHOST: &str = "User not authorised to access virtual host";

/// RabbitMQ's reason for another user's connection or channel, or a policy a user may not
/// manage.
pub(crate) const NOT_OBJECT: &str = "User not authorised to access object";

/// Whether `user` has permissions in `vhost`.
fn permitted(broker: &Broker, user: &ApiUser, vhost: &str) -> bool {
    broker.user_permissions(&user.name, vhost).is_some()
}

/// The vhosts whose queues, exchanges, bindings and policies `user` sees: every vhost for
/// an administrator, else those it has permissions in. Sorted.
pub(crate) fn vhosts_of(broker: &Broker, user: &ApiUser) -> Vec<String> {
    let all = broker.vhosts();
    if user.is_administrator() {
        return all;
    }
    all.into_iter()
        .filter(|v| permitted(broker, user, v))
        .collect()
}

/// The vhosts `/api/vhosts` lists to `user`: all of them for monitoring users and
/// administrators, else those it has permissions in.
pub(crate) fn listed_vhosts(broker: &Broker, user: &ApiUser) -> Vec<String> {
    if user.is_monitor() {
        broker.vhosts()
    } else {
        vhosts_of(broker, user)
    }
}

/// `Ok` when `user` may use URLs of `vhost`: an administrator, a user with permissions in
/// it, or a vhost that does not exist (answered 404 by the handler); else `reason`.
pub(crate) fn check_vhost(
    broker: &Broker,
    user: &ApiUser,
    vhost: &str,
    reason: &'static str,
) -> Result<(), ApiError> {
    if user.is_administrator()
        || permitted(broker, user, vhost)
        || !broker.vhosts().iter().any(|v| v == vhost)
    {
        Ok(())
    } else {
        Err(ApiError::NotAuthorised(reason))
    }
}

/// `Ok` when `user` may change `vhost` (declare, delete, bind, publish, get, purge): it has
/// permissions there. An administrator without them reads the vhost but gets RabbitMQ's
/// 401 `Access refused.` for a change, as RabbitMQ's API (which acts as the user) answers.
pub(crate) fn may_write(broker: &Broker, user: &ApiUser, vhost: &str) -> Result<(), ApiError> {
    if permitted(broker, user, vhost) || !broker.vhosts().iter().any(|v| v == vhost) {
        Ok(())
    } else {
        Err(ApiError::AccessRefused)
    }
}

/// Whether `user` sees a connection, channel or consumer of `owner` (`None` for a
/// connection still in its handshake): its own, or any for monitoring users and
/// administrators.
pub(crate) fn sees_client(user: &ApiUser, owner: Option<&str>) -> bool {
    user.is_monitor() || owner == Some(user.name.as_str())
}

/// The middleware of the routes whose `{vhost}` the user must have permissions in:
/// RabbitMQ's 401 `User not authorised to access virtual host` otherwise (see
/// [`check_vhost`]). Runs after authentication, which put the [`ApiUser`] in the request.
pub(crate) async fn vhost_access(
    State(api): State<Arc<Api>>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = request.extensions().get::<ApiUser>() else {
        return ApiError::NotAuthorised(NOT_VHOST).into_response();
    };
    if let Some(vhost) = params.get("vhost") {
        if let Err(e) = check_vhost(&api.broker, user, vhost, NOT_VHOST) {
            return e.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tags: &[&str]) -> ApiUser {
        ApiUser {
            name: "u".into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn what_each_tag_sees() {
        let broker = Broker::in_memory();
        for v in ["mine", "theirs"] {
            broker.add_vhost(v).expect("a vhost");
        }
        broker.add_user("u", "pw", &[]).expect("a user");
        broker
            .set_permissions("u", "mine", crate::Permissions::full())
            .expect("permissions");
        let (management, monitoring, admin) = (
            user(&["management"]),
            user(&["monitoring"]),
            user(&["administrator"]),
        );
        assert_eq!(vhosts_of(&broker, &management), ["mine"]);
        assert_eq!(vhosts_of(&broker, &monitoring), ["mine"]);
        assert_eq!(vhosts_of(&broker, &admin), ["/", "mine", "theirs"]);
        assert_eq!(listed_vhosts(&broker, &management), ["mine"]);
        assert_eq!(listed_vhosts(&broker, &monitoring), ["/", "mine", "theirs"]);
        assert!(check_vhost(&broker, &management, "mine", NOT_VHOST).is_ok());
        assert!(check_vhost(&broker, &management, "missing", NOT_VHOST).is_ok());
        assert!(matches!(
            check_vhost(&broker, &monitoring, "theirs", NOT_VHOST),
            Err(ApiError::NotAuthorised(NOT_VHOST))
        ));
        assert!(check_vhost(&broker, &admin, "theirs", NOT_VHOST).is_ok());
        assert!(matches!(
            may_write(&broker, &admin, "theirs"),
            Err(ApiError::AccessRefused)
        ));
        assert!(sees_client(&management, Some("u")));
        assert!(!sees_client(&management, Some("other")));
        assert!(!sees_client(&management, None));
        assert!(sees_client(&monitoring, Some("other")));
    }
}
