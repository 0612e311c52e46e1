//! [`WireOptions`]: the settings of the wire listener, shared by the listener, the
//! handshake and each connection (kept apart from `server` so that those modules depend on
//! it rather than on one another).

/// Settings of the wire listener.
///
/// # Defaults
///
/// - user `guest`, password `guest` (accepted from any address, unlike RabbitMQ's
///   loopback-only default);
/// - heartbeat 60 s proposed (the client's answer wins, 0 turns heartbeats off);
/// - frame-max 131072 bytes, channel-max 2047 (RabbitMQ's defaults).
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
    /// The highest channel number proposed to clients (0 = no limit).
    pub channel_max: u16,
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            user: "guest".into(),
            password: "guest".into(),
            heartbeat: 60,
            frame_max: super::frames::FRAME_MAX,
            channel_max: 2047,
        }
    }
}
