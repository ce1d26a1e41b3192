//! Q8_0, Q4_1 and Q5_0 (32-value blocks) for tiles of up to
//! [`MAX_ROWS`](crate::backend::cpu::matmul::MAX_ROWS) activation rows
//! (decode and verify steps), which arrive in natural order; computed
//! straight from the stored blocks. Sixteen blocks at a time, the
//! weight-side work (nibbles into value order, Q5_0's fifth bits, the f16
//! scales) is done once in registers and shared by the tile's rows. Each
//! row then costs one load and one VNNI `dpbusd` per two blocks, and one
//! sum tree ([`block_totals`]) that leaves block `j0 + k`'s integer dot in
//! lane `k`, where its float contribution is added to the reference's
//! block lane `(j0 + k) % 16`, as in the reference.
//!
//! Weights are dotted as unsigned bytes: Q8_0 quants with +128, Q5_0 quants
//! as stored (`q` for `q - 16`), Q4_1 as they are; the offsets are taken
//! back with the activation block sums.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{fold16, lane_mask};
use crate::backend::cpu::matmul::{Acts, Cols, RowsDot, tiles};
use crate::backend::cpu::q32_format::{Q4_1, Q5_0, Q8_0, block_bytes};
use crate::model::quant::{ActLayout, Q8Row, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
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

/// The unsigned quants of blocks `k` and `k + 1` of `blocks` (`n` blocks
/// of format `F`), in value order: block `k` in the low 256 bits, block
/// `k + 1` (0 when `k + 1 == n`) in the high.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn pair_quants<const F: u8>(blocks: &[u8], k: usize, n: usize) -> __m512i {
    let bb = block_bytes(F);
    assert!(k < n && blocks.len() >= bb * n);
    let two = k + 1 < n;
    let p = blocks.as_ptr();
    // SAFETY: every read lies inside block k, or block k + 1 when `two`.
    unsafe {
        let (b0, b1) = (p.add(bb * k), p.add(bb * (k + 1)));
        if F == Q8_0 {
            let lo = _mm256_loadu_si256(b0.add(2) as *const _);
            let hi = if two {
                _mm256_loadu_si256(b1.add(2) as *const _)
            } else {
                _mm256_set1_epi8(-128)
            };
            let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
            // +128: the high half of a lone block becomes 0.
            return _mm512_xor_si512(q, _mm512_set1_epi8(-128));
        }
        // Byte j of a block holds value j (low nibble) and j + 16 (high).
        let off = if F == Q4_1 { 4 } else { 6 };
        let x0 = _mm_loadu_si128(b0.add(off) as *const _);
        let x1 = if two {
            _mm_loadu_si128(b1.add(off) as *const _)
        } else {
            _mm_setzero_si128()
        };
        let x = _mm256_set_m128i(x1, x0);
        // [x0, x1, x0 >> 4, x1 >> 4] -> [x0, x0 >> 4, x1, x1 >> 4].
        let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(x), _mm256_srli_epi16::<4>(x));
        let q = _mm512_and_si512(
            _mm512_shuffle_i64x2::<0b11_01_10_00>(z, z),
            _mm512_set1_epi8(0x0F),
        );
        if F == Q4_1 {
            return q;
        }
        // Bit j of qh is bit 4 of value j.
        let qh0 = u64::from((b0.add(2) as *const u32).read_unaligned());
        let qh1 = if two {
            u64::from((b1.add(2) as *const u32).read_unaligned())
        } else {
            0
        };
        let high = _mm512_movm_epi8(qh0 | (qh1 << 32));
        _mm512_or_si512(q, _mm512_and_si512(high, _mm512_set1_epi8(0x10)))
    }
}

/// The f16 scales (and for Q4_1 the f16 mins) of the `n` (<= 16) blocks of
/// `blocks`, widened, block `k` in lane `k` (the rest 0).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn scales<const F: u8>(blocks: &[u8], n: usize) -> (__m512, __m512) {
    let bb = block_bytes(F);
    // Each block opens with its scale, then (Q4_1) its min.
    let mut words = [0u32; 16];
    for (w, blk) in words.iter_mut().zip(blocks.chunks_exact(bb).take(n)) {
        *w = u32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
    }
    // SAFETY: reads 16 u32 from a 16-element array.
    let words = unsafe { _mm512_loadu_si512(words.as_ptr() as *const _) };
    let half = |v: __m512i| _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
    let min = if F == Q4_1 {
        half(_mm512_srli_epi32::<16>(words))
    } else {
        _mm512_setzero_ps()
    };
    (half(words), min)
}

/// The integer dots of up to sixteen blocks, block `k` in lane `k`, from
/// `p[i]`, whose 256-bit halves hold the partial sums of blocks `2i` and
/// `2i + 1`. Three rounds of shuffles and adds (integer sums are exact in
/// any order) leave block `4p + q` in lane `4q + p`; a permute restores the
/// block order.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn block_totals(p: &[__m512i; 8], order: __m512i) -> __m512i {
    // 256 -> 128 bits: block 4i + q in 128-bit lane q of b[i].
    let b: [__m512i; 4] = std::array::from_fn(|i| {
        let (x, y) = (p[2 * i], p[2 * i + 1]);
        _mm512_add_epi32(
            _mm512_shuffle_i64x2::<0x88>(x, y),
            _mm512_shuffle_i64x2::<0xDD>(x, y),
        )
    });
    let c: [__m512i; 2] = std::array::from_fn(|i| {
        let (x, y) = (b[2 * i], b[2 * i + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y))
    });
    let t = _mm512_add_epi32(
        _mm512_unpacklo_epi64(c[0], c[1]),
        _mm512_unpackhi_epi64(c[0], c[1]),
    );
    _mm512_permutexvar_epi32(order, t)
}

/// Dots of a stored weight row of format `F` with `R` natural-order
/// activation rows; each result is computed exactly as if alone.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot<const F: u8, const R: usize>(w: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    let bb = block_bytes(F);
    let nb = w.len() / bb;
    for r in a {
        assert!(r.layout == ActLayout::Natural && r.q.len() == 32 * nb);
        assert!(r.d.len() == nb && r.sums.len() == nb);
        assert!(F != Q4_1 || r.s.len() == nb);
    }
    let order = {
        let idx: [i32; 16] = std::array::from_fn(|k| (4 * (k % 4) + k / 4) as i32);
        // SAFETY: reads 16 i32 from a 16-element array.
        unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) }
    };
    let mut acc = [_mm512_setzero_ps(); R];
    for j0 in (0..nb).step_by(16) {
        let n = (nb - j0).min(16);
        let blocks = &w[bb * j0..bb * (j0 + n)];
        let q: [__m512i; 8] = std::array::from_fn(|i| {
            if 2 * i < n {
                pair_quants::<F>(blocks, 2 * i, n)
            } else {
                _mm512_setzero_si512()
            }
        });
        let (dw, mw) = scales::<F>(blocks, n);
        let keep = lane_mask(n);
        for (r, acc) in a.iter().zip(acc.iter_mut()) {
            let mut p = [_mm512_setzero_si512(); 8];
            for (i, (p, q)) in p.iter_mut().zip(&q).enumerate().take(n.div_ceil(2)) {
                let bytes = if 2 * i + 1 < n {
                    u64::MAX
                } else {
                    u32::MAX.into()
                };
                // SAFETY: blocks j0 + 2i (and j0 + 2i + 1 when selected) are
                // values 32(j0 + 2i) .., inside the row (asserted above).
                let x =
                    unsafe { _mm512_maskz_loadu_epi8(bytes, r.q.as_ptr().add(32 * (j0 + 2 * i))) };
                *p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), *q, x);
            }
            let mut s = block_totals(&p, order);
            // SAFETY: entries j0..j0 + n of the per-block arrays exist
            // (asserted above); `keep` selects exactly those.
            unsafe {
                let sums = _mm512_maskz_loadu_epi32(keep, r.sums.as_ptr().add(j0));
                if F == Q8_0 {
                    s = _mm512_sub_epi32(s, _mm512_slli_epi32::<7>(sums));
                } else if F == Q5_0 {
                    s = _mm512_sub_epi32(s, _mm512_slli_epi32::<4>(sums));
                }
                let ad = _mm512_maskz_loadu_ps(keep, r.d.as_ptr().add(j0));
                let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, ad));
                if F == Q4_1 {
                    let sx = _mm512_maskz_loadu_ps(keep, r.s.as_ptr().add(j0));
                    v = _mm512_add_ps(v, _mm512_mul_ps(mw, sx));
                }
                // Only the blocks' own lanes take a value, as in the
                // reference; j0 is a multiple of 16, so lane k is block
                // lane (j0 + k) % 16.
                *acc = _mm512_mask_add_ps(*acc, keep, *acc, v);
            }
        }
    }
    acc.map(|v| fold16(v))
}
