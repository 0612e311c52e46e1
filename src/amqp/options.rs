//! [`WireOptions`]: the settings of the wire listener, shared by the listener, the
//! handshake and each connection (kept apart from `server` so that those modules depend on
//! it rather than on one another).

use std::time::Duration;

/// Settings of the wire listener.
///
/// Clients log in (PLAIN or AMQPLAIN) as one of the broker's users
/// ([`Broker::add_user`](crate::Broker::add_user)), and each connection is checked against
/// that user's permissions in the vhost it opens.
///
/// # Defaults
///
/// - `guest` may log in only from a loopback address (RabbitMQ's `loopback_users`);
/// - an address that failed a login gets at most 10 attempts per second from then on;
/// - heartbeat 60 s proposed (the client's answer wins, 0 turns heartbeats off);
/// - frame-max 131072 bytes, channel-max 2047 (RabbitMQ's defaults);
/// - a 10 s deadline for the whole opening handshake (RabbitMQ's `handshake_timeout`);
/// - message bodies up to 128 MiB (RabbitMQ's `max_message_size`);
/// - no limit on consumers per channel or per connection, nor on connections (RabbitMQ's
///   defaults: `consumer_max_per_channel` and `connection_max` are `infinity`).
///
/// # Examples
///
/// ```
/// use warrenmq::{Broker, Permissions, WireOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker = Broker::in_memory();
/// broker.add_user("app", "s3cret", &[])?;
/// broker.set_permissions("app", "/", Permissions::full())?;
/// // Let guest in from anywhere (not recommended outside a test network).
/// let options = WireOptions { loopback_users: vec![], ..WireOptions::default() };
/// let server = broker.serve_with("127.0.0.1:0", options)?;
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireOptions {
    /// Users who may log in only from a loopback address (127.0.0.0/8, `::1`);
    /// `["guest"]` by default, as RabbitMQ's `loopback_users`.
    pub loopback_users: Vec<String>,
    /// Once an address has failed a login, its later attempts are answered at most this
    /// many times per second (see [`LoginThrottle`](crate::LoginThrottle)); 0 turns the
    /// slowing off.
    pub failed_logins_per_second: u32,
    /// The heartbeat interval proposed to clients, in seconds.
    pub heartbeat: u16,
    /// The largest frame proposed to clients, in bytes: at least 4096 (AMQP's
    /// frame-min-size); clients may ask for less.
    pub frame_max: u32,
    /// The most channels a connection may have open at once, proposed to clients (0 = no
    /// limit); the client's lower value wins. Opening one more closes the connection with
    /// 530 `NOT_ALLOWED - number of channels opened (N) has reached the negotiated
    /// channel_max (N)`, as in RabbitMQ, which counts open channels rather than checking
    /// channel numbers.
    pub channel_max: u16,
    /// How long the opening handshake may take in total, from the TCP accept to
    /// `connection.open-ok` (RabbitMQ's `handshake_timeout`); a client that has not finished
    /// by then is disconnected, however steadily it trickles bytes.
    pub handshake_timeout: Duration,
    /// The largest message body accepted, in bytes (RabbitMQ's `max_message_size`); a
    /// larger one closes its channel with 406 `PRECONDITION_FAILED - message size N is
    /// larger than configured max size M`.
    pub max_message_size: u64,
    /// The most consumers one channel may have (`None`: no limit); one more closes the
    /// connection with 530 `NOT_ALLOWED - reached maximum (N) of consumers per channel`
    /// (RabbitMQ's `consumer_max_per_channel`, 3.12 and later).
    pub consumer_max_per_channel: Option<u32>,
    /// The most consumers one connection may have over all its channels (`None`: no
    /// limit); one more closes the connection with 530 `NOT_ALLOWED - reached maximum (N)
    /// of consumers per connection` (a Warren setting; RabbitMQ has none).
    pub consumer_max_per_connection: Option<u32>,
    /// The most client connections the listener serves at once (`None`: no limit;
    /// RabbitMQ's `connection_max`). A client over the limit is refused at
    /// `connection.open` with 530 `NOT_ALLOWED - connection refused: listener connection
    /// limit (N) is reached`.
    pub connection_max: Option<usize>,
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            loopback_users: vec!["guest".into()],
            failed_logins_per_second: 10,
            heartbeat: 60,
            frame_max: super::frames::FRAME_MAX,
            channel_max: 2047,
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 128 * 1024 * 1024,
            consumer_max_per_channel: None,
            consumer_max_per_connection: None,
            connection_max: None,
        }
    }
}
