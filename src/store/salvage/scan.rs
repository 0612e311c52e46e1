//! Reading records page by page, without redb's tree: the fallback for tables that the walk
//! could not read whole.
//!
//! A redb file is a header followed by pages of a fixed size (usually 4 KiB; larger pages
//! are power-of-two multiples, starting at page boundaries). A B-tree leaf page starts with
//! type byte 1, a reserved byte and the number of entries (`u16`), then — for variable-width
//! keys and values — the end offset of each key and each value (`u32`), then the keys, then
//! the values. Every leaf-looking page is parsed with each table's key layout; a row counts
//! only if its value passes the record checksum, which covers the key and a tag naming the
//! table, so a row is never taken for another table's or from garbage.
//!
//! Freed pages keep their old contents until they are reused, so a scan can also find
//! records that a later commit removed: it is used only for tables the walk could not read
//! whole, and never replaces a row the walk read.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::found::{Found, Row, Table};

/// redb's page size unless the header says otherwise.
const DEFAULT_PAGE: u64 = 4096;
/// Offset of the page size (`u32`) in redb's header.
const PAGE_SIZE_AT: usize = 12;
/// The type byte of a leaf page.
const LEAF: u8 = 1;
/// The largest leaf read (a page holding one message of the largest record size).
const MAX_LEAF: u64 = 600 * 1024 * 1024;

/// What a scan did.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    /// Pages that looked like leaves of a table scanned for.
    pub(super) leaves: u64,
    /// Rows added (not found by the walk).
    pub(super) added: u64,
}

/// Scans every page of `path` for rows of `tables`, adding those not yet in `found`.
pub(super) fn scan(path: &Path, tables: &[Table], found: &mut Found) -> io::Result<Scanned> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut header = [0u8; 16];
    let page = match file.read_exact(&mut header) {
        Ok(()) => {
            let size = u32::from_le_bytes(
                header[PAGE_SIZE_AT..PAGE_SIZE_AT + 4]
                    .try_into()
                    .unwrap_or([0; 4]),
            );
            let size = u64::from(size);
            if size.is_power_of_two() && (512..=65536).contains(&size) {
                size
            } else {
                DEFAULT_PAGE
            }
        }
        Err(_) => DEFAULT_PAGE,
    };
    let mut scanned = Scanned::default();
    let mut buffer = Vec::new();
    let mut offset = page;
    while offset < len {
        read_at(&mut file, offset, page.min(len - offset), &mut buffer)?;
        if buffer.first() == Some(&LEAF) {
            if let Some(extent) = leaf_extent(&buffer) {
                if extent > buffer.len() as u64 && extent <= MAX_LEAF && offset + extent <= len {
                    read_at(&mut file, offset, extent, &mut buffer)?;
                }
                let before = total(found);
                if parse_leaf(&buffer, tables, found) {
                    scanned.leaves += 1;
                }
                scanned.added += total(found) - before;
            }
        }
        offset += page;
    }
    Ok(scanned)
}

/// Rows found in all tables.
fn total(found: &Found) -> u64 {
    let c = found.counts();
    c.vhosts
        + c.exchanges
        + c.queues
        + c.bindings
        + c.messages
        + c.entries
        + c.policies
        + found.auth.len() as u64
}

/// Reads `len` bytes at `offset` into `buffer`.
fn read_at(file: &mut File, offset: u64, len: u64, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.clear();
    file.seek(SeekFrom::Start(offset))?;
    file.by_ref().take(len).read_to_end(buffer)?;
    Ok(())
}

/// How long a leaf may be, if the page looks like one: the larger of its last value's end
/// read as a leaf of variable-width keys and values, and as one of 8-byte keys (messages).
fn leaf_extent(page: &[u8]) -> Option<u64> {
    let n = usize::from(u16::from_le_bytes([*page.get(2)?, *page.get(3)?]));
    if n == 0 {
        return None;
    }
    let end_at = |i: usize| -> u64 {
        page.get(4 + 4 * i..8 + 4 * i)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    Some(end_at(2 * n - 1).max(end_at(n - 1)))
}

/// The layout of a leaf: key and value widths (`None` for variable).
type Layout = (Option<usize>, Option<usize>);

/// Splits a leaf into its (key, value) pairs, or `None` if the page is not a well-formed leaf
/// of that layout.
fn pairs(page: &[u8], (key_width, value_width): Layout) -> Option<Vec<(&[u8], &[u8])>> {
    let n = usize::from(u16::from_le_bytes([*page.get(2)?, *page.get(3)?]));
    if n == 0 {
        return None;
    }
    let end_at = |i: usize| -> Option<usize> {
        let bytes = page.get(4 + 4 * i..8 + 4 * i)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let mut header = 4;
    if key_width.is_none() {
        header += 4 * n;
    }
    if value_width.is_none() {
        header += 4 * n;
    }
    let key_end = |i: usize| match key_width {
        Some(w) => Some(header + w * (i + 1)),
        None => end_at(i),
    };
    let keys_end = key_end(n - 1)?;
    let value_end = |i: usize| match value_width {
        Some(w) => Some(keys_end + w * (i + 1)),
        None => end_at(if key_width.is_none() { n + i } else { i }),
    };
    let mut out = Vec::with_capacity(n);
    let (mut key_start, mut value_start) = (header, keys_end);
    for i in 0..n {
        let (ke, ve) = (key_end(i)?, value_end(i)?);
        if ke < key_start || ve < value_start {
            return None;
        }
        out.push((page.get(key_start..ke)?, page.get(value_start..ve)?));
        key_start = ke;
        value_start = ve;
    }
    Some(out)
}

/// Adds the readable rows of one leaf; `true` if any row was readable.
fn parse_leaf(page: &[u8], tables: &[Table], found: &mut Found) -> bool {
    let mut any = false;
    let wanted = |t: Table| tables.contains(&t);
    if wanted(Table::Messages) {
        if let Some(pairs) = pairs(page, (Some(8), None)) {
            for (key, value) in pairs {
                let id = u64::from_le_bytes(key.try_into().unwrap_or([0; 8]));
                any |= try_add(found, Row::Message(id), value);
            }
        }
    }
    let Some(pairs) = pairs(page, (None, None)) else {
        return any;
    };
    for (key, value) in pairs {
        for table in tables {
            let row = match table {
                Table::Vhosts => std::str::from_utf8(key).ok().map(Row::Vhost),
                Table::Exchanges => two(key).map(|(v, n)| Row::Exchange(v, n)),
                Table::Queues => two(key).map(|(v, n)| Row::Queue(v, n)),
                Table::Bindings => binding(key),
                Table::Policies => two(key).map(|(v, n)| Row::Policy(v, n)),
                Table::Auth => three(key).map(|(k, a, b)| Row::Auth(k, a, b)),
                Table::Entries => entry(key),
                Table::Messages => None,
            };
            if let Some(row) = row {
                if try_add(found, row, value) {
                    any = true;
                    break;
                }
            }
        }
    }
    any
}

/// Adds a row found by the scan if it is readable and new; unreadable candidates are not
/// counted (most are not rows of that table at all).
fn try_add(found: &mut Found, row: Row<'_>, value: &[u8]) -> bool {
    let unreadable = found.unreadable;
    let ok = found.add(row, value, true);
    found.unreadable = unreadable;
    ok
}

/// Reads redb's length prefix of a tuple element.
fn varint(data: &[u8]) -> Option<(usize, usize)> {
    match *data.first()? {
        n @ 0..=253 => Some((usize::from(n), 1)),
        254 => Some((
            usize::from(u16::from_le_bytes(data.get(1..3)?.try_into().ok()?)),
            3,
        )),
        255 => Some((
            u32::from_le_bytes(data.get(1..5)?.try_into().ok()?) as usize,
            5,
        )),
    }
}

/// Splits an encoded tuple whose elements have the given widths (`None`: variable, length
/// prefixed unless last) into its elements.
fn elements<'a>(key: &'a [u8], widths: &[Option<usize>]) -> Option<Vec<&'a [u8]>> {
    let mut lens = Vec::with_capacity(widths.len());
    let mut at = 0;
    for (i, width) in widths.iter().enumerate() {
        match width {
            Some(w) => lens.push(Some(*w)),
            None if i + 1 == widths.len() => lens.push(None),
            None => {
                let (len, used) = varint(key.get(at..)?)?;
                at += used;
                lens.push(Some(len));
            }
        }
    }
    let mut out = Vec::with_capacity(widths.len());
    for len in lens {
        let part = match len {
            Some(len) => key.get(at..at.checked_add(len)?)?,
            None => key.get(at..)?,
        };
        at += part.len();
        out.push(part);
    }
    (at == key.len()).then_some(out)
}

/// A `(&str, &str)` key.
fn two(key: &[u8]) -> Option<(&str, &str)> {
    let parts = elements(key, &[None, None])?;
    Some((text(parts[0])?, text(parts[1])?))
}

/// A `(&str, &str, &str)` key.
fn three(key: &[u8]) -> Option<(&str, &str, &str)> {
    let parts = elements(key, &[None, None, None])?;
    Some((text(parts[0])?, text(parts[1])?, text(parts[2])?))
}

/// A `(&str, &str, u64)` entry key.
fn entry(key: &[u8]) -> Option<Row<'_>> {
    let parts = elements(key, &[None, None, Some(8)])?;
    let seq = u64::from_le_bytes(parts[2].try_into().ok()?);
    Some(Row::Entry(text(parts[0])?, text(parts[1])?, seq))
}

/// A binding key: `(&str, &str, &str, bool, &str, &[u8])`.
fn binding(key: &[u8]) -> Option<Row<'_>> {
    let parts = elements(key, &[None, None, None, Some(1), None, None])?;
    let to_exchange = match parts[3] {
        [0] => false,
        [1] => true,
        _ => return None,
    };
    Some(Row::Binding(
        text(parts[0])?,
        text(parts[1])?,
        text(parts[2])?,
        to_exchange,
        text(parts[4])?,
        parts[5],
    ))
}

/// A UTF-8 key part.
fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}
