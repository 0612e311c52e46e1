//! Users, passwords and permissions, as RabbitMQ models them.
//!
//! - `password`: [`PasswordHash`] in RabbitMQ's format (salted SHA-256 or SHA-512, base64).
//! - `permissions`: [`Permissions`], the configure / write / read patterns of a user in a
//!   vhost, their compiled form and RabbitMQ's 403 texts.
//! - `registry`: the broker's users and permissions, and the [`Identity`] a connection
//!   opened as a user checks its operations with.
//! - `admin`: the [`Broker`](crate::Broker) methods that manage them.
//! - `throttle`: [`LoginThrottle`], which slows failed logins per source address.
//!
//! A connection opened with [`Broker::connect`](crate::Broker::connect) is trusted (full
//! rights, no checks); one opened with [`Broker::connect_as`](crate::Broker::connect_as) —
//! and every wire connection — is checked on each operation.

mod admin;
mod password;
mod permissions;
mod registry;
mod throttle;

pub use password::{HashingAlgorithm, PasswordHash};
pub use permissions::Permissions;
pub(crate) use permissions::{Access, Resource};
pub(crate) use registry::{Identity, Registry};
pub use registry::{User, UserPermissions};
pub use throttle::LoginThrottle;
