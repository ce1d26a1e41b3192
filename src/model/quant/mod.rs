//! Stored tensor formats (GGUF block quantizations and plain floats): block
//! layouts, decoding, activation quantization, and the scalar reference dot
//! products that define the CPU kernels' numerics.
//!
//! Numerics (every kernel, scalar or SIMD, reproduces these bit for bit):
//! - Weights stay in their stored format. Activations are quantized per row
//!   into the 8-bit format ggml's CPU backend pairs with each weight type
//!   ([`ActFormat`]): Q8_0 for Q8_0 and Q5_0, Q8_1 (scale plus f16 block
//!   sum) for Q4_1, Q8_K (256 values, f32 scale, per-16 sums) for Q4_K and
//!   Q6_K. F32/F16/BF16 weights are widened to f32 and meet x in f32.
//! - Per block `b` the integer dot `I_b` is exact (i32, no overflow for any
//!   stored bytes), so any SIMD evaluation order gives the same integer.
//! - The block's float contribution is `v_b = f32(I_b) * (dw_b * dx_b)`, plus
//!   `f32(m_b) * s_b` (Q4_1) or minus `f32(M_b) * (dmin_b * dx_b)` (Q4_K, with
//!   `M_b` the exact min-weighted activation sum); every product and sum is a
//!   separately rounded f32 operation (no fused multiply-add).
//! - `v_b` is added into lane `b % 16`, lanes in block order; float weights
//!   add `w_k * x_k` into lane `k % 64`. Lanes are then summed by halving
//!   (lane `i += lane i + w` for `w = n/2, ..., 1`), see [`lanes`].
//!
//!   So a dot depends only on its own weight row and activation row: the
//!   result is the same for any batch size, batch neighbours or thread count.

pub mod activation;
pub(crate) mod float;
pub mod lanes;
pub(crate) mod q4_1;
pub(crate) mod q4_k;
pub(crate) mod q5_0;
pub(crate) mod q6_k;
pub(crate) mod q8_0;

pub use activation::{ActFormat, ActLayout, Q8Row, QuantActs};

/// A stored element format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_1,
    Q5_0,
    Q4K,
    Q6K,
}

impl QType {
    /// Every format the engine runs.
    pub const ALL: [QType; 8] = [
        QType::F32,
        QType::F16,
        QType::BF16,
        QType::Q8_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q4K,
        QType::Q6K,
    ];

    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            QType::F32 | QType::F16 | QType::BF16 => 1,
            QType::Q8_0 | QType::Q4_1 | QType::Q5_0 => 32,
            QType::Q4K | QType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::F32 => 4,
            QType::F16 | QType::BF16 => 2,
            QType::Q8_0 => 34,
            QType::Q4_1 => 20,
            QType::Q5_0 => 22,
            QType::Q4K => 144,
            QType::Q6K => 210,
        }
    }

    /// Bytes of one row of `cols` values (`cols` a multiple of the block size).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_size() * self.block_bytes()
    }

    /// The activation format this weight type is multiplied with.
    pub fn act_format(self) -> ActFormat {
        match self {
            QType::F32 | QType::F16 | QType::BF16 => ActFormat::F32,
            QType::Q8_0 | QType::Q5_0 => ActFormat::Q8_0,
            QType::Q4_1 => ActFormat::Q8_1,
            QType::Q4K | QType::Q6K => ActFormat::Q8K,
        }
    }
}

/// Activation row handed to a reference dot product: plain f32 for float
/// weights, quantized for block formats.
#[derive(Debug, Clone, Copy)]
pub enum ActRow<'a> {
    F32(&'a [f32]),
    Q8(Q8Row<'a>),
}

/// Decodes one row of `out.len()` values stored as `qtype` in `bytes`.
///
/// Panics when `out.len()` is not a whole number of blocks or `bytes` is not
/// exactly one such row: both come from a validated [`Tensor`] shape.
///
/// [`Tensor`]: crate::model::tensor::Tensor
pub fn dequantize_row(qtype: QType, bytes: &[u8], out: &mut [f32]) {
    let bs = qtype.block_size();
    assert!(
        out.len().is_multiple_of(bs) && bytes.len() == qtype.row_bytes(out.len()),
        "dequantize_row: {} bytes do not hold {} values of {qtype:?}",
        bytes.len(),
        out.len()
    );
    let bb = qtype.block_bytes();
    let decode: fn(&[u8], &mut [f32]) = match qtype {
        QType::F32 | QType::F16 | QType::BF16 => {
            return float::decode_row(qtype, bytes, out);
        }
        QType::Q8_0 => q8_0::decode_block,
        QType::Q4_1 => q4_1::decode_block,
        QType::Q5_0 => q5_0::decode_block,
        QType::Q4K => q4_k::decode_block,
        QType::Q6K => q6_k::decode_block,
    };
    for (blk, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bs)) {
        decode(blk, o);
    }
}

/// Reference dot product of one stored weight row with one activation row,
/// following the numerics in the module header. `act` must be in
/// `qtype.act_format()` and of the row's length; panics otherwise.
pub fn dot_ref(qtype: QType, w_row: &[u8], act: ActRow<'_>) -> f32 {
    match (qtype, act) {
        (QType::F32 | QType::F16 | QType::BF16, ActRow::F32(x)) => float::dot_ref(qtype, w_row, x),
        (QType::Q8_0, ActRow::Q8(a)) => q8_0::dot_ref(w_row, &a),
        (QType::Q4_1, ActRow::Q8(a)) => q4_1::dot_ref(w_row, &a),
        (QType::Q5_0, ActRow::Q8(a)) => q5_0::dot_ref(w_row, &a),
        (QType::Q4K, ActRow::Q8(a)) => q4_k::dot_ref(w_row, &a),
        (QType::Q6K, ActRow::Q8(a)) => q6_k::dot_ref(w_row, &a),
        (q, _) => panic!("dot_ref: activation row does not match weight type {q:?}"),
    }
}

/// Reads a little-endian f16 at `b[0..2]` as f32 (exact).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
