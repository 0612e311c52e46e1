//! Policies: settings applied to every queue or exchange whose name matches a pattern, as
//! RabbitMQ's `rabbitmqctl set_policy` sets them.
//!
//! A [`Policy`] has a name (unique in its vhost), a regular expression matched against entity
//! names (unanchored, as RabbitMQ's), what it applies to ([`PolicyApplyTo`]), a priority and a
//! definition: a table of keys such as `max-length` or `dead-letter-exchange`. Of the
//! policies that match an entity, the one with the highest priority applies, alone. The keys
//! and how they combine with declare arguments are described in `docs/queue-features.md`.
//!
//! This module holds the public types and their validation, word for word RabbitMQ 3.10's
//! (`docs/rabbitmq-observations.md` §21); the vhost keeps the compiled policies and applies
//! them.

use std::fmt;

use crate::{Error, FieldTable, FieldValue, Result};

/// What a [`Policy`] applies to (`--apply-to` of `rabbitmqctl set_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyApplyTo {
    /// Queues only.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Queues and exchanges. The default.
    #[default]
    All,
}

impl PolicyApplyTo {
    /// Returns RabbitMQ's name: `queues`, `exchanges` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyApplyTo::Queues => "queues",
            PolicyApplyTo::Exchanges => "exchanges",
            PolicyApplyTo::All => "all",
        }
    }

    /// Reads RabbitMQ's name (`queues`, `exchanges`, `all`).
    ///
    /// # Errors
    ///
    /// 406 PRECONDITION_FAILED with RabbitMQ's validation text for any other name
    /// (RabbitMQ 3.10 has no `classic_queues` or `quorum_queues`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "queues" => Ok(PolicyApplyTo::Queues),
            "exchanges" => Ok(PolicyApplyTo::Exchanges),
            "all" => Ok(PolicyApplyTo::All),
            other => Err(invalid(format!(
                "apply-to '{other}' unrecognised; should be 'queues', 'exchanges' or 'all'"
            ))),
        }
    }

    /// Returns `true` if the policy applies to queues.
    pub(crate) fn queues(self) -> bool {
        self != PolicyApplyTo::Exchanges
    }

    /// Returns `true` if the policy applies to exchanges.
    pub(crate) fn exchanges(self) -> bool {
        self != PolicyApplyTo::Queues
    }
}

impl fmt::Display for PolicyApplyTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy: a definition applied to the queues and exchanges of a vhost whose names match a
/// pattern. Set with [`Broker::set_policy`](crate::Broker::set_policy).
///
/// # Examples
///
/// ```
/// use warrenmq::{FieldTable, Policy, PolicyApplyTo};
///
/// let policy = Policy::new("limits", "^jobs\\.", FieldTable::new().with("max-length", 1000))
///     .apply_to(PolicyApplyTo::Queues)
///     .priority(5);
/// assert_eq!(policy.apply_to, PolicyApplyTo::Queues);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Policy {
    /// The name, unique in its vhost.
    pub name: String,
    /// A regular expression matched against queue and exchange names, unanchored
    /// (`^...$` to match whole names).
    pub pattern: String,
    /// What the policy applies to.
    pub apply_to: PolicyApplyTo,
    /// Of the policies that match, the one with the highest priority applies.
    pub priority: i32,
    /// The settings, e.g. `{"max-length": 10, "dead-letter-exchange": "dlx"}`.
    pub definition: FieldTable,
}

impl Policy {
    /// Creates a policy that applies to queues and exchanges with priority 0.
    pub fn new(
        name: impl Into<String>,
        pattern: impl Into<String>,
        definition: FieldTable,
    ) -> Self {
        Policy {
            name: name.into(),
            pattern: pattern.into(),
            apply_to: PolicyApplyTo::All,
            priority: 0,
            definition,
        }
    }

    /// Sets what the policy applies to.
    pub fn apply_to(mut self, apply_to: PolicyApplyTo) -> Self {
        self.apply_to = apply_to;
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Checks the policy as RabbitMQ 3.10 validates `set_policy`, and compiles its pattern.
    pub(crate) fn compile(&self) -> Result<regex::Regex> {
        crate::names::check_length("policy name", &self.name)?;
        let regex = regex::Regex::new(&self.pattern).map_err(|e| {
            invalid(format!(
                "pattern should be regular expression but is invalid: {}",
                first_line(&e.to_string())
            ))
        })?;
        validate_definition(&self.definition)?;
        Ok(regex)
    }
}

/// The explanation of a regex error (its last meaningful line; the others show the pattern).
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('^'))
        .unwrap_or(text)
        .to_owned()
}

/// The error of a policy RabbitMQ's validation refuses.
fn invalid(reason: String) -> Error {
    Error::precondition(format!("Validation failed: {reason}"))
}

/// The keys RabbitMQ 3.10 accepts in a policy definition (without plugins). Those Warren acts
/// on are read by `QueueConfig::with_policy` and the exchange; the others (mirroring, queue
/// locators, in-memory limits, stream settings) are accepted and stored but change nothing,
/// as on a single node.
const KNOWN_KEYS: &[&str] = &[
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "delivery-limit",
    "expires",
    "ha-mode",
    "ha-params",
    "ha-promote-on-failure",
    "ha-promote-on-shutdown",
    "ha-sync-batch-size",
    "ha-sync-mode",
    "initial-cluster-size",
    "max-age",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-leader-locator",
    "queue-master-locator",
    "queue-mode",
    "queue-version",
    "stream-max-segment-size-bytes",
];

/// Checks a definition's keys and values, with RabbitMQ's texts.
fn validate_definition(definition: &FieldTable) -> Result<()> {
    if definition.is_empty() {
        return Err(invalid("no policy provided".to_owned()));
    }
    let unknown: Vec<String> = definition
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(k))
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erlang(v)))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        )));
    }
    for (key, value) in definition.iter() {
        if let Some(what) = invalid_value(key, value) {
            return Err(invalid(format!("{} is not a valid {what}", erlang(value))));
        }
    }
    Ok(())
}

/// Returns what a bad value of `key` is "not a valid" of, or `None` if the value is fine.
fn invalid_value(key: &str, value: &FieldValue) -> Option<&'static str> {
    let int = value.as_i64();
    let string = value.as_str();
    let check = |ok: bool, what: &'static str| (!ok).then_some(what);
    match key {
        "message-ttl" => check(int.is_some_and(|n| n >= 0), "message TTL"),
        "expires" => check(int.is_some_and(|n| n > 0), "queue expiry"),
        "max-length" => check(int.is_some_and(|n| n >= 0), "maximum length"),
        "max-length-bytes" => check(int.is_some_and(|n| n >= 0), "maximum length in bytes"),
        "max-in-memory-length" | "max-in-memory-bytes" => {
            check(int.is_some_and(|n| n >= 0), "maximum memory in bytes")
        }
        "delivery-limit" => check(int.is_some_and(|n| n >= 0), "delivery limit"),
        "overflow" => check(
            matches!(
                string,
                Some("drop-head" | "reject-publish" | "reject-publish-dlx")
            ),
            "overflow value",
        ),
        "alternate-exchange" => check(string.is_some(), "alternate exchange name"),
        "dead-letter-exchange" => check(string.is_some(), "dead letter exchange name"),
        "dead-letter-routing-key" => check(string.is_some(), "dead letter routing key"),
        "dead-letter-strategy" => check(
            matches!(string, Some("at-most-once" | "at-least-once")),
            "dead letter strategy",
        ),
        "queue-mode" => check(
            matches!(string, Some("default" | "lazy")),
            "queue-mode value",
        ),
        "queue-version" => check(matches!(int, Some(1 | 2)), "queue-version value"),
        "ha-mode" => check(
            matches!(string, Some("all" | "exactly" | "nodes")),
            "ha-mode value",
        ),
        _ => None,
    }
}

/// Writes a value as Erlang prints it in RabbitMQ's validation texts (`-1`, `<<"x">>`).
fn erlang(value: &FieldValue) -> String {
    match value {
        FieldValue::String(_) | FieldValue::Bytes(_) => {
            format!("<<\"{}\">>", value.as_str().unwrap_or_default())
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(definition: FieldTable) -> String {
        Policy::new("p", ".*", definition)
            .compile()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn texts_match_rabbitmq() {
        let prefix = "PRECONDITION_FAILED - Validation failed: ";
        let cases = [
            (
                FieldTable::new().with("message-ttl", -1),
                "-1 is not a valid message TTL",
            ),
            (
                FieldTable::new().with("max-length", "x"),
                "<<\"x\">> is not a valid maximum length",
            ),
            (
                FieldTable::new().with("expires", 0),
                "0 is not a valid queue expiry",
            ),
            (
                FieldTable::new().with("overflow", "bogus"),
                "<<\"bogus\">> is not a valid overflow value",
            ),
            (
                FieldTable::new().with("alternate-exchange", 1),
                "1 is not a valid alternate exchange name",
            ),
            (
                FieldTable::new().with("foo", 1).with("bar", 2),
                "[{<<\"bar\">>,2},{<<\"foo\">>,1}] are not recognised policy settings",
            ),
            (FieldTable::new(), "no policy provided"),
        ];
        for (definition, text) in cases {
            assert_eq!(err(definition), format!("{prefix}{text}"));
        }
        let bad = Policy::new("p", "(", FieldTable::new().with("max-length", 1));
        assert!(bad
            .compile()
            .unwrap_err()
            .to_string()
            .starts_with("PRECONDITION_FAILED - Validation failed: pattern should be regular"));
        assert_eq!(
            PolicyApplyTo::from_name("classic_queues")
                .unwrap_err()
                .to_string(),
            "PRECONDITION_FAILED - Validation failed: apply-to 'classic_queues' unrecognised; \
             should be 'queues', 'exchanges' or 'all'"
        );
    }
}
