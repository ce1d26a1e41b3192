//! Q8_0, Q4_1 and Q5_0 (32-value blocks) for batches of up to
//! [`MAX_ROWS`] activation rows (decode and verify steps), which arrive in
//! natural order; computed straight from the stored blocks. Eight blocks at
//! a time, the weight-side work (loading, Q5_0's fifth bits, the f16
//! scales) is done once in registers and shared by up to eight activation
//! rows; each row then costs its own loads and multiply-adds, and one sum
//! tree that leaves block `j0 + k`'s integer dot in lane `k`, where its
//! float contribution is added to the reference's block lane, as in the
//! reference.
//!
//! Q8_0 quants stay signed and are dotted as `|w| · (x · sign w)`, exact
//! because activation quants lie in -127..=127; Q5_0 quants are taken as
//! `q` for `q - 16` and the offset is taken back with the activation block
//! sum; Q4_1 quants are unsigned already.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{MAX_ROWS, RowsDot, fold16, lane_mask, lane_totals, tiles};
use crate::backend::cpu::matmul::{Acts, Cols};
use crate::backend::cpu::q32_format::{Q4_1, Q5_0, Q8_0, block_bytes};
use crate::model::quant::{ActLayout, Q8Row, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx2,f16c")]
pub(super) fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    // SAFETY: this function has the family's features.
    unsafe {
        match w.qtype {
            QType::Q8_0 => tiles::<Format<Q8_0>>(w, acts, rows, dst),
            QType::Q5_0 => tiles::<Format<Q5_0>>(w, acts, rows, dst),
            _ => tiles::<Format<Q4_1>>(w, acts, rows, dst),
        }
    }
}

/// The kernel for stored format `F`.
struct Format<const F: u8>;

impl<const F: u8> RowsDot for Format<F> {
    unsafe fn dot<const R: usize>(row: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
        // SAFETY: the caller guarantees the features.
        unsafe { dot::<F, R>(row, a) }
    }
}

/// The 32 quants of the block at `blk`, in value order: Q8_0 signed,
/// Q4_1 and Q5_0 unsigned.
///
/// SAFETY: `blk` points to one whole block of format `F`.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn block_quants<const F: u8>(blk: *const u8) -> __m256i {
    // SAFETY: every read lies inside the block (caller).
    unsafe {
        if F == Q8_0 {
            return _mm256_loadu_si256(blk.add(2) as *const _);
        }
        // Byte j holds value j (low nibble) and j + 16 (high nibble).
        let q = _mm_loadu_si128(blk.add(if F == Q4_1 { 4 } else { 6 }) as *const _);
        let lo_hi = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
        let low = _mm256_and_si256(lo_hi, _mm256_set1_epi8(0x0F));
        if F == Q4_1 {
            return low;
        }
        // Bit j of qh is bit 4 of value j: give byte j the qh byte j / 8,
        // keep bit j % 8, and turn a set bit into 0x10.
        let qh = _mm256_set1_epi32((blk.add(2) as *const i32).read_unaligned());
        let spread = _mm256_shuffle_epi8(
            qh,
            _mm256_setr_epi64x(
                0,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
        );
        let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
        _mm256_or_si256(low, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
    }
}

/// The f16 at byte `off` of each of the `blocks.len() / bb` (<= 8) blocks,
/// widened, in the low lanes (the rest 0).
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_fields(blocks: &[u8], bb: usize, off: usize) -> __m256 {
    let mut bits = [0u16; 8];
    for (b, blk) in bits.iter_mut().zip(blocks.chunks_exact(bb)) {
        *b = u16::from_le_bytes([blk[off], blk[off + 1]]);
    }
    // SAFETY: a 16-byte load from an 8-element u16 array.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr() as *const _)) }
}

/// Loads 8 values at `p`, or only the lanes in `mask` (others 0) when
/// `part`.
///
/// SAFETY: the selected lanes at `p` are readable.
#[inline(always)]
pub(super) unsafe fn load_i(p: *const i32, mask: __m256i, part: bool) -> __m256i {
    // SAFETY: forwarded from the caller; masked lanes are not read.
    unsafe {
        if part {
            _mm256_maskload_epi32(p, mask)
        } else {
            _mm256_loadu_si256(p as *const _)
        }
    }
}

/// [`load_i`] for f32.
///
/// SAFETY: as for [`load_i`].
#[inline(always)]
pub(super) unsafe fn load_f(p: *const f32, mask: __m256i, part: bool) -> __m256 {
    // SAFETY: forwarded from the caller; masked lanes are not read.
    unsafe {
        if part {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    }
}

/// Dots of a stored weight row of format `F` with `R` natural-order
/// activation rows; each result is computed exactly as if alone.
#[target_feature(enable = "avx2,f16c")]
fn dot<const F: u8, const R: usize>(w: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    const { assert!(R >= 1 && R <= MAX_ROWS) };
    let bb = block_bytes(F);
    let nb = w.len() / bb;
    for r in a {
        assert!(r.layout == ActLayout::Natural && r.q.len() == 32 * nb);
        assert!(r.d.len() == nb && r.sums.len() == nb);
        assert!(F != Q4_1 || r.s.len() == nb);
    }
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let full = nb / 8 * 8;
    for j0 in (0..full).step_by(8) {
        chunk::<F, R, true>(&w[bb * j0..bb * (j0 + 8)], a, j0, &mut acc);
    }
    if full < nb {
        chunk::<F, R, false>(&w[bb * full..], a, full, &mut acc);
    }
    acc.map(|[lo, hi]| fold16(lo, hi))
}

/// Adds the contributions of `blocks` (8 when `FULL`, else fewer), blocks
/// `j0..` of the row, to each row's lanes.
#[target_feature(enable = "avx2,f16c")]
fn chunk<const F: u8, const R: usize, const FULL: bool>(
    blocks: &[u8],
    a: &[Q8Row<'_>; R],
    j0: usize,
    acc: &mut [[__m256; 2]; R],
) {
    let bb = block_bytes(F);
    let nh = if FULL { 8 } else { blocks.len() / bb };
    assert!(nh <= 8 && blocks.len() == bb * nh);
    let mut q = [_mm256_setzero_si256(); 8];
    for (k, qk) in q.iter_mut().enumerate().take(nh) {
        // SAFETY: block k of `blocks` is whole (k < nh).
        *qk = unsafe { block_quants::<F>(blocks.as_ptr().add(bb * k)) };
    }
    let wu = if F == Q8_0 {
        q.map(|v| _mm256_abs_epi8(v))
    } else {
        q
    };
    let dw = f16_fields(blocks, bb, 0);
    let mw = if F == Q4_1 {
        f16_fields(blocks, bb, 2)
    } else {
        _mm256_setzero_ps()
    };
    for (r, acc) in a.iter().zip(acc.iter_mut()) {
        let mut p = [_mm256_setzero_si256(); 8];
        for k in 0..nh {
            // SAFETY: block j0 + k of the row is values 32(j0 + k) .. + 32,
            // inside the row (asserted by `dot`).
            let mut x = unsafe { _mm256_loadu_si256(r.q.as_ptr().add(32 * (j0 + k)) as *const _) };
            if F == Q8_0 {
                x = _mm256_sign_epi8(x, q[k]);
            }
            p[k] = _mm256_maddubs_epi16(wu[k], x);
        }
        add_blocks::<F>(r, j0, nh, block_totals::<F>(&p), dw, mw, acc);
    }
}

/// The integer dots of eight blocks, block `k` in lane `k`, from their
/// `maddubs` pair sums `p[k]`. A Q8_0 pair sum can be near 2^15, so each is
/// widened to i32 first; Q5_0 and Q4_1 pair sums are at most 2 · 31 · 127
/// in magnitude, so four of them still fit i16 and two rounds of i16 pair
/// sums come before the widening (fewer instructions per row).
#[target_feature(enable = "avx2,f16c")]
fn block_totals<const F: u8>(p: &[__m256i; 8]) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    if F == Q8_0 {
        return lane_totals(&p.map(|v| _mm256_madd_epi16(v, ones)));
    }
    // Per 128-bit half, `quads(i)` holds two partial sums of each of blocks
    // 4i..4i+4 in block order; widening leaves one per block.
    let quads = |i: usize| {
        let pairs = |j: usize| _mm256_hadd_epi16(p[j], p[j + 1]);
        let q = _mm256_hadd_epi16(pairs(4 * i), pairs(4 * i + 2));
        _mm256_madd_epi16(q, ones)
    };
    let (q0, q1) = (quads(0), quads(1));
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(q0, q1),
        _mm256_permute2x128_si256::<0x31>(q0, q1),
    )
}

/// Adds row `r`'s contributions of its blocks `j0..j0 + nh` (`nh` <= 8,
/// block `j0 + k` in lane `k` of the integer dots `s`) to the reference's
/// block lanes `acc`, as the reference computes them: the dot (less Q5_0's
/// offset) times the weight scale `dw` times the row's scale, plus, for
/// Q4_1, the weight min `mw` times the row's scaled sum.
#[target_feature(enable = "avx2,f16c")]
pub(super) fn add_blocks<const F: u8>(
    r: &Q8Row<'_>,
    j0: usize,
    nh: usize,
    mut s: __m256i,
    dw: __m256,
    mw: __m256,
    acc: &mut [__m256; 2],
) {
    let end = j0 + nh;
    assert!(nh <= 8 && end <= r.d.len() && end <= r.sums.len());
    assert!(F != Q4_1 || end <= r.s.len());
    let (mask, part) = (lane_mask(nh), nh < 8);
    // Blocks j0..j0+8 take the reference's lanes j0 % 16 ..: one of the two
    // registers.
    let h = (j0 / 8) % 2;
    // SAFETY: entries j0..j0+nh of the per-block arrays exist (asserted);
    // `mask` selects exactly those.
    unsafe {
        if F == Q5_0 {
            let sums = load_i(r.sums.as_ptr().add(j0), mask, part);
            s = _mm256_sub_epi32(s, _mm256_slli_epi32::<4>(sums));
        }
        let scale = _mm256_mul_ps(dw, load_f(r.d.as_ptr().add(j0), mask, part));
        let mut v = _mm256_mul_ps(_mm256_cvtepi32_ps(s), scale);
        if F == Q4_1 {
            let sx = load_f(r.s.as_ptr().add(j0), mask, part);
            v = _mm256_add_ps(v, _mm256_mul_ps(mw, sx));
        }
        // Only the blocks' own lanes take a value, as in the reference.
        let sum = _mm256_add_ps(acc[h], v);
        acc[h] = if part {
            _mm256_blendv_ps(acc[h], sum, _mm256_castsi256_ps(mask))
        } else {
            sum
        };
    }
}
