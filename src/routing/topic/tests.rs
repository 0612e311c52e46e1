//! Tests of [`TopicRouter`] as a whole: RabbitMQ's edge cases, properties against the
//! reference matcher, and routing while another thread binds and unbinds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::{topic_matches, TopicRouter};
use crate::routing::{Binding, DestinationId, Router, RoutingInput};
use crate::FieldTable;

fn bind(router: &TopicRouter, dest: u64, key: &str) -> bool {
    let arguments = FieldTable::default();
    let binding = Binding {
        destination: DestinationId::new(dest),
        key,
        arguments: &arguments,
    };
    router
        .bind(binding)
        .expect("topic bindings are always valid")
}

fn unbind(router: &TopicRouter, dest: u64, key: &str) -> bool {
    let arguments = FieldTable::default();
    router.unbind(Binding {
        destination: DestinationId::new(dest),
        key,
        arguments: &arguments,
    })
}

/// Routes `key`, checks that no destination is output twice, and returns them sorted.
fn route(router: &TopicRouter, key: &str) -> Vec<u64> {
    let mut out = vec![DestinationId::new(u64::MAX)];
    let input = RoutingInput {
        routing_key: key,
        headers: None,
    };
    router.route(input, &mut out);
    assert_eq!(
        out[0],
        DestinationId::new(u64::MAX),
        "route appends to `out`"
    );
    let mut raw: Vec<u64> = out[1..].iter().map(|d| d.get()).collect();
    raw.sort_unstable();
    let len = raw.len();
    raw.dedup();
    assert_eq!(raw.len(), len, "a destination was output twice for {key:?}");
    raw
}

/// What the reference matcher says `key` reaches, given the bindings.
fn expected(bindings: &BTreeSet<(u64, String)>, key: &str) -> Vec<u64> {
    let dests: BTreeSet<u64> = bindings
        .iter()
        .filter(|(_, pattern)| topic_matches(pattern, key))
        .map(|(dest, _)| *dest)
        .collect();
    dests.into_iter().collect()
}

#[test]
fn rabbitmq_edge_cases() {
    for router in [TopicRouter::new(), TopicRouter::with_cache(false)] {
        let cases: &[(&str, &str, bool)] = &[
            ("a.*.z", "a..z", true),
            ("*.*.*", "a..z", true),
            ("*.*", "abc.", true),
            ("abc.*", "abc.", true),
            ("*.*", ".", true),
            ("*", ".", false),
            ("*", "", false),
            ("#.", "", false),
            ("#", "", true),
            ("", "", true),
            ("", ".", false),
            ("#.#", "", true),
            ("#.z", "z", true),
            ("#.z", "a.b.z", true),
            ("#.z", "z.a", false),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.z.b", false),
            ("abc.#", "abc", true),
            ("#.#.#.a", "a", true),
            ("#.#.#.a", "x.y.z.a", true),
            ("#.#.#.a", "x.y.z.b", false),
            ("*.#.*", "a", false),
            ("*.#.*", "a.b", true),
        ];
        for (dest, (pattern, _, _)) in cases.iter().enumerate() {
            assert!(bind(&router, dest as u64, pattern));
        }
        for (dest, (pattern, key, hit)) in cases.iter().enumerate() {
            let got = route(&router, key).contains(&(dest as u64));
            assert_eq!(got, *hit, "pattern {pattern:?} on key {key:?}");
            assert_eq!(
                got,
                topic_matches(pattern, key),
                "reference on {pattern:?} {key:?}"
            );
        }
    }
}

#[test]
fn a_destination_matched_twice_is_output_once() {
    let router = TopicRouter::new();
    bind(&router, 1, "a.b");
    bind(&router, 1, "a.*");
    bind(&router, 1, "#");
    bind(&router, 1, "#.#");
    bind(&router, 2, "a.#");
    assert_eq!(route(&router, "a.b"), [1, 2]);
    assert_eq!(route(&router, "a.b"), [1, 2], "the cached result too");
}

#[test]
fn binding_identity_is_destination_and_key() {
    let router = TopicRouter::new();
    assert!(bind(&router, 1, "a.#"));
    assert!(!bind(&router, 1, "a.#"));
    assert!(bind(&router, 1, "a.#.#"));
    assert!(bind(&router, 2, "a.#"));
    assert!(unbind(&router, 1, "a.#.#"));
    assert!(!unbind(&router, 1, "a.#.#"));
    assert_eq!(route(&router, "a.b"), [1, 2]);
    assert!(unbind(&router, 1, "a.#"));
    assert_eq!(route(&router, "a.b"), [2]);
    assert!(!unbind(&router, 3, "a.#"));
    assert!(unbind(&router, 2, "a.#"));
    assert_eq!(route(&router, "a.b"), Vec::<u64>::new());
}

#[test]
fn many_destinations_on_one_key() {
    const COUNT: u64 = if cfg!(debug_assertions) {
        5_000
    } else {
        50_000
    };
    let router = TopicRouter::new();
    for dest in 0..COUNT {
        assert!(bind(&router, dest, "#"));
        assert!(bind(&router, dest, "a.b"));
    }
    assert!(!bind(&router, COUNT / 2, "#"));
    assert_eq!(route(&router, "a.b"), (0..COUNT).collect::<Vec<_>>());
    for dest in (0..COUNT).filter(|d| d % 2 == 0) {
        assert!(unbind(&router, dest, "#"));
        assert!(unbind(&router, dest, "a.b"));
    }
    assert!(!unbind(&router, 0, "#"));
    let odd: Vec<u64> = (0..COUNT).filter(|d| d % 2 == 1).collect();
    assert_eq!(route(&router, "a.b"), odd);
    assert_eq!(route(&router, "x"), odd);
}

#[test]
fn huge_keys_and_patterns() {
    let router = TopicRouter::with_cache(false);
    // More words than the summaries' 16-bit bounds can hold: they saturate, still correct.
    let long: Vec<String> = (0..70_000).map(|i| format!("w{}", i % 7)).collect();
    let long_key = long.join(".");
    let mut pattern = long.clone();
    pattern[0] = "*".into();
    assert!(bind(&router, 1, &pattern.join(".")));
    pattern[1] = "#".into();
    assert!(bind(&router, 2, &pattern.join(".")));
    assert_eq!(route(&router, &long_key), [1, 2]);
    // One word short: `*` takes the first, `#` none, so only the pattern with `#` matches.
    assert_eq!(route(&router, &long[1..].join(".")), [2]);
    assert_eq!(route(&router, &long[2..].join(".")), Vec::<u64>::new());
    // A run of `#` against a long key that does not match: linear, not exponential.
    let hashes = vec!["#"; 300].join(".") + ".end";
    assert!(bind(&router, 3, &hashes));
    let miss = vec!["x"; 2_000].join(".");
    assert_eq!(route(&router, &miss), Vec::<u64>::new());
    assert_eq!(route(&router, &(miss + ".end")), [3]);
}

#[test]
fn cache_never_serves_stale_results() {
    let router = TopicRouter::with_cache_capacity(4);
    for round in 0..50_u64 {
        assert!(bind(&router, round, "k.*"));
        assert_eq!(route(&router, "k.v"), (0..=round).collect::<Vec<_>>());
        assert_eq!(route(&router, "k.v"), (0..=round).collect::<Vec<_>>());
    }
    for round in 0..50_u64 {
        assert!(unbind(&router, round, "k.*"));
        assert_eq!(route(&router, "k.v"), (round + 1..50).collect::<Vec<_>>());
    }
}

#[test]
fn memory_estimate_grows_and_shrinks() {
    let router = TopicRouter::new();
    let empty = router.memory_bytes();
    for i in 0..2000 {
        bind(&router, i, &format!("w{i}.*.x"));
    }
    let full = router.memory_bytes();
    assert!(full > empty + 2000 * 3 * 24, "{empty} -> {full}");
    for i in 0..2000 {
        assert!(unbind(&router, i, &format!("w{i}.*.x")));
    }
    assert_eq!(route(&router, "w1.a.x"), Vec::<u64>::new());
}

/// Words for patterns and keys: a tiny vocabulary so that random keys often match, including
/// the empty word, and `*`/`#` (which are plain words in a routing key).
fn word() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => Just("a"),
        2 => Just("b"),
        1 => Just("c"),
        2 => Just(""),
        2 => Just("*"),
        3 => Just("#"),
    ]
}

fn topic(max_words: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 0..=max_words).prop_map(|w| w.join("."))
}

/// A wider vocabulary: enough literal words for nodes to outgrow their inline child lists,
/// and for different words to share a bit of the summaries' word filter (ids 64 apart).
fn wide_word() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0..80_u32).prop_map(|i| format!("w{i}")),
        1 => Just(String::new()),
        2 => Just("*".to_string()),
        2 => Just("#".to_string()),
    ]
}

fn wide_topic(max_words: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(wide_word(), 0..=max_words).prop_map(|w| w.join("."))
}

/// A routing key that `pattern` matches: each `*` becomes a word, each `#` zero to two words,
/// chosen by `seed`.
fn instantiate(pattern: &str, mut seed: u64) -> String {
    let mut pick = |bound: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % bound
    };
    let mut words = Vec::new();
    for word in super::reference::words(pattern) {
        match word {
            "*" => words.push(format!("w{}", pick(80))),
            "#" => (0..pick(3)).for_each(|_| words.push(format!("w{}", pick(80)))),
            literal => words.push(literal.to_string()),
        }
    }
    words.join(".")
}

#[derive(Debug, Clone)]
enum Op {
    Bind(u64, String),
    Unbind(u64, String),
    Route(String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4_u64, topic(5)).prop_map(|(d, p)| Op::Bind(d, p)),
        2 => (0..4_u64, topic(5)).prop_map(|(d, p)| Op::Unbind(d, p)),
        4 => topic(6).prop_map(Op::Route),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 512 }))]

    #[test]
    fn trie_agrees_with_reference(
        bindings in prop::collection::btree_set((0..6_u64, topic(6)), 0..24),
        keys in prop::collection::vec(topic(7), 1..24),
    ) {
        let cached = TopicRouter::new();
        let uncached = TopicRouter::with_cache(false);
        for (dest, pattern) in &bindings {
            prop_assert!(bind(&cached, *dest, pattern));
            prop_assert!(bind(&uncached, *dest, pattern));
        }
        for key in &keys {
            let want = expected(&bindings, key);
            prop_assert_eq!(&route(&uncached, key), &want, "key {:?}", key);
            prop_assert_eq!(&route(&cached, key), &want, "key {:?}", key);
            prop_assert_eq!(&route(&cached, key), &want, "cached key {:?}", key);
        }
    }

    #[test]
    fn wide_tries_agree_with_reference(
        bindings in prop::collection::btree_set((0..6_u64, wide_topic(4)), 0..200),
        keys in prop::collection::vec(wide_topic(5), 1..40),
        drop_every in 2..5_usize,
        seed in any::<u64>(),
    ) {
        let router = TopicRouter::with_cache(false);
        for (dest, pattern) in &bindings {
            prop_assert!(bind(&router, *dest, pattern));
        }
        // Unbinding some leaves stale (wider) summaries behind: results must not change.
        let mut kept = bindings.clone();
        for (i, binding) in bindings.iter().enumerate() {
            if i % drop_every == 0 {
                prop_assert!(unbind(&router, binding.0, &binding.1));
                kept.remove(binding);
            }
        }
        let matching = bindings.iter().enumerate().map(|(i, (_, p))| instantiate(p, seed ^ i as u64));
        for key in keys.iter().cloned().chain(matching) {
            prop_assert_eq!(&route(&router, &key), &expected(&kept, &key), "key {:?}", key);
        }
    }

    #[test]
    fn bind_unbind_sequences_agree_with_a_model(ops in prop::collection::vec(op(), 1..80)) {
        let router = TopicRouter::with_cache_capacity(8);
        let mut model: BTreeSet<(u64, String)> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Bind(d, p) => {
                    let fresh = model.insert((d, p.clone()));
                    prop_assert_eq!(bind(&router, d, &p), fresh);
                }
                Op::Unbind(d, p) => {
                    let present = model.remove(&(d, p.clone()));
                    prop_assert_eq!(unbind(&router, d, &p), present);
                }
                Op::Route(k) => prop_assert_eq!(route(&router, &k), expected(&model, &k)),
            }
        }
        for (d, p) in model.clone() {
            prop_assert!(unbind(&router, d, &p));
        }
        prop_assert_eq!(route(&router, "a.b"), Vec::<u64>::new());
        prop_assert_eq!(route(&router, ""), Vec::<u64>::new());
    }
}

/// Publishers route while another thread binds and unbinds. A stable binding must always be
/// seen; the churned ones must appear in an order no route can see going backwards.
#[test]
fn routes_see_consistent_tables_while_bindings_change() {
    const COUNT: u64 = if cfg!(debug_assertions) {
        2_000
    } else {
        50_000
    };
    let router = Arc::new(TopicRouter::new());
    bind(&router, 0, "k.#");
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (router, done) = (Arc::clone(&router), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut newest, mut routes) = (0, 0_u64);
                while !done.load(Ordering::Acquire) {
                    let got = route(&router, "k.v");
                    assert_eq!(got[0], 0, "the stable binding is always there");
                    let churned = &got[1..];
                    // The writer binds i, then unbinds i - 1: one or two are bound at a time.
                    assert!(churned.len() <= 2, "{churned:?}");
                    if let [a, b] = churned {
                        assert_eq!(a + 1, *b, "only neighbours overlap");
                    }
                    let last = churned.last().copied().unwrap_or(newest);
                    assert!(last >= newest, "went back from {newest} to {last}");
                    newest = last;
                    routes += 1;
                }
                routes
            })
        })
        .collect();
    for i in 1..=COUNT {
        assert!(bind(&router, i, if i % 2 == 0 { "k.*" } else { "*.v" }));
        if i > 1 {
            assert!(unbind(
                &router,
                i - 1,
                if i % 2 == 0 { "*.v" } else { "k.*" }
            ));
        }
    }
    done.store(true, Ordering::Release);
    let routes: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    assert!(routes > 0);
    assert_eq!(route(&router, "k.v"), [0, COUNT]);
}
