//! Turning what lapin reports into Warren's [`Error`]: a server's `channel.close` or
//! `connection.close` becomes the variant the in-process broker returns for the same reply
//! code and text, so that `Display`, `reply_code()` and `reply_text()` agree.

use crate::error::from_reply;
use crate::{Error, ReplyCode};

/// What a failed lapin call means for the remote connection.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server closed the channel with this error (a soft error).
    Channel(Error),
    /// The server closed the connection with this error (a hard error other than 320).
    Connection(Error),
    /// The connection was lost (I/O error, missed heartbeats, 320 `CONNECTION_FORCED` when
    /// a node shuts down): recover on another node.
    Lost(String),
    /// The lapin channel is not usable (closed or closing) without a server error to say
    /// why.
    ChannelGone,
}

/// Classifies a lapin error.
pub(crate) fn classify(error: &lapin::Error) -> Failure {
    use lapin::ErrorKind;
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => {
            let code = amqp.get_id();
            let text = amqp.get_message().as_str();
            if code == ReplyCode::CONNECTION_FORCED.0 {
                return Failure::Lost(text.to_owned());
            }
            let mapped = from_reply(code, text);
            if error.is_amqp_soft_error() {
                Failure::Channel(mapped)
            } else {
                Failure::Connection(mapped)
            }
        }
        ErrorKind::InvalidChannelState(..) | ErrorKind::InvalidChannel(_) => Failure::ChannelGone,
        ErrorKind::IOError(_)
        | ErrorKind::RuntimeShutdownError(_)
        | ErrorKind::MissingHeartbeatError
        | ErrorKind::InvalidConnectionState(_)
        | ErrorKind::ParsingError(_)
        | ErrorKind::SerialisationError(_) => Failure::Lost(error.to_string()),
        _ => Failure::Lost(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_texts_map_to_the_in_process_variants() {
        let cases = [
            (404, "NOT_FOUND - no queue 'jobs' in vhost '/'"),
            (404, "NOT_FOUND - no exchange 'x' in vhost 'v'"),
            (404, "NOT_FOUND - no binding q between exchange 'e' in vhost '/' and queue 'q'"),
            (406, "PRECONDITION_FAILED - unknown delivery tag 7"),
            (
                406,
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'",
            ),
            (403, "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"),
            (405, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'q' in vhost '/'"),
            (530, "NOT_ALLOWED - vhost nowhere not found"),
            (530, "NOT_ALLOWED - attempt to reuse consumer tag 't'"),
            (503, "COMMAND_INVALID - unknown exchange type 'x-nothing'"),
            (540, "NOT_IMPLEMENTED - immediate=true"),
        ];
        for (code, text) in cases {
            let error = from_reply(code, text);
            assert_eq!(error.reply_code(), ReplyCode(code), "{text}");
            assert_eq!(error.to_string(), text);
        }
        assert!(matches!(
            from_reply(404, "NOT_FOUND - no queue 'a' in vhost 'b'"),
            Error::QueueNotFound { .. }
        ));
        assert!(matches!(
            from_reply(406, "PRECONDITION_FAILED - unknown delivery tag 7"),
            Error::UnknownDeliveryTag { delivery_tag: 7 }
        ));
        assert_eq!(
            from_reply(402, "INVALID_PATH - bad").reply_code(),
            ReplyCode(402)
        );
    }
}
