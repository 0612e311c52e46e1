//! [`LoginThrottle`]: failed logins slowed per source address, so that guessing passwords
//! over many connections is no faster than over one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long an address is remembered after its last slot.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The most addresses remembered; past it, expired ones are dropped, and if none has
/// expired every new address shares one slot (so a flood of addresses cannot grow memory
/// or escape the limit).
const MAX_SOURCES: usize = 65_536;

/// Slows logins from addresses that have failed one recently.
///
/// Once an address has failed a login, each later attempt from it — failed or not, on any
/// number of parallel connections — is answered only after its turn: at most `per_second`
/// attempts per second per address, for as long as it keeps trying (the address is
/// forgotten a minute after its last turn). Addresses that never failed are not slowed.
/// Successful attempts take turns too, so that an attacker cannot tell a right guess by
/// its speed. IPv6 addresses count by their /64 prefix (what one host is usually given).
///
/// Callers ask [`delay`](Self::delay) before checking credentials, wait that long, then
/// report a failure with [`failed`](Self::failed). The wire listener does this with
/// [`WireOptions::failed_logins_per_second`](crate::WireOptions::failed_logins_per_second);
/// a management API can share the same throttle.
///
/// # Examples
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::Duration;
/// use warrenmq::LoginThrottle;
///
/// let throttle = LoginThrottle::new(10);
/// let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
/// assert_eq!(throttle.delay(peer), Duration::ZERO); // never failed: not slowed
/// throttle.failed(peer);
/// // The next attempts each wait for their turn, 100 ms apart.
/// let first = throttle.delay(peer);
/// let second = throttle.delay(peer);
/// assert!(first > Duration::from_millis(50) && second >= first + Duration::from_millis(99));
/// ```
#[derive(Debug)]
pub struct LoginThrottle {
    /// Time between two turns of one address.
    interval: Duration,
    /// The next free turn of each address that failed recently.
    sources: Mutex<HashMap<Source, Instant>>,
}

/// An address, or its /64 prefix for IPv6, or every address once the table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6Prefix(u64),
    Overflow,
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl LoginThrottle {
    /// A throttle that lets an address that failed make `per_second` attempts per second
    /// (at least 1).
    pub fn new(per_second: u32) -> LoginThrottle {
        LoginThrottle {
            interval: Duration::from_secs(1) / per_second.max(1),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Returns how long to wait before checking the credentials of an attempt from `peer`,
    /// and takes that turn: zero for an address that has not failed recently.
    pub fn delay(&self, peer: IpAddr) -> Duration {
        let now = Instant::now();
        let mut sources = self.sources.lock();
        let source = Self::lookup(&sources, Source::of(peer));
        let Some(next) = sources.get_mut(&source) else {
            return Duration::ZERO;
        };
        if *next + FORGET_AFTER < now {
            sources.remove(&source);
            return Duration::ZERO;
        }
        let turn = (*next).max(now);
        *next = turn + self.interval;
        turn - now
    }

    /// Records a failed login from `peer`: from now on its attempts take turns.
    pub fn failed(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut sources = self.sources.lock();
        let mut source = Self::lookup(&sources, Source::of(peer));
        if !sources.contains_key(&source) && sources.len() >= MAX_SOURCES {
            sources.retain(|_, next| *next + FORGET_AFTER >= now);
            if sources.len() >= MAX_SOURCES {
                source = Source::Overflow;
            }
        }
        let next = sources.entry(source).or_insert(now);
        *next = (*next).max(now + self.interval);
    }

    /// The key `source` is kept under: its own, or the shared one when it is not in a full
    /// table.
    fn lookup(sources: &HashMap<Source, Instant>, source: Source) -> Source {
        if sources.contains_key(&source) || sources.len() < MAX_SOURCES {
            source
        } else {
            Source::Overflow
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn turns_are_spaced_per_address_and_others_are_not_slowed() {
        let t = LoginThrottle::new(20);
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        t.failed(a);
        let delays: Vec<Duration> = (0..20).map(|_| t.delay(a)).collect();
        // Twenty attempts take about a second: 50 ms apart.
        assert!(delays[19] >= Duration::from_millis(950), "{delays:?}");
        assert!(delays
            .windows(2)
            .all(|w| w[1] >= w[0] + Duration::from_millis(49)));
        assert_eq!(t.delay(b), Duration::ZERO);
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
        let t = LoginThrottle::new(1);
        let one: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
        let other: IpAddr = "2001:db8::ffff:2".parse::<Ipv6Addr>().unwrap().into();
        t.failed(one);
        assert!(t.delay(other) > Duration::ZERO);
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        t.failed(v4);
        let mapped: IpAddr = "::ffff:192.0.2.9".parse::<Ipv6Addr>().unwrap().into();
        assert!(t.delay(mapped) > Duration::ZERO);
    }

    #[test]
    fn a_flood_of_addresses_is_bounded() {
        let t = LoginThrottle::new(1);
        for i in 0..(MAX_SOURCES as u32 + 10) {
            t.failed(IpAddr::V4(Ipv4Addr::from(i)));
        }
        assert!(t.sources.lock().len() <= MAX_SOURCES + 1);
        // A new address past the limit shares the overflow turn.
        assert!(t.delay(IpAddr::V4(Ipv4Addr::from(u32::MAX))) > Duration::ZERO);
    }
}
