//! The `topic` kind: dot-separated words with `*` (exactly one word) and `#` (zero or more).
//!
//! Words are split on `.`; empty words are words (`a..z` has three), but the empty routing
//! key has no words at all, as in RabbitMQ.

use std::collections::HashSet;

use crossbeam_utils::sync::ShardedLock;

use super::{Binding, DestinationId, InvalidBinding, Router, RoutingInput};

/// Routes by topic pattern.
#[derive(Debug, Default)]
pub struct TopicRouter {
    bindings: ShardedLock<HashSet<(DestinationId, Box<str>)>>,
}

impl TopicRouter {
    /// Creates an empty router.
    pub fn new() -> Self {
        Self::default()
    }
}

fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// Returns `true` if `key` matches `pattern` under RabbitMQ's topic rules.
pub(crate) fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&w, rest)) => match k.split_first() {
                Some((&kw, krest)) => (w == "*" || w == kw) && go(rest, krest),
                None => false,
            },
        }
    }
    go(&words(pattern), &words(key))
}

impl Router for TopicRouter {
    fn bind(&self, binding: Binding<'_>) -> Result<bool, InvalidBinding> {
        let mut all = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        Ok(all.insert((binding.destination, binding.key.into())))
    }

    fn unbind(&self, binding: Binding<'_>) -> bool {
        let mut all = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        all.remove(&(binding.destination, binding.key.into()))
    }

    fn route(&self, input: RoutingInput<'_>, out: &mut Vec<DestinationId>) {
        let all = self.bindings.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        for (dest, pattern) in all.iter() {
            if !seen.contains(dest) && topic_matches(pattern, input.routing_key) {
                seen.insert(*dest);
                out.push(*dest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches as m;

    #[test]
    fn rabbitmq_rules() {
        assert!(m("a.#.z", "a..z"));
        assert!(m("abc.#", "abc"));
        assert!(m("#", ""));
        assert!(m("", ""));
        assert!(!m("*", ""));
        assert!(!m("#.", ""));
        assert!(m("*.*", "abc."));
        assert!(m("*.*", "."));
        assert!(m("#.z", "z"));
        assert!(!m("abc.*", "abc.def.ghi"));
    }
}
