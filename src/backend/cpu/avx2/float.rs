//! F32, F16 and BF16 weights against f32 activations: element `k` goes to
//! lane `k % 64` (eight 8-lane accumulators), products and sums rounded
//! separately, lanes folded by halving, as in the reference. The row's tail
//! (under 64 elements) goes through zero-padded copies and updates only its
//! own lanes, as in the reference.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{fold8, lane_mask};
use crate::backend::cpu::matmul::{Acts, Cols};
use crate::model::quant::{ActRow, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx2,f16c")]
pub(super) fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    for n in rows {
        let row = w.row_bytes(n);
        for i in 0..dst.m() {
            let ActRow::F32(x) = acts.row(i) else {
                unreachable!("float weights always get f32 activations")
            };
            let v = match w.qtype {
                QType::F16 => dot_as::<1>(row, x),
                QType::BF16 => dot_as::<2>(row, x),
                _ => dot_as::<0>(row, x),
            };
            dst.put(i, n, v);
        }
    }
}

/// Bytes per stored element of format `F` (0 = F32, 1 = F16, 2 = BF16).
const fn width(f: u8) -> usize {
    if f == 0 { 4 } else { 2 }
}

/// 8 weights from element `k` on, widened to f32 (exact).
///
/// SAFETY: elements `k..k + 8` of format `F` lie inside the memory at `row`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn load_w<const F: u8>(row: *const u8, k: usize) -> __m256 {
    // SAFETY: forwarded from the caller.
    unsafe {
        let p = row.add(width(F) * k);
        match F {
            1 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const _)),
            2 => {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const _));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
            }
            _ => _mm256_loadu_ps(p as *const f32),
        }
    }
}

#[target_feature(enable = "avx2,f16c")]
fn dot_as<const F: u8>(row: &[u8], x: &[f32]) -> f32 {
    let len = x.len();
    assert_eq!(row.len(), width(F) * len, "float dot: row length");
    let mut acc = [_mm256_setzero_ps(); 8];
    let full = len / 64 * 64;
    for k0 in (0..full).step_by(64) {
        for (q, a) in acc.iter_mut().enumerate() {
            let k = k0 + 8 * q;
            // SAFETY: elements k..k + 8 lie inside `x` and `row` (k + 8 <= full).
            unsafe {
                let prod = _mm256_mul_ps(
                    load_w::<F>(row.as_ptr(), k),
                    _mm256_loadu_ps(x.as_ptr().add(k)),
                );
                *a = _mm256_add_ps(*a, prod);
            }
        }
    }
    let rem = len - full;
    if rem > 0 {
        let mut wt = [0u8; 256];
        let mut xt = [0.0f32; 64];
        wt[..width(F) * rem].copy_from_slice(&row[width(F) * full..]);
        xt[..rem].copy_from_slice(&x[full..]);
        for (q, a) in acc.iter_mut().enumerate().take(rem.div_ceil(8)) {
            let k = 8 * q;
            // SAFETY: elements k..k + 8 < 64 lie inside both padded copies.
            let prod = unsafe {
                _mm256_mul_ps(
                    load_w::<F>(wt.as_ptr(), k),
                    _mm256_loadu_ps(xt.as_ptr().add(k)),
                )
            };
            let mask = _mm256_castsi256_ps(lane_mask(rem - k));
            *a = _mm256_blendv_ps(*a, _mm256_add_ps(*a, prod), mask);
        }
    }
    // Lanes l and l + 32 (registers q and q + 4), then l + 16, then l + 8,
    // then the 8-lane fold.
    let h32: [__m256; 4] = std::array::from_fn(|q| _mm256_add_ps(acc[q], acc[q + 4]));
    let h16 = [_mm256_add_ps(h32[0], h32[2]), _mm256_add_ps(h32[1], h32[3])];
    fold8(_mm256_add_ps(h16[0], h16[1]))
}
