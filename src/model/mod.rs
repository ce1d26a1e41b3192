//! Models: checkpoint loading (GGUF, safetensors), tensor formats and the
//! architectures specbatch runs.

pub mod config;
pub mod dense;
pub mod dsv4;
pub mod error;
pub mod gguf;
pub mod inspect;
pub mod load;
pub mod quant;
pub mod safetensors_dir;
pub mod synth;
pub mod tensor;
