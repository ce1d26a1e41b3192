//! A DeepSeek-V4 weight matrix kept in its stored format (FP8 E4M3 with
//! 128×128 E8M0 block scales, FP4 E2M1 with per-32 E8M0 scales, bf16 or
//! f32) and decoded on the fly by its matmul.
//!
//! Invariants:
//! - A `Matrix` exists only if its data and scale byte counts match its
//!   shape exactly, so kernels index without further checks.
//! - Decoded weights are exact: a code's value times a power-of-two scale
//!   needs no rounding (the smallest product, 2^−9·2^−127, is still an f32;
//!   only scales of 2^120 and up, absent from real checkpoints, overflow,
//!   and the NaN scale byte 255 gives NaN weights).
//! - Summation order, per output element, is fixed and independent of the
//!   batch size, the element's batch neighbours and the thread count:
//!   columns go in K-blocks of 128 (the last may be short); inside a block
//!   column c's product w·x (rounded) is added into lane c mod 32 in column
//!   order, the lanes are folded by halving (lane i += lane i + h for
//!   h = 16, 8, 4, 2, 1) into the block's partial sum, and the partial sums
//!   are added to 0.0 in block order. No fused multiply-adds.

use std::ops::Range;

use rayon::prelude::*;

use super::codec::{E2M1_LUT, E4M3_LUT, E8M0_LUT, bf16_bits_to_f32};
use crate::model::tensor::Storage;

/// FP8 scale blocks are 128×128 weights.
pub const FP8_BLOCK: usize = 128;
/// FP4 has one scale per row per 32 inputs.
pub const FP4_GROUP: usize = 32;
/// Columns summed into one partial sum; a multiple of both scale widths,
/// so a K-block's weights are decoded with whole scale groups.
const K_BLOCK: usize = 128;
/// Accumulator lanes inside a K-block: enough independent chains for the
/// compiler to keep vector units busy.
const LANES: usize = 32;
/// Weight rows decoded together, so each activation block is read once per
/// tile rather than once per row; also rayon's unit of work.
const TILE_ROWS: usize = 8;
/// Products smaller than this run on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Bytes of one tensor inside a memory map or an owned buffer.
#[derive(Debug, Clone)]
pub struct Bytes {
    storage: Storage,
    offset: usize,
    len: usize,
}

impl Bytes {
    /// `storage[offset..offset + len]`, or `None` if that is out of bounds.
    pub fn new(storage: Storage, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (end <= storage.as_slice().len()).then_some(Bytes {
            storage,
            offset,
            len,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage.as_slice()[self.offset..self.offset + self.len]
    }
}

/// How a matrix's data bytes encode its weights.
#[derive(Debug, Clone)]
pub enum WeightFormat {
    /// F8_E4M3 values, one F8_E8M0 scale per 128×128 block; scale grid
    /// ceil(rows/128) × ceil(cols/128), row-major.
    Fp8 { scales: Bytes },
    /// E2M1 pairs in I8 bytes (low nibble = even input index), one F8_E8M0
    /// scale per row per 32 inputs (grid rows × cols/32).
    Fp4 { scales: Bytes },
    /// Little-endian bf16.
    Bf16,
    /// Little-endian f32.
    F32,
}

impl WeightFormat {
    pub fn name(&self) -> &'static str {
        match self {
            WeightFormat::Fp8 { .. } => "FP8",
            WeightFormat::Fp4 { .. } => "FP4",
            WeightFormat::Bf16 => "BF16",
            WeightFormat::F32 => "F32",
        }
    }
}

/// Why stored bytes cannot form a matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error(
        "tensor `{tensor}`: a {rows}×{cols} {format} matrix needs {expected} {part} bytes, found {found}"
    )]
    Length {
        tensor: String,
        format: &'static str,
        part: &'static str,
        rows: usize,
        cols: usize,
        expected: usize,
        found: usize,
    },
    #[error("tensor `{tensor}`: FP4 needs a multiple of 32 columns, found {cols}")]
    Fp4Columns { tensor: String, cols: usize },
    #[error("tensor `{tensor}`: shape {rows}×{cols} is too large to address")]
    TooLarge {
        tensor: String,
        rows: usize,
        cols: usize,
    },
}

/// A `rows × cols` weight matrix (rows = outputs, cols = inputs).
#[derive(Debug, Clone)]
pub struct Matrix {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub format: WeightFormat,
    data: Bytes,
}

impl Matrix {
    /// Checks that `data` (and the format's scales) hold exactly the bytes
    /// the shape needs.
    pub fn new(
        name: impl Into<String>,
        rows: usize,
        cols: usize,
        format: WeightFormat,
        data: Bytes,
    ) -> Result<Matrix, MatrixError> {
        let name = name.into();
        let too_large = || MatrixError::TooLarge {
            tensor: name.clone(),
            rows,
            cols,
        };
        let count = rows.checked_mul(cols).ok_or_else(too_large)?;
        let (data_len, scale_len) = match &format {
            WeightFormat::Fp8 { scales } => {
                let grid = rows.div_ceil(FP8_BLOCK) * cols.div_ceil(FP8_BLOCK);
                (count, Some((scales, grid)))
            }
            WeightFormat::Fp4 { scales } => {
                if !cols.is_multiple_of(FP4_GROUP) {
                    return Err(MatrixError::Fp4Columns { tensor: name, cols });
                }
                (count / 2, Some((scales, count / FP4_GROUP)))
            }
            WeightFormat::Bf16 => (count.checked_mul(2).ok_or_else(too_large)?, None),
            WeightFormat::F32 => (count.checked_mul(4).ok_or_else(too_large)?, None),
        };
        let check = |part, expected: usize, found: usize| {
            if expected == found {
                return Ok(());
            }
            Err(MatrixError::Length {
                tensor: name.clone(),
                format: format.name(),
                part,
                rows,
                cols,
                expected,
                found,
            })
        };
        check("data", data_len, data.as_slice().len())?;
        if let Some((scales, expected)) = scale_len {
            check("scale", expected, scales.as_slice().len())?;
        }
        Ok(Matrix {
            name,
            rows,
            cols,
            format,
            data,
        })
    }

    /// Row `r`'s exact f32 weights.
    ///
    /// # Panics
    /// If `r >= rows` or `out.len() != cols` (caller bugs).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows, "{}: row {r} of {}", self.name, self.rows);
        assert_eq!(out.len(), self.cols, "{}: row length", self.name);
        for (b, span) in out.chunks_mut(K_BLOCK).enumerate() {
            self.decode_span(r, b * K_BLOCK, span);
        }
    }

    /// `out[i*rows + r] = Σ_c W[r,c]·x[i*cols + c]` for `i in 0..n`, in the
    /// fixed order of the module header; parallel over row tiles.
    ///
    /// # Panics
    /// If `x.len() != n*cols` or `out.len() != n*rows` (caller bugs).
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) {
        self.matmul_rows(0..self.rows, x, n, out);
    }

    /// [`Matrix::matmul`] restricted to weight rows `rows` (DeepSeek-V4's
    /// grouped `wo_a` applies one row band per head group): `out` is
    /// `n × rows.len()`, each element bit-identical to the full product's.
    pub fn matmul_rows(&self, rows: Range<usize>, x: &[f32], n: usize, out: &mut [f32]) {
        let m = rows.len();
        assert!(rows.end <= self.rows, "{}: row range", self.name);
        assert_eq!(x.len(), n * self.cols, "{}: activation length", self.name);
        assert_eq!(out.len(), n * m, "{}: output length", self.name);
        match n {
            0 => {}
            // Row-major and batch-major layouts coincide.
            1 => self.matmul_row_major(rows.start, x, 1, out),
            _ => {
                let mut by_row = vec![0.0f32; m * n];
                self.matmul_row_major(rows.start, x, n, &mut by_row);
                for (i, out_i) in out.chunks_exact_mut(m).enumerate() {
                    for (r, o) in out_i.iter_mut().enumerate() {
                        *o = by_row[r * n + i];
                    }
                }
            }
        }
    }

    /// The stored weight bytes and, for FP8 and FP4, the scale bytes (what a
    /// device backend copies to decode the matrix itself).
    pub fn stored(&self) -> (&[u8], Option<&[u8]>) {
        let scales = match &self.format {
            WeightFormat::Fp8 { scales } | WeightFormat::Fp4 { scales } => Some(scales.as_slice()),
            WeightFormat::Bf16 | WeightFormat::F32 => None,
        };
        (self.data.as_slice(), scales)
    }

    /// Stored bytes this matrix refers to: data plus scales.
    pub fn bytes_resident(&self) -> usize {
        let (data, scales) = self.stored();
        data.len() + scales.map_or(0, <[u8]>::len)
    }

    /// Rows `r0..r0 + out.len()/n` of the product, as `out[(r - r0)*n + i]`.
    fn matmul_row_major(&self, r0: usize, x: &[f32], n: usize, out: &mut [f32]) {
        let tile =
            |(t, tile): (usize, &mut [f32])| self.matmul_tile(r0 + t * TILE_ROWS, x, n, tile);
        // Below this many multiply-adds a fork-join costs more than it saves
        // (a decode step of a small model is mostly such products).
        if out.len() * self.cols < PARALLEL_MIN_MACS {
            out.chunks_mut(TILE_ROWS * n).enumerate().for_each(tile);
        } else {
            out.par_chunks_mut(TILE_ROWS * n).enumerate().for_each(tile);
        }
    }

    /// Rows `r0..r0 + tile.len()/n` into `tile[(r - r0)*n + i]`. Each
    /// element gets its K-block partial sums in block order whatever the
    /// tile, so tiling never changes a result.
    fn matmul_tile(&self, r0: usize, x: &[f32], n: usize, tile: &mut [f32]) {
        let tile_rows = tile.len() / n;
        let mut w = [[0.0f32; K_BLOCK]; TILE_ROWS];
        tile.fill(0.0);
        for c0 in (0..self.cols).step_by(K_BLOCK) {
            let width = K_BLOCK.min(self.cols - c0);
            for (t, wt) in w[..tile_rows].iter_mut().enumerate() {
                self.decode_span(r0 + t, c0, &mut wt[..width]);
            }
            for i in 0..n {
                let xb = &x[i * self.cols + c0..][..width];
                for (t, wt) in w[..tile_rows].iter().enumerate() {
                    tile[t * n + i] += block_dot(&wt[..width], xb);
                }
            }
        }
    }

    /// Decodes `dst.len()` weights of row `r` from column `c0`, a multiple
    /// of `K_BLOCK`; the span stays inside one K-block, so inside one FP8
    /// scale block, and for FP4 covers whole scale groups.
    fn decode_span(&self, r: usize, c0: usize, dst: &mut [f32]) {
        let data = self.data.as_slice();
        let (start, len) = (r * self.cols + c0, dst.len());
        match &self.format {
            WeightFormat::Fp8 { scales } => {
                let grid_cols = self.cols.div_ceil(FP8_BLOCK);
                let scale_byte = scales.as_slice()[r / FP8_BLOCK * grid_cols + c0 / FP8_BLOCK];
                let s = E8M0_LUT[usize::from(scale_byte)];
                for (d, &b) in dst.iter_mut().zip(&data[start..start + len]) {
                    *d = E4M3_LUT[usize::from(b)] * s;
                }
            }
            WeightFormat::Fp4 { scales } => {
                let bytes = &data[start / 2..(start + len) / 2];
                let group_scales = &scales.as_slice()[start / FP4_GROUP..];
                let groups = dst
                    .chunks_exact_mut(FP4_GROUP)
                    .zip(bytes.chunks_exact(FP4_GROUP / 2));
                for ((d, b), &scale_byte) in groups.zip(group_scales) {
                    let s = E8M0_LUT[usize::from(scale_byte)];
                    for (pair, &byte) in d.chunks_exact_mut(2).zip(b) {
                        pair[0] = E2M1_LUT[usize::from(byte & 0xF)] * s;
                        pair[1] = E2M1_LUT[usize::from(byte >> 4)] * s;
                    }
                }
            }
            WeightFormat::Bf16 => {
                let bytes = &data[2 * start..2 * (start + len)];
                for (d, b) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                    *d = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
            }
            WeightFormat::F32 => {
                let bytes = &data[4 * start..4 * (start + len)];
                for (d, b) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
                    *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }
}

/// One K-block's partial sum in the module header's order: product of
/// column c into lane c mod `LANES`, lanes folded by halving.
///
/// Kept out of line: inlined into the tile loop, LLVM stops vectorizing
/// the lane updates (measured: 3× slower).
#[inline(never)]
fn block_dot(w: &[f32], x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (w_full, w_rest) = w.as_chunks::<LANES>();
    let (x_full, x_rest) = x.as_chunks::<LANES>();
    for (wc, xc) in w_full.iter().zip(x_full) {
        for ((lane, a), b) in lanes.iter_mut().zip(wc).zip(xc) {
            *lane += a * b;
        }
    }
    for ((lane, a), b) in lanes.iter_mut().zip(w_rest).zip(x_rest) {
        *lane += a * b;
    }
    let mut half = LANES / 2;
    while half > 0 {
        let (lo, hi) = lanes.split_at_mut(half);
        for (a, b) in lo.iter_mut().zip(hi) {
            *a += *b;
        }
        half /= 2;
    }
    lanes[0]
}

#[cfg(test)]
mod tests;
