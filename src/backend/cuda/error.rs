//! Why the CUDA backend could not start or run. Every variant names what
//! the user can act on: the missing library, the GPU index, the kernel file.

/// A CUDA backend failure.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error(
        "no CUDA driver: libcuda could not be loaded (install the NVIDIA driver, or run on `devices: [cpu]`)"
    )]
    NoDriver,
    #[error(
        "no NVRTC: libnvrtc could not be loaded (it compiles the kernels; install the CUDA toolkit or the nvidia-cuda-nvrtc wheel and put its lib folder on LD_LIBRARY_PATH)"
    )]
    NoNvrtc,
    #[error("GPU cuda:{index} does not exist: this machine has {count} CUDA device(s)")]
    NoSuchDevice { index: usize, count: usize },
    #[error("CUDA driver call failed ({context}): {message}")]
    Driver { context: String, message: String },
    #[error("kernel file kernels/{file} failed to compile for {arch}:\n{log}")]
    Compile {
        file: String,
        arch: String,
        log: String,
    },
    #[error("the CUDA backend does not run {0} yet")]
    Unsupported(String),
    #[error("GPU cuda:{index}: {needed} bytes needed, {free} free")]
    OutOfMemory {
        index: usize,
        needed: usize,
        free: usize,
    },
}

impl CudaError {
    /// Wraps a driver error with what was being done.
    pub fn driver(context: impl Into<String>, e: impl std::fmt::Debug) -> CudaError {
        CudaError::Driver {
            context: context.into(),
            message: format!("{e:?}"),
        }
    }
}
