//! The `direct` kind: a message goes to the bindings whose key equals its routing key.

use std::collections::HashMap;

use crossbeam_utils::sync::ShardedLock;

use crate::sync::FastHash;

use super::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};

/// Routes by exact equality of binding key and routing key: one hash lookup per message.
#[derive(Debug, Default)]
pub struct DirectRouter {
    /// Binding key → destinations bound with it. Read-mostly, so readers lock one shard only.
    table: ShardedLock<HashMap<Box<str>, Vec<DestinationId>, FastHash>>,
}

impl DirectRouter {
    /// Creates an empty router.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Router for DirectRouter {
    fn bind(&self, binding: Binding<'_>) -> Result<bool, InvalidBinding> {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let dests = table.entry(binding.key.into()).or_default();
        if dests.contains(&binding.destination) {
            return Ok(false);
        }
        dests.push(binding.destination);
        Ok(true)
    }

    fn unbind(&self, binding: Binding<'_>) -> bool {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let Some(dests) = table.get_mut(binding.key) else {
            return false;
        };
        let Some(at) = dests.iter().position(|d| *d == binding.destination) else {
            return false;
        };
        dests.swap_remove(at);
        if dests.is_empty() {
            table.remove(binding.key);
        }
        true
    }

    fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        if let Some(dests) = table.get(input.routing_key) {
            out.extend_from_slice(dests);
        }
    }

    fn memory_bytes(&self) -> usize {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table
            .iter()
            .map(|(k, v)| k.len() + v.capacity() * 8 + 48)
            .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldTable;

    fn b<'a>(d: u64, key: &'a str, args: &'a FieldTable) -> Binding<'a> {
        Binding {
            destination: DestinationId::new(d),
            key,
            arguments: args,
        }
    }

    #[test]
    fn routes_by_equality() {
        let args = FieldTable::new();
        let r = DirectRouter::new();
        assert!(r.bind(b(1, "a", &args)).unwrap());
        assert!(!r.bind(b(1, "a", &args)).unwrap());
        r.bind(b(2, "a", &args)).unwrap();
        r.bind(b(3, "b", &args)).unwrap();
        let mut out = Vec::new();
        r.route(
            RoutingInput {
                routing_key: "a",
                headers: None,
            },
            &mut out,
        );
        out.sort();
        assert_eq!(out, [DestinationId::new(1), DestinationId::new(2)]);
        assert!(r.unbind(b(1, "a", &args)));
        assert!(!r.unbind(b(1, "a", &args)));
        out.clear();
        r.route(
            RoutingInput {
                routing_key: "a",
                headers: None,
            },
            &mut out,
        );
        assert_eq!(out, [DestinationId::new(2)]);
    }
}
