//! The `fanout` kind: a message goes to every bound destination, whatever its key.

use std::collections::{HashMap, HashSet};

use crossbeam_utils::sync::ShardedLock;

use super::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};

/// Routes every message to every destination bound at least once.
#[derive(Debug, Default)]
pub struct FanoutRouter {
    /// The bindings and, derived from them, the distinct destinations.
    table: ShardedLock<FanoutTable>,
}

/// Bindings keep their keys (a binding is `(destination, key)`), but routing needs only the
/// distinct destinations, kept in a vector for a fast copy.
#[derive(Debug, Default)]
struct FanoutTable {
    /// Every `(destination, key)` pair bound.
    bindings: HashSet<(DestinationId, Box<str>)>,
    /// Number of bindings per destination.
    counts: HashMap<DestinationId, usize>,
    /// The keys of `counts`, in the order they were first bound.
    destinations: Vec<DestinationId>,
}

impl FanoutRouter {
    /// Creates an empty router.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Router for FanoutRouter {
    fn bind(&self, binding: Binding<'_>) -> Result<bool, InvalidBinding> {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        if !t.bindings.insert((binding.destination, binding.key.into())) {
            return Ok(false);
        }
        let count = t.counts.entry(binding.destination).or_insert(0);
        *count += 1;
        if *count == 1 {
            t.destinations.push(binding.destination);
        }
        Ok(true)
    }

    fn unbind(&self, binding: Binding<'_>) -> bool {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        if !t.bindings.remove(&(binding.destination, binding.key.into())) {
            return false;
        }
        let count = t.counts.get_mut(&binding.destination).expect("counted binding");
        *count -= 1;
        if *count == 0 {
            t.counts.remove(&binding.destination);
            t.destinations.retain(|d| *d != binding.destination);
        }
        true
    }

    fn route(&self, _input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        out.extend_from_slice(&t.destinations);
    }

    fn memory_bytes(&self) -> usize {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        t.bindings.iter().map(|(_, k)| k.len() + 40).sum::<usize>() + t.counts.len() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldTable;

    #[test]
    fn routes_each_destination_once() {
        let args = FieldTable::new();
        let r = FanoutRouter::new();
        let b = |d, key| Binding { destination: DestinationId::new(d), key, arguments: &args };
        r.bind(b(1, "x")).unwrap();
        r.bind(b(1, "y")).unwrap();
        r.bind(b(2, "")).unwrap();
        let mut out = Vec::new();
        r.route(RoutingInput { routing_key: "anything", headers: None }, &mut out);
        assert_eq!(out, [DestinationId::new(1), DestinationId::new(2)]);
        assert!(r.unbind(b(1, "x")));
        out.clear();
        r.route(RoutingInput { routing_key: "", headers: None }, &mut out);
        assert_eq!(out, [DestinationId::new(1), DestinationId::new(2)]);
        assert!(r.unbind(b(1, "y")));
        out.clear();
        r.route(RoutingInput { routing_key: "", headers: None }, &mut out);
        assert_eq!(out, [DestinationId::new(2)]);
    }
}
