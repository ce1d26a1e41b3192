//! Q4_1: 32 values per 20-byte block, `[d: f16][m: f16][16 bytes]`; byte `j`
//! holds value `j` in its low nibble and value `j + 16` in its high nibble;
//! value = `d * q + m`. Multiplied with Q8_1 activations: the min term uses
//! the activation block's stored f16 sum `s`.

use super::activation::Q8Row;
use super::f16_at;
use super::lanes::{BLOCK_LANES, fold};

pub(crate) const BLOCK_BYTES: usize = 20;

/// Quant `v` (0..32) of a block, 0..=15.
#[inline(always)]
pub(crate) fn quant(blk: &[u8], v: usize) -> u8 {
    let byte = blk[4 + v % 16];
    if v < 16 { byte & 0x0F } else { byte >> 4 }
}

pub(crate) fn decode_block(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b), f16_at(&b[2..]));
    for (v, o) in out.iter_mut().enumerate() {
        *o = f32::from(quant(b, v)) * d + m;
    }
}

pub(crate) fn dot_ref(w: &[u8], a: &Q8Row<'_>) -> f32 {
    let nb = w.len() / BLOCK_BYTES;
    assert_eq!(a.q.len(), nb * 32, "q4_1 dot: row length");
    let mut lanes = [0.0f32; BLOCK_LANES];
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let isum: i32 = (0..32)
            .map(|v| i32::from(quant(blk, v)) * i32::from(a.q[a.pos(b, v)]))
            .sum();
        let v = isum as f32 * (f16_at(blk) * a.d[b]) + f16_at(&blk[2..]) * a.s[b];
        lanes[b % BLOCK_LANES] += v;
    }
    fold(lanes)
}
