//! Plain float rows (F32, F16, BF16, little-endian): decoding, and the
//! reference f32 dot product for float weights (element `k` into lane
//! `k % 64`, product and sum rounded separately).

use super::QType;
use super::lanes::{FLOAT_LANES, fold};

/// Element `k` of a float row, widened to f32 (exact for all three formats).
#[inline(always)]
pub(crate) fn value(qtype: QType, row: &[u8], k: usize) -> f32 {
    match qtype {
        QType::F16 => super::f16_at(&row[2 * k..]),
        QType::BF16 => {
            f32::from_bits(u32::from(u16::from_le_bytes([row[2 * k], row[2 * k + 1]])) << 16)
        }
        _ => f32::from_le_bytes([row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3]]),
    }
}

pub(crate) fn decode_row(qtype: QType, row: &[u8], out: &mut [f32]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = value(qtype, row, k);
    }
}

pub(crate) fn dot_ref(qtype: QType, row: &[u8], x: &[f32]) -> f32 {
    assert_eq!(row.len(), qtype.row_bytes(x.len()), "float dot: row length");
    let mut lanes = [0.0f32; FLOAT_LANES];
    for (k, &xv) in x.iter().enumerate() {
        lanes[k % FLOAT_LANES] += value(qtype, row, k) * xv;
    }
    fold(lanes)
}
