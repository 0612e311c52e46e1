//! The topology an application declared through a remote connection, kept so that it can be
//! declared again on another node after a reconnect (what RabbitMQ clients call topology
//! recovery): exchanges, queues and bindings, in declaration order, minus what was deleted.

use crate::{ExchangeDeclareOptions, ExchangeKind, FieldTable, QueueDeclareOptions};

/// One declaration to replay.
#[derive(Clone, Debug)]
pub(crate) enum Declared {
    Exchange {
        name: String,
        kind: ExchangeKind,
        options: ExchangeDeclareOptions,
        arguments: FieldTable,
    },
    Queue {
        name: String,
        options: QueueDeclareOptions,
        arguments: FieldTable,
        /// Declared with an empty name: the server chose the name, and will choose a new one.
        server_named: bool,
    },
    QueueBinding {
        queue: String,
        exchange: String,
        routing_key: String,
        arguments: FieldTable,
    },
    ExchangeBinding {
        destination: String,
        source: String,
        routing_key: String,
        arguments: FieldTable,
    },
}

impl Declared {
    /// A binding of `queue` to `exchange`.
    pub(crate) fn queue_binding(
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Declared {
        Declared::QueueBinding {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            arguments,
        }
    }

    /// A binding of exchange `destination` to exchange `source`.
    pub(crate) fn exchange_binding(
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> Declared {
        Declared::ExchangeBinding {
            destination: destination.to_owned(),
            source: source.to_owned(),
            routing_key: routing_key.to_owned(),
            arguments,
        }
    }
}

/// The declarations of one connection, in order.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    entries: Vec<Declared>,
}

impl Topology {
    /// Returns the declarations to replay, in order.
    pub(crate) fn snapshot(&self) -> Topology {
        Topology {
            entries: self.entries.clone(),
        }
    }

    /// Returns the `index`th declaration.
    pub(crate) fn get(&self, index: usize) -> Option<&Declared> {
        self.entries.get(index)
    }

    /// Records a declaration; a redeclaration of the same entity or binding keeps its place.
    pub(crate) fn record(&mut self, entry: Declared) {
        if let Some(at) = self.entries.iter().position(|e| same(e, &entry)) {
            self.entries[at] = entry;
        } else {
            self.entries.push(entry);
        }
    }

    /// Forgets a binding.
    pub(crate) fn unbind(&mut self, entry: &Declared) {
        self.entries.retain(|e| !same(e, entry));
    }

    /// Forgets a deleted exchange and the bindings it took with it.
    pub(crate) fn delete_exchange(&mut self, name: &str) {
        self.entries.retain(|e| match e {
            Declared::Exchange { name: n, .. } => n != name,
            Declared::QueueBinding { exchange, .. } => exchange != name,
            Declared::ExchangeBinding {
                destination,
                source,
                ..
            } => destination != name && source != name,
            Declared::Queue { .. } => true,
        });
    }

    /// Forgets a deleted queue and its bindings.
    pub(crate) fn delete_queue(&mut self, name: &str) {
        self.entries.retain(|e| match e {
            Declared::Queue { name: n, .. } => n != name,
            Declared::QueueBinding { queue, .. } => queue != name,
            _ => true,
        });
    }

    /// A server-named queue came back with a new name: its bindings follow.
    pub(crate) fn rename_queue(&mut self, old: &str, new: &str) {
        for e in &mut self.entries {
            match e {
                Declared::Queue { name, .. } | Declared::QueueBinding { queue: name, .. }
                    if name == old =>
                {
                    *name = new.to_owned();
                }
                _ => {}
            }
        }
    }
}

/// Whether two declarations are of the same entity or binding.
fn same(a: &Declared, b: &Declared) -> bool {
    match (a, b) {
        (Declared::Exchange { name: x, .. }, Declared::Exchange { name: y, .. })
        | (Declared::Queue { name: x, .. }, Declared::Queue { name: y, .. }) => x == y,
        (
            Declared::QueueBinding {
                queue: q1,
                exchange: e1,
                routing_key: k1,
                arguments: a1,
            },
            Declared::QueueBinding {
                queue: q2,
                exchange: e2,
                routing_key: k2,
                arguments: a2,
            },
        ) => q1 == q2 && e1 == e2 && k1 == k2 && a1 == a2,
        (
            Declared::ExchangeBinding {
                destination: d1,
                source: s1,
                routing_key: k1,
                arguments: a1,
            },
            Declared::ExchangeBinding {
                destination: d2,
                source: s2,
                routing_key: k2,
                arguments: a2,
            },
        ) => d1 == d2 && s1 == s2 && k1 == k2 && a1 == a2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(queue: &str, exchange: &str) -> Declared {
        Declared::QueueBinding {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: "k".into(),
            arguments: FieldTable::new(),
        }
    }

    fn queue(name: &str) -> Declared {
        Declared::Queue {
            name: name.into(),
            options: QueueDeclareOptions::default(),
            arguments: FieldTable::new(),
            server_named: false,
        }
    }

    #[test]
    fn redeclares_keep_their_place_and_deletes_take_bindings() {
        let mut t = Topology::default();
        t.record(queue("a"));
        t.record(queue("b"));
        t.record(binding("a", "amq.direct"));
        t.record(binding("b", "amq.direct"));
        t.record(queue("a"));
        t.record(binding("a", "amq.direct"));
        assert_eq!(t.entries.len(), 4);
        t.delete_queue("a");
        assert_eq!(t.entries.len(), 2);
        t.rename_queue("b", "c");
        assert!(t
            .entries
            .iter()
            .all(|e| matches!(e, Declared::Queue { name, .. } | Declared::QueueBinding { queue: name, .. } if name == "c")));
        t.unbind(&binding("c", "amq.direct"));
        assert_eq!(t.snapshot().entries.len(), 1);
    }
}
