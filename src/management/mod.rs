//! The management HTTP API (feature `management`): the subset of RabbitMQ's management
//! plugin that tools use (`rabbitmqadmin`, dashboards, Terraform providers), with its paths,
//! JSON shapes and basic auth, plus a Prometheus `/metrics` endpoint and a small HTML page.
//!
//! It is served by [`WireServer::serve_management`](crate::WireServer::serve_management) on
//! the wire listener's tokio runtime, on a port of its own. Like the wire listener, it
//! speaks only the public API ([`Broker`](crate::Broker), [`Connection`](crate::Connection),
//! [`Channel`](crate::Channel)).
//!
//! - [`server`]: `serve_management`, [`ManagementServer`] and the route table.
//! - `options`: [`ManagementOptions`], the API's settings.
//! - `request_body`: request bodies, read up to the limit.
//! - `auth`: who may use the API (basic auth).
//! - `visibility`: what a user sees and may touch, by its tags and permissions.
//! - `error`: errors as RabbitMQ's JSON bodies and status codes.
//! - `json`: field tables, properties and flags to and from JSON.
//! - `query`: `columns`, `sort`, `sort_reverse` and pagination of listings.
//! - `rates`: the sampler behind each `*_details.rate`.
//! - `system`: the process's memory and file descriptors.
//! - `objects`: the JSON of queues, exchanges, bindings, vhosts and the overview.
//! - `overview`: the routes about the node: overview, nodes, whoami, the aliveness test.
//! - `users`: the routes over users and permissions (listing, create, delete), for
//!   administrators.
//! - `topology`: the routes over vhosts, exchanges, queues and bindings.
//! - `clients`: the routes over the wire listener's connections, channels and consumers.
//! - `definitions`: the routes over definitions (export and import) and policies.
//! - `messages`: publishing to an exchange and getting from a queue.
//! - `metrics`: the Prometheus text exposition.
//! - `page`: the HTML page listing queues and exchanges.

mod auth;
mod clients;
mod definitions;
mod error;
mod json;
mod messages;
mod metrics;
mod objects;
mod options;
mod overview;
mod page;
mod query;
mod rates;
mod request_body;
mod server;
mod system;
mod topology;
mod users;
mod visibility;

pub use options::ManagementOptions;
pub use server::ManagementServer;
