//! The [`Broker`] methods that manage users and permissions, and persist them in a
//! persistent broker.

use super::password::{HashingAlgorithm, PasswordHash};
use super::permissions::{Compiled, Permissions};
use super::registry::{User, UserPermissions};
use crate::store::{AuthRecord, PermissionRecord, StoreOp, UserRecord, AUTH_PERMISSION, AUTH_USER};
use crate::{Broker, Error, Result};

impl Broker {
    /// Adds a user with `password` (hashed with SHA-256 and a random salt, as RabbitMQ
    /// does) and `tags`, or replaces the password and tags of an existing one. A new user
    /// has no permissions: grant them with [`set_permissions`](Self::set_permissions).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, Permissions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let broker = Broker::in_memory();
    /// broker.add_user("app", "s3cret", &["monitoring"])?;
    /// broker.set_permissions("app", "/", Permissions::new("^app\\.", "^app\\.", "^app\\."))?;
    /// assert!(broker.authenticate("app", "s3cret").is_ok());
    /// let ch = broker.connect_as("app", "/")?.open_channel()?;
    /// let err = ch.basic_publish("amq.topic", "k", warrenmq::Message::new("x")).unwrap_err();
    /// assert_eq!(err.reply_code().0, 403);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// 406 for a name longer than 255 bytes; [`Error::Storage`] if a persistent broker
    /// cannot write it.
    pub fn add_user(&self, name: &str, password: &str, tags: &[&str]) -> Result<()> {
        let tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self.add_user_with_hash(name, Some(PasswordHash::new(password)), tags)
    }

    /// Adds or replaces a user with a password hash made elsewhere (RabbitMQ's
    /// `password_hash` of a definitions file, read with [`PasswordHash::from_base64`]), or
    /// without a password (`None`: the user cannot log in with one). This is the hook for
    /// importing definitions.
    ///
    /// # Errors
    ///
    /// As for [`add_user`](Self::add_user).
    pub fn add_user_with_hash(
        &self,
        name: &str,
        password_hash: Option<PasswordHash>,
        tags: Vec<String>,
    ) -> Result<()> {
        crate::names::check_length("user name", name)?;
        let user = User {
            name: name.to_owned(),
            password_hash,
            tags,
        };
        self.persist_auth(|| StoreOp::PutAuth(AuthRecord::User(user_record(&user))))?;
        self.inner.auth.put_user(user);
        tracing::info!(user = name, "user added");
        Ok(())
    }

    /// Deletes a user and its permissions. Connections already opened as the user stay
    /// open, but every later operation on them is refused (403), as the user has no
    /// permissions left.
    ///
    /// # Errors
    ///
    /// 404 if there is no such user; [`Error::Storage`] if a persistent broker cannot
    /// write it.
    pub fn delete_user(&self, name: &str) -> Result<()> {
        if self.inner.auth.user(name).is_none() {
            return Err(no_such_user(name));
        }
        self.persist_auth(|| StoreOp::DeleteAuth {
            kind: AUTH_USER,
            first: name.to_owned(),
            second: String::new(),
        })?;
        self.inner.auth.remove_user(name);
        tracing::info!(user = name, "user deleted");
        Ok(())
    }

    /// Returns a user, or `None`.
    pub fn user(&self, name: &str) -> Option<User> {
        self.inner.auth.user(name)
    }

    /// Returns every user, sorted by name: what a definitions export writes
    /// (`password_hash` is [`PasswordHash::to_base64`], `hashing_algorithm` its
    /// [`algorithm`](PasswordHash::algorithm)'s [`name`](HashingAlgorithm::name)); an import
    /// reads them back with [`add_user_with_hash`](Self::add_user_with_hash), and
    /// [`permissions`](Self::permissions) / [`set_permissions`](Self::set_permissions) do the
    /// same for permissions.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::{Broker, HashingAlgorithm, PasswordHash, Permissions};
    ///
    /// # fn main() -> Result<(), warrenmq::Error> {
    /// let old = Broker::in_memory();
    /// old.add_user("app", "s3cret", &["monitoring"])?;
    /// old.set_permissions("app", "/", Permissions::new("^app\\.", ".*", ".*"))?;
    ///
    /// // Export: the strings a definitions file carries.
    /// let exported: Vec<(String, String, &str, Vec<String>)> = old
    ///     .users()
    ///     .into_iter()
    ///     .map(|u| {
    ///         let hash = u.password_hash.expect("a password");
    ///         (u.name, hash.to_base64(), hash.algorithm().name(), u.tags)
    ///     })
    ///     .collect();
    ///
    /// // Import into another broker: same hashes, so the same passwords work.
    /// let new = Broker::builder().default_user(None).build()?;
    /// for (name, hash, algorithm, tags) in exported {
    ///     let hash = PasswordHash::from_base64(HashingAlgorithm::from_name(algorithm)?, &hash)?;
    ///     new.add_user_with_hash(&name, Some(hash), tags)?;
    /// }
    /// for p in old.permissions() {
    ///     if new.user(&p.user).is_some() {
    ///         new.set_permissions(&p.user, &p.vhost, p.permissions)?;
    ///     }
    /// }
    /// assert!(new.authenticate("app", "s3cret").is_ok());
    /// assert_eq!(new.user_permissions("app", "/"), old.user_permissions("app", "/"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn users(&self) -> Vec<User> {
        self.inner.auth.users()
    }

    /// Checks a user's password and returns the user.
    ///
    /// # Errors
    ///
    /// 403 ACCESS_REFUSED for an unknown user, a user without a password or a wrong
    /// password (one text for all three, as RabbitMQ answers).
    pub fn authenticate(&self, name: &str, password: &str) -> Result<User> {
        self.inner.auth.authenticate(name, password).ok_or_else(|| {
            Error::access_refused(
                "Login was refused using authentication mechanism PLAIN. For details see the \
                 broker logfile.",
            )
        })
    }

    /// Sets what `user` may do in `vhost` (replacing earlier permissions there). The
    /// user's open connections use the new permissions from their next operation.
    ///
    /// # Errors
    ///
    /// 404 for an unknown user; 530 for an unknown vhost; 406 for a pattern that is not a
    /// valid regular expression; [`Error::Storage`] if a persistent broker cannot write it.
    pub fn set_permissions(&self, user: &str, vhost: &str, permissions: Permissions) -> Result<()> {
        if self.inner.auth.user(user).is_none() {
            return Err(no_such_user(user));
        }
        self.vhost(vhost)?;
        let compiled = Compiled::new(permissions.clone())?;
        self.persist_auth(|| {
            StoreOp::PutAuth(AuthRecord::Permission(PermissionRecord {
                vhost: vhost.to_owned(),
                user: user.to_owned(),
                configure: permissions.configure.clone(),
                write: permissions.write.clone(),
                read: permissions.read.clone(),
            }))
        })?;
        self.inner.auth.set_permissions(vhost, user, compiled);
        tracing::info!(user, vhost, "permissions set");
        Ok(())
    }

    /// Removes `user`'s permissions in `vhost`. Removing none succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if a persistent broker cannot write it.
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<()> {
        if self.inner.auth.permissions(vhost, user).is_none() {
            return Ok(());
        }
        self.persist_auth(|| StoreOp::DeleteAuth {
            kind: AUTH_PERMISSION,
            first: vhost.to_owned(),
            second: user.to_owned(),
        })?;
        self.inner.auth.clear_permissions(vhost, user);
        Ok(())
    }

    /// Returns every user's permissions in every vhost, sorted by vhost, then user.
    pub fn permissions(&self) -> Vec<UserPermissions> {
        self.inner.auth.list_permissions()
    }

    /// Returns `user`'s permissions in `vhost`, or `None`.
    pub fn user_permissions(&self, user: &str, vhost: &str) -> Option<Permissions> {
        self.inner
            .auth
            .permissions(vhost, user)
            .map(|p| p.source.clone())
    }

    /// Writes an auth change to a persistent broker's store and waits for it.
    fn persist_auth(&self, op: impl FnOnce() -> StoreOp) -> Result<()> {
        let store = &self.inner.settings.store;
        if store.is_persistent() {
            store.submit(op()).wait()?;
        }
        Ok(())
    }

    /// Rebuilds users and permissions from stored records; returns `true` if the default
    /// user had been created before.
    #[cfg(feature = "persistence")]
    pub(crate) fn recover_auth(&self, records: &[AuthRecord]) -> Result<bool> {
        let mut defaults_applied = false;
        for record in records {
            match record {
                AuthRecord::User(u) => {
                    let password_hash = match &u.password_hash {
                        Some(text) => Some(PasswordHash::from_base64(
                            HashingAlgorithm::from_name(&u.hashing_algorithm)?,
                            text,
                        )?),
                        None => None,
                    };
                    self.inner.auth.put_user(User {
                        name: u.name.clone(),
                        password_hash,
                        tags: u.tags.clone(),
                    });
                }
                AuthRecord::Permission(p) => {
                    let permissions = Permissions::new(&*p.configure, &*p.write, &*p.read);
                    self.inner
                        .auth
                        .set_permissions(&p.vhost, &p.user, Compiled::new(permissions)?);
                }
                AuthRecord::DefaultsApplied => defaults_applied = true,
            }
        }
        Ok(defaults_applied)
    }

    /// Creates the default user with full permissions on `/`, and marks it done in a
    /// persistent broker so that it is never created again (not even after its deletion).
    pub(crate) fn apply_default_user(&self, default: Option<&(String, String)>) -> Result<()> {
        if let Some((name, password)) = default {
            self.add_user(name, password, &["administrator"])?;
            self.set_permissions(name, "/", Permissions::full())?;
        }
        self.persist_auth(|| StoreOp::PutAuth(AuthRecord::DefaultsApplied))
    }
}

fn user_record(user: &User) -> UserRecord {
    UserRecord {
        name: user.name.clone(),
        password_hash: user.password_hash.as_ref().map(PasswordHash::to_base64),
        hashing_algorithm: user
            .password_hash
            .as_ref()
            .map_or(HashingAlgorithm::Sha256, PasswordHash::algorithm)
            .name()
            .to_owned(),
        tags: user.tags.clone(),
    }
}

fn no_such_user(name: &str) -> Error {
    Error::NotFound {
        reason: format!("no user '{name}'"),
    }
}
