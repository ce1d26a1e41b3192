//! Model loading errors. Each names the file and the tensor or key at fault;
//! all of them are job-level (exit code 2: not worth retrying).

use crate::model::gguf::GgufError;
use crate::model::safetensors_dir::SafetensorsError;
use crate::text::TokenizerError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model not found: {0} (run scripts/fetch_models.sh, or set `model:` in the job spec)")]
    NotFound(String),
    #[error("cannot read model {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("model {path}: sha256 is {found}, the job spec pins {expected}")]
    HashMismatch {
        path: String,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error(transparent)]
    Dsv4(#[from] crate::model::dsv4::error::Dsv4Error),
    #[error("model {path}: unsupported architecture `{arch}` (supported: llama, qwen2)")]
    UnsupportedArch { path: String, arch: String },
    #[error("model {path}: metadata `{key}`: {message}")]
    Metadata {
        path: String,
        key: String,
        message: String,
    },
    #[error("model {path}: tensor `{tensor}` has shape {found:?}, the config implies {expected:?}")]
    Shape {
        path: String,
        tensor: String,
        expected: (usize, usize),
        found: (usize, usize),
    },
    #[error("model {path}: tokenizer: {source}")]
    Tokenizer {
        path: String,
        source: TokenizerError,
    },
}
