//! Where the forward pass applies DeepSeek-V4's low-precision simulation.
//!
//! The official reference runs bf16 activations and, at fixed points,
//! round-trips values through the formats the production kernels use: FP8
//! activations (power-of-two scale per 128 inputs) before every FP8/FP4
//! matmul, FP8 on the non-RoPE KV dims (per 64), and Hadamard + FP4 (per 32)
//! in the indexer. [`Precision::Official`] is that graph: it is the model's
//! numerics, what a job runs.
//!
//! [`Precision::Exact`] switches every simulation point off and keeps f32
//! throughout. It exists for one reason: the independent reference we can
//! run (HF transformers' `DeepseekV4ForCausalLM`) has none of these points,
//! so structural parity with it (to ~1e-4) is only checkable in this mode.
//! The Hadamard is orthogonal, so dropping it changes no indexer score in
//! exact arithmetic.

use super::matrix::Matrix;
use super::numerics::{fp4_round_trip, fp8_round_trip, hadamard_in_place, round_bf16_in_place};

/// Inputs per activation-quantization block before FP8/FP4 matmuls.
const ACT_BLOCK: usize = 128;
/// Values per FP8 scale on the KV round trip.
const KV_BLOCK: usize = 64;
/// Values per FP4 scale in the indexer.
const INDEX_BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// The official numerics (bf16 activations, FP8/FP4 simulation points).
    Official,
    /// f32 everywhere, no simulation (parity with HF transformers only).
    Exact,
}

/// How the reference computes a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gemm {
    /// FP8/FP4 weights: FP8 activation quantization in, bf16 out.
    Quantized,
    /// A bf16 einsum (wo_a, indexer weights): bf16 out.
    Bf16,
    /// Computed in f32 (compressors, router gate, head, mHC).
    F32,
}

impl Precision {
    fn official(self) -> bool {
        self == Precision::Official
    }

    /// Rounds to bf16 where the reference stores a bf16 tensor.
    pub fn bf16(self, x: &mut [f32]) {
        if self.official() {
            round_bf16_in_place(x);
        }
    }

    /// The FP8 round trip of a KV row's non-RoPE dims.
    pub fn kv(self, row: &mut [f32], nope: usize) {
        if self.official() {
            fp8_round_trip(&mut row[..nope], KV_BLOCK);
        }
    }

    /// Hadamard rotation then FP4 round trip of an indexer query head or key.
    pub fn index(self, row: &mut [f32]) {
        if self.official() {
            hadamard_in_place(row).expect("config validation keeps index_head_dim a power of two");
            fp4_round_trip(row, INDEX_BLOCK);
        }
    }

    /// `y = W · x` for `n` rows of `x`, with the reference's precision.
    pub fn linear(self, m: &Matrix, x: &[f32], n: usize, gemm: Gemm) -> Vec<f32> {
        let mut out = vec![0.0f32; n * m.rows];
        if self.official() && gemm == Gemm::Quantized {
            let mut q = x.to_vec();
            q.chunks_exact_mut(m.cols)
                .for_each(|row| fp8_round_trip(row, ACT_BLOCK));
            m.matmul(&q, n, &mut out);
        } else {
            m.matmul(x, n, &mut out);
        }
        if gemm != Gemm::F32 {
            self.bf16(&mut out);
        }
        out
    }
}
