//! A guard against deeply nested field tables. The frame parser recurses once per level of
//! nesting, and a 128 KiB frame can nest tens of thousands of levels, enough to overflow a
//! thread's stack; so the tables of a frame are walked first, without recursion beyond
//! [`MAX_DEPTH`], and a frame nesting deeper is refused as a syntax error.
//!
//! Tables appear in a few methods (`connection.start-ok`, `exchange.declare`, `.bind`,
//! `.unbind`, `queue.declare`, `.bind`, `.unbind`, `basic.consume`) and in the `headers`
//! property of a content header; their offsets follow from the method layouts of the spec.

use super::cursor::Cursor;

/// The deepest nesting of tables and arrays accepted; real clients use two or three.
pub(crate) const MAX_DEPTH: usize = 64;

/// Checks a complete frame (7-byte header, payload, end marker). Returns `false` when a
/// table in it nests deeper than [`MAX_DEPTH`] or is malformed.
pub(crate) fn check(frame: &[u8]) -> bool {
    let Some(payload) = frame.get(7..frame.len().saturating_sub(1)) else {
        return true;
    };
    let table = match frame[0] {
        1 => method_table(payload),
        2 => header_table(payload),
        _ => None,
    };
    match table {
        Some(bytes) => table_ok(bytes, 0).is_some(),
        // No table, or a prefix too short to reach one: the parser rejects the latter
        // before it could recurse.
        None => true,
    }
}

/// Checks a length-prefixed field table on its own (an AMQPLAIN response). Returns
/// `false` when it nests deeper than [`MAX_DEPTH`] or is malformed.
pub(crate) fn check_table(table: &[u8]) -> bool {
    table_ok(table, 0).is_some()
}

/// Returns the bytes from the table argument of a method to the end, if it has one.
fn method_table(payload: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor(payload);
    let ids = c.take(4)?;
    let (class, method) = (
        u16::from_be_bytes([ids[0], ids[1]]),
        u16::from_be_bytes([ids[2], ids[3]]),
    );
    // (short strings before the table, a flags octet before the table)
    let (strings, flags) = match (class, method) {
        (10, 11) => (0, false),
        (40, 10) => (2, true),
        (40, 30) | (40, 40) => (3, true),
        (50, 10) => (1, true),
        (50, 20) => (3, true),
        (50, 50) => (3, false),
        (60, 20) => (2, true),
        _ => return None,
    };
    if class != 10 {
        c.take(2)?; // reserved short
    }
    for _ in 0..strings {
        c.short_bytes()?;
    }
    if flags {
        c.u8()?;
    }
    Some(c.0)
}

/// Returns the bytes from the `headers` property of a content header, if present.
fn header_table(payload: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor(payload);
    c.take(12)?; // class, weight, body size
    let flags = c.take(2)?;
    let flags = u16::from_be_bytes([flags[0], flags[1]]);
    if flags & 0x2000 == 0 {
        return None;
    }
    if flags & 0x8000 != 0 {
        c.short_bytes()?;
    }
    if flags & 0x4000 != 0 {
        c.short_bytes()?;
    }
    Some(c.0)
}

/// Walks a length-prefixed table at the start of `bytes`.
fn table_ok(bytes: &[u8], depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut c = Cursor(Cursor(bytes).long()?);
    while !c.0.is_empty() {
        c.short_bytes()?;
        value_ok(&mut c, depth)?;
    }
    Some(())
}

fn value_ok(c: &mut Cursor<'_>, depth: usize) -> Option<()> {
    let size = match c.u8()? {
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'V' => 0,
        b'S' | b'x' => return c.long().map(drop),
        b'F' => {
            table_ok(c.0, depth + 1)?;
            return c.long().map(drop);
        }
        b'A' => {
            if depth + 1 > MAX_DEPTH {
                return None;
            }
            let mut items = Cursor(c.long()?);
            while !items.0.is_empty() {
                value_ok(&mut items, depth + 1)?;
            }
            return Some(());
        }
        _ => return None,
    };
    c.take(size).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `queue.declare` frame on channel 1 whose arguments nest `depth` tables.
    fn nested_declare(depth: usize) -> Vec<u8> {
        let mut table = Vec::new();
        for _ in 0..depth {
            let inner = std::mem::take(&mut table);
            table.extend_from_slice(&[1, b'k', b'F']);
            table.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            table.extend_from_slice(&inner);
        }
        let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
        payload.extend_from_slice(&(table.len() as u32).to_be_bytes());
        payload.extend_from_slice(&table);
        let mut frame = vec![1, 0, 1];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(0xCE);
        frame
    }

    #[test]
    fn shallow_tables_pass_and_deep_ones_do_not() {
        assert!(check(&nested_declare(0)));
        assert!(check(&nested_declare(MAX_DEPTH)));
        assert!(!check(&nested_declare(MAX_DEPTH + 2)));
        assert!(!check(&nested_declare(20_000)));
    }

    #[test]
    fn lone_tables_are_checked_too() {
        assert!(check_table(&[0, 0, 0, 0]));
        let deep = &nested_declare(MAX_DEPTH + 2)[16..];
        assert!(!check_table(&deep[..deep.len() - 1]));
        assert!(!check_table(&[0, 0, 0, 9, 1]));
    }

    #[test]
    fn frames_without_tables_pass() {
        assert!(check(&[8, 0, 0, 0, 0, 0, 0, 0xCE]));
        assert!(check(&[1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 80, 0xCE]));
    }
}
