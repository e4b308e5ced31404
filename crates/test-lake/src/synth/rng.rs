//! A small seeded PRNG (SplitMix64) with integer-only helpers, so that a spec always yields the
//! same lake, on any platform.

use uuid::Uuid;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: mix(seed) }
    }

    /// An independent generator for a sub-task (`key` names it), leaving `self` untouched.
    pub fn fork(&self, key: u64) -> Self {
        Self::new(self.state ^ mix(key.wrapping_add(1).wrapping_mul(GOLDEN)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..hi` (`lo < hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// True with probability `per_mille / 1000`.
    pub fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// True with probability `a / (a + b)` (false when both are 0).
    pub fn ratio(&mut self, a: u64, b: u64) -> bool {
        let total = a.saturating_add(b);
        total > 0 && self.below(total) < a
    }

    /// Roughly log-uniform in `lo..hi` (`0 < lo < hi`): a power-of-two octave, then uniform in it.
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(0 < lo && lo < hi);
        let lo_bits = 63 - lo.leading_zeros();
        let hi_bits = 63 - hi.leading_zeros();
        let octave = lo_bits + self.below(u64::from(hi_bits - lo_bits + 1)) as u32;
        let start = (1u64 << octave).max(lo);
        let end = (1u64 << octave).saturating_mul(2).min(hi);
        if start >= end {
            start.min(hi - 1)
        } else {
            self.range(start, end)
        }
    }

    /// Index in `0..n` biased towards small values (a few entries are hot, as in real code).
    pub fn skewed(&mut self, n: usize) -> usize {
        let bound = self.index(n) + 1;
        self.index(bound)
    }

    /// A version-4 UUID from 16 random bytes.
    pub fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}
