//! [`WireOptions`]: the settings of the wire listener, shared by the listener, the
//! handshake and each connection (kept apart from `server` so that those modules depend on
//! it rather than on one another).

use std::time::Duration;

/// Settings of the wire listener.
///
/// # Defaults
///
/// - user `guest`, password `guest` (accepted from any address, unlike RabbitMQ's
///   loopback-only default);
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
/// use warrenmq::{Broker, WireOptions};
///
/// # fn main() -> std::io::Result<()> {
/// let options = WireOptions { user: "app".into(), password: "s3cret".into(), ..WireOptions::default() };
/// let server = Broker::in_memory().serve_with("127.0.0.1:0", options)?;
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireOptions {
    /// The user name clients must log in with (PLAIN or AMQPLAIN).
    pub user: String,
    /// The password clients must log in with.
    pub password: String,
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
            user: "guest".into(),
            password: "guest".into(),
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
