//! Errors: [`Error`] for broker and channel operations, with AMQP reply codes, and the small
//! crossbeam-style errors of the blocking consumer API.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The longest reply text AMQP can carry (a short string).
const MAX_REPLY_TEXT: usize = 255;

/// An AMQP 0-9-1 reply code, such as `404` (`NOT_FOUND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    /// 200: success.
    pub const REPLY_SUCCESS: ReplyCode = ReplyCode(200);
    /// 312: a mandatory message could not be routed.
    pub const NO_ROUTE: ReplyCode = ReplyCode(312);
    /// 320: the broker closed the connection.
    pub const CONNECTION_FORCED: ReplyCode = ReplyCode(320);
    /// 402: an invalid path, e.g. a vhost name.
    pub const INVALID_PATH: ReplyCode = ReplyCode(402);
    /// 403: the operation is not allowed (e.g. declaring an `amq.` name).
    pub const ACCESS_REFUSED: ReplyCode = ReplyCode(403);
    /// 404: the entity does not exist.
    pub const NOT_FOUND: ReplyCode = ReplyCode(404);
    /// 405: the entity is locked by another connection (exclusive queues).
    pub const RESOURCE_LOCKED: ReplyCode = ReplyCode(405);
    /// 406: a precondition failed (inequivalent redeclare, unknown delivery tag, ...).
    pub const PRECONDITION_FAILED: ReplyCode = ReplyCode(406);
    /// 501: a malformed frame.
    pub const FRAME_ERROR: ReplyCode = ReplyCode(501);
    /// 502: a frame with bad field values.
    pub const SYNTAX_ERROR: ReplyCode = ReplyCode(502);
    /// 503: a method not valid in this state.
    pub const COMMAND_INVALID: ReplyCode = ReplyCode(503);
    /// 504: use of a closed or unopened channel.
    pub const CHANNEL_ERROR: ReplyCode = ReplyCode(504);
    /// 505: a frame that was not expected.
    pub const UNEXPECTED_FRAME: ReplyCode = ReplyCode(505);
    /// 506: the broker is out of a resource.
    pub const RESOURCE_ERROR: ReplyCode = ReplyCode(506);
    /// 530: not allowed (e.g. an unknown vhost).
    pub const NOT_ALLOWED: ReplyCode = ReplyCode(530);
    /// 540: not implemented.
    pub const NOT_IMPLEMENTED: ReplyCode = ReplyCode(540);
    /// 541: an internal error.
    pub const INTERNAL_ERROR: ReplyCode = ReplyCode(541);

    /// Returns the code's AMQP name, e.g. `"NOT_FOUND"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            200 => "REPLY_SUCCESS",
            311 => "CONTENT_TOO_LARGE",
            312 => "NO_ROUTE",
            313 => "NO_CONSUMERS",
            320 => "CONNECTION_FORCED",
            402 => "INVALID_PATH",
            403 => "ACCESS_REFUSED",
            404 => "NOT_FOUND",
            405 => "RESOURCE_LOCKED",
            406 => "PRECONDITION_FAILED",
            501 => "FRAME_ERROR",
            502 => "SYNTAX_ERROR",
            503 => "COMMAND_INVALID",
            504 => "CHANNEL_ERROR",
            505 => "UNEXPECTED_FRAME",
            506 => "RESOURCE_ERROR",
            530 => "NOT_ALLOWED",
            540 => "NOT_IMPLEMENTED",
            541 => "INTERNAL_ERROR",
            _ => "UNKNOWN",
        }
    }

    /// Returns `true` for codes that close only a channel (soft errors), `false` for those
    /// that close the connection (hard errors).
    pub fn is_channel_error(self) -> bool {
        matches!(self.0, 311..=313 | 403..=406)
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.name())
    }
}

/// The error of a broker, connection or channel operation.
///
/// Each variant maps to an AMQP reply code ([`Error::reply_code`]) and displays as RabbitMQ
/// words its reply text. As in AMQP, an error on a channel operation closes that channel
/// (later calls fail with [`Error::ChannelClosed`]); the connection and its other channels
/// go on.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The exchange does not exist (404).
    #[error("NOT_FOUND - no exchange '{exchange}' in vhost '{vhost}'")]
    ExchangeNotFound {
        /// The vhost searched.
        vhost: String,
        /// The exchange name.
        exchange: String,
    },
    /// The queue does not exist (404).
    #[error("NOT_FOUND - no queue '{queue}' in vhost '{vhost}'")]
    QueueNotFound {
        /// The vhost searched.
        vhost: String,
        /// The queue name.
        queue: String,
    },
    /// Some other entity does not exist (404), such as a consumer tag.
    #[error("NOT_FOUND - {reason}")]
    NotFound {
        /// What was not found.
        reason: String,
    },
    /// The vhost does not exist (530, a connection error).
    #[error("NOT_ALLOWED - vhost {vhost} not found")]
    VhostNotFound {
        /// The vhost name.
        vhost: String,
    },
    /// A precondition failed (406): inequivalent redeclare, invalid argument, non-empty or
    /// in-use entity on a conditional delete.
    #[error("PRECONDITION_FAILED - {reason}")]
    PreconditionFailed {
        /// RabbitMQ's explanation.
        reason: String,
    },
    /// An ack, nack or reject named a delivery tag the channel does not know (406).
    #[error("PRECONDITION_FAILED - unknown delivery tag {delivery_tag}")]
    UnknownDeliveryTag {
        /// The tag given.
        delivery_tag: u64,
    },
    /// The operation is refused (403), e.g. declaring a name that starts with `amq.`.
    #[error("ACCESS_REFUSED - {reason}")]
    AccessRefused {
        /// Why.
        reason: String,
    },
    /// The entity belongs to another connection (405), e.g. an exclusive queue.
    #[error("RESOURCE_LOCKED - {reason}")]
    ResourceLocked {
        /// Why.
        reason: String,
    },
    /// The operation is not allowed (530), e.g. reusing a consumer tag on a channel.
    #[error("NOT_ALLOWED - {reason}")]
    NotAllowed {
        /// Why.
        reason: String,
    },
    /// The method is not valid now (503), e.g. a consumer tag reused on a channel.
    #[error("COMMAND_INVALID - {reason}")]
    CommandInvalid {
        /// Why.
        reason: String,
    },
    /// The feature is not implemented (540).
    #[error("NOT_IMPLEMENTED - {reason}")]
    NotImplemented {
        /// What.
        reason: String,
    },
    /// The channel is closed, either explicitly or by an earlier error (504).
    #[error("CHANNEL_ERROR - channel is closed{}", cause_suffix(.cause))]
    ChannelClosed {
        /// The error that closed the channel, if one did.
        cause: Option<Arc<Error>>,
    },
    /// The connection is closed (320).
    #[error("CONNECTION_FORCED - connection is closed")]
    ConnectionClosed,
    /// The broker was closed with [`Broker::close`](crate::Broker::close) (320, RabbitMQ's
    /// text for a node that stops): every connection, channel and consumer of the broker is
    /// closed, and no new connection opens.
    #[error("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")]
    BrokerClosed,
    /// A resource alarm holds publishing back (506), returned by
    /// [`Channel::try_basic_publish`](crate::Channel::try_basic_publish) instead of waiting;
    /// the channel stays open.
    #[error("RESOURCE_ERROR - publishing is held back: {resource}")]
    ResourceAlarm {
        /// The resource that is short.
        resource: crate::Resource,
    },
    /// A definitions file was refused and nothing of it imported (406): the file cannot be
    /// read or parsed, or one of its entries is invalid
    /// ([`Broker::import_definitions`](crate::Broker::import_definitions)).
    #[error("PRECONDITION_FAILED - definitions refused: {entry}: {reason}")]
    InvalidDefinitions {
        /// The entry at fault, e.g. `queue 'q' in vhost '/'`, or `the file`.
        entry: String,
        /// What is wrong with it (for an entry the broker refused, the broker's error).
        reason: String,
    },
    /// The store failed: the database cannot be opened, read or written (541).
    #[error("INTERNAL_ERROR - {0}")]
    Storage(#[from] crate::StoreError),
    /// An internal failure (541).
    #[error("INTERNAL_ERROR - {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
    /// The operation has no meaning on a remote connection (540): a method that only the
    /// in-process broker can answer, such as
    /// [`Channel::route_preview`](crate::Channel::route_preview). See `docs/scale-out.md`.
    #[error("NOT_IMPLEMENTED - {operation} is not supported on a remote connection")]
    NotSupportedRemotely {
        /// The method, e.g. `route_preview`.
        operation: &'static str,
    },
    /// No node of a remote connection could be reached, or recovery gave up (320).
    #[error("CONNECTION_FORCED - {reason}")]
    Unreachable {
        /// What the last attempt reported.
        reason: String,
    },
    /// [`Broker::wait_idle`](crate::Broker::wait_idle) timed out with messages still in
    /// flight (541: no AMQP code applies; it never reaches a client).
    #[error("INTERNAL_ERROR - broker not idle after {waited:?}: {}", .busy.join("; "))]
    NotIdle {
        /// How long it waited.
        waited: std::time::Duration,
        /// What was still busy, one line each: queues with messages ready for a consumer
        /// with credit or waiting unreceived in consumer inboxes, messages between queues,
        /// wire connections with bytes not yet written or read.
        busy: Vec<String>,
    },
    /// A remote server closed a channel or the connection with a reply code that has no
    /// variant of its own (e.g. 402 `INVALID_PATH`).
    #[error("{} - {reason}", .code.name())]
    Server {
        /// The server's reply code.
        code: ReplyCode,
        /// The server's text after the code's name.
        reason: String,
    },
}

fn cause_suffix(cause: &Option<Arc<Error>>) -> String {
    match cause {
        Some(cause) => format!(" by {cause}"),
        None => String::new(),
    }
}

impl Error {
    /// Returns the AMQP reply code of this error.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Error::ExchangeNotFound { .. }
            | Error::QueueNotFound { .. }
            | Error::NotFound { .. } => ReplyCode::NOT_FOUND,
            Error::VhostNotFound { .. } | Error::NotAllowed { .. } => ReplyCode::NOT_ALLOWED,
            Error::PreconditionFailed { .. }
            | Error::UnknownDeliveryTag { .. }
            | Error::InvalidDefinitions { .. } => ReplyCode::PRECONDITION_FAILED,
            Error::AccessRefused { .. } => ReplyCode::ACCESS_REFUSED,
            Error::ResourceLocked { .. } => ReplyCode::RESOURCE_LOCKED,
            Error::CommandInvalid { .. } => ReplyCode::COMMAND_INVALID,
            Error::NotImplemented { .. } => ReplyCode::NOT_IMPLEMENTED,
            Error::ChannelClosed { .. } => ReplyCode::CHANNEL_ERROR,
            Error::ConnectionClosed | Error::BrokerClosed => ReplyCode::CONNECTION_FORCED,
            Error::ResourceAlarm { .. } => ReplyCode::RESOURCE_ERROR,
            Error::Internal { .. } | Error::Storage(_) | Error::NotIdle { .. } => {
                ReplyCode::INTERNAL_ERROR
            }
            Error::NotSupportedRemotely { .. } => ReplyCode::NOT_IMPLEMENTED,
            Error::Unreachable { .. } => ReplyCode::CONNECTION_FORCED,
            Error::Server { code, .. } => *code,
        }
    }

    /// Returns the reply text as `channel.close` and `connection.close` carry it: RabbitMQ's
    /// text (the [`Display`](fmt::Display) form), at most 255 bytes.
    ///
    /// Only names close to 255 bytes make a longer text. It is then cut after the last whole
    /// word that fits and ends in `...` (RabbitMQ cuts at byte 252, inside the name, and
    /// appends `...`).
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Error;
    ///
    /// let short = Error::QueueNotFound { vhost: "/".into(), queue: "jobs".into() };
    /// assert_eq!(short.reply_text(), "NOT_FOUND - no queue 'jobs' in vhost '/'");
    /// let long = Error::QueueNotFound { vhost: "/".into(), queue: "q".repeat(255) };
    /// assert_eq!(long.reply_text(), "NOT_FOUND - no queue...");
    /// ```
    pub fn reply_text(&self) -> String {
        fit_reply_text(&self.to_string()).into_owned()
    }

    /// For [`Error::ChannelClosed`], returns the error that closed the channel.
    pub fn cause(&self) -> Option<&Error> {
        match self {
            Error::ChannelClosed { cause: Some(c) } => Some(c),
            _ => None,
        }
    }

    pub(crate) fn precondition(reason: impl Into<String>) -> Self {
        Error::PreconditionFailed {
            reason: reason.into(),
        }
    }

    pub(crate) fn access_refused(reason: impl Into<String>) -> Self {
        Error::AccessRefused {
            reason: reason.into(),
        }
    }

    pub(crate) fn locked(reason: impl Into<String>) -> Self {
        Error::ResourceLocked {
            reason: reason.into(),
        }
    }
}

/// The error a server means by a reply code and text such as
/// `NOT_FOUND - no queue 'jobs' in vhost '/'`: the same variant (and so the same text) the
/// in-process broker gives.
pub(crate) fn from_reply(code: u16, text: &str) -> Error {
    let reason = match text.split_once(" - ") {
        Some((_, reason)) => reason.to_owned(),
        None => text.to_owned(),
    };
    match code {
        404 => {
            if let Some((queue, vhost)) = named(&reason, "no queue '") {
                Error::QueueNotFound { vhost, queue }
            } else if let Some((exchange, vhost)) = named(&reason, "no exchange '") {
                Error::ExchangeNotFound { vhost, exchange }
            } else {
                Error::NotFound { reason }
            }
        }
        406 => match reason
            .strip_prefix("unknown delivery tag ")
            .and_then(|t| t.parse().ok())
        {
            Some(delivery_tag) => Error::UnknownDeliveryTag { delivery_tag },
            None => Error::PreconditionFailed { reason },
        },
        403 => Error::AccessRefused { reason },
        405 => Error::ResourceLocked { reason },
        530 => match reason
            .strip_prefix("vhost ")
            .and_then(|r| r.strip_suffix(" not found"))
        {
            Some(vhost) => Error::VhostNotFound {
                vhost: vhost.to_owned(),
            },
            None => Error::NotAllowed { reason },
        },
        503 => Error::CommandInvalid { reason },
        540 => Error::NotImplemented { reason },
        320 => Error::ConnectionClosed,
        541 => Error::Internal { reason },
        _ => Error::Server {
            code: ReplyCode(code),
            reason,
        },
    }
}

/// The error a broker-forced close with `code` and `text` leaves (see
/// [`Connection::force_close`](crate::Connection::force_close)): the variant the broker uses
/// for the code, or [`Error::Server`] (which keeps the text) where that variant has no text,
/// as [`Error::ConnectionClosed`] for 320. `text` may start with the code's name.
pub(crate) fn forced(code: ReplyCode, text: &str) -> Error {
    let prefix = format!("{} - ", code.name());
    let reason = text.strip_prefix(&prefix).unwrap_or(text);
    match from_reply(code.0, &format!("{prefix}{reason}")) {
        Error::ConnectionClosed => Error::Server {
            code,
            reason: reason.to_owned(),
        },
        error => error,
    }
}

/// Splits `no queue 'NAME' in vhost 'VHOST'` (after `prefix`) into its two names.
fn named(reason: &str, prefix: &str) -> Option<(String, String)> {
    let rest = reason.strip_prefix(prefix)?;
    let (name, vhost) = rest.rsplit_once("' in vhost '")?;
    let vhost = vhost.strip_suffix('\'')?;
    Some((name.to_owned(), vhost.to_owned()))
}

/// Fits a reply text into the 255 bytes of a short string: unchanged when it fits, otherwise
/// cut after the last whole word that leaves room for `...`, which is appended. A text with no
/// space in its first 252 bytes is cut on a character boundary instead.
pub(crate) fn fit_reply_text(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_REPLY_TEXT {
        return Cow::Borrowed(text);
    }
    let budget = MAX_REPLY_TEXT - "...".len();
    let at_word = text.as_bytes()[..=budget]
        .iter()
        .rposition(|&b| b == b' ')
        .map(|space| text[..space].trim_end().len())
        .filter(|&end| end > 0);
    let end = at_word.unwrap_or_else(|| {
        let mut end = budget;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        end
    });
    Cow::Owned(format!("{}...", &text[..end]))
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The consumer was cancelled or its channel closed, and no message is left to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("receiving on a cancelled consumer")]
pub struct RecvError;

/// Why [`Consumer::try_recv`](crate::Consumer::try_recv) returned no delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// No delivery is waiting now.
    #[error("receiving on an empty consumer")]
    Empty,
    /// The consumer was cancelled or its channel closed.
    #[error("receiving on a cancelled consumer")]
    Disconnected,
}

impl TryRecvError {
    /// Returns `true` if no delivery was waiting.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Returns `true` if the consumer is cancelled.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

/// Why [`Consumer::recv_timeout`](crate::Consumer::recv_timeout) returned no delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// No delivery arrived before the deadline.
    #[error("timed out waiting on a consumer")]
    Timeout,
    /// The consumer was cancelled or its channel closed.
    #[error("receiving on a cancelled consumer")]
    Disconnected,
}

impl RecvTimeoutError {
    /// Returns `true` if the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Returns `true` if the consumer is cancelled.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}
