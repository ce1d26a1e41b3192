//! HF-style model directories: `config.json`, `tokenizer.json` and
//! `*.safetensors` shards (one file, or an index naming the shards), mapped
//! into memory. Tensors are handed out in their stored dtype.
//!
//! Opening checks that the required files exist and that every shard's header
//! is valid and its data inside the file; a tensor of a dtype the engine
//! cannot run is refused when it is asked for, naming tensor and dtype.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};

use crate::model::quant::QType;
use crate::model::tensor::{Storage, Tensor};

/// Why a safetensors directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("model directory {dir} has no {file}")]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: invalid safetensors file: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{dir}: tensor `{tensor}` not found")]
    MissingTensor { dir: PathBuf, tensor: String },
    #[error("{path}: names tensor `{tensor}` in {file}, which does not hold it")]
    IndexMismatch {
        path: PathBuf,
        tensor: String,
        file: String,
    },
    #[error("{dir}: tensor `{tensor}` has dtype {dtype:?}; supported: BF16, F16, F32")]
    UnsupportedDtype {
        dir: PathBuf,
        tensor: String,
        dtype: Dtype,
    },
    #[error("{dir}: tensor `{tensor}` has shape {shape:?}; expected 1 or 2 dimensions")]
    BadShape {
        dir: PathBuf,
        tensor: String,
        shape: Vec<usize>,
    },
}

struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte offset of the data in the shard file.
    offset: usize,
}

/// One tensor's place in a mapped shard, in its stored dtype. The bytes are
/// inside the shard: `open` validated every header's offsets.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub storage: Storage,
    pub offset: usize,
    pub len: usize,
}

/// An opened model directory.
pub struct SafetensorsDir {
    dir: PathBuf,
    config: serde_json::Value,
    tokenizer_config: Option<serde_json::Value>,
    shards: Vec<Arc<memmap2::Mmap>>,
    entries: HashMap<String, Entry>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, SafetensorsError> {
    let err = |message: String| SafetensorsError::Read {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
}

impl SafetensorsDir {
    /// Opens a model directory that must also hold `tokenizer.json`.
    pub fn open(dir: &Path) -> Result<SafetensorsDir, SafetensorsError> {
        SafetensorsDir::tokenizer_file(dir)?;
        SafetensorsDir::open_checkpoint(dir)
    }

    /// `dir/tokenizer.json`, which must exist.
    pub fn tokenizer_file(dir: &Path) -> Result<PathBuf, SafetensorsError> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(SafetensorsError::MissingFile {
                dir: dir.to_path_buf(),
                file: "tokenizer.json",
            });
        }
        Ok(path)
    }

    /// Opens the weights and `config.json` only (the tokenizer is checked by
    /// whoever needs it).
    pub fn open_checkpoint(dir: &Path) -> Result<SafetensorsDir, SafetensorsError> {
        for file in ["config.json"] {
            if !dir.join(file).is_file() {
                return Err(SafetensorsError::MissingFile {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
        let config = read_json(&dir.join("config.json"))?;
        let tc = dir.join("tokenizer_config.json");
        let tokenizer_config = if tc.is_file() {
            Some(read_json(&tc)?)
        } else {
            None
        };
        let index = dir.join("model.safetensors.index.json");
        let weight_map: Vec<(String, String)> = if index.is_file() {
            read_json(&index)?
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(t, f)| f.as_str().map(|f| (t.clone(), f.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut files: Vec<PathBuf> = if index.is_file() {
            let mut names: Vec<String> = weight_map.iter().map(|(_, f)| f.clone()).collect();
            names.sort();
            names.dedup();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        files.retain(|f| f.is_file() || !f.ends_with("model.safetensors"));
        if files.is_empty() {
            return Err(SafetensorsError::MissingFile {
                dir: dir.to_path_buf(),
                file: "model.safetensors (or model.safetensors.index.json)",
            });
        }
        let mut shards = Vec::new();
        let mut entries = HashMap::new();
        for (si, path) in files.iter().enumerate() {
            let read = |message: String| SafetensorsError::Read {
                path: path.clone(),
                message,
            };
            let file = std::fs::File::open(path).map_err(|e| read(e.to_string()))?;
            // SAFETY: read-only map of a checkpoint not modified while the job runs.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| read(e.to_string()))?;
            let invalid = |message: String| SafetensorsError::Invalid {
                path: path.clone(),
                message,
            };
            // Full validation: header, offsets, and data inside the file.
            SafeTensors::deserialize(&map).map_err(|e| invalid(e.to_string()))?;
            let (header_len, meta) =
                SafeTensors::read_metadata(&map).map_err(|e| invalid(e.to_string()))?;
            for (name, info) in meta.tensors() {
                entries.insert(
                    name,
                    Entry {
                        shard: si,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        offset: 8 + header_len + info.data_offsets.0,
                    },
                );
            }
            shards.push(Arc::new(map));
        }
        // An index that promises a tensor its shard does not hold would
        // otherwise surface as a confusing "missing tensor" much later.
        for (tensor, file) in &weight_map {
            let held = entries
                .get(tensor)
                .is_some_and(|e| files[e.shard].file_name() == Some(std::ffi::OsStr::new(file)));
            if !held {
                return Err(SafetensorsError::IndexMismatch {
                    path: index.clone(),
                    tensor: tensor.clone(),
                    file: file.clone(),
                });
            }
        }
        Ok(SafetensorsDir {
            dir: dir.to_path_buf(),
            config,
            tokenizer_config,
            shards,
            entries,
        })
    }

    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    pub fn tokenizer_json_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }

    /// `tokenizer_config.json` (chat template, special tokens), when present.
    pub fn tokenizer_config(&self) -> Option<serde_json::Value> {
        self.tokenizer_config.clone()
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A tensor in whatever dtype it is stored, for loaders that decode
    /// formats of their own (DeepSeek-V4's FP8/FP4).
    pub fn raw(&self, name: &str) -> Option<RawTensor> {
        let e = self.entries.get(name)?;
        Some(RawTensor {
            dtype: e.dtype,
            shape: e.shape.clone(),
            storage: Storage::Mapped(self.shards[e.shard].clone()),
            offset: e.offset,
            len: e.shape.iter().product::<usize>() * e.dtype.bitsize() / 8,
        })
    }

    pub fn tensor(&self, name: &str) -> Result<Tensor, SafetensorsError> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| SafetensorsError::MissingTensor {
                dir: self.dir.clone(),
                tensor: name.to_string(),
            })?;
        let qtype = match e.dtype {
            Dtype::BF16 => QType::BF16,
            Dtype::F16 => QType::F16,
            Dtype::F32 => QType::F32,
            dtype => {
                return Err(SafetensorsError::UnsupportedDtype {
                    dir: self.dir.clone(),
                    tensor: name.to_string(),
                    dtype,
                });
            }
        };
        let bad_shape = || SafetensorsError::BadShape {
            dir: self.dir.clone(),
            tensor: name.to_string(),
            shape: e.shape.clone(),
        };
        let (rows, cols) = match e.shape.as_slice() {
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => return Err(bad_shape()),
        };
        Tensor::new(
            name,
            qtype,
            rows,
            cols,
            Storage::Mapped(self.shards[e.shard].clone()),
            e.offset,
        )
        .ok_or_else(bad_shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_dir(dir: &Path, tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>, skip: &[&str]) {
        if !skip.contains(&"config.json") {
            std::fs::write(dir.join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
        }
        if !skip.contains(&"tokenizer.json") {
            std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.to_string(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    }

    #[test]
    fn reads_tensors_in_their_dtype() {
        let d = tempfile::tempdir().unwrap();
        let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b: Vec<u8> = [half::bf16::from_f32(1.5), half::bf16::from_f32(-2.0)]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        write_dir(
            d.path(),
            vec![
                ("w", Dtype::F32, vec![2, 3], w.clone()),
                ("b", Dtype::BF16, vec![2], b.clone()),
                ("i", Dtype::I64, vec![1], vec![0; 8]),
            ],
            &[],
        );
        let s = SafetensorsDir::open(d.path()).unwrap();
        let t = s.tensor("w").unwrap();
        assert_eq!((t.qtype, t.rows, t.cols), (QType::F32, 2, 3));
        assert_eq!(t.bytes(), &w[..]);
        let t = s.tensor("b").unwrap();
        assert_eq!((t.qtype, t.rows, t.cols), (QType::BF16, 1, 2));
        assert_eq!(t.bytes(), &b[..]);
        let e = s.tensor("i").unwrap_err().to_string();
        assert!(e.contains("`i`") && e.contains("I64"), "{e}");
        let e = s.tensor("nope").unwrap_err().to_string();
        assert!(e.contains("`nope` not found"), "{e}");
        assert_eq!(s.config()["model_type"], "llama");
    }

    #[test]
    fn missing_config_or_tokenizer_is_named() {
        for missing in ["config.json", "tokenizer.json"] {
            let d = tempfile::tempdir().unwrap();
            write_dir(
                d.path(),
                vec![("w", Dtype::F32, vec![1], vec![0; 4])],
                &[missing],
            );
            let e = SafetensorsDir::open(d.path()).err().unwrap().to_string();
            assert!(e.contains(missing), "{e}");
        }
    }

    #[test]
    fn truncated_shard_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write_dir(d.path(), vec![("w", Dtype::F32, vec![4], vec![0; 16])], &[]);
        let p = d.path().join("model.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        let e = SafetensorsDir::open(d.path()).err().unwrap().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
}
