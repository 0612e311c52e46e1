//! The `headers` kind: binding arguments are matched against the message's headers.
//!
//! The binding argument `x-match` chooses the rule:
//! - `all` (the default): every binding argument must be present in the headers with an
//!   equal value;
//! - `any`: at least one must be;
//! - `all-with-x` / `any-with-x`: as above, but arguments whose names start with `x-` take
//!   part too (plain `all` / `any` ignore them).
//!
//! A binding argument of type void matches the mere presence of the header. Values compare
//! as RabbitMQ compares them: integers of any width are equal when their values are, floats
//! likewise, and otherwise the types must agree.

use std::collections::HashSet;

use crossbeam_utils::sync::ShardedLock;

use super::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};
use crate::{FieldTable, FieldValue};

/// Routes by comparing message headers with each binding's arguments.
#[derive(Debug, Default)]
pub struct HeadersRouter {
    /// Every binding, checked in turn for each message.
    bindings: ShardedLock<Vec<HeadersBinding>>,
}

/// The `x-match` rule of one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchKind {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl MatchKind {
    fn parse(arguments: &FieldTable) -> Result<Self, InvalidBinding> {
        let Some(value) = arguments.get("x-match") else {
            return Ok(MatchKind::All);
        };
        match value.as_str() {
            Some("all") => Ok(MatchKind::All),
            Some("any") => Ok(MatchKind::Any),
            Some("all-with-x") => Ok(MatchKind::AllWithX),
            Some("any-with-x") => Ok(MatchKind::AnyWithX),
            Some(other) => Err(InvalidBinding(format!(
                "Invalid x-match field value <<\"{other}\">>; expected all, any, all-with-x, or \
                 any-with-x"
            ))),
            None => Err(InvalidBinding(format!(
                "Invalid x-match field type {} (value {value}); expected longstr",
                value.type_name()
            ))),
        }
    }

    fn includes_x(self) -> bool {
        matches!(self, MatchKind::AllWithX | MatchKind::AnyWithX)
    }

    fn is_all(self) -> bool {
        matches!(self, MatchKind::All | MatchKind::AllWithX)
    }
}

/// One binding with its parsed rule.
#[derive(Debug)]
struct HeadersBinding {
    destination: DestinationId,
    key: Box<str>,
    arguments: FieldTable,
    kind: MatchKind,
}

impl HeadersBinding {
    fn is(&self, b: &Binding<'_>) -> bool {
        self.destination == b.destination && &*self.key == b.key && &self.arguments == b.arguments
    }

    fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let empty = FieldTable::new();
        let headers = headers.unwrap_or(&empty);
        let mut considered = 0usize;
        let mut hits = 0usize;
        for (name, wanted) in self.arguments.iter() {
            if name == "x-match" || (name.starts_with("x-") && !self.kind.includes_x()) {
                continue;
            }
            considered += 1;
            let hit = headers
                .get(name)
                .is_some_and(|have| values_match(wanted, have));
            if hit {
                hits += 1;
                if !self.kind.is_all() {
                    return true;
                }
            } else if self.kind.is_all() {
                return false;
            }
        }
        if self.kind.is_all() {
            hits == considered
        } else {
            false
        }
    }
}

/// Compares a binding value with a header value the way RabbitMQ does: numbers of any type
/// by numeric value, strings by their bytes, anything else by type and value; a void binding
/// value matches any header value.
fn values_match(wanted: &FieldValue, have: &FieldValue) -> bool {
    if matches!(wanted, FieldValue::Void) {
        return true;
    }
    if let (Some(a), Some(b)) = (wanted.as_number(), have.as_number()) {
        return a == b;
    }
    match (wanted, have) {
        (FieldValue::String(a), FieldValue::Bytes(b))
        | (FieldValue::Bytes(b), FieldValue::String(a)) => a.as_bytes() == b.as_ref(),
        _ => wanted == have,
    }
}

impl HeadersRouter {
    /// Creates an empty router.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Router for HeadersRouter {
    fn bind(&self, binding: Binding<'_>) -> Result<bool, InvalidBinding> {
        let kind = MatchKind::parse(binding.arguments)?;
        let mut all = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|b| b.is(&binding)) {
            return Ok(false);
        }
        all.push(HeadersBinding {
            destination: binding.destination,
            key: binding.key.into(),
            arguments: binding.arguments.clone(),
            kind,
        });
        Ok(true)
    }

    fn unbind(&self, binding: Binding<'_>) -> bool {
        let mut all = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        match all.iter().position(|b| b.is(&binding)) {
            Some(at) => {
                all.remove(at);
                true
            }
            None => false,
        }
    }

    fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        let all = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        for b in all.iter() {
            if b.matches(input.headers) && seen.insert(b.destination) {
                out.push(b.destination);
            }
        }
    }

    fn memory_bytes(&self) -> usize {
        let all = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .map(|b| 64 + b.key.len() + b.arguments.len() * 64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(r: &HeadersRouter, headers: &FieldTable) -> Vec<u64> {
        let mut out = Vec::new();
        r.route(
            RoutingInput {
                routing_key: "",
                headers: Some(headers),
            },
            &mut out,
        );
        let mut ids: Vec<u64> = out.into_iter().map(DestinationId::get).collect();
        ids.sort();
        ids
    }

    #[test]
    fn all_and_any() {
        let r = HeadersRouter::new();
        let all = FieldTable::new()
            .with("x-match", "all")
            .with("a", 1)
            .with("b", "x");
        let any = FieldTable::new()
            .with("x-match", "any")
            .with("a", 1)
            .with("b", "x");
        r.bind(Binding {
            destination: DestinationId::new(1),
            key: "",
            arguments: &all,
        })
        .unwrap();
        r.bind(Binding {
            destination: DestinationId::new(2),
            key: "",
            arguments: &any,
        })
        .unwrap();
        assert_eq!(
            routed(&r, &FieldTable::new().with("a", 1i64).with("b", "x")),
            [1, 2]
        );
        assert_eq!(routed(&r, &FieldTable::new().with("a", 1u8)), [2]);
        assert_eq!(
            routed(&r, &FieldTable::new().with("a", 1.0f64).with("b", "x")),
            [1, 2]
        );
        assert_eq!(
            routed(&r, &FieldTable::new().with("a", "1")),
            Vec::<u64>::new()
        );
        assert_eq!(
            routed(&r, &FieldTable::new().with("a", true)),
            Vec::<u64>::new()
        );
        assert_eq!(
            routed(&r, &FieldTable::new().with("a", 2)),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn x_arguments_only_count_with_x() {
        let r = HeadersRouter::new();
        let plain = FieldTable::new().with("x-match", "any").with("x-k", "v");
        let with_x = FieldTable::new()
            .with("x-match", "any-with-x")
            .with("x-k", "v");
        r.bind(Binding {
            destination: DestinationId::new(1),
            key: "",
            arguments: &plain,
        })
        .unwrap();
        r.bind(Binding {
            destination: DestinationId::new(2),
            key: "",
            arguments: &with_x,
        })
        .unwrap();
        assert_eq!(routed(&r, &FieldTable::new().with("x-k", "v")), [2]);
    }

    #[test]
    fn void_means_presence_and_bad_x_match_is_refused() {
        let r = HeadersRouter::new();
        let presence = FieldTable::new().with("k", FieldValue::Void);
        r.bind(Binding {
            destination: DestinationId::new(1),
            key: "",
            arguments: &presence,
        })
        .unwrap();
        assert_eq!(routed(&r, &FieldTable::new().with("k", "whatever")), [1]);
        let bad = FieldTable::new().with("x-match", "some");
        assert!(r
            .bind(Binding {
                destination: DestinationId::new(2),
                key: "",
                arguments: &bad
            })
            .is_err());
    }
}
