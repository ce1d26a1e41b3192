//! Fixed-order float accumulation shared by every dot product: values land
//! in lanes by position, lanes are summed by halving. SIMD kernels keep the
//! lanes in vector registers and fold them the same way, which is what makes
//! them agree with the scalar reference bit for bit.

/// Lanes for block formats: block `b` adds into lane `b % 16`.
pub const BLOCK_LANES: usize = 16;
/// Lanes for float weights: element `k` adds into lane `k % 64`.
pub const FLOAT_LANES: usize = 64;

/// Sums `N` (a power of two) lanes by halving: for `w = N/2, N/4, ..., 1`,
/// lane `i` += lane `i + w` for `i < w`; returns lane 0.
#[inline]
pub fn fold<const N: usize>(mut lanes: [f32; N]) -> f32 {
    let mut w = N / 2;
    while w > 0 {
        for i in 0..w {
            lanes[i] += lanes[i + w];
        }
        w /= 2;
    }
    lanes[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_pairs_by_halving() {
        // 1e8 + 1 rounds away unless the 1s meet each other first, so the
        // result tells which lanes were paired.
        let mut l = [0.0f32; 4];
        l[0] = 1e8;
        l[1] = 1.0;
        l[2] = -1e8;
        l[3] = 1.0;
        // (l0 + l2) + (l1 + l3) = 0 + 2
        assert_eq!(fold(l), 2.0);
    }
}
