//! Q5_0: 32 values per 22-byte block, `[d: f16][qh: u32 LE][16 bytes]`;
//! value `j` has its low 4 bits in byte `j % 16` (low nibble for `j < 16`,
//! high nibble otherwise) and its 5th bit in bit `j` of `qh`;
//! value = `d * (q - 16)`. Multiplied with Q8_0 activations.

use super::activation::Q8Row;
use super::f16_at;
use super::lanes::{BLOCK_LANES, fold};

pub(crate) const BLOCK_BYTES: usize = 22;

/// Unsigned quant `v` (0..32) of a block, 0..=31.
#[inline(always)]
pub(crate) fn quant(blk: &[u8], v: usize) -> u8 {
    let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
    let byte = blk[6 + v % 16];
    let low = if v < 16 { byte & 0x0F } else { byte >> 4 };
    low | ((((qh >> v) & 1) as u8) << 4)
}

pub(crate) fn decode_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b);
    for (v, o) in out.iter_mut().enumerate() {
        *o = (i32::from(quant(b, v)) - 16) as f32 * d;
    }
}

pub(crate) fn dot_ref(w: &[u8], a: &Q8Row<'_>) -> f32 {
    let nb = w.len() / BLOCK_BYTES;
    assert_eq!(a.q.len(), nb * 32, "q5_0 dot: row length");
    let mut lanes = [0.0f32; BLOCK_LANES];
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let isum: i32 = (0..32)
            .map(|v| (i32::from(quant(blk, v)) - 16) * i32::from(a.q[a.pos(b, v)]))
            .sum();
        lanes[b % BLOCK_LANES] += isum as f32 * (f16_at(blk) * a.d[b]);
    }
    fold(lanes)
}
