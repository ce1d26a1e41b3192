//! The CUDA engine's entry point: an [`Executor`] for one GPU, built from
//! host weights it only borrows (it uploads them), with `kv_bytes` of KV
//! storage on that GPU.
//!
//! Invariant: fails with a [`CudaError`] rather than running anywhere else.

use super::error::CudaError;
use crate::backend::executor::Executor;
use crate::model::load::ModelWeights;

/// The executor for GPU `index`.
// replaced by the CUDA engine
pub fn executor(
    weights: &ModelWeights,
    index: usize,
    kv_bytes: u64,
    block_size: usize,
) -> Result<Box<dyn Executor>, CudaError> {
    let _ = (index, kv_bytes, block_size);
    Err(CudaError::Unsupported(format!(
        "{} models",
        weights.arch_name()
    )))
}
