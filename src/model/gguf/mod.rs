//! GGUF v3 checkpoints: header, metadata and tensor directory, read from a
//! memory map.
//!
//! Everything is validated when the file is opened: the magic and version,
//! every length against the bytes that remain (so a hostile or truncated file
//! cannot trigger a huge allocation), every tensor's type and shape, and that
//! every tensor's data lies inside the file. Tensors are then handed out as
//! views of the map in their stored format.

mod meta;
mod read;
pub mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use meta::MetaValue;

use crate::model::quant::QType;
use crate::model::tensor::{Storage, Tensor};

/// Why a GGUF file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open GGUF {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF file (magic {magic:02x?}, expected \"GGUF\")")]
    BadMagic { path: PathBuf, magic: [u8; 4] },
    #[error("{path}: GGUF version {version} is not supported (supported: 2, 3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{path}: truncated or corrupt header: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error(
        "{path}: tensor `{tensor}` has ggml type {type_id} ({type_name}), which this engine cannot run"
    )]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
        type_name: &'static str,
    },
    #[error(
        "{path}: tensor `{tensor}` data ({start}..{end}) lies outside the file ({file_len} bytes): the file is truncated"
    )]
    TruncatedTensor {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error("{path}: tensor `{tensor}`: {what}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        what: String,
    },
    #[error("{path}: tensor `{tensor}` not found")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key `{key}` has type {found}, expected {expected}")]
    KeyType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions innermost first, as GGUF stores them.
    pub dims: Vec<u64>,
    pub qtype: QType,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// (rows, cols): cols is the innermost dimension, rows the product of the rest.
    pub fn matrix_shape(&self) -> (usize, usize) {
        let cols = self.dims.first().copied().unwrap_or(1) as usize;
        let rows = self.dims.iter().skip(1).product::<u64>() as usize;
        (rows, cols)
    }

    fn byte_len(&self) -> u64 {
        let (rows, cols) = self.matrix_shape();
        (rows * self.qtype.row_bytes(cols)) as u64
    }
}

/// An opened, validated GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Arc<memmap2::Mmap>,
    pub version: u32,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

/// ggml type ids this engine runs, with their names.
fn qtype_from_ggml(id: u32) -> Result<QType, &'static str> {
    Ok(match id {
        0 => QType::F32,
        1 => QType::F16,
        3 => QType::Q4_1,
        6 => QType::Q5_0,
        8 => QType::Q8_0,
        12 => QType::Q4K,
        14 => QType::Q6K,
        30 => QType::BF16,
        2 => return Err("Q4_0"),
        7 => return Err("Q5_1"),
        9 => return Err("Q8_1"),
        10 => return Err("Q2_K"),
        11 => return Err("Q3_K"),
        13 => return Err("Q5_K"),
        15 => return Err("Q8_K"),
        16..=29 => return Err("IQ/other"),
        _ => return Err("unknown"),
    })
}

/// The ggml type id of a [`QType`] (for the writer).
pub fn ggml_type_id(q: QType) -> u32 {
    match q {
        QType::F32 => 0,
        QType::F16 => 1,
        QType::Q4_1 => 3,
        QType::Q5_0 => 6,
        QType::Q8_0 => 8,
        QType::Q4K => 12,
        QType::Q6K => 14,
        QType::BF16 => 30,
    }
}

impl GgufFile {
    /// Maps and validates a GGUF file.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; the file is a model checkpoint that
        // the job does not modify while running.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        read::parse(path, Arc::new(map))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor as a view of the map.
    pub fn tensor(&self, name: &str) -> Result<Tensor, GgufError> {
        let info = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GgufError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })?;
        let (rows, cols) = info.matrix_shape();
        Tensor::new(
            name,
            info.qtype,
            rows,
            cols,
            Storage::Mapped(self.map.clone()),
            (self.data_start + info.offset) as usize,
        )
        .ok_or_else(|| GgufError::BadTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            what: "data does not fit its shape".into(),
        })
    }

    fn value(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn type_err(&self, key: &str, expected: &'static str, v: &MetaValue) -> GgufError {
        GgufError::KeyType {
            path: self.path.clone(),
            key: key.to_string(),
            expected,
            found: v.type_name(),
        }
    }

    /// An unsigned integer value (any integer type that fits u32).
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.value(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| self.type_err(key, "u32", v))
    }

    pub fn get_opt_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.optional(key, Self::get_u32)
    }

    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.value(key)?;
        match v {
            MetaValue::F32(x) => Ok(*x),
            MetaValue::F64(x) => Ok(*x as f32),
            _ => Err(self.type_err(key, "f32", v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.value(key)?;
        match v {
            MetaValue::String(s) => Ok(s),
            _ => Err(self.type_err(key, "string", v)),
        }
    }

    pub fn get_opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.optional(key, Self::get_str)
    }

    pub fn get_opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.optional(key, |f, k| {
            let v = f.value(k)?;
            match v {
                MetaValue::Bool(b) => Ok(*b),
                _ => Err(f.type_err(k, "bool", v)),
            }
        })
    }

    pub fn get_string_array(&self, key: &str) -> Result<&[String], GgufError> {
        let v = self.value(key)?;
        match v {
            MetaValue::StringArray(a) => Ok(a),
            _ => Err(self.type_err(key, "array of strings", v)),
        }
    }

    pub fn get_opt_i32_array(&self, key: &str) -> Result<Option<&[i32]>, GgufError> {
        self.optional(key, |f, k| {
            let v = f.value(k)?;
            match v {
                MetaValue::I32Array(a) => Ok(a.as_slice()),
                _ => Err(f.type_err(k, "array of i32", v)),
            }
        })
    }

    fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T, GgufError>,
    ) -> Result<Option<T>, GgufError> {
        if self.metadata.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;
