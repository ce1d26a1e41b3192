//! The CUDA backend's entry point for a job: the executor for a loaded
//! model on one GPU.

use super::dense::CudaDenseExecutor;
use super::error::CudaError;
use crate::backend::executor::Executor;
use crate::model::load::ModelWeights;

/// An executor for `weights` on GPU `index`, with `kv_bytes` of KV cache in
/// blocks of `block_size` tokens. DeepSeek-V4 has no GPU forward pass yet
/// and is refused, never run on the CPU instead.
pub fn executor(
    weights: &ModelWeights,
    index: usize,
    kv_bytes: u64,
    block_size: usize,
) -> Result<Box<dyn Executor + Send>, CudaError> {
    match weights {
        ModelWeights::Dense(w) => Ok(Box::new(CudaDenseExecutor::new(
            w, index, kv_bytes, block_size,
        )?)),
        ModelWeights::DeepseekV4(_) => Err(CudaError::Unsupported(
            "DeepSeek-V4 (its compressed attention, MoE and DSpark kernels are not written yet); run it on `devices: [cpu]`".into(),
        )),
    }
}
