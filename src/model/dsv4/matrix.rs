//! DeepSeek-V4 weight matrices in their stored formats, decoded on the fly:
//! FP8 E4M3 with one E8M0 scale per 128×128 block, FP4 E2M1 pairs (low
//! nibble = even input) with one E8M0 scale per row per 32 inputs, BF16 and
//! F32.
//!
//! Invariant (batch invariance): every output element is one weight row
//! decoded to f32 exactly, dotted with one activation row by [`dot`], whose
//! summation order is fixed: eight interleaved partial sums over the inputs,
//! combined in a fixed tree. Neither the number of activation rows, nor the
//! row range asked for, nor the thread count changes a bit of the result.

use std::ops::Range;

use rayon::prelude::*;

use super::codec::{E2M1_LUT, E4M3_LUT, E8M0_LUT, bf16_bits_to_f32};
use crate::model::tensor::Storage;

/// Edge of an FP8 scale block.
pub const FP8_BLOCK: usize = 128;
/// Inputs per FP4 scale.
pub const FP4_BLOCK: usize = 32;

/// The bytes of one tensor inside a memory map or an owned buffer.
#[derive(Debug, Clone)]
pub struct Bytes {
    storage: Storage,
    offset: usize,
    len: usize,
}

impl Bytes {
    /// `None` when `offset + len` runs past the storage.
    pub fn new(storage: Storage, offset: usize, len: usize) -> Option<Bytes> {
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

#[derive(Debug, Clone)]
pub enum WeightFormat {
    /// E4M3 bytes; scales on a ceil(rows/128) × ceil(cols/128) grid.
    Fp8 {
        scales: Bytes,
    },
    /// E2M1 pairs; scales on a rows × cols/32 grid.
    Fp4 {
        scales: Bytes,
    },
    Bf16,
    F32,
}

#[derive(Debug, thiserror::Error)]
#[error("tensor `{tensor}`: {what} is {found} bytes, expected {expected}")]
pub struct MatrixError {
    pub tensor: String,
    pub what: &'static str,
    pub expected: usize,
    pub found: usize,
}

#[derive(Debug, Clone)]
pub struct Matrix {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub format: WeightFormat,
    data: Bytes,
}

/// Σ a_i·b_i in the fixed order of the module invariant.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for (ca, cb) in a[..chunks * 8]
        .chunks_exact(8)
        .zip(b[..chunks * 8].chunks_exact(8))
    {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    for (i, (x, y)) in a[chunks * 8..].iter().zip(&b[chunks * 8..]).enumerate() {
        acc[i] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

impl Matrix {
    /// Checks the data (and scale) sizes against the shape.
    pub fn new(
        name: &str,
        rows: usize,
        cols: usize,
        format: WeightFormat,
        data: Bytes,
    ) -> Result<Matrix, MatrixError> {
        let err = |what, expected, found| MatrixError {
            tensor: name.to_string(),
            what,
            expected,
            found,
        };
        let (data_len, scale_len) = match &format {
            WeightFormat::Fp8 { scales } => (
                rows * cols,
                Some((rows.div_ceil(FP8_BLOCK) * cols.div_ceil(FP8_BLOCK), scales)),
            ),
            WeightFormat::Fp4 { scales } => {
                if !cols.is_multiple_of(FP4_BLOCK) {
                    return Err(err(
                        "a row (inputs not a multiple of 32)",
                        cols.next_multiple_of(FP4_BLOCK) / 2,
                        cols / 2,
                    ));
                }
                (rows * cols / 2, Some((rows * cols / FP4_BLOCK, scales)))
            }
            WeightFormat::Bf16 => (rows * cols * 2, None),
            WeightFormat::F32 => (rows * cols * 4, None),
        };
        if data.len != data_len {
            return Err(err("the data", data_len, data.len));
        }
        if let Some((want, scales)) = scale_len
            && scales.len != want
        {
            return Err(err("the scale grid", want, scales.len));
        }
        Ok(Matrix {
            name: name.to_string(),
            rows,
            cols,
            format,
            data,
        })
    }

    /// Stored bytes, scales included.
    pub fn bytes_resident(&self) -> usize {
        self.data.len
            + match &self.format {
                WeightFormat::Fp8 { scales } | WeightFormat::Fp4 { scales } => scales.len,
                WeightFormat::Bf16 | WeightFormat::F32 => 0,
            }
    }

    /// Row `r` as exact f32 values.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let cols = self.cols;
        let data = self.data.as_slice();
        match &self.format {
            WeightFormat::Fp8 { scales } => {
                let s = scales.as_slice();
                let grid = cols.div_ceil(FP8_BLOCK);
                let row = &data[r * cols..(r + 1) * cols];
                for (b, (o, w)) in out
                    .chunks_mut(FP8_BLOCK)
                    .zip(row.chunks(FP8_BLOCK))
                    .enumerate()
                {
                    let scale = E8M0_LUT[s[(r / FP8_BLOCK) * grid + b] as usize];
                    o.iter_mut()
                        .zip(w)
                        .for_each(|(v, &q)| *v = E4M3_LUT[q as usize] * scale);
                }
            }
            WeightFormat::Fp4 { scales } => {
                let s = &scales.as_slice()[r * cols / FP4_BLOCK..(r + 1) * cols / FP4_BLOCK];
                let row = &data[r * cols / 2..(r + 1) * cols / 2];
                for ((o, w), &e) in out
                    .chunks_mut(FP4_BLOCK)
                    .zip(row.chunks(FP4_BLOCK / 2))
                    .zip(s)
                {
                    let scale = E8M0_LUT[e as usize];
                    for (pair, &byte) in o.chunks_exact_mut(2).zip(w) {
                        pair[0] = E2M1_LUT[(byte & 0x0F) as usize] * scale;
                        pair[1] = E2M1_LUT[(byte >> 4) as usize] * scale;
                    }
                }
            }
            WeightFormat::Bf16 => {
                let row = &data[r * cols * 2..(r + 1) * cols * 2];
                for (v, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *v = bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            WeightFormat::F32 => {
                let row = &data[r * cols * 4..(r + 1) * cols * 4];
                for (v, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
    }

    /// `out[i·rows + r] = Σ_c W[r, c]·x[i·cols + c]` for `n` rows of `x`.
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) {
        self.matmul_rows(0..self.rows, x, n, out);
    }

    /// [`Matrix::matmul`] restricted to weight rows `rows`: `out` is
    /// `n × rows.len()`.
    pub fn matmul_rows(&self, rows: Range<usize>, x: &[f32], n: usize, out: &mut [f32]) {
        let (m, k) = (rows.len(), self.cols);
        debug_assert_eq!(x.len(), n * k);
        debug_assert_eq!(out.len(), n * m);
        if n == 0 || m == 0 {
            return;
        }
        // Weight-row tiles in parallel; each tile decodes its rows once and
        // writes a transposed block, scattered after.
        const TILE: usize = 16;
        let mut t = vec![0.0f32; m * n];
        t.par_chunks_mut(TILE * n)
            .enumerate()
            .for_each(|(ti, block)| {
                let mut w = vec![0.0f32; k];
                for (j, dst) in block.chunks_exact_mut(n).enumerate() {
                    self.dequantize_row(rows.start + ti * TILE + j, &mut w);
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = dot(&w, &x[i * k..(i + 1) * k]);
                    }
                }
            });
        for (r, col) in t.chunks_exact(n).enumerate() {
            for (i, v) in col.iter().enumerate() {
                out[i * m + r] = *v;
            }
        }
    }
}
