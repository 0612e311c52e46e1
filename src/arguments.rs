//! Declare arguments: which ones RabbitMQ compares when an entity is redeclared, and the
//! words it uses when they differ.

use crate::{Error, FieldTable, FieldValue, Result};

/// Classic-queue arguments compared on redeclare. Others (such as an application's `x-foo`)
/// are not compared, as in RabbitMQ; neither is `x-queue-type`, compared apart (no type and
/// `classic` are the same).
pub(crate) const COMPARED_QUEUE_ARGUMENTS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
];

/// Quorum-queue arguments compared on redeclare (observed: `x-max-priority` is not).
pub(crate) const COMPARED_QUORUM_QUEUE_ARGUMENTS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-delivery-limit",
    "x-expires",
    "x-max-in-memory-bytes",
    "x-max-in-memory-length",
    "x-max-length",
    "x-max-length-bytes",
    "x-message-ttl",
    "x-overflow",
    "x-queue-leader-locator",
    "x-quorum-initial-group-size",
    "x-single-active-consumer",
];

/// The order in which RabbitMQ compares queue arguments on redeclare (its table of declare
/// arguments; observed: `x-max-length` before `x-queue-type` and `x-delivery-limit`).
pub(crate) const QUEUE_ARGUMENT_ORDER: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-queue-leader-locator",
    "x-delivery-limit",
    "x-dead-letter-strategy",
];

/// Exchange arguments compared on redeclare.
pub(crate) const COMPARED_EXCHANGE_ARGUMENTS: &[&str] = &["alternate-exchange"];

/// What is being checked, for the error text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entity<'a> {
    /// `"queue"` or `"exchange"`.
    pub(crate) kind: &'static str,
    /// Its name.
    pub(crate) name: &'a str,
    /// Its vhost.
    pub(crate) vhost: &'a str,
}

/// Checks that the compared arguments of a redeclare equal the current ones (406 if not).
/// Integers of different widths with the same value are equal.
pub(crate) fn check_equivalent(
    entity: Entity<'_>,
    compared: &[&str],
    current: &FieldTable,
    received: &FieldTable,
) -> Result<()> {
    for &arg in compared {
        let (c, r) = (current.get(arg), received.get(arg));
        if same(c, r) {
            continue;
        }
        let detail = match (r, c) {
            (Some(r), Some(c)) => format!("received '{r}' but current is '{c}'"),
            _ => format!("received {} but current is {}", describe(r), describe(c)),
        };
        return Err(Error::precondition(format!(
            "inequivalent arg '{arg}' for {} '{}' in vhost '{}': {detail}",
            entity.kind, entity.name, entity.vhost
        )));
    }
    Ok(())
}

fn same(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

fn describe(value: Option<&FieldValue>) -> String {
    match value {
        Some(v) => format!("the value '{v}' of type '{}'", v.type_name()),
        None => "none".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Entity<'static> = Entity {
        kind: "queue",
        name: "q",
        vhost: "/",
    };

    fn check(current: FieldTable, received: FieldTable) -> Result<()> {
        check_equivalent(Q, COMPARED_QUEUE_ARGUMENTS, &current, &received)
    }

    #[test]
    fn texts_match_rabbitmq() {
        let ten = FieldTable::new().with("x-max-length", 10);
        let twenty = FieldTable::new().with("x-max-length", 20);
        assert_eq!(
            check(ten.clone(), twenty).unwrap_err().to_string(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': \
             received '20' but current is '10'"
        );
        assert_eq!(
            check(FieldTable::new(), ten.clone())
                .unwrap_err()
                .to_string(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': \
             received the value '10' of type 'signedint' but current is none"
        );
        assert_eq!(
            check(ten, FieldTable::new()).unwrap_err().to_string(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': \
             received none but current is the value '10' of type 'signedint'"
        );
    }

    #[test]
    fn integer_widths_and_unknown_arguments_do_not_matter() {
        let int = FieldTable::new()
            .with("x-max-length", 10i32)
            .with("x-foo", 1);
        let long = FieldTable::new()
            .with("x-max-length", 10i64)
            .with("x-foo", 2);
        assert!(check(int, long).is_ok());
    }
}
