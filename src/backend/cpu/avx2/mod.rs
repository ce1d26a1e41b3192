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
mod grouped;
mod kquant;

use std::arch::x86_64::*;
use std::ops::Range;

use super::matmul::{Acts, Cols};
use super::scratch::{Scratch, with_scratch};
use crate::model::quant::QType;
use crate::model::tensor::Tensor;

/// Computes columns `rows` of the output for every activation row.
///
/// SAFETY: the CPU must support the `Isa::Avx2` features.
pub(super) unsafe fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    // SAFETY: forwarded from the caller.
    with_scratch(|s| unsafe { rows_with(w, acts, rows, dst, s) })
}

#[target_feature(enable = "avx2,f16c")]
fn rows_with(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>, s: &mut Scratch) {
    match w.qtype {
        QType::F32 | QType::F16 | QType::BF16 => float::rows(w, acts, rows, dst),
        QType::Q8_0 | QType::Q4_1 | QType::Q5_0 => grouped::rows(w, acts, rows, dst, s),
        QType::Q4K | QType::Q6K => kquant::rows(w, acts, rows, dst),
    }
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
