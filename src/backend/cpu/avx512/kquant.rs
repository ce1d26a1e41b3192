//! Q4_K and Q6_K (256-value super-blocks), dotted straight from the stored
//! bytes with Q8_K activations in natural order. Each super-block is
//! unpacked once into registers (64 unsigned quants per register in natural
//! value order, plus per-lane scale vectors) and then dotted with up to four
//! activation rows: a VNNI dot gives per-lane partial sums, which are
//! multiplied by their (sub-)block scale and summed to the block's exact
//! integer dot. Block contributions go into scalar lanes (a row has few
//! super-blocks), exactly as in the reference.

use std::arch::x86_64::*;
use std::ops::Range;

use super::Scratch;
use crate::backend::cpu::matmul::{Acts, Cols, for_act_rows};
use crate::model::quant::lanes::{BLOCK_LANES, fold};
use crate::model::quant::{Q8Row, f16_at, q4_k, q6_k};
use crate::model::tensor::Tensor;

/// One unpacked super-block: quants for values 64j..64j+64 in `w[j]`, the
/// scale of each dot lane in `scale[j]` (as two equal i16 halves of each
/// 32-bit lane, see [`pair16`]); `corr` turns the per-16 activation sums
/// into the integer correction subtracted from the scaled dot (Q4_K: mins,
/// Q6_K: the +32 offset).
struct Block {
    w: [__m512i; 4],
    scale: [__m512i; 4],
    corr: __m512i,
}

/// Integer dot of an unpacked block with activation values `x` (256
/// bytes) and per-16 sums `sums` (16 entries), as two vectors whose lane
/// totals are the scaled dot and the correction.
///
/// SAFETY: `x` points to 256 readable bytes and `sums` to 16 i32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn block_dot(blk: &Block, x: *const i8, sums: *const i32) -> (__m512i, __m512i) {
    let mut acc = _mm512_setzero_si512();
    for j in 0..4 {
        // SAFETY: within the 256 bytes at `x` (caller).
        let xv = unsafe { _mm512_loadu_si512(x.add(64 * j) as *const _) };
        // Pairwise u8 x i8 products summed to i16 (|w| <= 63, |x| <= 128:
        // at most 16128, so the saturating add never saturates), then each
        // pair of i16 times the lane's scale summed to i32: the same exact
        // integers as a 4-way dot times the scale, in two cheap instructions
        // instead of a dot and a 32-bit multiply.
        let p = _mm512_maddubs_epi16(blk.w[j], xv);
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(p, blk.scale[j]));
    }
    // SAFETY: 16 i32 at `sums` (caller).
    let s = unsafe { _mm512_loadu_si512(sums as *const _) };
    (acc, _mm512_mullo_epi32(s, blk.corr))
}

/// A vector whose 32-bit lane `l` holds `f(l)` (permutation indices).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_index(f: impl Fn(i32) -> i32) -> __m512i {
    let idx: [i32; 16] = std::array::from_fn(|l| f(l as i32));
    // SAFETY: reads 16 i32 from a 16-element array.
    unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) }
}

/// Each 32-bit lane's value `v` (|v| < 2^15) as the i16 pair `(v, v)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn pair16(v: __m512i) -> __m512i {
    _mm512_or_si512(
        _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF)),
        _mm512_slli_epi32::<16>(v),
    )
}

/// Lane totals of two integer vectors, sharing the shuffles.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn reduce_pair(a: __m512i, b: __m512i) -> (i32, i32) {
    // [a.lo256 + a.hi256 | b.lo256 + b.hi256], then fold each half.
    let s = _mm512_add_epi32(
        _mm512_shuffle_i64x2::<0x44>(a, b),
        _mm512_shuffle_i64x2::<0xEE>(a, b),
    );
    let s = _mm512_add_epi32(s, _mm512_shuffle_i64x2::<0b10_11_00_01>(s, s));
    let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0b10_11_00_01>(s));
    let hi = _mm512_extracti32x4_epi32::<2>(s);
    (
        _mm_cvtsi128_si32(_mm512_castsi512_si128(s)),
        _mm_cvtsi128_si32(hi),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows_q4_k(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
    s: &mut Scratch,
) {
    let nb = w.cols / 256;
    s.ints.resize(16 * nb, 0);
    s.f0.resize(nb, 0.0);
    s.f1.resize(nb, 0.0);
    for n in rows {
        let row = w.row_bytes(n);
        // Scales and mins decoded once per weight row: [sc0..8, mn0..8].
        for (b, blk) in row.chunks_exact(q4_k::BLOCK_BYTES).enumerate() {
            s.f0[b] = f16_at(blk);
            s.f1[b] = f16_at(&blk[2..]);
            for j in 0..8 {
                let (sc, mn) = q4_k::scale_min(j, &blk[4..16]);
                s.ints[16 * b + j] = i32::from(sc);
                s.ints[16 * b + 8 + j] = i32::from(mn);
            }
        }
        let (scm, d, dmin) = (&s.ints[..], &s.f0[..], &s.f1[..]);
        for_act_rows(
            acts,
            n,
            dst,
            |a| dot_q4_k::<4>(row, scm, d, dmin, a),
            |a| dot_q4_k::<1>(row, scm, d, dmin, a),
        );
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_k<const R: usize>(
    row: &[u8],
    scm: &[i32],
    d: &[f32],
    dmin: &[f32],
    a: &[Q8Row<'_>; R],
) -> [f32; R] {
    let nb = row.len() / q4_k::BLOCK_BYTES;
    assert!(scm.len() >= 16 * nb && d.len() >= nb && dmin.len() >= nb);
    for r in a {
        assert!(r.q.len() == 256 * nb && r.sums.len() == 16 * nb && r.d.len() == nb);
    }
    let nib = _mm512_set1_epi8(0x0F);
    // Lane l of a dot over values 64j..64j+64 belongs to sub-block 2j + l/8.
    let sub = |j: i32| lane_index(|l| j + l / 8);
    let subs = [sub(0), sub(2), sub(4), sub(6)];
    // Lane l of the per-16 sums belongs to sub-block l/2, whose min is entry 8 + l/2.
    let min_of = lane_index(|l| 8 + l / 2);
    let mut lanes = [[0.0f32; BLOCK_LANES]; R];
    for b in 0..nb {
        // SAFETY: block b spans row[144b..144b+144] (qs: 128 bytes at +16)
        // and scm[16b..16b+16] (asserted above).
        let blk = unsafe {
            let qs = row.as_ptr().add(q4_k::BLOCK_BYTES * b + 16);
            let sm = _mm512_loadu_si512(scm.as_ptr().add(16 * b) as *const _);
            let mut w = [_mm512_setzero_si512(); 4];
            for c in 0..2 {
                let q = _mm512_loadu_si512(qs.add(64 * c) as *const _);
                let lo = _mm512_and_si512(q, nib);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib);
                // lo holds values 128c+0..32 and 128c+64..96, hi the 32 after
                // each; reorder 128-bit lanes into natural order.
                w[2 * c] = _mm512_shuffle_i64x2::<0x44>(lo, hi);
                w[2 * c + 1] = _mm512_shuffle_i64x2::<0xEE>(lo, hi);
            }
            Block {
                w,
                scale: subs.map(|i| pair16(_mm512_permutexvar_epi32(i, sm))),
                corr: _mm512_permutexvar_epi32(min_of, sm),
            }
        };
        for (r, l) in a.iter().zip(lanes.iter_mut()) {
            // SAFETY: r.q[256b..256b+256] and r.sums[16b..16b+16] (asserted).
            let (acc, mins) =
                unsafe { block_dot(&blk, r.q.as_ptr().add(256 * b), r.sums.as_ptr().add(16 * b)) };
            let (isum, msum) = reduce_pair(acc, mins);
            l[b % BLOCK_LANES] += isum as f32 * (d[b] * r.d[b]) - msum as f32 * (dmin[b] * r.d[b]);
        }
    }
    lanes.map(fold)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows_q6_k(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    for n in rows {
        let row = w.row_bytes(n);
        for_act_rows(
            acts,
            n,
            dst,
            |a| dot_q6_k::<4>(row, a),
            |a| dot_q6_k::<1>(row, a),
        );
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q6_k<const R: usize>(row: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R] {
    const BB: usize = q6_k::BLOCK_BYTES;
    let nb = row.len() / BB;
    for r in a {
        assert!(r.q.len() == 256 * nb && r.sums.len() == 16 * nb && r.d.len() == nb);
    }
    let nib = _mm512_set1_epi8(0x0F);
    let two = _mm512_set1_epi8(0x03);
    // Lane l of a dot over values 64j..64j+64 belongs to group 4j + l/4.
    let grp = |j: i32| lane_index(|l| j + l / 4);
    let groups = [grp(0), grp(4), grp(8), grp(12)];
    // Quants are stored as q + 32: the correction is 32 * sum(sc * group sum).
    let thirty_two = _mm512_set1_epi32(32);
    let mut lanes = [[0.0f32; BLOCK_LANES]; R];
    for b in 0..nb {
        let bytes = &row[BB * b..BB * (b + 1)];
        // SAFETY: reads stay inside `bytes` (ql 0..128, qh 128..192, scales
        // 192..208).
        let blk = unsafe {
            let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(bytes.as_ptr().add(192) as *const _));
            let mut w = [_mm512_setzero_si512(); 4];
            for h in 0..2 {
                let ql = _mm512_loadu_si512(bytes.as_ptr().add(64 * h) as *const _);
                let qh = _mm256_loadu_si256(bytes.as_ptr().add(128 + 32 * h) as *const _);
                // [qh, qh >> 2]: bits 0..2 of byte l then give the high bits
                // of values 128h+l (first half) and 128h+32+l (second half);
                // bits 4..6 those of 128h+64+l and 128h+96+l.
                let qh2 =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
                let h_lo = _mm512_slli_epi16::<4>(_mm512_and_si512(qh2, two));
                let h_hi =
                    _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(qh2), two));
                w[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, nib), h_lo);
                w[2 * h + 1] =
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), nib), h_hi);
            }
            Block {
                w,
                scale: groups.map(|g| pair16(_mm512_permutexvar_epi32(g, sc))),
                corr: _mm512_mullo_epi32(sc, thirty_two),
            }
        };
        let d = f16_at(&bytes[208..]);
        for (r, l) in a.iter().zip(lanes.iter_mut()) {
            // SAFETY: r.q[256b..256b+256] and r.sums[16b..16b+16] (asserted).
            let (acc, corr) =
                unsafe { block_dot(&blk, r.q.as_ptr().add(256 * b), r.sums.as_ptr().add(16 * b)) };
            let isum = _mm512_reduce_add_epi32(_mm512_sub_epi32(acc, corr));
            l[b % BLOCK_LANES] += isum as f32 * (d * r.d[b]);
        }
    }
    lanes.map(fold)
}
