//! A node's summary: what a walk checks before it fetches the node itself.
//!
//! A summary is the first 16 bytes of its node's cache line. Most children a walk could step
//! into are dead ends (a prefix that exists, followed by nothing that fits the rest of the
//! key); checking the child's summary before pushing it rules most of them out, so they cost
//! one read instead of a visit.
//!
//! Every test here is conservative: a summary may claim more than its subtree holds (bounds
//! only widen, the word filter is never cleared while the node lives), never less.

/// `max_rest` when a `#` lies below: any number of words.
pub(crate) const UNBOUNDED: u16 = u16::MAX;
/// The word id of a routing-key word that no binding uses, or of the word after the last.
pub(crate) const UNKNOWN_WORD: u32 = u32::MAX;

/// Flag: the node has a `*` child.
const STAR: u8 = 1;
/// Flag: the node has a `#` child.
const HASH: u8 = 2;
/// Flag: destinations are bound with exactly this node's pattern.
const DESTS: u8 = 4;

/// What the patterns below one node can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// A one-bit-per-word filter (bit `word % 64`) of the node's literal children.
    words: u64,
    /// The fewest key words, after this node, that a pattern below it matches (saturating).
    min_rest: u16,
    /// The most key words, after this node, that a pattern below it matches, or `UNBOUNDED`.
    max_rest: u16,
    /// `STAR`, `HASH` and `DESTS`.
    flags: u8,
}

impl Summary {
    /// The summary of a node with nothing below it: it matches nothing.
    pub(crate) const EMPTY: Summary = Summary {
        words: 0,
        min_rest: UNBOUNDED,
        max_rest: 0,
        flags: 0,
    };

    /// Widens the bounds to admit a pattern that takes `min..=max` more words.
    pub(crate) fn widen(&mut self, min: u16, max: u16) {
        self.min_rest = self.min_rest.min(min);
        self.max_rest = self.max_rest.max(max);
    }

    /// Records that the node has a literal child along `word`.
    pub(crate) fn add_word(&mut self, word: u32) {
        self.words |= 1 << (word % 64);
    }

    /// Records whether the node has a `*` child.
    pub(crate) fn set_star(&mut self, on: bool) {
        self.set(STAR, on);
    }

    /// Records whether the node has a `#` child.
    pub(crate) fn set_hash(&mut self, on: bool) {
        self.set(HASH, on);
    }

    /// Records whether destinations are bound with the node's own pattern.
    pub(crate) fn set_dests(&mut self, on: bool) {
        self.set(DESTS, on);
    }

    /// Sets or clears one flag.
    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// Whether the node may have a literal child along `word` (never a false "no").
    #[inline]
    pub(crate) fn may_have_word(&self, word: u32) -> bool {
        word != UNKNOWN_WORD && self.words & (1 << (word % 64)) != 0
    }

    /// Whether a pattern below the node could match exactly `rest` more key words.
    #[inline]
    pub(crate) fn fits(&self, rest: u32) -> bool {
        // Saturated bounds only ever widen the range, so the check stays conservative.
        u32::from(self.min_rest) <= rest
            && (self.max_rest == UNBOUNDED || rest <= u32::from(self.max_rest))
    }

    /// Whether a walk at this node, with `rest` key words left of which `next` is the first
    /// (`UNKNOWN_WORD` if none or unknown), could reach a match.
    #[inline]
    pub(crate) fn promising(&self, rest: u32, next: u32) -> bool {
        if !self.fits(rest) {
            return false;
        }
        if rest == 0 {
            return self.flags & (DESTS | HASH) != 0;
        }
        self.flags & (STAR | HASH) != 0 || self.may_have_word(next)
    }

    /// The positions after which a `#` with this summary below it may stop, when it is
    /// entered after `pos` of `n` words: `first..end`, possibly empty.
    pub(crate) fn stops(&self, pos: u32, n: u32) -> std::ops::Range<u32> {
        let Some(last) = n.checked_sub(u32::from(self.min_rest)) else {
            return pos..pos;
        };
        let first = if self.max_rest == UNBOUNDED {
            pos
        } else {
            pos.max(n.saturating_sub(u32::from(self.max_rest)))
        };
        first..last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::{Summary, UNKNOWN_WORD};

    #[test]
    fn empty_matches_nothing() {
        let s = Summary::EMPTY;
        assert!(!s.fits(0) && !s.promising(0, UNKNOWN_WORD) && !s.promising(3, 1));
        assert!(s.stops(0, 3).is_empty());
    }

    #[test]
    fn bounds_flags_and_words() {
        let mut s = Summary::EMPTY;
        s.widen(2, 3);
        assert!(!s.fits(1) && s.fits(2) && s.fits(3) && !s.fits(4));
        s.add_word(5);
        assert!(s.promising(2, 5) && !s.promising(2, 6) && !s.promising(2, UNKNOWN_WORD));
        s.set_star(true);
        assert!(s.promising(2, 6));
        s.set_star(false);
        assert!(!s.promising(2, 6));
        s.widen(0, 3);
        assert!(!s.promising(0, UNKNOWN_WORD), "no destinations here");
        s.set_dests(true);
        assert!(s.promising(0, UNKNOWN_WORD));
        assert_eq!(s.stops(0, 5), 2..6);
        s.widen(u16::MAX, u16::MAX);
        assert!(s.fits(1_000_000));
        assert_eq!(s.stops(1, 5), 1..6);
    }
}
