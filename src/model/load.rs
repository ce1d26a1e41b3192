//! Opens a model path (a GGUF file or an HF-style safetensors directory) into
//! validated weights, a tokenizer and a chat template.
//!
//! Everything is checked here, before any work starts: a missing or
//! misshapen tensor, an unsupported type or architecture, or a tokenizer that
//! cannot be built fails the job with a message naming the file and tensor.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::model::config::{Arch, DenseConfig, RopeStyle};
use crate::model::dense::{DenseWeights, GGUF_NAMES, HF_NAMES, TensorSource};
use crate::model::dsv4::weights::Dsv4Weights;
use crate::model::error::ModelError;
use crate::model::gguf::GgufFile;
use crate::model::safetensors_dir::SafetensorsDir;
use crate::model::tensor::Tensor;
use crate::text::{ChatTemplate, GgufVocab, TextTokenizer};

/// The checkpoint format a model was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    Gguf,
    Safetensors,
}

/// The weights of one of the architecture families specbatch runs.
#[derive(Debug)]
pub enum ModelWeights {
    /// llama / qwen2 decoders (GGUF or HF safetensors).
    Dense(Box<DenseWeights>),
    /// DeepSeek-V4 in its official checkpoint format.
    DeepseekV4(Box<Dsv4Weights>),
}

impl ModelWeights {
    pub fn arch_name(&self) -> &'static str {
        match self {
            ModelWeights::Dense(w) => w.config.arch.name(),
            ModelWeights::DeepseekV4(_) => "deepseek_v4",
        }
    }

    pub fn as_dense(&self) -> Option<&DenseWeights> {
        match self {
            ModelWeights::Dense(w) => Some(&**w),
            ModelWeights::DeepseekV4(_) => None,
        }
    }

    pub fn into_dense(self) -> Option<DenseWeights> {
        match self {
            ModelWeights::Dense(w) => Some(*w),
            ModelWeights::DeepseekV4(_) => None,
        }
    }
}

/// A model ready to run.
#[derive(Debug)]
pub struct LoadedModel {
    /// The path the job named.
    pub path: String,
    /// `general.name` or the directory name.
    pub name: String,
    pub format: CheckpointFormat,
    pub weights: ModelWeights,
    pub tokenizer: TextTokenizer,
    /// `None` when the checkpoint has no chat template (chat rows then fail).
    pub chat: Option<ChatTemplate>,
}

/// Opens and validates a model.
pub fn load_model(path: &str) -> Result<LoadedModel, ModelError> {
    let p = Path::new(path);
    if !p.exists() {
        return Err(ModelError::NotFound(path.to_string()));
    }
    if p.is_dir() && is_deepseek_v4(p) {
        load_dsv4(path)
    } else if p.is_dir() {
        load_safetensors(path)
    } else {
        load_gguf(path)
    }
}

/// Hex sha256 of a model file (or of a directory's files in name order).
pub fn model_sha256(path: &str) -> Result<String, ModelError> {
    let p = Path::new(path);
    let io = |source| ModelError::Io {
        path: path.to_string(),
        source,
    };
    let mut files = Vec::new();
    if p.is_dir() {
        for entry in std::fs::read_dir(p).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_type().map_err(io)?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
    } else {
        files.push(p.to_path_buf());
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut file = std::fs::File::open(&f).map_err(io)?;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

struct GgufSource<'a>(&'a GgufFile, String);

impl TensorSource for GgufSource<'_> {
    fn path(&self) -> &str {
        &self.1
    }
    fn has(&self, name: &str) -> bool {
        self.0.tensor_infos().iter().any(|t| t.name == name)
    }
    fn get(&self, name: &str) -> Result<Tensor, ModelError> {
        Ok(self.0.tensor(name)?)
    }
}

fn load_gguf(path: &str) -> Result<LoadedModel, ModelError> {
    let f = GgufFile::open(Path::new(path))?;
    let arch_name = f.get_str("general.architecture")?.to_string();
    let arch = Arch::parse(&arch_name).ok_or_else(|| ModelError::UnsupportedArch {
        path: path.to_string(),
        arch: arch_name.clone(),
    })?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let u = |k: &str| -> Result<usize, ModelError> { Ok(f.get_u32(&key(k))? as usize) };
    let n_heads = u("attention.head_count")?;
    let d_model = u("embedding_length")?;
    let head_dim = d_model / n_heads.max(1);
    let tokens = f.get_string_array("tokenizer.ggml.tokens")?;
    let vocab_size = tokens.len();
    let src = GgufSource(&f, path.to_string());
    let config = DenseConfig {
        arch,
        n_layers: u("block_count")?,
        d_model,
        n_heads,
        n_kv_heads: u("attention.head_count_kv")?,
        head_dim,
        ffn_dim: u("feed_forward_length")?,
        vocab_size,
        context_length: u("context_length")?,
        rope_base: f.get_f32(&key("rope.freq_base"))?,
        rope_dims: f
            .get_opt_u32(&key("rope.dimension_count"))?
            .map_or(head_dim, |v| v as usize),
        // llama.cpp's converter permutes llama Q/K rows for interleaved RoPE;
        // qwen2 rows are stored as trained (rotate-half).
        rope_style: match arch {
            Arch::Llama => RopeStyle::Interleaved,
            Arch::Qwen2 => RopeStyle::Neox,
        },
        rms_eps: f.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        qkv_bias: arch == Arch::Qwen2,
        tied_head: !src.has(GGUF_NAMES.head),
    };
    let weights = DenseWeights::load(config, &src, &GGUF_NAMES)?;

    let tok_err = |source| ModelError::Tokenizer {
        path: path.to_string(),
        source,
    };
    let vocab = GgufVocab {
        model: f.get_str("tokenizer.ggml.model")?.to_string(),
        pre: f
            .get_opt_str("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_string(),
        tokens: tokens.to_vec(),
        merges: f.get_string_array("tokenizer.ggml.merges")?.to_vec(),
        token_types: f
            .get_opt_i32_array("tokenizer.ggml.token_type")?
            .map(|v| v.to_vec())
            .unwrap_or_default(),
    };
    let inner = vocab.build().map_err(tok_err)?;
    let eos = f.get_u32("tokenizer.ggml.eos_token_id")?;
    let mut eos_ids = vec![eos];
    // ChatML models end a turn with <|im_end|>; some files name a different
    // EOS, so stop on both.
    if let Some(im_end) = inner.token_to_id("<|im_end|>")
        && im_end != eos
    {
        eos_ids.push(im_end);
    }
    let bos_id = f.get_opt_u32("tokenizer.ggml.bos_token_id")?;
    let add_bos = f
        .get_opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(false);
    let tokenizer = TextTokenizer::new(inner, eos_ids, bos_id, add_bos);
    let chat = f
        .get_opt_str("tokenizer.chat_template")?
        .map(ChatTemplate::detect)
        .transpose()
        .map_err(tok_err)?;
    let name = f
        .get_opt_str("general.name")?
        .map(str::to_string)
        .unwrap_or_else(|| file_stem(path));
    Ok(LoadedModel {
        path: path.to_string(),
        name,
        format: CheckpointFormat::Gguf,
        weights: ModelWeights::Dense(Box::new(weights)),
        tokenizer,
        chat,
    })
}

struct StSource<'a>(&'a SafetensorsDir, String);

impl TensorSource for StSource<'_> {
    fn path(&self) -> &str {
        &self.1
    }
    fn has(&self, name: &str) -> bool {
        self.0.tensor_names().any(|n| n == name)
    }
    fn get(&self, name: &str) -> Result<Tensor, ModelError> {
        Ok(self.0.tensor(name)?)
    }
}

fn load_safetensors(path: &str) -> Result<LoadedModel, ModelError> {
    let dir = SafetensorsDir::open(Path::new(path))?;
    let cfg = dir.config();
    let meta = |key: &str, message: &str| ModelError::Metadata {
        path: format!("{path}/config.json"),
        key: key.to_string(),
        message: message.to_string(),
    };
    let num = |key: &str| -> Result<usize, ModelError> {
        cfg.get(key)
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| meta(key, "missing or not a non-negative integer"))
    };
    let float = |key: &str| -> Result<f32, ModelError> {
        cfg.get(key)
            .and_then(serde_json::Value::as_f64)
            .map(|v| v as f32)
            .ok_or_else(|| meta(key, "missing or not a number"))
    };
    let arch_name = cfg
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| meta("model_type", "missing or not a string"))?;
    let arch = Arch::parse(arch_name).ok_or_else(|| ModelError::UnsupportedArch {
        path: path.to_string(),
        arch: arch_name.to_string(),
    })?;
    let n_heads = num("num_attention_heads")?;
    let d_model = num("hidden_size")?;
    let head_dim = d_model / n_heads.max(1);
    let tied = cfg
        .get("tie_word_embeddings")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let config = DenseConfig {
        arch,
        n_layers: num("num_hidden_layers")?,
        d_model,
        n_heads,
        n_kv_heads: num("num_key_value_heads").unwrap_or(n_heads),
        head_dim,
        ffn_dim: num("intermediate_size")?,
        vocab_size: num("vocab_size")?,
        context_length: num("max_position_embeddings")?,
        rope_base: float("rope_theta").unwrap_or(10_000.0),
        rope_dims: head_dim,
        rope_style: RopeStyle::Neox,
        rms_eps: float("rms_norm_eps")?,
        qkv_bias: arch == Arch::Qwen2,
        tied_head: tied,
    };
    let weights = DenseWeights::load(config, &StSource(&dir, path.to_string()), &HF_NAMES)?;

    let tok_err = |source| ModelError::Tokenizer {
        path: path.to_string(),
        source,
    };
    let inner = TextTokenizer::load_json(&dir.tokenizer_json_path()).map_err(tok_err)?;
    let tcfg = dir.tokenizer_config();
    let token_field = |key: &str| -> Option<String> {
        let v = tcfg.as_ref()?.get(key)?;
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.get("content")?.as_str().map(str::to_string))
    };
    let mut eos_ids = Vec::new();
    if let Some(id) = token_field("eos_token").and_then(|t| inner.token_to_id(&t)) {
        eos_ids.push(id);
    }
    if let Some(id) = cfg.get("eos_token_id").and_then(serde_json::Value::as_u64) {
        eos_ids.push(id as u32);
    }
    if let Some(id) = inner.token_to_id("<|im_end|>") {
        eos_ids.push(id);
    }
    eos_ids.sort_unstable();
    eos_ids.dedup();
    if eos_ids.is_empty() {
        return Err(meta(
            "eos_token_id",
            "no end-of-sequence token in config.json or tokenizer_config.json",
        ));
    }
    let bos_id = token_field("bos_token").and_then(|t| inner.token_to_id(&t));
    let add_bos = tcfg
        .as_ref()
        .and_then(|c| c.get("add_bos_token"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let tokenizer = TextTokenizer::new(inner, eos_ids, bos_id, add_bos);
    let chat = token_field("chat_template")
        .map(|t| ChatTemplate::detect(&t))
        .transpose()
        .map_err(tok_err)?;
    Ok(LoadedModel {
        path: path.to_string(),
        name: file_stem(path),
        format: CheckpointFormat::Safetensors,
        weights: ModelWeights::Dense(Box::new(weights)),
        tokenizer,
        chat,
    })
}

/// Whether `dir/config.json` names the DeepSeek-V4 family.
fn is_deepseek_v4(dir: &Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("model_type").and_then(|t| t.as_str()) == Some("deepseek_v4"))
}

/// A DeepSeek-V4 checkpoint directory: official weights plus DeepSeek-V4's
/// own `tokenizer.json`, whose id space must be the model's vocabulary.
fn load_dsv4(path: &str) -> Result<LoadedModel, ModelError> {
    let dir = Path::new(path);
    let weights = Dsv4Weights::load(dir)?;
    let c = &weights.config;
    let tok_err = |source| ModelError::Tokenizer {
        path: path.to_string(),
        source,
    };
    let tok_path = SafetensorsDir::tokenizer_file(dir)?;
    let inner = TextTokenizer::load_json(&tok_path).map_err(tok_err)?;
    let tokenizer = TextTokenizer::new(inner, vec![c.eos_id], Some(c.bos_id), false);
    let ids = tokenizer.vocab_size();
    if ids != c.vocab_size {
        return Err(ModelError::Metadata {
            path: tok_path.display().to_string(),
            key: "vocab_size".into(),
            message: format!(
                "the tokenizer has {ids} ids, the model's config.json says vocab_size {}",
                c.vocab_size
            ),
        });
    }
    Ok(LoadedModel {
        path: path.to_string(),
        name: file_stem(path),
        format: CheckpointFormat::Safetensors,
        weights: ModelWeights::DeepseekV4(Box::new(weights)),
        tokenizer,
        // BOS is part of the rendered chat text, so the tokenizer adds none.
        chat: Some(ChatTemplate::deepseek_v4()),
    })
}

fn file_stem(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}
