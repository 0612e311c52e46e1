//! The broker's users and their permissions per vhost ([`Registry`]), and the identity a
//! connection opened as a user checks its operations with ([`Identity`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::password::PasswordHash;
use super::permissions::{refused, Access, Compiled, Permissions, Resource};
use crate::{Error, Result};

/// A user of the broker, as [`Broker::users`](crate::Broker::users) lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// The user name.
    pub name: String,
    /// The password hash; `None` for a user who cannot log in with a password.
    pub password_hash: Option<PasswordHash>,
    /// Free-form tags, as RabbitMQ's (`administrator`, `monitoring`, `management`,
    /// `policymaker`, `impersonator`, ...). Warren itself reads only `impersonator` (may
    /// publish with another user's `user_id`); the management API reads the others.
    pub tags: Vec<String>,
}

impl User {
    /// Returns `true` if the user has `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// One user's permissions in one vhost, as [`Broker::permissions`](crate::Broker::permissions)
/// lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserPermissions {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// What the user may do there.
    pub permissions: Permissions,
}

/// Users and permissions. Locks are held only for a lookup or an insert.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Users by name.
    users: RwLock<HashMap<String, User>>,
    /// Permissions by vhost, then user.
    permissions: RwLock<HashMap<String, HashMap<String, Arc<Compiled>>>>,
}

impl Registry {
    /// Adds or replaces a user.
    pub(crate) fn put_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    /// Removes a user and its permissions in every vhost; `false` if there was none.
    pub(crate) fn remove_user(&self, name: &str) -> bool {
        let removed = self.users.write().remove(name).is_some();
        for users in self.permissions.write().values_mut() {
            users.remove(name);
        }
        removed
    }

    /// Returns a user.
    pub(crate) fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    /// Returns every user, sorted by name.
    pub(crate) fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = self.users.read().values().cloned().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// Returns the user if `password` is theirs.
    pub(crate) fn authenticate(&self, name: &str, password: &str) -> Option<User> {
        let user = self.user(name)?;
        // Hashing runs outside the lock.
        user.password_hash
            .as_ref()
            .is_some_and(|h| h.verify(password))
            .then_some(user)
    }

    /// Sets a user's permissions in a vhost.
    pub(crate) fn set_permissions(&self, vhost: &str, user: &str, compiled: Compiled) {
        self.permissions
            .write()
            .entry(vhost.to_owned())
            .or_default()
            .insert(user.to_owned(), Arc::new(compiled));
    }

    /// Removes a user's permissions in a vhost; `false` if there were none.
    pub(crate) fn clear_permissions(&self, vhost: &str, user: &str) -> bool {
        self.permissions
            .write()
            .get_mut(vhost)
            .is_some_and(|users| users.remove(user).is_some())
    }

    /// Removes every permission in a vhost (the vhost is deleted).
    pub(crate) fn clear_vhost(&self, vhost: &str) {
        self.permissions.write().remove(vhost);
    }

    /// Returns a user's permissions in a vhost.
    pub(crate) fn permissions(&self, vhost: &str, user: &str) -> Option<Arc<Compiled>> {
        self.permissions.read().get(vhost)?.get(user).cloned()
    }

    /// Returns every user's permissions, sorted by vhost then user.
    pub(crate) fn list_permissions(&self) -> Vec<UserPermissions> {
        let mut all: Vec<UserPermissions> = self
            .permissions
            .read()
            .iter()
            .flat_map(|(vhost, users)| {
                users.iter().map(move |(user, p)| UserPermissions {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    permissions: p.source.clone(),
                })
            })
            .collect();
        all.sort_by(|a, b| (&a.vhost, &a.user).cmp(&(&b.vhost, &b.user)));
        all
    }
}

/// The user a connection was opened as: every resource operation of its channels is
/// checked against that user's permissions of the moment (a change or a deletion applies to
/// the next operation).
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// The user name.
    pub(crate) user: Arc<str>,
    /// Where the permissions live.
    registry: Arc<Registry>,
}

impl Identity {
    pub(crate) fn new(user: &str, registry: Arc<Registry>) -> Identity {
        Identity {
            user: user.into(),
            registry,
        }
    }

    /// Checks `access` to a resource of `vhost`; RabbitMQ's 403 if refused.
    pub(crate) fn check(
        &self,
        vhost: &str,
        access: Access,
        resource: Resource,
        name: &str,
    ) -> Result<()> {
        match self.registry.permissions(vhost, &self.user) {
            Some(p) if p.allows(access, name) => Ok(()),
            _ => Err(refused(resource, name, vhost, &self.user)),
        }
    }

    /// Checks the `user_id` property of a published message: it must name the user, unless
    /// the user has the `impersonator` tag (406 otherwise, RabbitMQ's text).
    pub(crate) fn check_user_id(&self, user_id: &str) -> Result<()> {
        if user_id == &*self.user
            || self
                .registry
                .user(&self.user)
                .is_some_and(|u| u.has_tag("impersonator"))
        {
            return Ok(());
        }
        Err(Error::precondition(format!(
            "user_id property set to '{user_id}' but authenticated user was '{}'",
            self.user
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_follow_changes_and_deletion() {
        let registry = Arc::new(Registry::default());
        registry.put_user(User {
            name: "u".into(),
            password_hash: Some(PasswordHash::new("pw")),
            tags: vec![],
        });
        assert!(registry.authenticate("u", "pw").is_some());
        assert!(registry.authenticate("u", "no").is_none());
        assert!(registry.authenticate("nobody", "pw").is_none());
        let id = Identity::new("u", Arc::clone(&registry));
        let check = || id.check("v", Access::Write, Resource::Exchange, "x");
        assert_eq!(check().unwrap_err().reply_code().0, 403);
        registry.set_permissions("v", "u", Compiled::new(Permissions::full()).unwrap());
        assert!(check().is_ok());
        assert_eq!(registry.list_permissions().len(), 1);
        registry.remove_user("u");
        assert!(check().is_err());
        assert!(registry.list_permissions().is_empty());
    }

    #[test]
    fn user_id_must_be_the_users_own_unless_impersonator() {
        let registry = Arc::new(Registry::default());
        let id = Identity::new("u", Arc::clone(&registry));
        assert!(id.check_user_id("u").is_ok());
        assert_eq!(
            id.check_user_id("x").unwrap_err().to_string(),
            "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user was 'u'"
        );
        registry.put_user(User {
            name: "u".into(),
            password_hash: None,
            tags: vec!["impersonator".into()],
        });
        assert!(id.check_user_id("x").is_ok());
    }
}
