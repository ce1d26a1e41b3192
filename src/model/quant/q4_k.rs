//! Q4_K: 256 values per 144-byte block, `[d: f16][dmin: f16][scales: 12
//! bytes][qs: 128 bytes]`, in 8 sub-blocks of 32 with a 6-bit scale `sc` and
//! 6-bit min `mn` each; value = `(d * sc) * q - (dmin * mn)`.
//!
//! Quants: bytes `32c..32c+32` of `qs` hold values `64c..64c+32` in their low
//! nibbles and `64c+32..64c+64` in their high nibbles. Scales: for
//! sub-block `j < 4`, `sc = s[j] & 63`, `mn = s[j+4] & 63`; for `j >= 4`, the
//! low 4 bits come from `s[j+4]` (low nibble for `sc`, high for `mn`) and the
//! top 2 bits from bits 6..8 of `s[j-4]` (`sc`) and `s[j]` (`mn`).
//! Multiplied with Q8_K activations.

use super::activation::Q8Row;
use super::f16_at;
use super::lanes::{BLOCK_LANES, fold};

pub(crate) const BLOCK_BYTES: usize = 144;

/// Scale and min of sub-block `j` (0..8) from the 12 packed scale bytes.
#[inline(always)]
pub(crate) fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// All 8 scales and 8 mins from the 12 packed scale bytes, as two
/// little-endian u64 of one byte each (sub-block `j` in byte `j`): the rule
/// of [`scale_min`] applied to four bytes at a time, for the SIMD kernels.
#[inline(always)]
pub(crate) fn scales_mins(s: &[u8]) -> (u64, u64) {
    let word = |k: usize| u32::from_le_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let (low6, low4, top2) = (0x3F3F_3F3F, 0x0F0F_0F0F, 0x0303_0303);
    let sc_lo = w0 & low6;
    let mn_lo = w1 & low6;
    let sc_hi = (w2 & low4) | (((w0 >> 6) & top2) << 4);
    let mn_hi = ((w2 >> 4) & low4) | (((w1 >> 6) & top2) << 4);
    (
        u64::from(sc_lo) | (u64::from(sc_hi) << 32),
        u64::from(mn_lo) | (u64::from(mn_hi) << 32),
    )
}

/// Quant `v` (0..256) of a block, 0..=15.
#[inline(always)]
pub(crate) fn quant(blk: &[u8], v: usize) -> u8 {
    let byte = blk[16 + 32 * (v / 64) + v % 32];
    if v % 64 < 32 { byte & 0x0F } else { byte >> 4 }
}

pub(crate) fn decode_block(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b), f16_at(&b[2..]));
    for (j, sub) in out.chunks_exact_mut(32).enumerate() {
        let (sc, mn) = scale_min(j, &b[4..16]);
        let (scale, min) = (d * f32::from(sc), dmin * f32::from(mn));
        for (l, o) in sub.iter_mut().enumerate() {
            *o = scale * f32::from(quant(b, 32 * j + l)) - min;
        }
    }
}

pub(crate) fn dot_ref(w: &[u8], a: &Q8Row<'_>) -> f32 {
    let nb = w.len() / BLOCK_BYTES;
    assert_eq!(a.q.len(), nb * 256, "q4_k dot: row length");
    let mut lanes = [0.0f32; BLOCK_LANES];
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..8 {
            let (sc, mn) = scale_min(j, &blk[4..16]);
            let dot: i32 = (32 * j..32 * j + 32)
                .map(|v| i32::from(quant(blk, v)) * i32::from(a.q[256 * b + v]))
                .sum();
            isum += i32::from(sc) * dot;
            msum += i32::from(mn) * (a.sums[16 * b + 2 * j] + a.sums[16 * b + 2 * j + 1]);
        }
        let v = isum as f32 * (f16_at(blk) * a.d[b]) - msum as f32 * (f16_at(&blk[2..]) * a.d[b]);
        lanes[b % BLOCK_LANES] += v;
    }
    fold(lanes)
}
