//! [`ManagementOptions`]: the settings of the management HTTP API.

/// Settings of the management HTTP API
/// ([`WireServer::serve_management_with`](crate::WireServer::serve_management_with)).
///
/// # Defaults
///
/// - request bodies up to 20,000,000 bytes (RabbitMQ's `management.http.max_body_size`).
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, ManagementOptions};
///
/// # fn main() -> std::io::Result<()> {
/// let server = Broker::in_memory().serve("127.0.0.1:0")?;
/// // Definitions files of up to 64 MiB may be imported over HTTP.
/// let options = ManagementOptions { max_body_size: 64 << 20, ..ManagementOptions::default() };
/// let management = server.serve_management_with("127.0.0.1:0", options)?;
/// management.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementOptions {
    /// The largest request body accepted (a definitions file to import, a message to
    /// publish, a declare), in bytes: RabbitMQ's `management.http.max_body_size`. A larger
    /// body is answered as RabbitMQ answers it, `400 {"error":"bad_request","reason":
    /// "Exceeded HTTP request body size limit"}`, without being held in memory.
    pub max_body_size: usize,
}

impl ManagementOptions {
    /// RabbitMQ's default `management.http.max_body_size`: 20,000,000 bytes.
    pub const DEFAULT_MAX_BODY_SIZE: usize = 20_000_000;
}

impl Default for ManagementOptions {
    fn default() -> Self {
        ManagementOptions {
            max_body_size: Self::DEFAULT_MAX_BODY_SIZE,
        }
    }
}
