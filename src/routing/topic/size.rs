//! Memory estimates for the containers the routing table is built from.

use std::mem::size_of;

use hashbrown::HashMap;

/// Estimates the bytes of a hashbrown map's table: its buckets (a power of two, at most 7/8
/// full) each hold one entry and one control byte. Heap owned by the entries is not included.
pub(crate) fn hash_map_bytes<K, V, S>(map: &HashMap<K, V, S>) -> usize {
    hash_table_bytes(map.capacity(), size_of::<(K, V)>())
}

/// Estimates the bytes of a hashbrown table of `capacity` entries of `entry` bytes each.
pub(crate) fn hash_table_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (entry + 1) + 16
}

#[cfg(test)]
mod tests {
    use hashbrown::HashMap;

    use super::hash_map_bytes;

    #[test]
    fn grows_with_the_map() {
        let mut map: HashMap<u64, u64> = HashMap::new();
        assert_eq!(hash_map_bytes(&map), 0);
        map.extend((0..1000).map(|i| (i, i)));
        let bytes = hash_map_bytes(&map);
        assert!((1000 * 17..=4 * 1000 * 17).contains(&bytes), "{bytes}");
    }
}
