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
/// `F` is the stored format: 0 = F32, 1 = F16, 2 = BF16.
///
/// SAFETY: the elements selected by `mask` lie inside `row`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load_w<const F: u8>(row: &[u8], k: usize, mask: __mmask16) -> __m512 {
    // SAFETY: forwarded from the caller; masked lanes are not read.
    unsafe {
        match F {
            1 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                mask,
                row.as_ptr().add(2 * k) as *const i16,
            )),
            2 => {
                let h = _mm256_maskz_loadu_epi16(mask, row.as_ptr().add(2 * k) as *const i16);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
            _ => _mm512_maskz_loadu_ps(mask, row.as_ptr().add(4 * k) as *const f32),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot(qtype: QType, row: &[u8], x: &[f32]) -> f32 {
    match qtype {
        QType::F16 => dot_as::<1>(row, x),
        QType::BF16 => dot_as::<2>(row, x),
        _ => dot_as::<0>(row, x),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_as<const F: u8>(row: &[u8], x: &[f32]) -> f32 {
    let len = x.len();
    let width = [4, 2, 2][usize::from(F)];
    assert_eq!(row.len(), width * len, "float dot: row length");
    let mut acc = [_mm512_setzero_ps(); 4];
    let full = len / 64 * 64;
    for k0 in (0..full).step_by(64) {
        for (q, a) in acc.iter_mut().enumerate() {
            let k = k0 + 16 * q;
            // SAFETY: elements k..k + 16 lie inside `x` and `row` (k + 16 <= full).
            unsafe {
                let prod = _mm512_mul_ps(
                    load_w::<F>(row, k, 0xFFFF),
                    _mm512_loadu_ps(x.as_ptr().add(k)),
                );
                *a = _mm512_add_ps(*a, prod);
            }
        }
    }
    for (q, a) in acc.iter_mut().enumerate() {
        let k = full + 16 * q;
        if k >= len {
            break;
        }
        let mask = lane_mask(len - k);
        // SAFETY: `mask` selects elements k..min(k + 16, len), inside both
        // `x` and `row`.
        unsafe {
            let prod = _mm512_mul_ps(
                load_w::<F>(row, k, mask),
                _mm512_maskz_loadu_ps(mask, x.as_ptr().add(k)),
            );
            *a = _mm512_mask_add_ps(*a, mask, *a, prod);
        }
    }
    // Lanes l and l + 32, then l and l + 16, then the 16-lane fold.
    fold16(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[2]),
        _mm512_add_ps(acc[1], acc[3]),
    ))
}
