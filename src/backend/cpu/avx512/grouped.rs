//! Q8_0, Q4_1 and Q5_0 (32-value blocks). Each weight row is unpacked once
//! into the activation group layout (`quant::activation::group_pos`):
//! unsigned quants, 4 values of each of up to 16 blocks per register, plus
//! f32 scales. Dotting it with an activation row then takes 8 VNNI
//! instructions per 16 blocks and leaves block `b`'s integer dot in lane
//! `b % 16`, where its float contribution is added, as in the reference.
//!
//! Signed weights are stored with an offset (Q8_0: `q + 128`, Q5_0: `q`
//! for `q - 16`) and the offset is taken back with the activation block sum.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Scratch, fold16, lane_mask, q8_row};
use crate::backend::cpu::matmul::{Acts, Cols};
use crate::model::quant::{Q8Row, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>, s: &mut Scratch) {
    let nb = w.cols / 32;
    s.bytes.resize(w.cols, 0);
    s.f0.resize(nb, 0.0);
    s.f1.resize(nb, 0.0);
    for n in rows {
        let row = w.row_bytes(n);
        let offset = match w.qtype {
            QType::Q8_0 => unpack_q8_0(row, nb, &mut s.bytes, &mut s.f0),
            QType::Q5_0 => unpack_q5_0(row, nb, &mut s.bytes, &mut s.f0),
            _ => unpack_q4_1(row, nb, &mut s.bytes, &mut s.f0, &mut s.f1),
        };
        let min = (w.qtype == QType::Q4_1).then_some(&s.f1[..]);
        for i in 0..dst.m() {
            let v = dot(&s.bytes, &s.f0, min, &q8_row(acts, i), nb, offset);
            dst.put(i, n, v);
        }
    }
}

/// Block start offsets `bb * lane` for a gather.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn block_offsets(bb: i32) -> __m512i {
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm512_mullo_epi32(iota, _mm512_set1_epi32(bb))
}

/// Gathers the 32-bit word at byte `off` of each of the blocks in `k`.
///
/// SAFETY: for every lane in `k`, bytes `base + idx + off .. + 4` are readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gather(base: *const u8, idx: __m512i, off: i32, k: __mmask16) -> __m512i {
    let at = _mm512_add_epi32(idx, _mm512_set1_epi32(off));
    // SAFETY: forwarded from the caller.
    unsafe { _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), k, at, base as _) }
}

/// f16 values in the low halves of the 32-bit lanes, widened to f32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn f16_low(v: __m512i) -> __m512 {
    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v))
}

/// Calls `f(group start, block count, lane mask, pointer to the group's
/// bytes in `u`)` for each group of up to 16 blocks.
#[inline(always)]
fn for_groups(nb: usize, u: &mut [u8], mut f: impl FnMut(usize, usize, __mmask16, *mut u8)) {
    assert!(u.len() >= nb * 32);
    for g0 in (0..nb).step_by(16) {
        let n = (nb - g0).min(16);
        f(g0, n, lane_mask(n), u[32 * g0..].as_mut_ptr());
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_q8_0(row: &[u8], nb: usize, u: &mut [u8], d: &mut [f32]) -> i32 {
    assert!(row.len() == nb * 34 && d.len() >= nb);
    let idx = block_offsets(34);
    let flip = _mm512_set1_epi32(0x8080_8080u32 as i32);
    for_groups(nb, u, |g0, n, k, out| {
        // SAFETY: lanes in `k` are blocks g0..g0+n of `row`, every read lies
        // inside its 34-byte block, and `out`/`d` hold the group (asserted).
        unsafe {
            let base = row.as_ptr().add(34 * g0);
            _mm512_mask_storeu_ps(d.as_mut_ptr().add(g0), k, f16_low(gather(base, idx, 0, k)));
            for t in 0..8 {
                let q = _mm512_xor_si512(gather(base, idx, 2 + 4 * t as i32, k), flip);
                _mm512_mask_storeu_epi32(out.add(t * 4 * n) as *mut i32, k, q);
            }
        }
    });
    128
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_q4_1(row: &[u8], nb: usize, u: &mut [u8], d: &mut [f32], m: &mut [f32]) -> i32 {
    assert!(row.len() == nb * 20 && d.len() >= nb && m.len() >= nb);
    let idx = block_offsets(20);
    let nib = _mm512_set1_epi8(0x0F);
    for_groups(nb, u, |g0, n, k, out| {
        // SAFETY: as in `unpack_q8_0`, with 20-byte blocks.
        unsafe {
            let base = row.as_ptr().add(20 * g0);
            let dm = gather(base, idx, 0, k);
            _mm512_mask_storeu_ps(d.as_mut_ptr().add(g0), k, f16_low(dm));
            _mm512_mask_storeu_ps(m.as_mut_ptr().add(g0), k, f16_low(_mm512_srli_epi32::<16>(dm)));
            for t in 0..4 {
                let q = gather(base, idx, 4 + 4 * t as i32, k);
                let lo = _mm512_and_si512(q, nib);
                let hi = _mm512_and_si512(_mm512_srli_epi32::<4>(q), nib);
                _mm512_mask_storeu_epi32(out.add(t * 4 * n) as *mut i32, k, lo);
                _mm512_mask_storeu_epi32(out.add((t + 4) * 4 * n) as *mut i32, k, hi);
            }
        }
    });
    0
}

/// Moves bits 0..4 of each lane to bit 4 of bytes 0..4.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn spread_high_bits(bits: __m512i) -> __m512i {
    // Multiplying by 1 + 2^7 + 2^14 + 2^21 puts bit i at bit 8i (no carries:
    // the four copies do not overlap), then the mask keeps those bits.
    let nibble = _mm512_and_si512(bits, _mm512_set1_epi32(0xF));
    let spread = _mm512_mullo_epi32(nibble, _mm512_set1_epi32(0x0020_4081));
    _mm512_slli_epi32::<4>(_mm512_and_si512(spread, _mm512_set1_epi32(0x0101_0101)))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_q5_0(row: &[u8], nb: usize, u: &mut [u8], d: &mut [f32]) -> i32 {
    assert!(row.len() == nb * 22 && d.len() >= nb);
    let idx = block_offsets(22);
    let nib = _mm512_set1_epi8(0x0F);
    for_groups(nb, u, |g0, n, k, out| {
        // SAFETY: as in `unpack_q8_0`, with 22-byte blocks.
        unsafe {
            let base = row.as_ptr().add(22 * g0);
            _mm512_mask_storeu_ps(d.as_mut_ptr().add(g0), k, f16_low(gather(base, idx, 0, k)));
            let qh = gather(base, idx, 2, k);
            for t in 0..4 {
                let q = gather(base, idx, 6 + 4 * t as i32, k);
                let shift_lo = _mm512_set1_epi32(4 * t as i32);
                let shift_hi = _mm512_set1_epi32(16 + 4 * t as i32);
                let lo = _mm512_or_si512(
                    _mm512_and_si512(q, nib),
                    spread_high_bits(_mm512_srlv_epi32(qh, shift_lo)),
                );
                let hi = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi32::<4>(q), nib),
                    spread_high_bits(_mm512_srlv_epi32(qh, shift_hi)),
                );
                _mm512_mask_storeu_epi32(out.add(t * 4 * n) as *mut i32, k, lo);
                _mm512_mask_storeu_epi32(out.add((t + 4) * 4 * n) as *mut i32, k, hi);
            }
        }
    });
    16
}

/// Dot of an unpacked weight row (`u`, scales `dw`, Q4_1 mins `mw`) with a
/// quantized activation row; `offset` is the weights' unsigned offset.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot(u: &[u8], dw: &[f32], mw: Option<&[f32]>, a: &Q8Row<'_>, nb: usize, offset: i32) -> f32 {
    assert!(u.len() >= nb * 32 && a.q.len() == nb * 32 && dw.len() >= nb && a.d.len() == nb);
    assert!(a.sums.len() == nb && mw.is_none_or(|m| m.len() >= nb && a.s.len() == nb));
    let mut acc = _mm512_setzero_ps();
    let off = _mm512_set1_epi32(offset);
    for g0 in (0..nb).step_by(16) {
        let n = (nb - g0).min(16);
        let k = lane_mask(n);
        // SAFETY: group g0 occupies bytes 32*g0 .. 32*(g0+n) of both rows and
        // entries g0..g0+n of the per-block arrays (lengths asserted above);
        // masked loads touch only those.
        unsafe {
            let wp = u.as_ptr().add(32 * g0);
            let xp = a.q.as_ptr().add(32 * g0);
            let mut isum = _mm512_setzero_si512();
            for t in 0..8 {
                let wv = _mm512_maskz_loadu_epi32(k, wp.add(t * 4 * n) as *const i32);
                let xv = _mm512_maskz_loadu_epi32(k, xp.add(t * 4 * n) as *const i32);
                isum = _mm512_dpbusd_epi32(isum, wv, xv);
            }
            let sums = _mm512_maskz_loadu_epi32(k, a.sums.as_ptr().add(g0));
            isum = _mm512_sub_epi32(isum, _mm512_mullo_epi32(sums, off));
            let scale = _mm512_mul_ps(
                _mm512_maskz_loadu_ps(k, dw.as_ptr().add(g0)),
                _mm512_maskz_loadu_ps(k, a.d.as_ptr().add(g0)),
            );
            let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale);
            if let Some(mw) = mw {
                let min = _mm512_mul_ps(
                    _mm512_maskz_loadu_ps(k, mw.as_ptr().add(g0)),
                    _mm512_maskz_loadu_ps(k, a.s.as_ptr().add(g0)),
                );
                v = _mm512_add_ps(v, min);
            }
            acc = _mm512_mask_add_ps(acc, k, acc, v);
        }
    }
    fold16(acc)
}
