//! Models: checkpoint loading (GGUF, safetensors), tensor formats and the
//! architectures specbatch runs.

pub mod quant;
pub mod tensor;
