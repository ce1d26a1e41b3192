//! The CUDA backend: NVIDIA GPUs through cudarc, with kernels from
//! `kernels/*.cu` compiled at run time by NVRTC for the GPU's architecture.
//!
//! Invariants: nothing here links CUDA at build time (cudarc loads
//! `libcuda`/`libnvrtc` dynamically), and nothing calls into cudarc before
//! [`device::probe`] has confirmed the library is present, because cudarc
//! panics, not errs, on a missing library. The CPU backend is the reference
//! every kernel is checked against (`tests/gpu_kernels.rs`).

pub mod device;
pub mod error;
pub mod executor;

pub use device::{GpuInfo, probe};
pub use error::CudaError;
pub use executor::executor;
