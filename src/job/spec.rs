//! Job spec types. Unknown keys are rejected everywhere; every field has a
//! documented default (docs/job-spec.md).

use serde::{Deserialize, Serialize};

/// A whole job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub inputs: InputSpec,
    /// Path to a GGUF file or an HF-style safetensors directory.
    #[serde(default = "default_model")]
    pub model: String,
    /// Expected sha256 of the model file; the job refuses a different file.
    #[serde(default)]
    pub model_sha256: Option<String>,
    #[serde(default)]
    pub generation: GenerationSpec,
    #[serde(default)]
    pub engine: EngineSpec,
    pub output: OutputSpec,
}

pub const DEFAULT_MODEL: &str = "models/smollm2-135m-instruct-q4_1.gguf";

fn default_model() -> String {
    DEFAULT_MODEL.to_string()
}

/// Where rows come from and which columns mean what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Parquet files or glob patterns.
    pub paths: Vec<String>,
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Column holding plain-text prompts. Exactly one of `prompt_column` and
    /// `messages_column` is set.
    #[serde(default)]
    pub prompt_column: Option<String>,
    /// Column holding chat messages: `list<struct<role, content>>` or a JSON string.
    #[serde(default)]
    pub messages_column: Option<String>,
    /// Optional per-row override columns.
    #[serde(default)]
    pub overrides: OverrideColumns,
    /// Columns copied unchanged to the output.
    #[serde(default)]
    pub pass_through: Vec<String>,
    /// How plain-text prompts are sent: `chat` wraps each as one user
    /// message in the model's chat template; `raw` feeds the text as is.
    #[serde(default)]
    pub prompt_format: PromptFormat,
}

/// How a plain-text prompt becomes model input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    #[default]
    Chat,
    Raw,
}

fn default_id_column() -> String {
    "id".to_string()
}

/// Names of the optional per-row override columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideColumns {
    #[serde(default)]
    pub max_new_tokens: Option<String>,
    #[serde(default)]
    pub temperature: Option<String>,
    #[serde(default)]
    pub top_p: Option<String>,
    #[serde(default)]
    pub top_k: Option<String>,
    #[serde(default)]
    pub seed: Option<String>,
}

/// Generation defaults, overridable per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: u32,
    /// 0 means greedy.
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    /// 0 means no top-k cut.
    #[serde(default)]
    pub top_k: u32,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub stop: Vec<String>,
    /// System prompt for chat rows without one; the model's default when absent.
    #[serde(default)]
    pub system_prompt: Option<String>,
}

fn default_max_new_tokens() -> u32 {
    128
}
fn default_top_p() -> f32 {
    1.0
}

impl Default for GenerationSpec {
    fn default() -> Self {
        GenerationSpec {
            max_new_tokens: default_max_new_tokens(),
            temperature: 0.0,
            top_p: default_top_p(),
            top_k: 0,
            seed: 0,
            stop: Vec::new(),
            system_prompt: None,
        }
    }
}

/// Engine limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// Compute threads; 0 means all cores.
    #[serde(default)]
    pub threads: usize,
    #[serde(default = "default_max_concurrent_rows")]
    pub max_concurrent_rows: usize,
    /// Most tokens (prefill + decode) in one forward step.
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: usize,
    /// KV cache memory budget in bytes; accepts `4GiB`, `512MiB`, `1000000`.
    #[serde(default = "default_kv_cache_bytes", with = "byte_size")]
    pub kv_cache_bytes: u64,
}

fn default_max_concurrent_rows() -> usize {
    32
}
fn default_max_batch_tokens() -> usize {
    512
}
fn default_kv_cache_bytes() -> u64 {
    1 << 30
}

impl Default for EngineSpec {
    fn default() -> Self {
        EngineSpec {
            threads: 0,
            max_concurrent_rows: default_max_concurrent_rows(),
            max_batch_tokens: default_max_batch_tokens(),
            kv_cache_bytes: default_kv_cache_bytes(),
        }
    }
}

/// Where and how results are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub path: String,
    #[serde(default = "default_rows_per_part")]
    pub rows_per_part: usize,
    #[serde(default)]
    pub compression: Compression,
    /// Replace the output of a different job (different spec hash) at `path`.
    #[serde(default)]
    pub overwrite: bool,
}

fn default_rows_per_part() -> usize {
    1000
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    None,
}

/// Serde helpers for byte sizes written as integers or as `4GiB`-style strings.
pub mod byte_size {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(v),
            Raw::Text(t) => parse(&t).map_err(de::Error::custom),
        }
    }

    /// Parses `123`, `64KiB`, `512MiB`, `4GiB`, `1TiB`, `10KB`, `3MB`, `2GB`.
    pub fn parse(text: &str) -> Result<u64, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("expected a byte size like `4GiB`, got `{text}`"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            u => {
                return Err(format!(
                    "unknown byte-size unit `{u}` in `{text}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
                ));
            }
        };
        n.checked_mul(mult)
            .ok_or_else(|| format!("byte size `{text}` overflows"))
    }
}
