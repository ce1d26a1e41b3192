//! AVX-512 (F/BW/VL + VNNI) kernels. Each reproduces the scalar reference in
//! `model::quant` bit for bit: integer block dots are exact whatever the
//! instruction order, float lanes map to vector lanes one to one, and lanes
//! fold in the reference's halving order.
//!
//! Every function here requires the `Isa::Avx512` features; callers check
//! them once (`Isa::is_available`) before entering.

mod float;
mod grouped;
mod kquant;
mod q32;

use std::arch::x86_64::*;
use std::ops::Range;

use super::matmul::{Acts, Cols};
use super::scratch::{Scratch, with_scratch};
use crate::model::quant::{ActLayout, QType};
use crate::model::tensor::Tensor;

/// Computes columns `rows` of the output for every activation row.
///
/// SAFETY: the CPU must support the `Isa::Avx512` features.
pub(super) unsafe fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    // SAFETY: forwarded from the caller.
    with_scratch(|s| unsafe { rows_with(w, acts, rows, dst, s) })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn rows_with(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>, s: &mut Scratch) {
    match w.qtype {
        QType::F32 | QType::F16 | QType::BF16 => float::rows(w, acts, rows, dst),
        QType::Q8_0 | QType::Q4_1 | QType::Q5_0 => match acts.layout() {
            ActLayout::Natural => q32::rows(w, acts, rows, dst),
            ActLayout::Grouped => grouped::rows(w, acts, rows, dst, s),
        },
        QType::Q4K | QType::Q6K => kquant::rows(w, acts, rows, dst),
    }
}

/// Lane mask selecting the first `n` (<= 16) lanes.
#[inline(always)]
fn lane_mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Folds 16 lanes by halving (8, 4, 2, 1), as `lanes::fold` does.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn fold16(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s8 = _mm256_add_ps(lo, hi);
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    _mm_cvtss_f32(s1)
}
