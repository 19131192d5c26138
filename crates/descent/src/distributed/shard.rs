//! Which rows each rank takes, and what ranks compare to know they train the same thing.

use std::ops::Range;

use crate::autograd::ParamStore;

/// Rank `rank`'s share of `total` rows split over `size` ranks: consecutive and as even
/// as possible (the first ranks get one row fewer when it does not divide).
pub fn share(total: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    (total * rank / size)..(total * (rank + 1) / size)
}

/// What must agree between ranks before they train together, in words a message can
/// show: the parameter layout, and a checksum of the weights' bits.
pub fn fingerprint(store: &ParamStore) -> String {
    let mut layout = String::new();
    for e in store.entries() {
        layout.push_str(&format!("{}{:?}{};", e.name, e.shape.dims(), if e.trainable { "" } else { "(frozen)" }));
    }
    let bytes: Vec<u8> = store.values().iter().flat_map(|v| v.to_le_bytes()).collect();
    format!("{} parameters in {} tensors (layout crc {:08x}), weights crc {:08x}", store.count(), store.entries().len(), crc32c::crc32c(layout.as_bytes()), crc32c::crc32c(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_consecutive_cover_everything_and_differ_by_at_most_one() {
        for total in [0, 1, 3, 7, 128, 1001] {
            for size in 1..=5 {
                let parts: Vec<_> = (0..size).map(|r| share(total, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts.last().unwrap().end, total);
                assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
                let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{total}/{size}: {lens:?}");
            }
        }
    }
}
