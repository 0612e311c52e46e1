//! A cursor over a frame's payload, for the few places that read frames in place instead of
//! through `amq-protocol` (the publish path in `inbound`, the table nesting check in
//! `nesting`). Every read answers `None` when the payload is too short.

/// A cursor over a byte slice.
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl<'a> Cursor<'a> {
    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// An octet.
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A big-endian short.
    pub(super) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A big-endian long, as a length.
    pub(super) fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// The bytes of a short string (an octet of length, then the bytes).
    pub(super) fn short_bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    /// The bytes of a long string or table (a long of length, then the bytes).
    pub(super) fn long(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()?;
        self.take(len)
    }
}
