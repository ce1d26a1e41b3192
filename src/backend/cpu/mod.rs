//! The CPU backend, the reference for every other backend: rayon-parallel,
//! batch-invariant kernels over weights in their stored GGUF formats, with
//! SIMD paths chosen once at runtime, and the dense forward pass over a paged
//! f16 KV arena.
//!
//! Invariant: every output element is computed by one call of one dot
//! product whose arithmetic order is fixed by the numerics in
//! [`crate::model::quant`]; the SIMD paths reproduce the scalar reference
//! bit for bit. Batch size, batch neighbours and thread count only change
//! which thread computes an element, never its bits.

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod dense;
pub mod dsv4;
mod isa;
pub mod kv_arena;
pub mod matmul;
pub mod ops;
#[cfg(target_arch = "x86_64")]
mod q32_format;
#[cfg(target_arch = "x86_64")]
mod scratch;

pub use isa::Isa;
pub use matmul::{matmul, matmul_on};
