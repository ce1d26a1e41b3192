//! Why a DeepSeek-V4 checkpoint cannot be used. Every variant names the file,
//! key or tensor at fault; all are job-level errors (exit code 2), raised at
//! load before any work.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Dsv4Error {
    #[error("{path}: config key `{key}`: {message}")]
    Config {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{dir}: tensor `{tensor}` is missing (the config implies it)")]
    MissingTensor { dir: PathBuf, tensor: String },
    #[error("{dir}: tensor `{tensor}` has dtype {found}, expected {expected}")]
    Dtype {
        dir: PathBuf,
        tensor: String,
        expected: String,
        found: String,
    },
    #[error("{dir}: tensor `{tensor}` has shape {found:?}, the config implies {expected:?}")]
    Shape {
        dir: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{dir}: tensor `{tensor}`: {message}")]
    Tensor {
        dir: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("{dir}: tensor `{tensor}` is not part of a DeepSeek-V4 checkpoint with this config")]
    Unexpected { dir: PathBuf, tensor: String },
}
