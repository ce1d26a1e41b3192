//! A dense model's weights copied to one GPU, in their stored formats
//! (GGUF blocks stay blocks; the kernels decode them on the fly). Norms and
//! biases, already f32 on the host, go over as f32.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::error::CudaError;
use crate::model::dense::{DenseWeights, LayerWeights};
use crate::model::quant::QType;
use crate::model::tensor::Tensor;

/// A matrix on the device: `rows` rows of `cols` values stored as `qtype`.
pub struct DeviceMatrix {
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    pub data: CudaSlice<u8>,
}

/// One transformer block on the device.
pub struct DeviceLayer {
    pub attn_norm: CudaSlice<f32>,
    pub wq: DeviceMatrix,
    pub wk: DeviceMatrix,
    pub wv: DeviceMatrix,
    /// Q, K and V biases (qwen2), or none (llama).
    pub qkv_bias: Option<[CudaSlice<f32>; 3]>,
    pub wo: DeviceMatrix,
    pub ffn_norm: CudaSlice<f32>,
    pub w_gate: DeviceMatrix,
    pub w_up: DeviceMatrix,
    pub w_down: DeviceMatrix,
}

/// The whole model on the device.
pub struct DeviceWeights {
    pub embed: DeviceMatrix,
    /// The output head; `None` when it is the embedding (tied).
    pub head: Option<DeviceMatrix>,
    pub final_norm: CudaSlice<f32>,
    pub layers: Vec<DeviceLayer>,
}

impl DeviceWeights {
    /// Bytes the weights take on the device (to check against free memory
    /// before copying anything).
    pub fn bytes_needed(w: &DenseWeights) -> usize {
        let layer_bytes: usize = w
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .map(|t| t.bytes().len())
            .sum();
        let head_bytes = if head_is_embedding(w) {
            0
        } else {
            w.head.bytes().len()
        };
        let matrices = w.embed.bytes().len() + layer_bytes + head_bytes;
        let c = &w.config;
        let vectors = (2 * c.n_layers + 1) * c.d_model
            + if c.qkv_bias {
                c.n_layers * (c.q_dim() + 2 * c.kv_dim())
            } else {
                0
            };
        matrices + 4 * vectors
    }

    /// Copies every tensor of `w` to the device behind `stream`.
    pub fn upload(w: &DenseWeights, stream: &Arc<CudaStream>) -> Result<DeviceWeights, CudaError> {
        let layers = w
            .layers
            .iter()
            .map(|l| upload_layer(l, stream))
            .collect::<Result<Vec<_>, _>>()?;
        let head = if head_is_embedding(w) {
            None
        } else {
            Some(matrix(&w.head, stream)?)
        };
        Ok(DeviceWeights {
            embed: matrix(&w.embed, stream)?,
            head,
            final_norm: vector(&w.final_norm, stream)?,
            layers,
        })
    }
}

/// Whether the head is the embedding matrix itself (a tied head the loader
/// shared), judged by the bytes, not by names: copying it once is then
/// enough.
fn head_is_embedding(w: &DenseWeights) -> bool {
    let (h, e) = (w.head.bytes(), w.embed.bytes());
    std::ptr::eq(h.as_ptr(), e.as_ptr()) && h.len() == e.len() && w.head.qtype == w.embed.qtype
}

fn upload_layer(l: &LayerWeights, s: &Arc<CudaStream>) -> Result<DeviceLayer, CudaError> {
    let qkv_bias = match (&l.bq, &l.bk, &l.bv) {
        (Some(q), Some(k), Some(v)) => Some([vector(q, s)?, vector(k, s)?, vector(v, s)?]),
        _ => None,
    };
    Ok(DeviceLayer {
        attn_norm: vector(&l.attn_norm, s)?,
        wq: matrix(&l.wq, s)?,
        wk: matrix(&l.wk, s)?,
        wv: matrix(&l.wv, s)?,
        qkv_bias,
        wo: matrix(&l.wo, s)?,
        ffn_norm: vector(&l.ffn_norm, s)?,
        w_gate: matrix(&l.w_gate, s)?,
        w_up: matrix(&l.w_up, s)?,
        w_down: matrix(&l.w_down, s)?,
    })
}

/// Copies one stored matrix.
pub fn matrix(t: &Tensor, s: &Arc<CudaStream>) -> Result<DeviceMatrix, CudaError> {
    Ok(DeviceMatrix {
        qtype: t.qtype,
        rows: t.rows,
        cols: t.cols,
        data: s
            .clone_htod(t.bytes())
            .map_err(|e| CudaError::driver(format!("copying {}", t.name), e))?,
    })
}

fn vector(v: &[f32], s: &Arc<CudaStream>) -> Result<CudaSlice<f32>, CudaError> {
    s.clone_htod(v)
        .map_err(|e| CudaError::driver("copying a norm or bias vector", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cuda::tests::random_model;
    use crate::model::quant::testutil::Rng;

    /// The GPU tests' random model, its head tied to the embedding or not.
    fn model(tied: bool) -> DenseWeights {
        let mut w = random_model(&mut Rng::new(3));
        if tied {
            w.head = w.embed.clone();
            w.config.tied_head = true;
        }
        w
    }

    /// What the upload copies, counted from the host tensors one by one.
    fn copied_bytes(w: &DenseWeights) -> usize {
        let c = &w.config;
        let mut n = w.embed.bytes().len() + 4 * c.d_model;
        if !std::ptr::eq(w.head.bytes().as_ptr(), w.embed.bytes().as_ptr()) {
            n += w.head.bytes().len();
        }
        for l in &w.layers {
            for t in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                n += t.bytes().len();
            }
            n += 4 * (l.attn_norm.len() + l.ffn_norm.len());
            for b in [&l.bq, &l.bk, &l.bv].into_iter().flatten() {
                n += 4 * b.len();
            }
        }
        n
    }

    #[test]
    fn the_memory_check_counts_exactly_what_the_upload_copies() {
        for tied in [false, true] {
            let w = model(tied);
            assert_eq!(
                DeviceWeights::bytes_needed(&w),
                copied_bytes(&w),
                "tied {tied}"
            );
        }
        // A tied head is one copy.
        assert_eq!(
            DeviceWeights::bytes_needed(&model(false)) - DeviceWeights::bytes_needed(&model(true)),
            model(false).head.bytes().len()
        );
    }
}
