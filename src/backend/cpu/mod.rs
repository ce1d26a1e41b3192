//! The CPU backend: rayon-parallel, batch-invariant kernels over weights in
//! their stored GGUF formats, with SIMD paths chosen once at runtime.
//!
//! Invariant: every output element is computed by one call of one dot
//! product whose arithmetic order is fixed by the numerics in
//! [`crate::model::quant`]; the SIMD paths reproduce the scalar reference
//! bit for bit. Batch size, batch neighbours and thread count only change
//! which thread computes an element, never its bits.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod isa;
pub mod matmul;

pub use isa::Isa;
pub use matmul::matmul;
