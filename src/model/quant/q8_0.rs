//! Q8_0: 32 values per 34-byte block, `[d: f16][q: 32 × i8]`,
//! value = `d * q`. Multiplied with Q8_0 activations.

use super::activation::Q8Row;
use super::f16_at;
use super::lanes::{BLOCK_LANES, fold};

pub(crate) const BLOCK_BYTES: usize = 34;

pub(crate) fn decode_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = f32::from(q as i8) * d;
    }
}

pub(crate) fn dot_ref(w: &[u8], a: &Q8Row<'_>) -> f32 {
    let nb = w.len() / BLOCK_BYTES;
    assert_eq!(a.q.len(), nb * 32, "q8_0 dot: row length");
    let mut lanes = [0.0f32; BLOCK_LANES];
    for (b, blk) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let isum: i32 = (0..32)
            .map(|v| i32::from(blk[2 + v] as i8) * i32::from(a.q[a.pos(b, v)]))
            .sum();
        lanes[b % BLOCK_LANES] += isum as f32 * (f16_at(blk) * a.d[b]);
    }
    fold(lanes)
}
