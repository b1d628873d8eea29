//! Seeded pseudo-random vectors, for tests and the benchmark: the same seed gives the same
//! vectors on every machine, with no extra crate.

/// `n` vectors of `dim` values, uniform in [-1, 1), from a 64-bit LCG seeded by `seed`.
pub fn seeded_vectors(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect()
}
