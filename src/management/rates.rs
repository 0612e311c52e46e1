//! The sampler behind each `*_details.rate`: every few seconds it reads the broker's
//! counters; a rate is the change between the last two samples per second, as the
//! management plugin's `basic` rates mode reports it.

use std::collections::HashMap;
use std::time::Instant;

use crate::sync::Mutex;

/// How often counters are sampled (RabbitMQ's `collect_statistics_interval`).
pub(crate) const INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// What a sample is of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A queue: vhost and name.
    Queue(String, String),
    /// An exchange: vhost and name.
    Exchange(String, String),
    /// A whole vhost.
    Vhost(String),
    /// Some vhosts together (what a user sees): the sum of their rates, never sampled.
    Vhosts(Vec<String>),
    /// The whole broker.
    Broker,
}

/// The counters of every subject at one moment, by subject and counter name.
pub(crate) type Sample = HashMap<Subject, HashMap<&'static str, u64>>;

/// The last sample and the rates it gave.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last sample was taken.
    at: Option<Instant>,
    /// The last sample.
    last: Sample,
    /// Per second, between the last two samples.
    rates: HashMap<Subject, HashMap<&'static str, f64>>,
}

impl Rates {
    /// Records a sample taken at `now`.
    pub(crate) fn record(&self, now: Instant, sample: Sample) {
        let mut st = self.state.lock();
        let mut rates = HashMap::new();
        if let Some(at) = st.at {
            let seconds = now.duration_since(at).as_secs_f64();
            if seconds > 0.0 {
                for (subject, counters) in &sample {
                    let Some(before) = st.last.get(subject) else {
                        continue;
                    };
                    let per_second: HashMap<&'static str, f64> = counters
                        .iter()
                        .filter_map(|(name, value)| {
                            let old = *before.get(name)?;
                            Some((*name, (*value as f64 - old as f64) / seconds))
                        })
                        .collect();
                    rates.insert(subject.clone(), per_second);
                }
            }
        }
        st.at = Some(now);
        st.last = sample;
        st.rates = rates;
    }

    /// The rate of a counter, 0.0 before two samples exist.
    pub(crate) fn rate(&self, subject: &Subject, counter: &str) -> f64 {
        let st = self.state.lock();
        let of = |subject: &Subject| {
            st.rates
                .get(subject)
                .and_then(|r| r.get(counter))
                .copied()
                .unwrap_or(0.0)
        };
        match subject {
            Subject::Vhosts(names) => names.iter().map(|n| of(&Subject::Vhost(n.clone()))).sum(),
            one => of(one),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_is_change_per_second() {
        let rates = Rates::default();
        let q = Subject::Queue("/".into(), "q".into());
        let t0 = Instant::now();
        let sample = |n: u64| Sample::from([(q.clone(), HashMap::from([("publish", n)]))]);
        rates.record(t0, sample(10));
        assert_eq!(rates.rate(&q, "publish"), 0.0);
        rates.record(t0 + Duration::from_secs(5), sample(60));
        assert_eq!(rates.rate(&q, "publish"), 10.0);
        assert_eq!(rates.rate(&q, "ack"), 0.0);
    }

    #[test]
    fn rate_of_vhosts_is_their_sum() {
        let rates = Rates::default();
        let (a, b) = (Subject::Vhost("a".into()), Subject::Vhost("b".into()));
        let t0 = Instant::now();
        let sample = |n: u64| {
            Sample::from([
                (a.clone(), HashMap::from([("publish", n)])),
                (b.clone(), HashMap::from([("publish", 2 * n)])),
            ])
        };
        rates.record(t0, sample(0));
        rates.record(t0 + Duration::from_secs(1), sample(5));
        let both = Subject::Vhosts(vec!["a".into(), "b".into()]);
        assert_eq!(rates.rate(&both, "publish"), 15.0);
        assert_eq!(
            rates.rate(&Subject::Vhosts(vec!["a".into()]), "publish"),
            5.0
        );
    }
}
