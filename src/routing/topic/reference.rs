//! The reference matcher: RabbitMQ's topic rules written as plainly as possible.
//!
//! It is slow on purpose only in one way: it looks at one pattern at a time. The trie router is
//! checked against it by the property tests, and the benchmark runner uses it, looped over all
//! bindings, as the naive baseline.

use smallvec::SmallVec;

/// The words of a routing key or binding key: split on `.`, except that the empty key has none.
pub(crate) fn words(s: &str) -> impl DoubleEndedIterator<Item = &str> {
    // `"".split('.')` yields one empty word; RabbitMQ gives the empty key no words at all.
    (!s.is_empty()).then(|| s.split('.')).into_iter().flatten()
}

/// Returns `true` if a message with routing key `key` matches the binding key `pattern` under
/// RabbitMQ's topic rules.
///
/// Words are split on `.`. `*` matches exactly one word and `#` matches zero or more words,
/// anywhere in the pattern. Empty words are words (`a..z` has three words, `abc.` two), but
/// the empty key `""` has no words at all: `#` and `""` match it, `*` and `#.` do not.
///
/// This is the simple, clear matcher that [`TopicRouter`](crate::routing::TopicRouter) is
/// tested against; a router built on it would look at every binding for every message.
///
/// # Examples
///
/// ```
/// use warrenmq::routing::topic_matches;
///
/// assert!(topic_matches("stock.*.nyse", "stock.usd.nyse"));
/// assert!(topic_matches("abc.#", "abc"));
/// assert!(topic_matches("a.#.z", "a..z"));
/// assert!(!topic_matches("*", ""));
/// assert!(topic_matches("#", ""));
/// ```
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let pattern: SmallVec<[&str; 16]> = words(pattern).collect();
    let key: SmallVec<[&str; 16]> = words(key).collect();
    matches_words(&pattern, &key)
}

/// Matches split words; backtracks over every way a `#` can stretch.
fn matches_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_words(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((&first, key_rest)) => {
                (word == "*" || word == first) && matches_words(rest, key_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{topic_matches as m, words};

    #[test]
    fn words_of_edge_keys() {
        assert_eq!(words("").count(), 0);
        assert_eq!(words(".").collect::<Vec<_>>(), ["", ""]);
        assert_eq!(words("abc.").collect::<Vec<_>>(), ["abc", ""]);
        assert_eq!(words("a..z").count(), 3);
    }

    #[test]
    fn rabbitmq_rules() {
        assert!(m("a.#.z", "a..z"));
        assert!(m("a.#.z", "a.z"));
        assert!(m("a.#.z", "a.b.c.z"));
        assert!(m("abc.#", "abc"));
        assert!(m("#", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("*", ""));
        assert!(!m("#.", ""));
        assert!(m("#.", "."));
        assert!(m("#.", "a."));
        assert!(m("*.*", "abc."));
        assert!(m("*.*", "."));
        assert!(m("#.z", "z"));
        assert!(m("#.#", ""));
        assert!(m("#.#.#.a", "x.y.a"));
        assert!(!m("#.#.#.a", "x.y.b"));
        assert!(!m("abc.*", "abc.def.ghi"));
        assert!(m("*", "x"));
        assert!(m("a*b.c", "a*b.c"));
        assert!(!m("a*b.c", "axb.c"));
    }
}
