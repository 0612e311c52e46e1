//! The opening of a connection: protocol header, `connection.start` / `start-ok` with
//! PLAIN or AMQPLAIN authentication, `tune` / `tune-ok`, and `open` into a vhost.

use std::net::{IpAddr, SocketAddr};

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as WireTable, LongString};

use super::failure::{Failure, MethodId};
use super::frames::{self, PROTOCOL_HEADER};
use super::nesting;
use super::outbox::Outbox;
use super::server::Shared;
use super::socket::Socket;
use crate::{Connection, ReplyCode};

/// The smallest frame size a peer may ask for (AMQP's frame-min-size).
const FRAME_MIN: u32 = 4096;

/// What the handshake agreed on.
#[derive(Debug)]
pub(crate) struct Negotiated {
    /// The session connection in the requested vhost.
    pub(crate) connection: Connection,
    /// The user who logged in.
    pub(crate) user: String,
    /// The authentication mechanism used: `PLAIN` or `AMQPLAIN`.
    pub(crate) auth_mechanism: String,
    /// What the client said of itself in `connection.start-ok`.
    pub(crate) client_properties: crate::FieldTable,
    /// The frame size limit, overhead included.
    pub(crate) frame_max: u32,
    /// The highest channel number.
    pub(crate) channel_max: u16,
    /// Seconds between heartbeats (0 = none).
    pub(crate) heartbeat: u16,
    /// The client handles a server-sent `basic.cancel`.
    pub(crate) notify_cancel: bool,
    /// The client handles `connection.blocked` / `unblocked`.
    pub(crate) notify_blocked: bool,
}

/// Runs the handshake.
///
/// # Errors
///
/// [`Failure::Gone`] for a wrong protocol header (after answering with the right one) or a
/// vanished peer; 403 for refused credentials; 530 for an unknown vhost, or at
/// `connection.open` when the listener is `over_limit` (serving `connection_max`
/// connections already); 503 for methods out of order.
pub(crate) async fn negotiate(
    reader: &mut Socket,
    shared: &Shared,
    peer: SocketAddr,
    over_limit: bool,
) -> Result<Negotiated, Failure> {
    let (broker, options) = (&shared.broker, &shared.options);
    let outbox = &reader.outbox().clone();
    let header = reader.read_protocol_header().await?;
    if header != PROTOCOL_HEADER {
        outbox.send(PROTOCOL_HEADER.to_vec());
        return Err(Failure::Gone);
    }
    send(outbox, connection::AMQPMethod::Start(start()));
    let start_ok = match expect(reader, "connection.start-ok").await? {
        connection::AMQPMethod::StartOk(m) => m,
        _ => return Err(out_of_order("connection.start-ok")),
    };
    let user = authenticate(&start_ok, shared, peer).await?;
    let notify_cancel = capability(&start_ok.client_properties, "consumer_cancel_notify");
    let notify_blocked = capability(&start_ok.client_properties, "connection.blocked");
    let tune = connection::Tune {
        channel_max: options.channel_max,
        frame_max: options.frame_max,
        heartbeat: options.heartbeat,
    };
    send(outbox, connection::AMQPMethod::Tune(tune));
    let tune_ok = match expect(reader, "connection.tune-ok").await? {
        connection::AMQPMethod::TuneOk(m) => m,
        _ => return Err(out_of_order("connection.tune-ok")),
    };
    let frame_max = agree(options.frame_max, tune_ok.frame_max);
    if frame_max < FRAME_MIN {
        return Err(Failure::hard(
            ReplyCode::NOT_ALLOWED,
            format_args!("frame_max={frame_max} < {FRAME_MIN} min size"),
        ));
    }
    reader.set_frame_max(frame_max);
    let open = match expect(reader, "connection.open").await? {
        connection::AMQPMethod::Open(m) => m,
        _ => return Err(out_of_order("connection.open")),
    };
    let open_id = MethodId {
        class: 10,
        method: 40,
    };
    if over_limit {
        let limit = options.connection_max.unwrap_or_default();
        return Err(Failure::hard(
            ReplyCode::NOT_ALLOWED,
            format_args!("connection refused: listener connection limit ({limit}) is reached"),
        )
        .at(open_id));
    }
    let vhost = open.virtual_host.as_str();
    let connection = broker.connect_as(&user, vhost).map_err(|e| {
        tracing::warn!(user, vhost, error = %e, "vhost access refused");
        Failure::from_error(&e, open_id)
    })?;
    send(
        outbox,
        connection::AMQPMethod::OpenOk(connection::OpenOk {}),
    );
    Ok(Negotiated {
        connection,
        user,
        auth_mechanism: start_ok.mechanism.as_str().to_owned(),
        client_properties: super::convert::table_from_wire(&start_ok.client_properties),
        frame_max,
        // 0 on both sides means no limit.
        channel_max: match agree(options.channel_max.into(), tune_ok.channel_max.into()) {
            0 => u16::MAX,
            n => u16::try_from(n).unwrap_or(u16::MAX),
        },
        heartbeat: tune_ok.heartbeat,
        notify_cancel,
        notify_blocked,
    })
}

/// The lower of two limits, where 0 means "no limit".
fn agree(ours: u32, theirs: u32) -> u32 {
    match (ours, theirs) {
        (0, t) => t,
        (o, 0) => o,
        (o, t) => o.min(t),
    }
}

/// The protocol extensions announced in `connection.start`, RabbitMQ's table in its order.
const CAPABILITIES: [&str; 9] = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
];

fn start() -> connection::Start {
    let mut capabilities = WireTable::default();
    for name in CAPABILITIES {
        capabilities.insert(name.into(), AMQPValue::Boolean(true));
    }
    let mut properties = WireTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes()));
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    properties.insert("cluster_name".into(), text(&cluster_name()));
    properties.insert("copyright".into(), text("Copyright (c) the Warren authors"));
    properties.insert(
        "information".into(),
        text("Licensed under the MIT or Apache-2.0 licence. Website: https://crates.io/crates/warrenmq"),
    );
    properties.insert("platform".into(), text(&platform()));
    properties.insert("product".into(), text("Warren"));
    properties.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: properties,
        mechanisms: LongString::from("PLAIN AMQPLAIN".as_bytes()),
        locales: LongString::from("en_US".as_bytes()),
    }
}

/// The name of this node, like RabbitMQ's default `rabbit@<host>`: `warren@<host>`.
fn cluster_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("warren@{host}")
}

/// The platform, as RabbitMQ names its runtime (`Erlang/OTP 25.2.3`).
fn platform() -> String {
    format!("Rust/{}", std::env::consts::OS)
}

fn send(outbox: &Outbox, method: connection::AMQPMethod) {
    outbox.send(frames::method(0, AMQPClass::Connection(method)));
}

/// Reads the next connection method on channel 0, skipping heartbeats.
async fn expect(reader: &mut Socket, expected: &str) -> Result<connection::AMQPMethod, Failure> {
    loop {
        match reader.read_frame().await? {
            AMQPFrame::Heartbeat => {}
            AMQPFrame::Method(0, AMQPClass::Connection(m)) => return Ok(m),
            _ => return Err(out_of_order(expected)),
        }
    }
}

fn out_of_order(expected: &str) -> Failure {
    Failure::hard(
        ReplyCode::COMMAND_INVALID,
        format_args!("expected '{expected}'"),
    )
}

/// Checks the credentials of `connection.start-ok` and returns the user: the password
/// against the broker's users, loopback-only users against the peer's address, and, for an
/// address that failed before, only at its turn ([`crate::LoginThrottle`]).
async fn authenticate(
    start_ok: &connection::StartOk,
    shared: &Shared,
    peer: SocketAddr,
) -> Result<String, Failure> {
    let mechanism = start_ok.mechanism.as_str();
    let response = start_ok.response.as_bytes();
    let credentials = match mechanism {
        "PLAIN" => plain(response),
        "AMQPLAIN" => amqplain(response),
        other => {
            return Err(Failure::hard(
                ReplyCode::ACCESS_REFUSED,
                format_args!("unsupported authentication mechanism '{other}'"),
            )
            .at(MethodId {
                class: 10,
                method: 11,
            }))
        }
    };
    if let Some(throttle) = &shared.throttle {
        let wait = throttle.delay(peer.ip());
        if !wait.is_zero() {
            tracing::debug!(%peer, ?wait, "login slowed after failures from this address");
            tokio::time::sleep(wait).await;
        }
    }
    let (name, password) = credentials.unwrap_or_default();
    let loopback_only = |user: &str| shared.options.loopback_users.iter().any(|u| u == user);
    let refusal = match shared.broker.authenticate(&name, &password) {
        Ok(user) if !is_loopback(peer.ip()) && loopback_only(&user.name) => {
            "user may log in from a loopback address only (loopback_users)"
        }
        Ok(user) => return Ok(user.name),
        Err(_) => "unknown user or wrong password",
    };
    if let Some(throttle) = &shared.throttle {
        throttle.failed(peer.ip());
    }
    tracing::warn!(user = name, %peer, mechanism, reason = refusal, "login refused");
    Err(Failure::hard(
        ReplyCode::ACCESS_REFUSED,
        format_args!(
            "Login was refused using authentication mechanism {mechanism}. \
             For details see the broker logfile."
        ),
    )
    .at(MethodId {
        class: 10,
        method: 11,
    }))
}

/// Returns `true` for 127.0.0.0/8, `::1` and IPv4-mapped loopback addresses.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Splits a PLAIN response, `authzid NUL user NUL password`.
fn plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let password = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((user, password))
}

/// Reads an AMQPLAIN response: a field table without its length prefix, with `LOGIN` and
/// `PASSWORD`.
fn amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut bytes = (response.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(response);
    if !nesting::check_table(&bytes) {
        return None;
    }
    let (_, table) = amq_protocol::types::parsing::parse_field_table(bytes.as_slice()).ok()?;
    let text = |key: &str| match table.inner().get(key)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

/// Reads a boolean from the `capabilities` table of the client properties.
fn capability(client_properties: &WireTable, name: &str) -> bool {
    match client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::WireOptions;

    #[test]
    fn plain_responses_are_split() {
        assert_eq!(
            plain(b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(plain(b"guest"), None);
    }

    #[test]
    fn amqplain_responses_are_read_and_bounded() {
        // LOGIN: S"guest", PASSWORD: S"pw", without the table's length prefix.
        let mut response = vec![5];
        response.extend_from_slice(b"LOGINS\0\0\0\x05guest");
        response.push(8);
        response.extend_from_slice(b"PASSWORDS\0\0\0\x02pw");
        assert_eq!(amqplain(&response), Some(("guest".into(), "pw".into())));
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            let inner = std::mem::take(&mut deep);
            deep.extend_from_slice(&[1, b'k', b'F']);
            deep.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            deep.extend_from_slice(&inner);
        }
        assert_eq!(amqplain(&deep), None);
    }

    /// How a login ended.
    #[derive(Debug, PartialEq)]
    enum Login {
        /// Accepted as this user.
        Accepted(String),
        /// Refused with this code and text.
        Refused(ReplyCode, String),
    }

    /// Runs [`authenticate`] for a PLAIN login of `user` / `password` from `peer`.
    fn log_in(shared: &Shared, user: &str, password: &str, peer: &str) -> Login {
        let start_ok = connection::StartOk {
            client_properties: WireTable::default(),
            mechanism: "PLAIN".into(),
            response: format!("\0{user}\0{password}").into(),
            locale: "en_US".into(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        match runtime.block_on(authenticate(&start_ok, shared, peer)) {
            Ok(user) => Login::Accepted(user),
            Err(Failure::Connection { code, text, .. }) => Login::Refused(code, text),
            Err(other) => panic!("not a login refusal: {other:?}"),
        }
    }

    /// RabbitMQ's refusal of a login, whatever the reason.
    fn refused() -> Login {
        Login::Refused(
            ReplyCode::ACCESS_REFUSED,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile."
                .to_owned(),
        )
    }

    fn accepted(user: &str) -> Login {
        Login::Accepted(user.to_owned())
    }

    #[test]
    fn guest_is_refused_from_a_remote_peer_and_that_address_is_slowed() {
        let options = WireOptions {
            failed_logins_per_second: 4,
            ..WireOptions::default()
        };
        let shared = Shared::new(crate::Broker::in_memory(), options);
        shared.broker.add_user("app", "pw", &[]).expect("a user");
        // guest with the right password: accepted over loopback, refused from elsewhere,
        // with the same text as a wrong password (RabbitMQ's).
        assert_eq!(
            log_in(&shared, "guest", "guest", "127.0.0.1:40000"),
            accepted("guest")
        );
        assert_eq!(
            log_in(&shared, "guest", "guest", "[::1]:40000"),
            accepted("guest")
        );
        assert_eq!(
            log_in(&shared, "guest", "guest", "192.0.2.7:40000"),
            refused()
        );
        // The refusal counts as a failed login of that address: its next attempts take
        // turns 250 ms apart (4 per second); other addresses are not slowed.
        let throttle = shared.throttle.as_ref().expect("a throttle");
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let first = throttle.delay(remote);
        let second = throttle.delay(remote);
        assert!(
            first > Duration::ZERO && first <= Duration::from_millis(250),
            "{first:?}"
        );
        assert!(
            second >= first + Duration::from_millis(249),
            "{first:?} {second:?}"
        );
        assert_eq!(throttle.delay("192.0.2.8".parse().unwrap()), Duration::ZERO);
        assert_eq!(throttle.delay("127.0.0.1".parse().unwrap()), Duration::ZERO);
        // A user who is not loopback-only logs in from anywhere; a wrong password from a
        // fresh address is refused and slows that address too.
        assert_eq!(
            log_in(&shared, "app", "pw", "198.51.100.1:5000"),
            accepted("app")
        );
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(throttle.delay(other), Duration::ZERO);
        assert_eq!(
            log_in(&shared, "app", "wrong", "198.51.100.2:5000"),
            refused()
        );
        assert!(throttle.delay(other) > Duration::ZERO);
    }

    #[test]
    fn guest_logs_in_from_anywhere_without_loopback_users() {
        let options = WireOptions {
            loopback_users: vec![],
            ..WireOptions::default()
        };
        let shared = Shared::new(crate::Broker::in_memory(), options);
        assert_eq!(
            log_in(&shared, "guest", "guest", "192.0.2.7:40000"),
            accepted("guest")
        );
        let throttle = shared.throttle.as_ref().expect("a throttle");
        assert_eq!(throttle.delay("192.0.2.7".parse().unwrap()), Duration::ZERO);
    }

    #[test]
    fn loopback_addresses() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.2", "0.0.0.0", "fd00::2", "::ffff:192.0.2.2"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn limits_of_zero_mean_none() {
        assert_eq!(agree(131_072, 0), 131_072);
        assert_eq!(agree(131_072, 4096), 4096);
        assert_eq!(agree(0, 2047), 2047);
    }
}
