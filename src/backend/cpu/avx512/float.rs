//! F32, F16 and BF16 weights against f32 activations: element `k` goes to
//! lane `k % 64` (four 16-lane accumulators), products and sums rounded
//! separately, lanes folded by halving, as in the reference.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{fold16, lane_mask};
use crate::backend::cpu::matmul::{Acts, Cols};
use crate::model::quant::{ActRow, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    for n in rows {
        let row = w.row_bytes(n);
        for i in 0..dst.m() {
            let ActRow::F32(x) = acts.row(i) else {
                unreachable!("float weights always get f32 activations")
            };
            dst.put(i, n, dot(w.qtype, row, x));
        }
    }
}

/// 16 weights from element `k` on, widened to f32 (lanes outside `mask` 0).
///
/// SAFETY: the elements selected by `mask` lie inside `row`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load_w(qtype: QType, row: &[u8], k: usize, mask: __mmask16) -> __m512 {
    // SAFETY: forwarded from the caller; masked lanes are not read.
    unsafe {
        match qtype {
            QType::F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                mask,
                row.as_ptr().add(2 * k) as *const i16,
            )),
            QType::BF16 => {
                let h = _mm256_maskz_loadu_epi16(mask, row.as_ptr().add(2 * k) as *const i16);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
            _ => _mm512_maskz_loadu_ps(mask, row.as_ptr().add(4 * k) as *const f32),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot(qtype: QType, row: &[u8], x: &[f32]) -> f32 {
    assert_eq!(row.len(), qtype.row_bytes(x.len()), "float dot: row length");
    let mut acc = [_mm512_setzero_ps(); 4];
    for k0 in (0..x.len()).step_by(64) {
        for (q, a) in acc.iter_mut().enumerate() {
            let k = k0 + 16 * q;
            if k >= x.len() {
                break;
            }
            let mask = lane_mask(x.len() - k);
            // SAFETY: `mask` selects elements k..min(k + 16, len), inside both
            // `x` and (length asserted) `row`.
            unsafe {
                let prod = _mm512_mul_ps(
                    load_w(qtype, row, k, mask),
                    _mm512_maskz_loadu_ps(mask, x.as_ptr().add(k)),
                );
                *a = _mm512_mask_add_ps(*a, mask, *a, prod);
            }
        }
    }
    // Lanes l and l + 32, then l and l + 16, then the 16-lane fold.
    fold16(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[2]),
        _mm512_add_ps(acc[1], acc[3]),
    ))
}
