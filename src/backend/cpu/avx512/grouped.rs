//! Q8_0, Q4_1 and Q5_0 (32-value blocks) for batches of more than
//! [`MAX_ROWS`](crate::backend::cpu::matmul::MAX_ROWS) rows (prefill; decode
//! and verify steps take `q32.rs`). Each weight row is unpacked once
//! into the activation group layout (`quant::activation::group_pos`):
//! unsigned quants, 4 values of each of up to 16 blocks per register (a
//! 16 × 8 transpose of 32-bit words done with permutes), plus f32 scales.
//! Dotting it with an activation row then takes 8 VNNI instructions per 16
//! blocks and leaves block `b`'s integer dot in lane `b % 16`, where its
//! float contribution is added, as in the reference. Up to four activation
//! rows share each weight register load.
//!
//! Signed weights are stored with an offset (Q8_0: `q + 128`, Q5_0: `q`
//! for `q - 16`) and the offset is taken back with the activation block sum.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Scratch, fold16, lane_mask};
use crate::backend::cpu::matmul::{Acts, Cols, for_act_rows};
use crate::model::quant::{Q8Row, QType};
use crate::model::tensor::Tensor;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
    s: &mut Scratch,
) {
    let nb = w.cols / 32;
    s.fit_q32_row(w.cols);
    let tr = Transposer::new();
    for n in rows {
        let row = w.row_bytes(n);
        let offset = match w.qtype {
            QType::Q8_0 => unpack_q8_0(row, &mut s.bytes, &mut s.f0, &tr),
            QType::Q5_0 => unpack_q5_0(row, &mut s.bytes, &mut s.f0, &tr),
            _ => unpack_q4_1(row, &mut s.bytes, &mut s.f0, &mut s.f1, &tr),
        };
        let wr = WeightRow {
            u: &s.bytes,
            d: &s.f0,
            min: (w.qtype == QType::Q4_1).then_some(&s.f1[..]),
            nb,
            offset,
        };
        for_act_rows(acts, n, dst, |a| dot::<4>(&wr, a), |a| dot::<1>(&wr, a));
    }
}

/// Permutation indices for the three stages of [`transpose`].
pub(super) struct Transposer {
    idx: [[__m512i; 2]; 3],
}

impl Transposer {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn new() -> Self {
        // Stage s swaps register-index bit s with lane bit s: output v of a
        // register pair takes lane L from input (bit s of L), lane L with
        // bit s set to v.
        let stage = |s: u32, v: u32| {
            let mut idx = [0i32; 16];
            for (l, x) in (0u32..).zip(idx.iter_mut()) {
                *x = ((((l >> s) & 1) << 4) | (l & !(1 << s)) | (v << s)) as i32;
            }
            // SAFETY: reads 16 i32 from a 16-element array.
            unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) }
        };
        Transposer {
            idx: [0, 1, 2].map(|s| [stage(s, 0), stage(s, 1)]),
        }
    }
}

/// Turns `z[k] = [dwords 0..8 of block k | of block k + 8]` into `z[t]` =
/// dword `t` of blocks 0..16 (lane = block): three stages of 2-source
/// permutes, each swapping one register-index bit with one lane bit.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn transpose(z: &mut [__m512i; 8], tr: &Transposer) {
    for (s, [i0, i1]) in tr.idx.iter().enumerate() {
        let bit = 1 << s;
        for r in (0..8).filter(|r| r & bit == 0) {
            let (a, b) = (z[r], z[r | bit]);
            z[r] = _mm512_permutex2var_epi32(a, *i0, b);
            z[r | bit] = _mm512_permutex2var_epi32(a, *i1, b);
        }
    }
}

/// Transposes a group of `n` blocks (see [`transpose`]) and stores it in
/// the group layout at `out` (32 * n bytes).
///
/// SAFETY: `out` is valid for writes of 32 * n bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn store_group(mut z: [__m512i; 8], tr: &Transposer, n: usize, out: *mut u8) {
    transpose(&mut z, tr);
    let k = lane_mask(n);
    for (t, v) in z.iter().enumerate() {
        // SAFETY: row t of the group is bytes 4nt..4n(t+1) of `out`.
        unsafe { _mm512_mask_storeu_epi32(out.add(4 * n * t) as *mut i32, k, *v) }
    }
}

/// Widens the f16 values at byte `off` of each of the first `n` blocks
/// (`bb` bytes apart) into `out[..n]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn f16_field(blocks: &[u8], bb: usize, off: usize, n: usize, out: &mut [f32]) {
    let mut bits = [0u16; 16];
    for (j, b) in bits.iter_mut().enumerate().take(n) {
        *b = u16::from_le_bytes([blocks[bb * j + off], blocks[bb * j + off + 1]]);
    }
    assert!(out.len() >= n);
    // SAFETY: reads 16 u16 from a 16-element array; the masked store writes
    // out[..n], in bounds (asserted).
    unsafe {
        let v = _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr() as *const _));
        _mm512_mask_storeu_ps(out.as_mut_ptr(), lane_mask(n), v);
    }
}

/// Bytes `off..off + N` of block `k` (blocks `bb` bytes apart), or zeros
/// when `k >= n`.
#[inline(always)]
fn block_bytes<const N: usize>(group: &[u8], bb: usize, off: usize, k: usize, n: usize) -> [u8; N] {
    let mut b = [0u8; N];
    if k < n {
        b.copy_from_slice(&group[bb * k + off..bb * k + off + N]);
    }
    b
}

/// Calls `f(group start, block count, the group's stored bytes, the group's
/// unpacked bytes)` for each group of up to 16 blocks of `bb` bytes.
#[inline(always)]
fn for_groups(
    row: &[u8],
    bb: usize,
    u: &mut [u8],
    mut f: impl FnMut(usize, usize, &[u8], &mut [u8]),
) {
    let nb = row.len() / bb;
    assert!(u.len() >= nb * 32);
    for g0 in (0..nb).step_by(16) {
        let n = (nb - g0).min(16);
        f(
            g0,
            n,
            &row[bb * g0..bb * (g0 + n)],
            &mut u[32 * g0..32 * (g0 + n)],
        );
    }
}

/// Quants split into low nibbles (values 0..16 of a block) then high
/// nibbles (16..32): `[lo a | hi a | lo b | hi b]` for blocks a and b.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn nibble_pair(a: [u8; 16], b: [u8; 16]) -> __m512i {
    // SAFETY: 16-byte loads from 16-byte arrays.
    let (a, b) = unsafe {
        (
            _mm_loadu_si128(a.as_ptr() as *const _),
            _mm_loadu_si128(b.as_ptr() as *const _),
        )
    };
    let ab = _mm512_inserti32x4::<2>(_mm512_castsi128_si512(a), b);
    let aabb = _mm512_shuffle_i32x4::<0b10_10_00_00>(ab, ab);
    let shifts = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4);
    _mm512_and_si512(_mm512_srlv_epi32(aabb, shifts), _mm512_set1_epi8(0x0F))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_q8_0(row: &[u8], u: &mut [u8], d: &mut [f32], tr: &Transposer) -> i32 {
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    for_groups(row, 34, u, |g0, n, blocks, out| {
        f16_field(blocks, 34, 0, n, &mut d[g0..]);
        let mut z = [_mm512_setzero_si512(); 8];
        for (k, zk) in z.iter_mut().enumerate() {
            let (a, b) = (
                block_bytes::<32>(blocks, 34, 2, k, n),
                block_bytes::<32>(blocks, 34, 2, k + 8, n),
            );
            // SAFETY: 32-byte loads from 32-byte arrays.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr() as *const _),
                    _mm256_loadu_si256(b.as_ptr() as *const _),
                )
            };
            *zk = _mm512_xor_si512(_mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b), flip);
        }
        // SAFETY: `out` is the group's 32 * n bytes.
        unsafe { store_group(z, tr, n, out.as_mut_ptr()) }
    });
    128
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_q4_1(row: &[u8], u: &mut [u8], d: &mut [f32], m: &mut [f32], tr: &Transposer) -> i32 {
    for_groups(row, 20, u, |g0, n, blocks, out| {
        f16_field(blocks, 20, 0, n, &mut d[g0..]);
        f16_field(blocks, 20, 2, n, &mut m[g0..]);
        let mut z = [_mm512_setzero_si512(); 8];
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = nibble_pair(
                block_bytes(blocks, 20, 4, k, n),
                block_bytes(blocks, 20, 4, k + 8, n),
            );
        }
        // SAFETY: `out` is the group's 32 * n bytes.
        unsafe { store_group(z, tr, n, out.as_mut_ptr()) }
    });
    0
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_q5_0(row: &[u8], u: &mut [u8], d: &mut [f32], tr: &Transposer) -> i32 {
    let bit4 = _mm512_set1_epi8(0x10);
    for_groups(row, 22, u, |g0, n, blocks, out| {
        f16_field(blocks, 22, 0, n, &mut d[g0..]);
        let mut z = [_mm512_setzero_si512(); 8];
        for (k, zk) in z.iter_mut().enumerate() {
            let low = nibble_pair(
                block_bytes(blocks, 22, 6, k, n),
                block_bytes(blocks, 22, 6, k + 8, n),
            );
            // Bit j of a block's qh is the 5th bit of its value j; `low`
            // holds value j of block k in byte j, of block k + 8 in byte 32 + j.
            let qh_k = u64::from(u32::from_le_bytes(block_bytes(blocks, 22, 2, k, n)));
            let qh_k8 = u64::from(u32::from_le_bytes(block_bytes(blocks, 22, 2, k + 8, n)));
            *zk = _mm512_or_si512(low, _mm512_maskz_mov_epi8(qh_k | (qh_k8 << 32), bit4));
        }
        // SAFETY: `out` is the group's 32 * n bytes.
        unsafe { store_group(z, tr, n, out.as_mut_ptr()) }
    });
    16
}

/// An unpacked weight row: quants in the group layout, scales, Q4_1 mins,
/// and the unsigned offset of the quants.
struct WeightRow<'a> {
    u: &'a [u8],
    d: &'a [f32],
    min: Option<&'a [f32]>,
    nb: usize,
    offset: i32,
}

/// Dots of an unpacked weight row with `R` quantized activation rows; each
/// result is computed exactly as if alone.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot<const R: usize>(w: &WeightRow<'_>, a: &[Q8Row<'_>; R]) -> [f32; R] {
    let nb = w.nb;
    assert!(w.u.len() >= nb * 32 && w.d.len() >= nb && w.min.is_none_or(|m| m.len() >= nb));
    for r in a {
        assert!(r.q.len() == nb * 32 && r.d.len() == nb && r.sums.len() == nb);
        assert!(w.min.is_none() || r.s.len() == nb);
    }
    let mut acc = [_mm512_setzero_ps(); R];
    let off = _mm512_set1_epi32(w.offset);
    for g0 in (0..nb).step_by(16) {
        let n = (nb - g0).min(16);
        let k = lane_mask(n);
        // SAFETY: group g0 occupies bytes 32*g0 .. 32*(g0+n) of the weight
        // and activation rows and entries g0..g0+n of the per-block arrays
        // (lengths asserted above); masked loads touch only those.
        unsafe {
            let wp = w.u.as_ptr().add(32 * g0);
            let wv: [__m512i; 8] = std::array::from_fn(|t| {
                _mm512_maskz_loadu_epi32(k, wp.add(t * 4 * n) as *const i32)
            });
            let dw = _mm512_maskz_loadu_ps(k, w.d.as_ptr().add(g0));
            let mw = w.min.map(|m| _mm512_maskz_loadu_ps(k, m.as_ptr().add(g0)));
            for (r, acc) in a.iter().zip(acc.iter_mut()) {
                let xp = r.q.as_ptr().add(32 * g0);
                let mut isum = _mm512_setzero_si512();
                for (t, wt) in wv.iter().enumerate() {
                    let xv = _mm512_maskz_loadu_epi32(k, xp.add(t * 4 * n) as *const i32);
                    isum = _mm512_dpbusd_epi32(isum, *wt, xv);
                }
                let sums = _mm512_maskz_loadu_epi32(k, r.sums.as_ptr().add(g0));
                isum = _mm512_sub_epi32(isum, _mm512_mullo_epi32(sums, off));
                let scale = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(k, r.d.as_ptr().add(g0)));
                let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale);
                if let Some(mw) = mw {
                    v = _mm512_add_ps(
                        v,
                        _mm512_mul_ps(mw, _mm512_maskz_loadu_ps(k, r.s.as_ptr().add(g0))),
                    );
                }
                *acc = _mm512_mask_add_ps(*acc, k, *acc, v);
            }
        }
    }
    acc.map(|v| fold16(v))
}
