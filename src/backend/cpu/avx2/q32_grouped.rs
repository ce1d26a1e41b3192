//! Q8_0, Q4_1 and Q5_0 (32-value blocks) for batches of more than
//! [`MAX_ROWS`](super::MAX_ROWS) activation rows, which arrive in the group
//! layout (`quant::activation::group_pos`: 4 values of each of up to 16
//! blocks per 64 bytes). Each weight row is unpacked once into the same
//! layout, eight blocks at a time with an 8 × 8 transpose of 32-bit words,
//! plus f32 scales. Dotting it with an activation row then leaves block
//! `b`'s integer dot in lane `b % 16` (lanes 0..8 in one register, 8..16 in
//! another) with no horizontal sums, where its float contribution is added,
//! as in the reference. The unpacking costs as much as a few rows' dots, so
//! it pays only for large batches (prefill); [`super::q32`] serves the rest.
//! Up to four activation rows share each weight load.
//!
//! Quants are taken as in [`super::q32`].

use std::arch::x86_64::*;
use std::ops::Range;

use super::q32::{add_blocks, block_quants, f16_fields, load_f, load_i};
use super::{fold16, lane_mask};
use crate::backend::cpu::matmul::{Acts, Cols, for_act_rows};
use crate::backend::cpu::q32_format::{Q4_1, Q5_0, Q8_0, block_bytes};
use crate::backend::cpu::scratch::Scratch;
use crate::model::quant::{ActLayout, Q8Row, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx2,f16c")]
pub(super) fn rows(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
    s: &mut Scratch,
) {
    match w.qtype {
        QType::Q8_0 => rows_as::<Q8_0>(w, acts, rows, dst, s),
        QType::Q5_0 => rows_as::<Q5_0>(w, acts, rows, dst, s),
        _ => rows_as::<Q4_1>(w, acts, rows, dst, s),
    }
}

#[target_feature(enable = "avx2,f16c")]
fn rows_as<const F: u8>(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
    s: &mut Scratch,
) {
    let nb = w.cols / 32;
    s.fit_q32_row(w.cols);
    for n in rows {
        unpack::<F>(w.row_bytes(n), &mut s.bytes, &mut s.f0, &mut s.f1);
        let wr = WeightRow {
            q: &s.bytes,
            d: &s.f0,
            min: &s.f1,
            nb,
        };
        for_act_rows(
            acts,
            n,
            dst,
            |a| dot::<F, 4>(&wr, a),
            |a| dot::<F, 1>(&wr, a),
        );
    }
}

/// Transposes `z[k]` = dwords 0..8 of block k into `z[t]` = dword t of
/// blocks 0..8 (lane = block).
#[target_feature(enable = "avx2,f16c")]
fn transpose8(z: &mut [__m256i; 8]) {
    // Blocks paired and interleaved by dword, then by qword: `b[4p + r]`
    // holds dword r (upper half: r + 4) of blocks 4p..4p+4; the halves of
    // `b[r]` and `b[4 + r]` then combine across the 128-bit lanes.
    let a: [__m256i; 8] = std::array::from_fn(|i| {
        let (x, y) = (z[2 * (i / 2)], z[2 * (i / 2) + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi32(x, y)
        } else {
            _mm256_unpackhi_epi32(x, y)
        }
    });
    let b: [__m256i; 8] = std::array::from_fn(|i| {
        let (p, r) = (i / 4, i % 4);
        let (x, y) = (a[4 * p + r / 2], a[4 * p + 2 + r / 2]);
        if r % 2 == 0 {
            _mm256_unpacklo_epi64(x, y)
        } else {
            _mm256_unpackhi_epi64(x, y)
        }
    });
    for r in 0..4 {
        z[r] = _mm256_permute2x128_si256::<0x20>(b[r], b[4 + r]);
        z[r + 4] = _mm256_permute2x128_si256::<0x31>(b[r], b[4 + r]);
    }
}

/// Unpacks a weight row of format `F`: quants into `q` in the group layout,
/// scales into `d`, Q4_1 mins into `min`.
#[target_feature(enable = "avx2,f16c")]
fn unpack<const F: u8>(row: &[u8], q: &mut [u8], d: &mut [f32], min: &mut [f32]) {
    let bb = block_bytes(F);
    let nb = row.len() / bb;
    assert!(q.len() >= 32 * nb && d.len() >= nb && min.len() >= nb);
    for g0 in (0..nb).step_by(16) {
        let n = (nb - g0).min(16);
        // Lanes 0..8 of the group, then 8..16.
        for h in 0..n.div_ceil(8) {
            let j0 = g0 + 8 * h;
            let nh = (n - 8 * h).min(8);
            let blocks = &row[bb * j0..bb * (j0 + nh)];
            store_low(f16_fields(blocks, bb, 0), &mut d[j0..j0 + nh]);
            if F == Q4_1 {
                store_low(f16_fields(blocks, bb, 2), &mut min[j0..j0 + nh]);
            }
            let mut z = [_mm256_setzero_si256(); 8];
            for (k, zk) in z.iter_mut().enumerate().take(nh) {
                // SAFETY: block k of `blocks` is whole (k < nh).
                *zk = unsafe { block_quants::<F>(blocks.as_ptr().add(bb * k)) };
            }
            transpose8(&mut z);
            let mask = lane_mask(nh);
            for (t, v) in z.iter().enumerate() {
                // Masked stores are slow on some CPUs: only partial halves
                // use them.
                // SAFETY: dword t of blocks j0..j0+nh goes to bytes
                // 32g0 + 4nt + 32h + 4(0..nh), inside the group's 32n bytes
                // of `q` (asserted); a partial half stores only those.
                unsafe {
                    let p = q.as_mut_ptr().add(32 * g0 + 4 * n * t + 32 * h);
                    if nh < 8 {
                        _mm256_maskstore_epi32(p as *mut i32, mask, *v);
                    } else {
                        _mm256_storeu_si256(p as *mut _, *v);
                    }
                }
            }
        }
    }
}

/// Stores the first `out.len()` (<= 8) lanes of `v`.
#[target_feature(enable = "avx2,f16c")]
fn store_low(v: __m256, out: &mut [f32]) {
    let mut wide = [0.0f32; 8];
    // SAFETY: a 32-byte store to an 8-element array.
    unsafe { _mm256_storeu_ps(wide.as_mut_ptr(), v) };
    out.copy_from_slice(&wide[..out.len()]);
}

/// An unpacked weight row: quants in the group layout, scales, and (Q4_1
/// only) mins.
struct WeightRow<'a> {
    q: &'a [u8],
    d: &'a [f32],
    min: &'a [f32],
    nb: usize,
}

/// How many `maddubs` results (value groups `t`) of format `F` may be
/// summed in i16 lanes before widening: a result is at most 2 · 128 · 127
/// (Q8_0), 2 · 31 · 128 (Q5_0) or 2 · 15 · 128 (Q4_1) in magnitude, so 1, 4
/// or 8 of them stay below 2^15 and the sum is exact.
const fn i16_span(f: u8) -> usize {
    match f {
        Q8_0 => 1,
        Q5_0 => 4,
        _ => 8,
    }
}

/// Dots of an unpacked weight row with `R` quantized activation rows; each
/// result is computed exactly as if alone.
#[target_feature(enable = "avx2,f16c")]
fn dot<const F: u8, const R: usize>(w: &WeightRow<'_>, a: &[Q8Row<'_>; R]) -> [f32; R] {
    let nb = w.nb;
    assert!(w.q.len() >= nb * 32 && w.d.len() >= nb && w.min.len() >= nb);
    for r in a {
        assert!(r.layout == ActLayout::Grouped && r.q.len() == nb * 32);
        assert!(r.d.len() == nb && r.sums.len() == nb);
        assert!(F != Q4_1 || r.s.len() == nb);
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for g0 in (0..nb).step_by(16) {
        let n = (nb - g0).min(16);
        for h in 0..n.div_ceil(8) {
            let (j0, nh) = (g0 + 8 * h, (n - 8 * h).min(8));
            let (mask, part) = (lane_mask(nh), nh < 8);
            let mut isum = [_mm256_setzero_si256(); R];
            // SAFETY: dwords t of blocks j0..j0+nh sit at byte
            // 32g0 + 4nt + 32h of the weight and activation rows, and the
            // per-block arrays have entries j0..j0+nh (lengths asserted);
            // `mask` selects exactly those lanes.
            let (dw, mw) = unsafe {
                for t0 in (0..8).step_by(i16_span(F)) {
                    let mut p16 = [_mm256_setzero_si256(); R];
                    for t in t0..t0 + i16_span(F) {
                        let off = 32 * g0 + 4 * n * t + 32 * h;
                        let wv = load_i(w.q.as_ptr().add(off) as *const i32, mask, part);
                        let wu = if F == Q8_0 { _mm256_abs_epi8(wv) } else { wv };
                        for (r, p) in a.iter().zip(p16.iter_mut()) {
                            let mut xv = load_i(r.q.as_ptr().add(off) as *const i32, mask, part);
                            if F == Q8_0 {
                                xv = _mm256_sign_epi8(xv, wv);
                            }
                            *p = _mm256_add_epi16(*p, _mm256_maddubs_epi16(wu, xv));
                        }
                    }
                    for (p, s) in p16.iter().zip(isum.iter_mut()) {
                        *s = _mm256_add_epi32(*s, _mm256_madd_epi16(*p, ones));
                    }
                }
                let dw = load_f(w.d.as_ptr().add(j0), mask, part);
                let mw = if F == Q4_1 {
                    load_f(w.min.as_ptr().add(j0), mask, part)
                } else {
                    _mm256_setzero_ps()
                };
                (dw, mw)
            };
            for ((r, s), acc) in a.iter().zip(isum).zip(acc.iter_mut()) {
                add_blocks::<F>(r, j0, nh, s, dw, mw, acc);
            }
        }
    }
    acc.map(|[lo, hi]| fold16(lo, hi))
}
