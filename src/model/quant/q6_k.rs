//! Q6_K: 256 values per 210-byte block, `[ql: 128][qh: 64][scales: 16 × i8]
//! [d: f16]`, in 16 groups of 16 values with one signed scale each;
//! value = `(d * sc) * (q - 32)`, q in 0..64.
//!
//! Quants, per half `h` (values `128h..128h+128`, `ql[64h..]`, `qh[32h..]`)
//! and `l` in 0..32: value `128h + 32i + l` takes its low 4 bits from
//! `ql[64h + l + 32 (i % 2)]` (low nibble for i < 2, high for i >= 2) and
//! its top 2 bits from bits `2i..2i+2` of `qh[32h + l]`.
//! Multiplied with Q8_K activations.

use super::activation::Q8Row;
use super::f16_at;
use super::lanes::{BLOCK_LANES, fold};

pub(crate) const BLOCK_BYTES: usize = 210;

/// Unsigned quant `v` (0..256) of a block, 0..=63.
#[inline(always)]
pub(crate) fn quant(blk: &[u8], v: usize) -> u8 {
    let (h, i, l) = (v / 128, (v % 128) / 32, v % 32);
    let lo = blk[64 * h + l + 32 * (i % 2)];
    let lo = if i < 2 { lo & 0x0F } else { lo >> 4 };
    let hi = (blk[128 + 32 * h + l] >> (2 * i)) & 3;
    lo | (hi << 4)
}

#[inline(always)]
pub(crate) fn scale(blk: &[u8], g: usize) -> i8 {
    blk[192 + g] as i8
}

pub(crate) fn decode_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(&b[208..]);
    for (v, o) in out.iter_mut().enumerate() {
        *o = d * f32::from(scale(b, v / 16)) * (i32::from(quant(b, v)) - 32) as f32;
    }
}

pub(crate) fn dot_ref(w: &[u8], a: &Q8Row<'_>) -> f32 {
    let nb = w.len() / BLOCK_BYTES;
    assert_eq!(a.q.len(), nb * 256, "q6_k dot: row length");
    let mut lanes = [0.0f32; BLOCK_LANES];
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let mut isum = 0i32;
        for g in 0..16 {
            let dot: i32 = (16 * g..16 * g + 16)
                .map(|v| (i32::from(quant(blk, v)) - 32) * i32::from(a.q[256 * b + v]))
                .sum();
            isum += i32::from(scale(blk, g)) * dot;
        }
        lanes[b % BLOCK_LANES] += isum as f32 * (f16_at(&blk[208..]) * a.d[b]);
    }
    fold(lanes)
}
