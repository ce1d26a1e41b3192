//! Activation quantization: f32 rows into the 8-bit block formats ggml's CPU
//! backend pairs with each weight type, with ggml's x86 rounding.
//!
//! - Q8_0 / Q8_1 (blocks of 32): `amax = max |x|`, `d = amax / 127`,
//!   `q = round_half_even(x * (127 / amax))` (0 when `amax` is 0); the scale
//!   used in dot products is `d` rounded to f16. Q8_1 also keeps
//!   `s = f16(d * sum(q))` with the unrounded `d`, as ggml does.
//! - Q8_K (blocks of 256): `max` = the value of largest magnitude (first one
//!   on ties), `iscale = -127 / max`, `q = min(127, round_half_even(iscale *
//!   x))`, `d = 1 / iscale` kept in f32 (so the largest value maps to -127).
//!
//! Every block also carries exact integer sums of its quants: per 32 values
//! for Q8_0/Q8_1, per 16 for Q8_K. Kernels use them to turn unsigned weight
//! quants with an offset (Q8_0 + 128, Q5_0, Q6_K) back into signed dots.
//!
//! Layout: Q8_K rows are in natural order. Q8_0/Q8_1 rows are in the
//! layout the kernel family asks for ([`ActLayout`]): natural order, or
//! groups of up to 16 blocks so that one 512-bit register holds 4 values of
//! each of 16 blocks ([`group_pos`]), where an int8 dot instruction leaves
//! one block's partial sum per 32-bit lane and no horizontal sums are needed.
//! The layout only permutes bytes, so every dot is the same either way.
//! Quantizing a row depends only on that row.

use half::f16;
use rayon::prelude::*;

/// An activation format (the right-hand side of a weight × activation dot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActFormat {
    /// Unquantized; float weights.
    F32,
    /// 32 values, f16 scale.
    Q8_0,
    /// 32 values, f16 scale and f16 scaled sum.
    Q8_1,
    /// 256 values, f32 scale, sums per 16 values.
    Q8K,
}

impl ActFormat {
    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            ActFormat::F32 => 1,
            ActFormat::Q8_0 | ActFormat::Q8_1 => 32,
            ActFormat::Q8K => 256,
        }
    }

    /// Values covered by one entry of the integer sums.
    pub fn sum_span(self) -> usize {
        match self {
            ActFormat::F32 => 1,
            ActFormat::Q8_0 | ActFormat::Q8_1 => 32,
            ActFormat::Q8K => 16,
        }
    }
}

/// How the quants of a Q8_0/Q8_1 row are ordered (Q8_K rows are always in
/// natural order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActLayout {
    /// Value `v` of block `b` at byte `32b + v`.
    Natural,
    /// The 16-block groups of [`group_pos`].
    Grouped,
}

/// Byte position of value `v` (0..32) of block `b` in a Q8_0/Q8_1 row of
/// `nblocks` blocks. Blocks `16g..16g+n` (n = 16 except at the row's end)
/// fill bytes `512g..512g+32n`: value group `v / 4` of every block, then the
/// next group, 4 bytes per block.
#[inline(always)]
pub fn group_pos(nblocks: usize, b: usize, v: usize) -> usize {
    let g0 = b / 16 * 16;
    let n = (nblocks - g0).min(16);
    g0 * 32 + (v / 4) * (4 * n) + (b - g0) * 4 + v % 4
}

/// Quantized activation rows, reusable across calls (buffers only grow).
#[derive(Debug, Clone)]
pub struct QuantActs {
    format: ActFormat,
    layout: ActLayout,
    rows: usize,
    cols: usize,
    q: Vec<i8>,
    /// Per row: the block scales `d`, then the Q8_1 sums `s` (0 otherwise).
    scales: Vec<f32>,
    sums: Vec<i32>,
}

/// One quantized activation row.
#[derive(Debug, Clone, Copy)]
pub struct Q8Row<'a> {
    /// Quants, `cols` bytes, in `layout` (see [`Q8Row::pos`]).
    pub q: &'a [i8],
    /// The order of `q` for 32-value blocks.
    pub layout: ActLayout,
    /// Scale per block.
    pub d: &'a [f32],
    /// Q8_1: f16-rounded `d * sum(q)` per block; empty for other formats.
    pub s: &'a [f32],
    /// Exact sum of quants per `sum_span` values, natural order.
    pub sums: &'a [i32],
}

impl Default for QuantActs {
    fn default() -> Self {
        Self::new()
    }
}

impl QuantActs {
    pub fn new() -> Self {
        QuantActs {
            format: ActFormat::Q8_0,
            layout: ActLayout::Natural,
            rows: 0,
            cols: 0,
            q: Vec::new(),
            scales: Vec::new(),
            sums: Vec::new(),
        }
    }

    pub fn format(&self) -> ActFormat {
        self.format
    }

    pub fn layout(&self) -> ActLayout {
        self.layout
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Quantizes the row-major `x` (rows of `cols` values) into `format`,
    /// 32-value blocks in `layout`. Panics if `format` is F32 or `x` is not
    /// whole rows of whole blocks: callers derive both from a weight
    /// tensor's validated shape.
    pub fn quantize(&mut self, format: ActFormat, layout: ActLayout, x: &[f32], cols: usize) {
        assert!(
            format != ActFormat::F32,
            "F32 activations are not quantized"
        );
        let bs = format.block_size();
        assert!(
            cols > 0 && cols.is_multiple_of(bs) && x.len().is_multiple_of(cols),
            "quantize: {} values are not rows of {cols} in blocks of {bs}",
            x.len()
        );
        let rows = x.len() / cols;
        let nb = cols / bs;
        let ns = cols / format.sum_span();
        let layout = if format == ActFormat::Q8K {
            ActLayout::Natural
        } else {
            layout
        };
        self.format = format;
        self.layout = layout;
        self.rows = rows;
        self.cols = cols;
        self.q.resize(rows * cols, 0);
        self.scales.resize(rows * 2 * nb, 0.0);
        self.sums.resize(rows * ns, 0);
        let q = &mut self.q[..rows * cols];
        let sc = &mut self.scales[..rows * 2 * nb];
        let su = &mut self.sums[..rows * ns];
        let one = |((xr, qr), (sr, ur)): RowParts<'_>| {
            let (d, s) = sr.split_at_mut(nb);
            match format {
                ActFormat::Q8K => quantize_q8_k(xr, qr, d, ur),
                _ => quantize_q8_32(xr, layout, qr, d, s, ur),
            }
        };
        // Rows are independent, so splitting them across threads changes no bits.
        if rows >= 4 {
            x.par_chunks(cols)
                .zip(q.par_chunks_mut(cols))
                .zip(sc.par_chunks_mut(2 * nb).zip(su.par_chunks_mut(ns)))
                .for_each(one);
        } else {
            x.chunks(cols)
                .zip(q.chunks_mut(cols))
                .zip(sc.chunks_mut(2 * nb).zip(su.chunks_mut(ns)))
                .for_each(one);
        }
    }

    /// Row `i` (panics when out of range).
    pub fn row(&self, i: usize) -> Q8Row<'_> {
        assert!(i < self.rows, "activation row {i} of {}", self.rows);
        let nb = self.cols / self.format.block_size();
        let ns = self.cols / self.format.sum_span();
        let sc = &self.scales[i * 2 * nb..(i + 1) * 2 * nb];
        let s = if self.format == ActFormat::Q8_1 {
            &sc[nb..]
        } else {
            &sc[..0]
        };
        Q8Row {
            q: &self.q[i * self.cols..(i + 1) * self.cols],
            layout: self.layout,
            d: &sc[..nb],
            s,
            sums: &self.sums[i * ns..(i + 1) * ns],
        }
    }
}

impl Q8Row<'_> {
    /// Index in `q` of value `v` (0..32) of 32-value block `b`.
    #[inline(always)]
    pub fn pos(&self, b: usize, v: usize) -> usize {
        match self.layout {
            ActLayout::Natural => 32 * b + v,
            ActLayout::Grouped => group_pos(self.q.len() / 32, b, v),
        }
    }
}

/// One row's input and outputs: (x, quants), (scales then sums `s`, integer sums).
type RowParts<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [i32]));

/// Rounds to the nearest integer, ties to even, for |v| < 2^22: adding
/// 1.5 * 2^23 leaves no fraction bits, so the f32 addition itself rounds
/// (the same trick as ggml's `nearest_int`). Unlike `f32::round_ties_even`
/// it needs no libm call on baseline x86-64 and vectorizes.
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// Q8_0 and Q8_1 (the Q8_1 sums are computed either way; they are cheap).
fn quantize_q8_32(
    x: &[f32],
    layout: ActLayout,
    q: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    sums: &mut [i32],
) {
    let nb = x.len() / 32;
    for b in 0..nb {
        let xb = &x[32 * b..32 * b + 32];
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut tmp = [0i8; 32];
        let mut sum = 0i32;
        for (t, &v) in tmp.iter_mut().zip(xb) {
            *t = round_half_even(v * inv) as i8;
            sum += i32::from(*t);
        }
        d[b] = f16::from_f32(scale).to_f32();
        s[b] = f16::from_f32(scale * sum as f32).to_f32();
        sums[b] = sum;
        match layout {
            ActLayout::Natural => {
                q[32 * b..32 * b + 32].copy_from_slice(&tmp);
            }
            ActLayout::Grouped => {
                for (gi, chunk) in tmp.chunks_exact(4).enumerate() {
                    let p = group_pos(nb, b, 4 * gi);
                    q[p..p + 4].copy_from_slice(chunk);
                }
            }
        }
    }
}

fn quantize_q8_k(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
    for (b, (xb, qb)) in x.chunks_exact(256).zip(q.chunks_exact_mut(256)).enumerate() {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            d[b] = 0.0;
            qb.fill(0);
            sums[16 * b..16 * b + 16].fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (t, &v) in qb.iter_mut().zip(xb) {
            *t = (round_half_even(iscale * v) as i32).min(127) as i8;
        }
        for (g, chunk) in qb.chunks_exact(16).enumerate() {
            sums[16 * b + g] = chunk.iter().map(|&v| i32::from(v)).sum();
        }
        d[b] = 1.0 / iscale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_rounds_half_to_even_with_f16_scale() {
        // amax 127 gives inv = 1 exactly, so the quants are x rounded.
        let mut x = vec![0.0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        x[4] = -126.6;
        for layout in [ActLayout::Natural, ActLayout::Grouped] {
            let mut a = QuantActs::new();
            a.quantize(ActFormat::Q8_0, layout, &x, 32);
            let r = a.row(0);
            let got: Vec<i8> = (0..5).map(|v| r.q[r.pos(0, v)]).collect();
            assert_eq!(got, vec![127, 2, -4, 0, -127], "{layout:?}");
            assert_eq!(r.d[0], 1.0);
            assert_eq!(r.sums[0], 127 + 2 - 4 - 127);
            assert!(r.s.is_empty());
        }
    }

    #[test]
    fn layouts_hold_the_same_quants_at_their_positions() {
        let cols = 32 * 37;
        let x: Vec<f32> = (0..2 * cols)
            .map(|i| ((i * 7919) % 211) as f32 - 105.0)
            .collect();
        let (mut nat, mut grp) = (QuantActs::new(), QuantActs::new());
        nat.quantize(ActFormat::Q8_1, ActLayout::Natural, &x, cols);
        grp.quantize(ActFormat::Q8_1, ActLayout::Grouped, &x, cols);
        for i in 0..2 {
            let (n, g) = (nat.row(i), grp.row(i));
            assert_ne!(n.q, g.q, "the layouts differ");
            for b in 0..37 {
                for v in 0..32 {
                    assert_eq!(
                        n.q[n.pos(b, v)],
                        g.q[g.pos(b, v)],
                        "row {i} block {b} value {v}"
                    );
                }
            }
            assert_eq!((n.d, n.s, n.sums), (g.d, g.s, g.sums));
        }
    }

    #[test]
    fn q8_1_sum_is_f16_of_unrounded_scale_times_sum() {
        let mut x = vec![0.0f32; 64];
        x[0] = 0.1;
        x[1] = 0.05;
        x[40] = -3.0;
        let mut a = QuantActs::new();
        a.quantize(ActFormat::Q8_1, ActLayout::Natural, &x, 64);
        let r = a.row(0);
        let d = 0.1f32 / 127.0;
        // 0.05 * (127 / 0.1) = 63.5 (in f32 a hair off), rounded either way to 63 or 64.
        let q1 = (0.05f32 * (127.0 / 0.1f32)).round_ties_even() as i32;
        assert_eq!(r.sums[0], 127 + q1);
        assert_eq!(r.s[0], f16::from_f32(d * (127 + q1) as f32).to_f32());
        assert_eq!(r.d[0], f16::from_f32(d).to_f32());
        assert_eq!(r.sums[1], -127);
        assert_eq!(r.d[1], f16::from_f32(3.0 / 127.0).to_f32());
    }

    #[test]
    fn q8_k_maps_largest_magnitude_to_minus_127() {
        let mut x = vec![0.0f32; 256];
        x[3] = -2.0;
        x[7] = 1.0;
        x[20] = 2.0; // same magnitude later: the first one (-2) sets the sign
        let mut a = QuantActs::new();
        a.quantize(ActFormat::Q8K, ActLayout::Grouped, &x, 256);
        let r = a.row(0);
        assert_eq!(r.q[3], -127);
        assert_eq!(r.q[7], 64); // 63.5 rounds to even
        assert_eq!(r.q[20], 127);
        assert_eq!(r.d[0], 1.0 / (127.0 / 2.0));
        assert_eq!(r.sums[0], 64 - 127);
        assert_eq!(r.sums[1], 127);
        assert!(r.sums[2..].iter().all(|&s| s == 0));
    }

    #[test]
    fn magic_rounding_is_half_to_even() {
        let cases = [
            (2.5, 2.0),
            (3.5, 4.0),
            (-2.5, -2.0),
            (-3.5, -4.0),
            (0.49999997, 0.0),
            (126.5, 126.0),
            (-127.4, -127.0),
        ];
        for (v, want) in cases {
            assert_eq!(round_half_even(v), want, "{v}");
            assert_eq!(round_half_even(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn group_layout_is_a_permutation() {
        for nb in [1usize, 2, 15, 16, 17, 18, 33, 48] {
            let mut seen = vec![false; nb * 32];
            for b in 0..nb {
                for v in 0..32 {
                    let p = group_pos(nb, b, v);
                    assert!(!seen[p], "nb {nb}: position {p} used twice");
                    seen[p] = true;
                }
            }
        }
    }

    #[test]
    fn zero_block_quantizes_to_zero() {
        let mut a = QuantActs::new();
        a.quantize(ActFormat::Q8K, ActLayout::Natural, &[0.0; 256], 256);
        assert!(a.row(0).q.iter().all(|&v| v == 0));
        assert_eq!(a.row(0).d[0], 0.0);
        a.quantize(ActFormat::Q8_0, ActLayout::Grouped, &[0.0; 32], 32);
        assert!(a.row(0).q.iter().all(|&v| v == 0));
    }
}
