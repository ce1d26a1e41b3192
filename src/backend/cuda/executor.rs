//! The CUDA backend's entry point for a job: the executor for a loaded
//! model on one GPU.

use super::dense::CudaDenseExecutor;
use super::error::CudaError;
use crate::backend::executor::Executor;
use crate::model::load::ModelWeights;

/// Whether the CUDA backend runs `weights` (checked with the job, before
/// any work). DeepSeek-V4 has no GPU forward pass yet and is refused, never
/// run on the CPU instead.
pub fn supports(weights: &ModelWeights) -> Result<(), CudaError> {
    match weights {
        ModelWeights::Dense(_) => Ok(()),
        ModelWeights::DeepseekV4(_) => Err(deepseek_v4_unsupported()),
    }
}

fn deepseek_v4_unsupported() -> CudaError {
    CudaError::Unsupported(
        "DeepSeek-V4 (its compressed attention, MoE and DSpark kernels are not written yet); run it on `devices: [cpu]`".into(),
    )
}

/// An executor for `weights` on GPU `index`, with `kv_bytes` of KV cache in
/// blocks of `block_size` tokens.
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
        ModelWeights::DeepseekV4(_) => Err(deepseek_v4_unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::dsv4::weights::Dsv4Weights;

    #[test]
    fn deepseek_v4_is_refused_before_any_gpu_is_touched() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dsv4/tiny");
        let w = ModelWeights::DeepseekV4(Box::new(Dsv4Weights::load(&dir).unwrap()));
        let err = supports(&w).unwrap_err().to_string();
        assert!(err.contains("does not run DeepSeek-V4"), "{err}");
        // The executor refuses it too, without opening a device (there is
        // none on this machine: opening one would fail with NoDriver).
        let err = executor(&w, 0, 1 << 20, 16).err().unwrap().to_string();
        assert!(err.contains("does not run DeepSeek-V4"), "{err}");
    }
}
