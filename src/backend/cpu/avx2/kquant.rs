//! Q4_K and Q6_K (256-value super-blocks) with Q8_K activations in natural
//! order, computed straight from the stored blocks. Per super-block the
//! weight-side work (splitting nibbles, decoding the 6-bit scales and mins,
//! spreading each sub-block's scale over its register) is done once in
//! registers and shared by up to eight activation rows, so each extra row
//! costs only its own loads and multiply-adds: that is what keeps a verify
//! pass of several tokens close to the cost of one decode step.
//!
//! Blocks are dotted through `maddubs` (unsigned weights <= 63, so no i16
//! saturation) and `madd` with a vector of the sub-block scales, giving
//! exact i32 partial sums; the per-16 activation sums times correction
//! factors give the integer subtracted from them (Q4_K: the mins, Q6_K: the
//! +32 offset). Block contributions go into the reference's 16 float lanes
//! (held transposed, one register per lane with one row per element) in the
//! reference's order, so results are bitwise the reference's.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{MAX_ROWS, RowsDot, lane_totals, tiles};
use crate::backend::cpu::matmul::{Acts, Cols, check_k_rows};
use crate::model::quant::lanes::BLOCK_LANES;
use crate::model::quant::{Q8Row, QType, q4_k, q6_k};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx2,f16c")]
pub(super) fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    if w.qtype == QType::Q4K {
        // SAFETY: this function has the family's features.
        unsafe { tiles::<Q4K>(w, acts, rows, dst) };
    } else {
        // SAFETY: this function has the family's features.
        unsafe { tiles::<Q6K>(w, acts, rows, dst) };
    }
}

/// The Q4_K kernel.
struct Q4K;

impl RowsDot for Q4K {
    unsafe fn dot<const R: usize>(row: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
        // SAFETY: the caller guarantees the features.
        unsafe { dot_q4_k(row, a) }
    }
}

/// The Q6_K kernel.
struct Q6K;

impl RowsDot for Q6K {
    unsafe fn dot<const R: usize>(row: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
        // SAFETY: the caller guarantees the features.
        unsafe { dot_q6_k(row, a) }
    }
}

/// Shuffle masks broadcasting i16 lane `k` of each 128-bit half over it.
#[target_feature(enable = "avx2,f16c")]
fn broadcast_i16_mask(lo: i8, hi: i8) -> __m256i {
    let (l0, l1, h0, h1) = (2 * lo, 2 * lo + 1, 2 * hi, 2 * hi + 1);
    _mm256_setr_epi8(
        l0, l1, l0, l1, l0, l1, l0, l1, l0, l1, l0, l1, l0, l1, l0, l1, h0, h1, h0, h1, h0, h1, h0,
        h1, h0, h1, h0, h1, h0, h1, h0, h1,
    )
}

#[target_feature(enable = "avx2,f16c")]
fn dot_q4_k<const R: usize>(w: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    let nb = w.len() / q4_k::BLOCK_BYTES;
    check_k_rows(a, nb);
    let nib = _mm256_set1_epi8(0x0F);
    // Sub-block 2c lies in the low nibbles of chunk c, 2c + 1 in the high.
    let spread: [__m256i; 8] = std::array::from_fn(|j| broadcast_i16_mask(j as i8, j as i8));
    // Per-16 sum l belongs to sub-block l / 2.
    let corr_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let corr_hi = _mm256_add_epi32(corr_lo, _mm256_set1_epi32(4));
    let mut lanes = RowLanes::new();
    for (b, blk) in w.chunks_exact(q4_k::BLOCK_BYTES).enumerate() {
        let (d, dmin) = f16_pair(blk);
        let (sc, mn) = q4_k::scales_mins(&blk[4..16]);
        let sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
        let mn = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mn as i64));
        let (c0, c1) = (
            _mm256_permutevar8x32_epi32(mn, corr_lo),
            _mm256_permutevar8x32_epi32(mn, corr_hi),
        );
        let mut acc = [_mm256_setzero_si256(); R];
        for c in 0..4 {
            // SAFETY: qs bytes 32c..32c+32 lie inside the block (at +16).
            let v = unsafe { _mm256_loadu_si256(blk.as_ptr().add(16 + 32 * c) as *const _) };
            let lo = _mm256_and_si256(v, nib);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib);
            let s_lo = _mm256_shuffle_epi8(sc, spread[2 * c]);
            let s_hi = _mm256_shuffle_epi8(sc, spread[2 * c + 1]);
            for (r, acc) in a.iter().zip(acc.iter_mut()) {
                // SAFETY: values 256b + 64c .. +64 lie inside every row
                // (`check_rows`).
                let (x0, x1) = unsafe {
                    let p = r.q.as_ptr().add(256 * b + 64 * c);
                    (
                        _mm256_loadu_si256(p as *const _),
                        _mm256_loadu_si256(p.add(32) as *const _),
                    )
                };
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), s_lo);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), s_hi);
                *acc = _mm256_add_epi32(*acc, _mm256_add_epi32(p0, p1));
            }
        }
        let msum: [__m256i; R] = std::array::from_fn(|r| block_sums_times(&a[r], b, c0, c1));
        let ad = row_scales(a, b);
        // isum · (d · ad) - msum · (dmin · ad), as the reference rounds it.
        let v = _mm256_sub_ps(
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(lane_totals(&acc)),
                _mm256_mul_ps(_mm256_set1_ps(d), ad),
            ),
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(lane_totals(&msum)),
                _mm256_mul_ps(_mm256_set1_ps(dmin), ad),
            ),
        );
        lanes.add(b, v);
    }
    lanes.fold()
}

#[target_feature(enable = "avx2,f16c")]
fn dot_q6_k<const R: usize>(w: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    let nb = w.len() / q6_k::BLOCK_BYTES;
    check_k_rows(a, nb);
    let (nib, top) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    // Register i of a half covers groups 2i (low 128 bits) and 2i + 1.
    let spread: [__m256i; 4] =
        std::array::from_fn(|i| broadcast_i16_mask(2 * i as i8, 2 * i as i8 + 1));
    let mut lanes = RowLanes::new();
    for (b, blk) in w.chunks_exact(q6_k::BLOCK_BYTES).enumerate() {
        let d = f16_one(&blk[208..]);
        // SAFETY: the 16 scale bytes lie inside the block (192..208).
        let sc8 = unsafe { _mm_loadu_si128(blk.as_ptr().add(192) as *const _) };
        let sc = _mm256_cvtepi8_epi16(sc8);
        // The +32 offset, taken back per group of 16 as 32 · scale · sum.
        let c0 = _mm256_slli_epi32::<5>(_mm256_cvtepi8_epi32(sc8));
        let c1 = _mm256_slli_epi32::<5>(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(sc8)));
        let mut acc = [_mm256_setzero_si256(); R];
        for h in 0..2 {
            // SAFETY: ql (0..128) and qh (128..192) lie inside the block.
            let (ql0, ql1, qh) = unsafe {
                let p = blk.as_ptr();
                (
                    _mm256_loadu_si256(p.add(64 * h) as *const _),
                    _mm256_loadu_si256(p.add(64 * h + 32) as *const _),
                    _mm256_loadu_si256(p.add(128 + 32 * h) as *const _),
                )
            };
            // Bits 2i..2i+2 of qh, moved to bits 4..6 (the shifts are 16-bit,
            // but the mask keeps only bits that came from the same byte).
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, nib),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(qh), top),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, nib),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(qh), top),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), nib),
                    _mm256_and_si256(qh, top),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), nib),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(qh), top),
                ),
            ];
            // Groups 8h..8h+8 in both 128-bit halves.
            let half = if h == 0 {
                _mm256_permute2x128_si256::<0x00>(sc, sc)
            } else {
                _mm256_permute2x128_si256::<0x11>(sc, sc)
            };
            for (i, qv) in q.iter().enumerate() {
                let s = _mm256_shuffle_epi8(half, spread[i]);
                for (r, acc) in a.iter().zip(acc.iter_mut()) {
                    // SAFETY: values 256b + 128h + 32i .. +32 lie inside
                    // every row (`check_rows`).
                    let x = unsafe {
                        _mm256_loadu_si256(r.q.as_ptr().add(256 * b + 128 * h + 32 * i) as *const _)
                    };
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*qv, x), s);
                    *acc = _mm256_add_epi32(*acc, p);
                }
            }
        }
        let net: [__m256i; R] =
            std::array::from_fn(|r| _mm256_sub_epi32(acc[r], block_sums_times(&a[r], b, c0, c1)));
        let scale = _mm256_mul_ps(_mm256_set1_ps(d), row_scales(a, b));
        lanes.add(
            b,
            _mm256_mul_ps(_mm256_cvtepi32_ps(lane_totals(&net)), scale),
        );
    }
    lanes.fold()
}

/// The f16 values in the first four bytes of `b`, widened.
#[target_feature(enable = "avx2,f16c")]
fn f16_pair(b: &[u8]) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes([
        b[0], b[1], b[2], b[3],
    ])));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The f16 value in the first two bytes of `b`, widened.
#[target_feature(enable = "avx2,f16c")]
fn f16_one(b: &[u8]) -> f32 {
    let bits = u16::from_le_bytes([b[0], b[1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Row `r`'s 16 per-16 sums of super-block `b` times the factors `c0`
/// (sums 0..8) and `c1` (sums 8..16), lane by lane.
#[target_feature(enable = "avx2,f16c")]
fn block_sums_times(r: &Q8Row<'_>, b: usize, c0: __m256i, c1: __m256i) -> __m256i {
    assert!(r.sums.len() >= 16 * (b + 1));
    // SAFETY: sums 16b..16b+16 lie inside the row (asserted).
    unsafe {
        let sp = r.sums.as_ptr().add(16 * b);
        _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_loadu_si256(sp as *const _), c0),
            _mm256_mullo_epi32(_mm256_loadu_si256(sp.add(8) as *const _), c1),
        )
    }
}

/// The activation scales of super-block `b`, row `r` in lane `r`.
#[target_feature(enable = "avx2,f16c")]
fn row_scales<const R: usize>(a: &[Q8Row<'_>; R], b: usize) -> __m256 {
    let d: [f32; MAX_ROWS] = std::array::from_fn(|r| if r < R { a[r].d[b] } else { 0.0 });
    // SAFETY: `d` holds eight floats.
    unsafe { _mm256_loadu_ps(d.as_ptr()) }
}

/// The reference's 16 block lanes of up to eight rows, kept transposed
/// (lane `l` of every row in one register) so that a block's contributions
/// for all rows are added in one instruction, in the reference's order.
struct RowLanes([__m256; BLOCK_LANES]);

impl RowLanes {
    #[target_feature(enable = "avx2,f16c")]
    fn new() -> Self {
        RowLanes([_mm256_setzero_ps(); BLOCK_LANES])
    }

    /// Adds block `b`'s contributions (row `r` in lane `r`).
    #[target_feature(enable = "avx2,f16c")]
    fn add(&mut self, b: usize, v: __m256) {
        let l = &mut self.0[b % BLOCK_LANES];
        *l = _mm256_add_ps(*l, v);
    }

    /// Each row's lanes folded by halving, as `lanes::fold` does.
    #[target_feature(enable = "avx2,f16c")]
    fn fold<const R: usize>(mut self) -> [f32; R] {
        let mut w = BLOCK_LANES / 2;
        while w > 0 {
            for i in 0..w {
                self.0[i] = _mm256_add_ps(self.0[i], self.0[i + w]);
            }
            w /= 2;
        }
        let mut out = [0.0f32; MAX_ROWS];
        // SAFETY: `out` holds eight floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), self.0[0]) };
        std::array::from_fn(|r| out[r])
    }
}
