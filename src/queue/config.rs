//! The queue arguments Warren acts on, read and validated once at declare.
//!
//! Validation gives RabbitMQ's answers word for word: a 406 with
//! `invalid arg '<arg>' for queue '<q>' in vhost '<v>': <reason>`, where the reason is
//! RabbitMQ's Erlang term (`{value_negative,-1}`, `"expected integer, got longstr"`, ...).

pub(crate) use super::quorum::QueueType;
use crate::{Error, FieldTable, FieldValue, Result};

/// What a queue does when a publish would take it over its length limit (`x-overflow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Drop (or dead-letter) messages from the head to make room. The default.
    #[default]
    DropHead,
    /// Refuse the publish: the publisher gets a nack under confirms.
    RejectPublish,
    /// Refuse the publish and dead-letter the refused message.
    RejectPublishDlx,
}

/// The behaviour-changing arguments of a queue. `None` means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueConfig {
    /// `x-queue-type`.
    pub(crate) queue_type: QueueType,
    /// `x-delivery-limit` (quorum queues): how many times a message may be returned to the
    /// queue; `Some(0)` or less dead-letters it at its first return. A value that is not an
    /// integer means no limit, as in RabbitMQ.
    pub(crate) delivery_limit: Option<i64>,
    /// `x-message-ttl`, in milliseconds.
    pub(crate) message_ttl: Option<u64>,
    /// `x-expires`, in milliseconds.
    pub(crate) expires: Option<u64>,
    /// `x-max-length`, in messages.
    pub(crate) max_length: Option<u64>,
    /// `x-max-length-bytes`, in body bytes.
    pub(crate) max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub(crate) overflow: Overflow,
    /// `x-overflow` was among the declare arguments (a policy's `overflow` then does not
    /// apply).
    pub(crate) overflow_declared: bool,
    /// `x-dead-letter-exchange`.
    pub(crate) dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub(crate) dead_letter_routing_key: Option<String>,
    /// `x-max-priority`.
    pub(crate) max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub(crate) single_active_consumer: bool,
}

impl QueueConfig {
    /// Returns `true` if no argument changes the queue's behaviour: such a queue takes the
    /// plain publish path.
    pub(crate) fn is_plain(&self) -> bool {
        let without_flag = QueueConfig {
            overflow_declared: false,
            ..self.clone()
        };
        without_flag == QueueConfig::default()
    }

    /// Returns `true` if the queue has a length limit.
    pub(crate) fn has_limit(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }

    /// Reads and validates the arguments of a new queue, as RabbitMQ 3.10 does.
    ///
    /// # Errors
    ///
    /// 406 PRECONDITION_FAILED with RabbitMQ's text for an invalid value.
    pub(crate) fn parse(args: &FieldTable, queue: &str, vhost: &str) -> Result<QueueConfig> {
        let invalid = |arg: &str, reason: String| {
            Error::precondition(format!(
                "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {reason}"
            ))
        };
        let mut config = QueueConfig::default();
        let int = |arg: &str, zero_ok: bool| -> Result<Option<u64>> {
            let Some(value) = args.get(arg) else {
                return Ok(None);
            };
            let n = integer(value).map_err(|r| invalid(arg, r))?;
            if n < 0 {
                return Err(invalid(arg, format!("{{value_negative,{n}}}")));
            }
            if n == 0 && !zero_ok {
                return Err(invalid(arg, "{value_zero,0}".to_owned()));
            }
            Ok(Some(n.unsigned_abs()))
        };
        config.message_ttl = int("x-message-ttl", true)?;
        config.expires = int("x-expires", false)?;
        config.max_length = int("x-max-length", true)?;
        config.max_length_bytes = int("x-max-length-bytes", true)?;
        if let Some(p) = int("x-max-priority", true)? {
            let p = u8::try_from(p)
                .map_err(|_| invalid("x-max-priority", format!("{{max_value_exceeded,{p}}}")))?;
            config.max_priority = Some(p);
        }
        let unacceptable = |arg: &str, v: &FieldValue| {
            invalid(arg, format!("{{unacceptable_type,{}}}", v.type_name()))
        };
        let string = |arg: &str| -> Result<Option<&str>> {
            match args.get(arg) {
                None => Ok(None),
                Some(v) => v.as_str().map(Some).ok_or_else(|| unacceptable(arg, v)),
            }
        };
        if let Some(overflow) = string("x-overflow")? {
            config.overflow_declared = true;
            config.overflow = match overflow {
                "drop-head" => Overflow::DropHead,
                "reject-publish" => Overflow::RejectPublish,
                "reject-publish-dlx" => Overflow::RejectPublishDlx,
                _ => return Err(invalid("x-overflow", "invalid_overflow".to_owned())),
            };
        }
        // RabbitMQ words a badly typed dead-letter exchange differently from every other
        // argument (observed).
        if let Some(v) = args.get("x-dead-letter-exchange") {
            let name = v.as_str().ok_or_else(|| {
                Error::precondition(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{queue}' in \
                     vhost '{vhost}'",
                    v.type_name()
                ))
            })?;
            config.dead_letter_exchange = Some(name.to_owned());
        }
        config.dead_letter_routing_key = string("x-dead-letter-routing-key")?.map(str::to_owned);
        if config.dead_letter_routing_key.is_some() && config.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".to_owned(),
            ));
        }
        if let Some(value) = args.get("x-single-active-consumer") {
            config.single_active_consumer = value
                .as_bool()
                .ok_or_else(|| unacceptable("x-single-active-consumer", value))?;
        }
        match string("x-queue-mode")? {
            None | Some("default") | Some("lazy") => {}
            Some(other) => {
                return Err(invalid(
                    "x-queue-mode",
                    format!("\"unsupported queue mode '{other}'\""),
                ))
            }
        }
        config.queue_type = match string("x-queue-type")? {
            None | Some("classic") => QueueType::Classic,
            Some("quorum") => QueueType::Quorum,
            Some(other) => {
                return Err(invalid(
                    "x-queue-type",
                    format!("\"unsupported queue type '{other}'\""),
                ))
            }
        };
        match string("x-dead-letter-strategy")? {
            None | Some("at-most-once") | Some("at-least-once") => {}
            Some(_) => {
                return Err(invalid(
                    "x-dead-letter-strategy",
                    "invalid_dlx_strategy".to_owned(),
                ))
            }
        }
        config.delivery_limit = args.get("x-delivery-limit").and_then(FieldValue::as_i64);
        if config.queue_type == QueueType::Quorum {
            // Quorum queues have no priorities, and treat reject-publish-dlx as drop-head
            // (observed on RabbitMQ 3.10).
            if config.overflow == Overflow::RejectPublishDlx {
                config.overflow = Overflow::DropHead;
            }
        } else {
            config.delivery_limit = None;
        }
        Ok(config)
    }
}

impl QueueConfig {
    /// Returns the configuration a queue with these declare arguments runs with under a
    /// policy's definition, combined per key as RabbitMQ 3.10 does: for `max-length`,
    /// `max-length-bytes`, `message-ttl`, `expires` and `delivery-limit` the smaller of
    /// argument and policy; for `overflow`, `dead-letter-exchange` and
    /// `dead-letter-routing-key` the argument when there is one. `delivery-limit` counts only
    /// on quorum queues; other keys do not change a queue. Definitions are validated when the
    /// policy is set.
    pub(crate) fn with_policy(&self, definition: Option<&FieldTable>) -> QueueConfig {
        let mut config = self.clone();
        let Some(definition) = definition else {
            return config;
        };
        let int = |key: &str| {
            definition
                .get(key)
                .and_then(FieldValue::as_i64)
                .and_then(|n| u64::try_from(n).ok())
        };
        let smaller = |arg: Option<u64>, policy: Option<u64>| match (arg, policy) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        };
        config.message_ttl = smaller(self.message_ttl, int("message-ttl"));
        config.expires = smaller(self.expires, int("expires").filter(|&n| n > 0));
        config.max_length = smaller(self.max_length, int("max-length"));
        config.max_length_bytes = smaller(self.max_length_bytes, int("max-length-bytes"));
        let string = |key: &str| definition.get(key).and_then(FieldValue::as_str);
        if !self.overflow_declared {
            config.overflow = match string("overflow") {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") if self.queue_type == QueueType::Classic => {
                    Overflow::RejectPublishDlx
                }
                _ => Overflow::DropHead,
            };
        }
        if config.dead_letter_exchange.is_none() {
            config.dead_letter_exchange = string("dead-letter-exchange").map(str::to_owned);
        }
        if config.dead_letter_routing_key.is_none() {
            config.dead_letter_routing_key = string("dead-letter-routing-key").map(str::to_owned);
        }
        if self.queue_type == QueueType::Quorum {
            let policy = definition
                .get("delivery-limit")
                .and_then(FieldValue::as_i64);
            config.delivery_limit = match (self.delivery_limit, policy) {
                (Some(a), Some(p)) => Some(a.min(p)),
                (a, p) => a.or(p),
            };
        }
        config
    }
}

/// Reads a consumer's `x-priority` argument (0 without one).
///
/// # Errors
///
/// 406 with RabbitMQ's text for a value that is not an integer.
pub(crate) fn consumer_priority(args: &FieldTable, queue: &str, vhost: &str) -> Result<i32> {
    let Some(value) = args.get("x-priority") else {
        return Ok(0);
    };
    let n = integer(value).map_err(|reason| {
        Error::precondition(format!(
            "invalid arg 'x-priority' for queue '{queue}' in vhost '{vhost}': {reason}"
        ))
    })?;
    Ok(i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX }))
}

/// Reads an integer argument; the error is RabbitMQ's reason text.
fn integer(value: &FieldValue) -> std::result::Result<i64, String> {
    match value {
        FieldValue::Timestamp(_) => Err("\"expected integer, got timestamp\"".to_owned()),
        v => v
            .as_i64()
            .ok_or_else(|| format!("\"expected integer, got {}\"", v.type_name())),
    }
}

/// Parses a per-message `expiration` property into milliseconds.
///
/// # Errors
///
/// 406 with RabbitMQ's text, e.g. `invalid expiration '-1': {value_negative,-1}`.
pub(crate) fn parse_expiration(expiration: &str) -> Result<u64> {
    let invalid = |reason: String| {
        Error::precondition(format!("invalid expiration '{expiration}': {reason}"))
    };
    let n: i64 = expiration
        .parse()
        .map_err(|_| invalid("no_integer".to_owned()))?;
    if n < 0 {
        return Err(invalid(format!("{{value_negative,{n}}}")));
    }
    Ok(n.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: FieldTable) -> String {
        QueueConfig::parse(&args, "q", "/").unwrap_err().to_string()
    }

    #[test]
    fn texts_match_rabbitmq() {
        let prefix = "PRECONDITION_FAILED - invalid arg";
        assert_eq!(
            err(FieldTable::new().with("x-message-ttl", -1)),
            format!("{prefix} 'x-message-ttl' for queue 'q' in vhost '/': {{value_negative,-1}}")
        );
        assert_eq!(
            err(FieldTable::new().with("x-message-ttl", "abc")),
            format!(
                "{prefix} 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got \
                 longstr\""
            )
        );
        assert_eq!(
            err(FieldTable::new().with("x-expires", 0)),
            format!("{prefix} 'x-expires' for queue 'q' in vhost '/': {{value_zero,0}}")
        );
        assert_eq!(
            err(FieldTable::new().with("x-max-priority", 256)),
            format!(
                "{prefix} 'x-max-priority' for queue 'q' in vhost '/': {{max_value_exceeded,256}}"
            )
        );
        assert_eq!(
            err(FieldTable::new().with("x-dead-letter-exchange", 1)),
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in \
             queue 'q' in vhost '/'"
        );
        assert_eq!(
            err(FieldTable::new().with("x-overflow", 1)),
            format!(
                "{prefix} 'x-overflow' for queue 'q' in vhost '/': {{unacceptable_type,signedint}}"
            )
        );
        assert_eq!(
            err(FieldTable::new().with("x-single-active-consumer", "yes")),
            format!(
                "{prefix} 'x-single-active-consumer' for queue 'q' in vhost '/': \
                 {{unacceptable_type,longstr}}"
            )
        );
        assert_eq!(
            err(FieldTable::new().with("x-queue-mode", "bogus")),
            format!("{prefix} 'x-queue-mode' for queue 'q' in vhost '/': \"unsupported queue mode 'bogus'\"")
        );
        assert_eq!(
            consumer_priority(&FieldTable::new().with("x-priority", "high"), "q", "/")
                .unwrap_err()
                .to_string(),
            format!("{prefix} 'x-priority' for queue 'q' in vhost '/': \"expected integer, got longstr\"")
        );
        assert_eq!(
            parse_expiration("abc").unwrap_err().to_string(),
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"
        );
    }
}
