//! Protocol failures: a soft error closes one channel, a hard error the whole connection.

use std::io;

use amq_protocol::protocol::AMQPClass;

use crate::{Error, ReplyCode};

/// The method a failure is about (zeros when none), as `channel.close` and
/// `connection.close` carry it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MethodId {
    /// The class id.
    pub(crate) class: u16,
    /// The method id.
    pub(crate) method: u16,
}

impl MethodId {
    /// Returns the ids of `method`.
    pub(crate) fn of(method: &AMQPClass) -> Self {
        MethodId {
            class: method.get_amqp_class_id(),
            method: method.get_amqp_method_id(),
        }
    }
}

/// Why a frame could not be handled.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A soft error: the channel is closed with this code and text.
    Channel {
        /// The reply code (403, 404, 405, 406, ...).
        code: ReplyCode,
        /// The reply text, e.g. "NOT_FOUND - no queue 'x' in vhost '/'".
        text: String,
        /// The failing method.
        method: MethodId,
    },
    /// A hard error: the connection is closed with this code and text.
    Connection {
        /// The reply code (501-541, 530, 320, 403 during the handshake).
        code: ReplyCode,
        /// The reply text.
        text: String,
        /// The failing method.
        method: MethodId,
    },
    /// The socket failed, timed out or ended, or the peer spoke another protocol: nothing
    /// more can be said to it.
    Gone,
}

impl Failure {
    /// A hard error with RabbitMQ's text layout ("FRAME_ERROR - ...").
    pub(crate) fn hard(code: ReplyCode, reason: impl std::fmt::Display) -> Self {
        Failure::Connection {
            code,
            text: format!("{} - {reason}", code.name()),
            method: MethodId::default(),
        }
    }

    /// A broker error raised by `method`: soft or hard according to its reply code.
    pub(crate) fn from_error(error: &Error, method: MethodId) -> Self {
        let code = error.reply_code();
        let text = error.to_string();
        if code.is_channel_error() {
            Failure::Channel { code, text, method }
        } else {
            Failure::Connection { code, text, method }
        }
    }

    /// Attaches the failing method to a failure that has none yet.
    pub(crate) fn at(mut self, id: MethodId) -> Self {
        match &mut self {
            Failure::Channel { method, .. } | Failure::Connection { method, .. }
                if *method == MethodId::default() =>
            {
                *method = id;
            }
            _ => {}
        }
        self
    }
}

impl From<io::Error> for Failure {
    fn from(_: io::Error) -> Self {
        Failure::Gone
    }
}

/// Shortens a reply text to the 255 bytes a short string holds, after a whole word (see
/// [`Error::reply_text`]).
pub(crate) fn short_text(text: &str) -> std::borrow::Cow<'_, str> {
    crate::error::fit_reply_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_and_hard_errors_are_told_apart() {
        let e = Error::QueueNotFound {
            vhost: "/".into(),
            queue: "x".into(),
        };
        match Failure::from_error(&e, MethodId::default()) {
            Failure::Channel { code, text, .. } => {
                assert_eq!(code, ReplyCode::NOT_FOUND);
                assert_eq!(text, "NOT_FOUND - no queue 'x' in vhost '/'");
            }
            other => panic!("expected a channel failure, got {other:?}"),
        }
        let e = Error::VhostNotFound { vhost: "v".into() };
        assert!(matches!(
            Failure::from_error(&e, MethodId::default()),
            Failure::Connection {
                code: ReplyCode::NOT_ALLOWED,
                ..
            }
        ));
    }

    #[test]
    fn long_texts_are_cut_on_a_char_boundary() {
        let text = "é".repeat(200);
        let cut = short_text(&text);
        assert!(cut.len() <= 255);
        assert!(cut.ends_with("..."));
        assert_eq!((cut.len() - 3) % 2, 0);
    }
}
