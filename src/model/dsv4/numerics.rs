//! The official checkpoint's "QAT simulation" points (reference §2.7): FP8
//! and FP4 round trips with power-of-two block scales, the Walsh–Hadamard
//! rotation of the indexer, and bf16 rounding, each on a slice in place.
//!
//! Invariants: every function is exact to its definition. Block scales are
//! found by exponent arithmetic, never by a float `log2` that can land on
//! the wrong side of an exact power of two; dividing and multiplying by a
//! power-of-two scale is exact, so the only rounding is the cast itself.

use super::codec::{e2m1_to_f32, e4m3_to_f32, exponent, f32_to_e2m1, f32_to_e4m3, pow2};

/// Largest finite E4M3 magnitude.
const E4M3_MAX: f32 = 448.0;
/// Largest E2M1 magnitude.
const E2M1_MAX: f32 = 6.0;
/// Floor on an FP8 block's amax, so all-zero blocks get a finite scale.
const FP8_AMAX_FLOOR: f32 = 1e-4;
/// Floor on an FP4 block's amax: 6·2^−126 keeps the scale a normal f32.
const FP4_AMAX_FLOOR: f32 = 6.0 * f32::MIN_POSITIVE;

/// The Hadamard transform needs a power-of-two length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Hadamard transform of length {len}: the length must be a power of two")]
pub struct HadamardLengthError {
    pub len: usize,
}

/// Smallest power of two `s` with `m <= max · s`, i.e.
/// 2^ceil(log2(m / max)), for finite positive normal `m` and `max`.
///
/// Writing m = fm·2^em and max = fx·2^ex with fm, fx in [1, 2): if fm <= fx
/// then max·2^(em−ex) >= m while max·2^(em−ex−1) < fx·2^(em−1) < m, so the
/// exponent is em − ex; otherwise it is one more. Comparing mantissa bits
/// compares fm and fx exactly.
fn pow2_scale(m: f32, max: f32) -> f32 {
    let mantissa = |v: f32| v.to_bits() & 0x7F_FFFF;
    let k = exponent(m) - exponent(max) + i32::from(mantissa(m) > mantissa(max));
    pow2(k)
}

/// Largest magnitude in a block; NaNs are skipped (they stay NaN through
/// the cast on their own).
/// An infinite amax is capped at f32::MAX so the scale stays a normal f32.
fn amax(block: &[f32]) -> f32 {
    block
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .min(f32::MAX)
}

/// FP8 round trip per `block` consecutive values (the last block may be
/// short): s = 2^ceil(log2(max(amax, 1e-4) / 448)), x ← e4m3(x / s) · s.
///
/// The reference clamps x / s to ±448 before the cast; the encoder
/// saturates, which is the same. Used with block 128 on activations before
/// FP8/FP4 linears and block 64 on KV dims 0..447.
///
/// Non-finite values: NaN stays NaN and does not affect its block's scale;
/// an infinity scales its block as f32::MAX would and stays infinite (the
/// saturated code times that scale overflows), as in the reference.
///
/// Panics if `block` is 0 (block sizes are constants of the format).
pub fn fp8_round_trip(x: &mut [f32], block: usize) {
    for chunk in x.chunks_mut(block) {
        let s = pow2_scale(amax(chunk).max(FP8_AMAX_FLOOR), E4M3_MAX);
        for v in chunk {
            *v = e4m3_to_f32(f32_to_e4m3(*v / s)) * s;
        }
    }
}

/// FP4 round trip per `block` consecutive values (the last block may be
/// short): s = 2^ceil(log2(max(amax, 6·2^−126) / 6)),
/// x ← e2m1(clamp(x / s, ±6)) · s; the encoder's saturation is the clamp.
/// Used with block 32 on the indexer's queries and keys after Hadamard.
/// Non-finite values behave as in [`fp8_round_trip`].
///
/// Panics if `block` is 0 (block sizes are constants of the format).
pub fn fp4_round_trip(x: &mut [f32], block: usize) {
    for chunk in x.chunks_mut(block) {
        let s = pow2_scale(amax(chunk).max(FP4_AMAX_FLOOR), E2M1_MAX);
        // E2M1 has no NaN code; keeping a NaN beats zeroing it silently.
        for v in chunk.iter_mut().filter(|v| !v.is_nan()) {
            *v = e2m1_to_f32(f32_to_e2m1(*v / s)) * s;
        }
    }
}

/// Walsh–Hadamard transform in Sylvester order (H_2n = [[H, H], [H, −H]])
/// scaled by 1/√n, so applying it twice is the identity.
///
/// Butterflies run with stride 1, 2, 4, … (x[j], x[j+h]) ← (x[j] + x[j+h],
/// x[j] − x[j+h]), then every value is multiplied by the f32 nearest to
/// 1/√n, as the reference kernel applies its `scale` argument last.
pub fn hadamard_in_place(x: &mut [f32]) -> Result<(), HadamardLengthError> {
    let n = x.len();
    if !n.is_power_of_two() {
        return Err(HadamardLengthError { len: n });
    }
    let mut h = 1;
    while h < n {
        for pair in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = pair.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi) {
                (*a, *b) = (*a + *b, *a - *b);
            }
        }
        h *= 2;
    }
    let scale = (1.0 / (n as f64).sqrt()) as f32;
    for v in x {
        *v *= scale;
    }
    Ok(())
}

/// Rounds every value to bf16 (ties to even), keeping f32 storage.
pub fn round_bf16_in_place(x: &mut [f32]) {
    for v in x {
        *v = super::codec::round_to_bf16(*v);
    }
}

#[cfg(test)]
mod tests;
