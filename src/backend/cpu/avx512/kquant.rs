//! Q4_K and Q6_K (256-value super-blocks) with Q8_K activations in natural
//! order, computed straight from the stored blocks for tiles of up to
//! [`MAX_ROWS`](crate::backend::cpu::matmul::MAX_ROWS) activation rows. Per super-block the weight-side work
//! (splitting nibbles into value order, spreading each sub-block's scale
//! over its lanes) is done once in registers and shared by the tile's rows;
//! each row then costs four loads, four `maddubs` and four VNNI `dpwssd`
//! (pairs of i16 products times the lane's scale, added to i32), plus one
//! `madd` of its per-16 sums for the mins (Q4_K) or the +32 offset (Q6_K).
//!
//! Every (block, row) leaves one or two vectors whose lane totals are exact
//! integers; sixteen such vectors are reduced in one tree ([`totals`]), so
//! the horizontal work is shared by several blocks when the tile has few
//! rows. Float contributions then go into the reference's 16 block lanes,
//! kept for all rows at once ([`RowLanes`]), in the reference's order and
//! rounding, so results are bitwise the reference's.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::backend::cpu::matmul::{Acts, Cols, RowsDot, check_k_rows, tiles};
use crate::model::quant::lanes::BLOCK_LANES;
use crate::model::quant::{Q8Row, QType, q4_k, q6_k};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
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

/// Where a tile of `R` rows keeps row `r` of block `g` of a unit: slot
/// `g * stride + r`, with the stride `R` rounded up to a power of two so
/// that a unit of `8 / stride` blocks fills one 8-lane float register.
const fn stride(rows: usize) -> usize {
    rows.next_power_of_two()
}

/// A vector whose i16 lane `k` holds `f(k)` (permutation indices).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn i16_index(f: impl Fn(usize) -> usize) -> __m512i {
    let idx: [i16; 32] = std::array::from_fn(|k| f(k) as i16);
    // SAFETY: reads 32 i16 from a 32-element array.
    unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) }
}

/// `v` with the high i16 of every 32-bit lane cleared: a `madd` with such
/// a vector multiplies each i32 lane that fits in i16 by the low half.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn low_halves(v: __m512i) -> __m512i {
    _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF))
}

/// Lane totals of sixteen vectors: vector `k`'s total in lane `k`. Four
/// rounds of pairwise shuffles and adds (45 instructions in all); integer
/// sums are exact in any order.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn totals(v: &[__m512i; 16]) -> __m512i {
    // The rounds leave input k's total in lane 4 (k % 4) + k / 4; feeding
    // them in transposed order puts vector k in lane k.
    let at = |k: usize| v[((k & 3) << 2) | (k >> 2)];
    // 512 -> 256 bits: pair i's two inputs, each as two 128-bit partials.
    let a: [__m512i; 8] = std::array::from_fn(|i| {
        let (x, y) = (at(2 * i), at(2 * i + 1));
        _mm512_add_epi32(
            _mm512_shuffle_i64x2::<0x44>(x, y),
            _mm512_shuffle_i64x2::<0xEE>(x, y),
        )
    });
    // 256 -> 128 bits: input 4i + q in 128-bit lane q of b[i].
    let b: [__m512i; 4] = std::array::from_fn(|i| {
        let (x, y) = (a[2 * i], a[2 * i + 1]);
        _mm512_add_epi32(
            _mm512_shuffle_i64x2::<0x88>(x, y),
            _mm512_shuffle_i64x2::<0xDD>(x, y),
        )
    });
    // 128 -> 64 bits, then 64 -> 32, within each 128-bit lane.
    let c: [__m512i; 2] = std::array::from_fn(|i| {
        let (x, y) = (b[2 * i], b[2 * i + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y))
    });
    _mm512_add_epi32(
        _mm512_unpacklo_epi64(c[0], c[1]),
        _mm512_unpackhi_epi64(c[0], c[1]),
    )
}

/// The reference's 16 block lanes of up to eight rows: lane `l` of row `r`
/// at float `l * stride + r` of 16 registers of 8 floats, of which the
/// first `2 * stride` are used. A unit of `8 / stride` consecutive blocks,
/// starting at a multiple of that, fills exactly one register.
struct RowLanes<const R: usize>([__m256; 16]);

impl<const R: usize> RowLanes<R> {
    const UNIT: usize = 8 / stride(R);

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn new() -> Self {
        RowLanes([_mm256_setzero_ps(); 16])
    }

    /// Adds the contributions of the unit starting at block `b0` (slot
    /// `g * stride + r` for block `b0 + g`, row `r`) in the lanes `keep`
    /// selects; other lanes are left untouched, so even the sign of a zero
    /// lane stays the reference's.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn add(&mut self, b0: usize, keep: __mmask8, v: __m256) {
        let l = &mut self.0[(b0 % BLOCK_LANES) / Self::UNIT];
        *l = _mm256_mask_add_ps(*l, keep, *l, v);
    }

    /// Each row's lanes folded by halving, as `lanes::fold` does.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn fold(mut self) -> [f32; R] {
        let (unit, s) = (Self::UNIT, stride(R));
        let mut w = BLOCK_LANES / 2;
        // Lane l + w in another register: add whole registers.
        while w >= unit {
            for i in 0..w / unit {
                self.0[i] = _mm256_add_ps(self.0[i], self.0[i + w / unit]);
            }
            w /= 2;
        }
        // Lane l + w in the same register, w * s floats further on.
        let mut v = self.0[0];
        while w >= 1 {
            let idx: [i32; 8] = std::array::from_fn(|i| ((i + w * s) % 8) as i32);
            // SAFETY: reads 8 i32 from an 8-element array.
            let idx = unsafe { _mm256_loadu_si256(idx.as_ptr() as *const _) };
            v = _mm256_add_ps(v, _mm256_permutexvar_ps(idx, v));
            w /= 2;
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds eight floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        std::array::from_fn(|r| out[r])
    }
}

/// The float side of one unit, gathered slot by slot while its blocks are
/// dotted: each block's 32-bit word of f16 scales (Q4_K: `d | dmin << 16`,
/// Q6_K: `d`), each row's activation scale, and which slots are in use.
struct UnitScales {
    bits: [u32; 8],
    ad: [f32; 8],
    keep: u8,
}

impl UnitScales {
    #[inline(always)]
    fn new() -> Self {
        UnitScales {
            bits: [0; 8],
            ad: [0.0; 8],
            keep: 0,
        }
    }

    /// Slot `t` holds a block with scale word `bits` and a row with
    /// activation scale `ad`.
    #[inline(always)]
    fn set(&mut self, t: usize, bits: u32, ad: f32) {
        self.bits[t] = bits;
        self.ad[t] = ad;
        self.keep |= 1 << t;
    }

    /// Per slot: the low and high f16 of the scale word, each times the
    /// row's activation scale (0 in unused slots).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn factors(&self) -> [__m256; 2] {
        // SAFETY: reads 8 u32 / 8 f32 from 8-element arrays.
        let (bits, ad) = unsafe {
            (
                _mm256_loadu_si256(self.bits.as_ptr() as *const _),
                _mm256_loadu_ps(self.ad.as_ptr()),
            )
        };
        let half = |v: __m256i| _mm256_cvtph_ps(_mm256_cvtepi32_epi16(v));
        [
            _mm256_mul_ps(half(bits), ad),
            _mm256_mul_ps(half(_mm256_srli_epi32::<16>(bits)), ad),
        ]
    }
}

/// One unpacked super-block: quants for values `64j..64j + 64` in `w[j]`,
/// the scale of each i16 product pair in `scale[j]`, and the factor of
/// each per-16 activation sum in `corr` (as the low half of its lane).
struct Block {
    w: [__m512i; 4],
    scale: [__m512i; 4],
    corr: __m512i,
}

impl Block {
    /// The block's dot with the 256 activation quants at `x`, as a vector
    /// whose lane total is the scaled integer dot, and the per-16 sums at
    /// `sums` times `corr`, as a vector whose lane total is the correction.
    ///
    /// SAFETY: `x` points to 256 readable bytes and `sums` to 16 i32.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dot(&self, x: *const i8, sums: *const i32) -> (__m512i, __m512i) {
        let mut acc = _mm512_setzero_si512();
        for j in 0..4 {
            // SAFETY: within the 256 bytes at `x` (caller).
            let xv = unsafe { _mm512_loadu_si512(x.add(64 * j) as *const _) };
            // u8 × i8 pairs summed to i16 (weights <= 63, |x| <= 128: no
            // saturation), then i16 pairs times the scale added to i32.
            let p = _mm512_maddubs_epi16(self.w[j], xv);
            acc = _mm512_dpwssd_epi32(acc, p, self.scale[j]);
        }
        // SAFETY: 16 i32 at `sums` (caller); each fits in i16 (16 × 128).
        let s = unsafe { _mm512_loadu_si512(sums as *const _) };
        (acc, _mm512_madd_epi16(s, self.corr))
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_k<const R: usize>(w: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    const BB: usize = q4_k::BLOCK_BYTES;
    let nb = w.len() / BB;
    check_k_rows(a, nb);
    let (unit, s) = (RowLanes::<R>::UNIT, stride(R));
    let nib = _mm512_set1_epi8(0x0F);
    // i16 product k of values 64j.. belongs to sub-block 2j + k / 16; the
    // per-16 sum l to sub-block l / 2, whose min is 32-bit lane l / 2.
    let spread: [__m512i; 4] = std::array::from_fn(|j| i16_index(|k| 2 * j + k / 16));
    let min_of = i16_index(|k| if k % 2 == 0 { k / 4 } else { 0 });
    let mut lanes = RowLanes::<R>::new();
    let mut b0 = 0;
    while b0 < nb {
        // Slot t: the scaled dot; slot 8 + t: the mins' correction.
        let mut v = [_mm512_setzero_si512(); 16];
        let mut scales = UnitScales::new();
        for g in 0..unit.min(nb - b0) {
            let blk = &w[BB * (b0 + g)..BB * (b0 + g + 1)];
            let d_dmin = u32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
            let (sc, mn) = q4_k::scales_mins(&blk[4..16]);
            // SAFETY: the quants are bytes 16..144 of the block.
            let q = unsafe {
                let p = blk.as_ptr().add(16);
                [0, 1].map(|c| _mm512_loadu_si512(p.add(64 * c) as *const _))
            };
            let mut wv = [_mm512_setzero_si512(); 4];
            for (c, q) in q.into_iter().enumerate() {
                // Low nibbles hold values 128c + 0..32 and + 64..96, high
                // nibbles the 32 after each: reorder into value order.
                let lo = _mm512_and_si512(q, nib);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib);
                wv[2 * c] = _mm512_shuffle_i64x2::<0x44>(lo, hi);
                wv[2 * c + 1] = _mm512_shuffle_i64x2::<0xEE>(lo, hi);
            }
            let sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
            let mn = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64)));
            let blk = Block {
                w: wv,
                scale: spread.map(|i| _mm512_permutexvar_epi16(i, sc)),
                corr: low_halves(_mm512_permutexvar_epi16(min_of, mn)),
            };
            for (r, row) in a.iter().enumerate() {
                // SAFETY: values 256b.. and sums 16b.. of block b = b0 + g
                // lie inside every row (`check_rows`).
                let (dot, corr) = unsafe {
                    blk.dot(
                        row.q.as_ptr().add(256 * (b0 + g)),
                        row.sums.as_ptr().add(16 * (b0 + g)),
                    )
                };
                v[g * s + r] = dot;
                v[8 + g * s + r] = corr;
                scales.set(g * s + r, d_dmin, row.d[b0 + g]);
            }
        }
        let t = totals(&v);
        let [sd, sm] = scales.factors();
        // isum · (d · ad) - msum · (dmin · ad), as the reference rounds it.
        let isum = _mm256_cvtepi32_ps(_mm512_castsi512_si256(t));
        let msum = _mm256_cvtepi32_ps(_mm512_extracti64x4_epi64::<1>(t));
        lanes.add(
            b0,
            scales.keep,
            _mm256_sub_ps(_mm256_mul_ps(isum, sd), _mm256_mul_ps(msum, sm)),
        );
        b0 += unit;
    }
    lanes.fold()
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q6_k<const R: usize>(w: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    const BB: usize = q6_k::BLOCK_BYTES;
    let nb = w.len() / BB;
    check_k_rows(a, nb);
    let (unit, s) = (RowLanes::<R>::UNIT, stride(R));
    let (nib, two) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03));
    // i16 product k of values 64j.. belongs to group 4j + k / 8.
    let spread: [__m512i; 4] = std::array::from_fn(|j| i16_index(|k| 4 * j + k / 8));
    let mut lanes = RowLanes::<R>::new();
    let mut b0 = 0;
    while b0 < nb {
        // Two units per reduction: slot 8u + t holds unit u's slot t.
        let mut v = [_mm512_setzero_si512(); 16];
        let mut scales = [UnitScales::new(), UnitScales::new()];
        for g in 0..(2 * unit).min(nb - b0) {
            let blk = &w[BB * (b0 + g)..BB * (b0 + g + 1)];
            let d = u32::from(u16::from_le_bytes([blk[208], blk[209]]));
            // SAFETY: reads stay inside the block (ql 0..128, qh 128..192,
            // scales 192..208).
            let (wv, sc8) = unsafe {
                let p = blk.as_ptr();
                let mut wv = [_mm512_setzero_si512(); 4];
                for h in 0..2 {
                    let ql = _mm512_loadu_si512(p.add(64 * h) as *const _);
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const _);
                    // [qh, qh >> 2]: bits 0..2 of byte l then give the high
                    // bits of values 128h+l (first half) and 128h+32+l
                    // (second half); bits 4..6 those of 128h+64+l and
                    // 128h+96+l.
                    let qh2 = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(qh),
                        _mm256_srli_epi16::<2>(qh),
                    );
                    let h_lo = _mm512_slli_epi16::<4>(_mm512_and_si512(qh2, two));
                    let h_hi =
                        _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(qh2), two));
                    wv[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, nib), h_lo);
                    wv[2 * h + 1] =
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), nib), h_hi);
                }
                (wv, _mm_loadu_si128(p.add(192) as *const _))
            };
            // Quants are stored as q + 32: take back 32 · scale · sum.
            let sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(sc8));
            let off = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_slli_epi32::<5>(_mm512_cvtepi8_epi32(sc8)),
            );
            let blk = Block {
                w: wv,
                scale: spread.map(|i| _mm512_permutexvar_epi16(i, sc)),
                corr: low_halves(off),
            };
            let (u, base) = (g / unit, (g % unit) * s);
            for (r, row) in a.iter().enumerate() {
                // SAFETY: values 256b.. and sums 16b.. of block b = b0 + g
                // lie inside every row (`check_rows`).
                let (dot, corr) = unsafe {
                    blk.dot(
                        row.q.as_ptr().add(256 * (b0 + g)),
                        row.sums.as_ptr().add(16 * (b0 + g)),
                    )
                };
                v[8 * u + base + r] = _mm512_add_epi32(dot, corr);
                scales[u].set(base + r, d, row.d[b0 + g]);
            }
        }
        let t = totals(&v);
        let halves = [_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64::<1>(t)];
        for (u, (isum, scales)) in halves.into_iter().zip(&scales).enumerate() {
            let [sd, _] = scales.factors();
            let isum = _mm256_cvtepi32_ps(isum);
            lanes.add(b0 + u * unit, scales.keep, _mm256_mul_ps(isum, sd));
        }
        b0 += 2 * unit;
    }
    lanes.fold()
}
