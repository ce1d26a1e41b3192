//! Q4_K and Q6_K (256-value super-blocks) with Q8_K activations in natural
//! order. Each weight row is unpacked once: unsigned quants in value order
//! (32 per register), one i16 scale vector per register (Q4_K: the
//! sub-block's scale; Q6_K: the scales of its two 16-value groups, one per
//! 128-bit half), and per-16 correction factors. A block then dots with up
//! to four activation rows through `maddubs` (weights <= 63, so no i16
//! saturation) and `madd` with the scale vector, giving exact i32 partial
//! sums; the per-16 activation sums times the correction factors give the
//! integer subtracted from them (Q4_K: the mins, Q6_K: the +32 offset).
//! Block contributions go into scalar lanes (a row has few super-blocks),
//! exactly as in the reference.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Scratch, reduce_pair};
use crate::backend::cpu::matmul::{Acts, Cols, for_act_rows};
use crate::model::quant::lanes::{BLOCK_LANES, fold};
use crate::model::quant::{Q8Row, QType, f16_at, q4_k, q6_k};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx2,f16c")]
pub(super) fn rows(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
    s: &mut Scratch,
) {
    if w.qtype == QType::Q4K {
        rows_as::<true>(w, acts, rows, dst, s);
    } else {
        rows_as::<false>(w, acts, rows, dst, s);
    }
}

/// An unpacked weight row; per super-block `b`: quants `q[256b..]`, scale
/// vectors `scale[128b..]` (16 i16 per 32 quants), correction factors
/// `corr[16b..]` (one per 16 values), and the f32 super-block scales.
struct KRow<'a> {
    q: &'a [u8],
    scale: &'a [i16],
    corr: &'a [i32],
    d: &'a [f32],
    dmin: &'a [f32],
    nb: usize,
}

#[target_feature(enable = "avx2,f16c")]
fn rows_as<const Q4K: bool>(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
    s: &mut Scratch,
) {
    let nb = w.cols / 256;
    s.bytes.resize(256 * nb, 0);
    s.i16s.resize(128 * nb, 0);
    s.ints.resize(16 * nb, 0);
    s.f0.resize(nb, 0.0);
    s.f1.resize(nb, 0.0);
    let bb = if Q4K {
        q4_k::BLOCK_BYTES
    } else {
        q6_k::BLOCK_BYTES
    };
    for n in rows {
        let row = w.row_bytes(n);
        for (b, blk) in row.chunks_exact(bb).enumerate() {
            let q = &mut s.bytes[256 * b..256 * (b + 1)];
            let scale = &mut s.i16s[128 * b..128 * (b + 1)];
            let corr = &mut s.ints[16 * b..16 * (b + 1)];
            if Q4K {
                unpack_q4_k(blk, q, scale, corr);
                s.f0[b] = f16_at(blk);
                s.f1[b] = f16_at(&blk[2..]);
            } else {
                unpack_q6_k(blk, q, scale, corr);
                s.f0[b] = f16_at(&blk[208..]);
            }
        }
        let kr = KRow {
            q: &s.bytes,
            scale: &s.i16s,
            corr: &s.ints,
            d: &s.f0,
            dmin: &s.f1,
            nb,
        };
        for_act_rows(
            acts,
            n,
            dst,
            |a| dot::<Q4K, 4>(&kr, a),
            |a| dot::<Q4K, 1>(&kr, a),
        );
    }
}

/// Each 32-bit lane's value `v` (|v| < 2^15) as the i16 pair `(v, v)`.
#[target_feature(enable = "avx2,f16c")]
fn pair16(v: __m256i) -> __m256i {
    _mm256_or_si256(
        _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)),
        _mm256_slli_epi32::<16>(v),
    )
}

/// Stores 8 i32 / 16 i16 lanes at `out[..]`, which must hold them.
#[target_feature(enable = "avx2,f16c")]
fn store<T>(out: &mut [T], v: __m256i) {
    assert!(std::mem::size_of_val(out) >= 32);
    // SAFETY: `out` holds at least 32 bytes (asserted).
    unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut _, v) }
}

#[target_feature(enable = "avx2,f16c")]
fn unpack_q4_k(blk: &[u8], q: &mut [u8], scale: &mut [i16], corr: &mut [i32]) {
    assert_eq!(blk.len(), q4_k::BLOCK_BYTES);
    let nib = _mm256_set1_epi8(0x0F);
    for c in 0..4 {
        // SAFETY: qs bytes 32c..32c+32 lie inside the block (at +16).
        let v = unsafe { _mm256_loadu_si256(blk.as_ptr().add(16 + 32 * c) as *const _) };
        store(&mut q[64 * c..], _mm256_and_si256(v, nib));
        store(
            &mut q[64 * c + 32..],
            _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib),
        );
    }
    let (mut sc, mut mn) = ([0i32; 8], [0i32; 8]);
    for j in 0..8 {
        let (s, m) = q4_k::scale_min(j, &blk[4..16]);
        (sc[j], mn[j]) = (i32::from(s), i32::from(m));
    }
    // SAFETY: 32-byte loads from 8-element i32 arrays.
    let (sc, mn) = unsafe {
        (
            pair16(_mm256_loadu_si256(sc.as_ptr() as *const _)),
            _mm256_loadu_si256(mn.as_ptr() as *const _),
        )
    };
    for j in 0..8 {
        let v = _mm256_permutevar8x32_epi32(sc, _mm256_set1_epi32(j as i32));
        store(&mut scale[16 * j..], v);
    }
    // Per-16 sum l belongs to sub-block l / 2.
    let lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let hi = _mm256_add_epi32(lo, _mm256_set1_epi32(4));
    store(&mut corr[..8], _mm256_permutevar8x32_epi32(mn, lo));
    store(&mut corr[8..], _mm256_permutevar8x32_epi32(mn, hi));
}

#[target_feature(enable = "avx2,f16c")]
fn unpack_q6_k(blk: &[u8], q: &mut [u8], scale: &mut [i16], corr: &mut [i32]) {
    assert_eq!(blk.len(), q6_k::BLOCK_BYTES);
    let (nib, top) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
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
        let hi = [
            _mm256_and_si256(_mm256_slli_epi16::<4>(qh), top),
            _mm256_and_si256(_mm256_slli_epi16::<2>(qh), top),
            _mm256_and_si256(qh, top),
            _mm256_and_si256(_mm256_srli_epi16::<2>(qh), top),
        ];
        let lo = [
            _mm256_and_si256(ql0, nib),
            _mm256_and_si256(ql1, nib),
            _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), nib),
            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), nib),
        ];
        for i in 0..4 {
            store(&mut q[128 * h + 32 * i..], _mm256_or_si256(lo[i], hi[i]));
        }
    }
    // SAFETY: the 16 scale bytes lie inside the block (192..208).
    let sc = unsafe { _mm_loadu_si128(blk.as_ptr().add(192) as *const _) };
    let sc = [
        _mm256_cvtepi8_epi32(sc),
        _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(sc)),
    ];
    let pairs = sc.map(|v| pair16(v));
    // Register j (values 32j..32j+32) covers groups 2j (low half) and 2j + 1.
    for j in 0..8 {
        let g = 2 * (j as i32 % 4);
        let idx = _mm256_setr_epi32(g, g, g, g, g + 1, g + 1, g + 1, g + 1);
        store(
            &mut scale[16 * j..],
            _mm256_permutevar8x32_epi32(pairs[j / 4], idx),
        );
    }
    store(&mut corr[..8], _mm256_slli_epi32::<5>(sc[0]));
    store(&mut corr[8..], _mm256_slli_epi32::<5>(sc[1]));
}

/// Dots of an unpacked weight row with `R` activation rows; each result is
/// computed exactly as if alone.
#[target_feature(enable = "avx2,f16c")]
fn dot<const Q4K: bool, const R: usize>(w: &KRow<'_>, a: &[Q8Row<'_>; R]) -> [f32; R] {
    let nb = w.nb;
    assert!(w.q.len() >= 256 * nb && w.scale.len() >= 128 * nb && w.corr.len() >= 16 * nb);
    assert!(w.d.len() >= nb && w.dmin.len() >= nb);
    for r in a {
        assert!(r.q.len() == 256 * nb && r.sums.len() == 16 * nb && r.d.len() == nb);
    }
    let mut lanes = [[0.0f32; BLOCK_LANES]; R];
    for b in 0..nb {
        let mut acc = [_mm256_setzero_si256(); R];
        // SAFETY: block b's entries lie inside every array (asserted above).
        unsafe {
            for j in 0..8 {
                let wv = _mm256_loadu_si256(w.q.as_ptr().add(256 * b + 32 * j) as *const _);
                let sv = _mm256_loadu_si256(w.scale.as_ptr().add(128 * b + 16 * j) as *const _);
                for (r, acc) in a.iter().zip(acc.iter_mut()) {
                    let xv = _mm256_loadu_si256(r.q.as_ptr().add(256 * b + 32 * j) as *const _);
                    let pairs = _mm256_maddubs_epi16(wv, xv);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, sv));
                }
            }
            let cp = w.corr.as_ptr().add(16 * b);
            let (c0, c1) = (
                _mm256_loadu_si256(cp as *const _),
                _mm256_loadu_si256(cp.add(8) as *const _),
            );
            for ((r, acc), l) in a.iter().zip(acc).zip(lanes.iter_mut()) {
                let sp = r.sums.as_ptr().add(16 * b);
                let corr = _mm256_add_epi32(
                    _mm256_mullo_epi32(_mm256_loadu_si256(sp as *const _), c0),
                    _mm256_mullo_epi32(_mm256_loadu_si256(sp.add(8) as *const _), c1),
                );
                let (isum, csum) = reduce_pair(acc, corr);
                l[b % BLOCK_LANES] += if Q4K {
                    isum as f32 * (w.d[b] * r.d[b]) - csum as f32 * (w.dmin[b] * r.d[b])
                } else {
                    (isum - csum) as f32 * (w.d[b] * r.d[b])
                };
            }
        }
    }
    lanes.map(fold)
}
