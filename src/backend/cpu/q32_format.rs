//! The 32-value block formats (Q8_0, Q4_1, Q5_0) as const parameters of
//! the SIMD kernels, which specialise each kernel per stored format.

/// Q8_0: f16 scale, 32 signed quants.
pub(super) const Q8_0: u8 = 0;
/// Q4_1: f16 scale, f16 min, 32 nibbles.
pub(super) const Q4_1: u8 = 1;
/// Q5_0: f16 scale, 32 fifth bits, 32 nibbles.
pub(super) const Q5_0: u8 = 2;

/// Bytes per block of format `f`.
pub(super) const fn block_bytes(f: u8) -> usize {
    match f {
        Q8_0 => 34,
        Q4_1 => 20,
        _ => 22,
    }
}
