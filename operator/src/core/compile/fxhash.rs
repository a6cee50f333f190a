//! The Fx hash, for the policy index's hot maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small, fast, non-cryptographic hasher (the Fx hash) for the index's maps, which are hit
/// millions of times on a full load. Keys are object names; a collision only costs time.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ (rest.len() as u64) << 56);
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    /// The multiply mixes well into the high bits only: the low bits of the state depend on the
    /// low bits of each word (for names, mostly one character per 8). The table picks buckets
    /// from the low bits, so names like `bulk/bulk-123` piled into a few buckets and every lookup
    /// scanned long collision runs. Rotating brings the mixed high bits down (as rustc-hash 2 does).
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// A hash map with [`FxHasher`].
pub type Map<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn similar_names_spread_over_the_buckets() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let buckets: std::collections::BTreeSet<u64> =
            (0..10_000).map(|i| build.hash_one(format!("bulk/bulk-{i}")) & 0xffff).collect();
        assert!(buckets.len() > 8_000, "10,000 names fell into {} of 65,536 buckets", buckets.len());
    }
}
