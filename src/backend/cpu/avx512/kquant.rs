//! Q4_K and Q6_K (256-value super-blocks), dotted straight from the stored
//! bytes with Q8_K activations in natural order. Nibbles are split and, for
//! Q6_K, joined with their 2 high bits into 64 unsigned quants per register
//! in natural value order; a VNNI dot gives per-lane partial sums that are
//! multiplied by their (sub-)block scale and summed to the block's exact
//! integer dot. Block contributions go into scalar lanes (a row has few
//! super-blocks), exactly as in the reference.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Scratch, q8_row};
use crate::backend::cpu::matmul::{Acts, Cols};
use crate::model::quant::lanes::{BLOCK_LANES, fold};
use crate::model::quant::{Q8Row, f16_at, q4_k};
use crate::model::tensor::Tensor;

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
        // Scales and mins decoded once per weight row, reused for every
        // activation row: [sc0..sc8, mn0..mn8] per block.
        for (b, blk) in row.chunks_exact(q4_k::BLOCK_BYTES).enumerate() {
            s.f0[b] = f16_at(blk);
            s.f1[b] = f16_at(&blk[2..]);
            for j in 0..8 {
                let (sc, mn) = q4_k::scale_min(j, &blk[4..16]);
                s.ints[16 * b + j] = i32::from(sc);
                s.ints[16 * b + 8 + j] = i32::from(mn);
            }
        }
        for i in 0..dst.m() {
            let v = dot_q4_k(row, &s.ints, &s.f0, &s.f1, &q8_row(acts, i));
            dst.put(i, n, v);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_k(row: &[u8], scm: &[i32], d: &[f32], dmin: &[f32], a: &Q8Row<'_>) -> f32 {
    let nb = row.len() / q4_k::BLOCK_BYTES;
    assert!(a.q.len() == 256 * nb && a.sums.len() == 16 * nb && scm.len() >= 16 * nb);
    assert!(d.len() >= nb && dmin.len() >= nb && a.d.len() == nb);
    let nib = _mm512_set1_epi8(0x0F);
    // Lane l of a dot over values 64j..64j+64 belongs to sub-block 2j + l/8.
    let sub = |j: i32| {
        _mm512_setr_epi32(
            j,
            j,
            j,
            j,
            j,
            j,
            j,
            j,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
        )
    };
    let (sub0, sub1, sub2, sub3) = (sub(0), sub(2), sub(4), sub(6));
    // Lane l of the per-16 sums belongs to sub-block l/2, whose min is entry 8 + l/2.
    let min_of = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    let mut lanes = [0.0f32; BLOCK_LANES];
    for b in 0..nb {
        // SAFETY: block b spans row[144b..144b+144] (qs at +16, 128 bytes),
        // activations a.q[256b..256b+256], a.sums[16b..16b+16] and
        // scm[16b..16b+16], all within the lengths asserted above.
        let (isum, msum) = unsafe {
            let qs = row.as_ptr().add(q4_k::BLOCK_BYTES * b + 16);
            let x = a.q.as_ptr().add(256 * b);
            let sm = _mm512_loadu_si512(scm.as_ptr().add(16 * b) as *const _);
            let mut acc = _mm512_setzero_si512();
            for (c, (s_lo, s_hi)) in [(sub0, sub1), (sub2, sub3)].into_iter().enumerate() {
                let q = _mm512_loadu_si512(qs.add(64 * c) as *const _);
                let lo = _mm512_and_si512(q, nib);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib);
                // lo holds values 128c+0..32 and 128c+64..96, hi the 32 after
                // each; reorder 128-bit lanes into natural order.
                let w0 = _mm512_shuffle_i64x2::<0x44>(lo, hi);
                let w1 = _mm512_shuffle_i64x2::<0xEE>(lo, hi);
                let x0 = _mm512_loadu_si512(x.add(128 * c) as *const _);
                let x1 = _mm512_loadu_si512(x.add(128 * c + 64) as *const _);
                let p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, x0);
                let p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w1, x1);
                acc = _mm512_add_epi32(
                    acc,
                    _mm512_mullo_epi32(p0, _mm512_permutexvar_epi32(s_lo, sm)),
                );
                acc = _mm512_add_epi32(
                    acc,
                    _mm512_mullo_epi32(p1, _mm512_permutexvar_epi32(s_hi, sm)),
                );
            }
            let sums = _mm512_loadu_si512(a.sums.as_ptr().add(16 * b) as *const _);
            let mins = _mm512_mullo_epi32(sums, _mm512_permutexvar_epi32(min_of, sm));
            (_mm512_reduce_add_epi32(acc), _mm512_reduce_add_epi32(mins))
        };
        let v = isum as f32 * (d[b] * a.d[b]) - msum as f32 * (dmin[b] * a.d[b]);
        lanes[b % BLOCK_LANES] += v;
    }
    fold(lanes)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows_q6_k(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    for n in rows {
        let row = w.row_bytes(n);
        for i in 0..dst.m() {
            dst.put(i, n, dot_q6_k(row, &q8_row(acts, i)));
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q6_k(row: &[u8], a: &Q8Row<'_>) -> f32 {
    const BB: usize = 210;
    let nb = row.len() / BB;
    assert!(a.q.len() == 256 * nb && a.sums.len() == 16 * nb && a.d.len() == nb);
    let nib = _mm512_set1_epi8(0x0F);
    let two = _mm512_set1_epi8(0x03);
    // Lane l of a dot over values 64j..64j+64 belongs to group 4j + l/4.
    let grp = |j: i32| {
        _mm512_setr_epi32(
            j,
            j,
            j,
            j,
            j + 1,
            j + 1,
            j + 1,
            j + 1,
            j + 2,
            j + 2,
            j + 2,
            j + 2,
            j + 3,
            j + 3,
            j + 3,
            j + 3,
        )
    };
    let groups = [grp(0), grp(4), grp(8), grp(12)];
    let mut lanes = [0.0f32; BLOCK_LANES];
    for b in 0..nb {
        let blk = &row[BB * b..BB * (b + 1)];
        // SAFETY: reads stay inside `blk` (ql 0..128, qh 128..192, scales
        // 192..208) and a.q[256b..256b+256], a.sums[16b..16b+16] (asserted).
        let isum = unsafe {
            let x = a.q.as_ptr().add(256 * b);
            let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.as_ptr().add(192) as *const _));
            let mut acc = _mm512_setzero_si512();
            for h in 0..2 {
                let ql = _mm512_loadu_si512(blk.as_ptr().add(64 * h) as *const _);
                let qh = _mm256_loadu_si256(blk.as_ptr().add(128 + 32 * h) as *const _);
                // [qh, qh >> 2]: bits 0..2 of byte l then give the high bits
                // of values 128h+l (first half) and 128h+32+l (second half);
                // bits 4..6 those of 128h+64+l and 128h+96+l.
                let qh2 =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
                let h_lo = _mm512_slli_epi16::<4>(_mm512_and_si512(qh2, two));
                let h_hi =
                    _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(qh2), two));
                let w0 = _mm512_or_si512(_mm512_and_si512(ql, nib), h_lo);
                let w1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), nib), h_hi);
                let x0 = _mm512_loadu_si512(x.add(128 * h) as *const _);
                let x1 = _mm512_loadu_si512(x.add(128 * h + 64) as *const _);
                let p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, x0);
                let p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w1, x1);
                acc = _mm512_add_epi32(
                    acc,
                    _mm512_mullo_epi32(p0, _mm512_permutexvar_epi32(groups[2 * h], sc)),
                );
                acc = _mm512_add_epi32(
                    acc,
                    _mm512_mullo_epi32(p1, _mm512_permutexvar_epi32(groups[2 * h + 1], sc)),
                );
            }
            // Quants are stored as q + 32: take 32 * sum(sc * group sum) back.
            let sums = _mm512_loadu_si512(a.sums.as_ptr().add(16 * b) as *const _);
            let corr = _mm512_reduce_add_epi32(_mm512_mullo_epi32(sc, sums));
            _mm512_reduce_add_epi32(acc) - 32 * corr
        };
        lanes[b % BLOCK_LANES] += isum as f32 * (f16_at(&blk[208..]) * a.d[b]);
    }
    fold(lanes)
}
