//! DeepSeek-V4 (Flash) in its official checkpoint format: config, weight
//! codecs (FP8 E4M3 with E8M0 128×128 block scales, FP4 E2M1 with per-32
//! E8M0 scales), the official low-precision numerics, and the forward pass
//! with its long-context state (window ring, CSA/HCA compressed rows,
//! indexer keys, open compressor windows) with its rollback into the latest
//! chunk, and the DSpark draft module.
//!
//! The facts come from `shared/reference/deepseek-v4.md`; the parity
//! reference is HF transformers' `DeepseekV4ForCausalLM` (see
//! `tools/dsv4/`).

pub mod attention;
pub mod codec;
pub mod compressor;
pub mod config;
pub mod dspark;
pub mod error;
pub mod forward;
pub mod indexer;
pub mod matrix;
pub mod mhc;
pub mod moe;
pub mod numerics;
pub mod precision;
pub mod rope;
pub mod state;
mod take;
pub mod undo;
pub mod weights;
