//! AVX2 kernels (AVX2 integer and float ops, F16C for f16 widening; no FMA,
//! because the numerics round every product and sum separately). Each
//! reproduces the scalar reference in `model::quant` bit for bit: integer
//! block dots are exact whatever the instruction order, the reference's 16
//! block lanes live in two 8-lane registers and its 64 float lanes in eight,
//! and lanes fold in the reference's halving order.
//!
//! AVX2 has no 4-way int8 dot, so blocks are dotted with `maddubs` (u8 × i8
//! pairs summed to i16) and `madd` (i16 pairs summed to i32). `maddubs`
//! saturates at ±32767, which no kernel here reaches: unsigned weights are at
//! most 63 (6 bits), and signed Q8_0 weights use their magnitude against the
//! activation with the weight's sign applied (|pair| <= 2 * 128 * 127, as
//! the activation quantizer only produces -127..=127).
//!
//! Every function here requires the `Isa::Avx2` features; callers check
//! them once (`Isa::is_available`) before entering.

mod float;
mod kquant;
mod q32;
mod q32_grouped;

use std::arch::x86_64::*;
use std::ops::Range;

use super::matmul::{Acts, Cols, MAX_ROWS, RowsDot, tiles};
use super::scratch::with_scratch;
use crate::model::quant::{ActLayout, QType};
use crate::model::tensor::Tensor;

/// Computes columns `rows` of the output for every activation row.
///
/// SAFETY: the CPU must support the `Isa::Avx2` features.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    match w.qtype {
        QType::F32 | QType::F16 | QType::BF16 => float::rows(w, acts, rows, dst),
        QType::Q8_0 | QType::Q4_1 | QType::Q5_0 => match acts.layout() {
            ActLayout::Natural => q32::rows(w, acts, rows, dst),
            ActLayout::Grouped => with_scratch(|s| q32_grouped::rows(w, acts, rows, dst, s)),
        },
        QType::Q4K | QType::Q6K => kquant::rows(w, acts, rows, dst),
    }
}

/// The lane totals of up to eight vectors, vector `k` in lane `k` (lanes
/// past `K` are 0). Integer sums are exact in any order.
#[target_feature(enable = "avx2,f16c")]
fn lane_totals<const K: usize>(v: &[__m256i; K]) -> __m256i {
    const { assert!(K >= 1 && K <= 8) };
    if K == 1 {
        let h = _mm_add_epi32(
            _mm256_castsi256_si128(v[0]),
            _mm256_extracti128_si256::<1>(v[0]),
        );
        let h = _mm_hadd_epi32(h, h);
        return _mm256_castsi128_si256(_mm_hadd_epi32(h, h));
    }
    let get = |k: usize| if k < K { v[k] } else { _mm256_setzero_si256() };
    // Two rounds of pair sums leave each vector's sum over lanes 0..4 in the
    // low half and over lanes 4..8 in the high half, vector k at position
    // k % 4.
    let quarter = |k: usize| {
        _mm256_hadd_epi32(
            _mm256_hadd_epi32(get(k), get(k + 1)),
            _mm256_hadd_epi32(get(k + 2), get(k + 3)),
        )
    };
    let (q0, q1) = if K > 4 {
        (quarter(0), quarter(4))
    } else {
        (quarter(0), _mm256_setzero_si256())
    };
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(q0, q1),
        _mm256_permute2x128_si256::<0x31>(q0, q1),
    )
}

/// Mask (all bits set per 32-bit lane) selecting the first `n` lanes (all
/// 8 when `n >= 8`).
#[target_feature(enable = "avx2,f16c")]
fn lane_mask(n: usize) -> __m256i {
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
}

/// Folds 8 lanes by halving (4, 2, 1), as `lanes::fold` does.
#[target_feature(enable = "avx2,f16c")]
fn fold8(v: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    _mm_cvtss_f32(s1)
}

/// Folds 16 block lanes held as lanes 0..8 and 8..16 (8, then 4, 2, 1).
#[target_feature(enable = "avx2,f16c")]
fn fold16(lo: __m256, hi: __m256) -> f32 {
    fold8(_mm256_add_ps(lo, hi))
}
