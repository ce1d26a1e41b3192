//! Job spec types, as written in the YAML file (docs/job-spec.md).
//!
//! Invariants: unknown keys are rejected at every level; every optional key
//! has its default here and nowhere else, so a spec with a key omitted and one
//! with the key set to its default deserialize to equal values (the spec hash
//! relies on this). Parsing is [`JobSpec::from_yaml`]; value rules live in
//! `validate.rs`.

use serde::{Deserialize, Serialize};

use crate::backend::device::DeviceSpec;
use crate::text::ReasoningMode;

/// A whole job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub inputs: InputSpec,
    /// Path to a GGUF file or an HF-style safetensors directory.
    #[serde(default = "default_model")]
    pub model: String,
    /// Expected sha256 (hex) of the model file; a mismatch fails the job
    /// before any work.
    #[serde(default)]
    pub model_sha256: Option<String>,
    #[serde(default)]
    pub generation: GenerationSpec,
    #[serde(default)]
    pub engine: EngineSpec,
    /// Where the engines run: `[cpu]`, `[cuda:0, cuda:1, ...]` or
    /// `cuda:all`; one engine per device. Like `engine`, it changes speed,
    /// not results.
    #[serde(default)]
    pub devices: DeviceSpec,
    /// Speculative decoding; off unless a method is named.
    #[serde(default)]
    pub speculation: SpeculationSpec,
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
    /// Column holding plain-text prompts. At least one of `prompt_column` and
    /// `messages_column` is set; with both, a row uses its messages when they
    /// are non-null and its prompt otherwise.
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

/// Names of the optional per-row override columns; a non-null value in such
/// a column replaces the matching `generation` default for that row.
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
    /// A string column of reasoning modes (`non_think`, `think_high`,
    /// `think_max`).
    #[serde(default)]
    pub reasoning: Option<String>,
}

/// Generation defaults, overridable per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    /// At least 1.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: u32,
    /// 0 means greedy; never negative.
    #[serde(default)]
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1]; 1 means no cut.
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    /// 0 means no top-k cut.
    #[serde(default)]
    pub top_k: u32,
    /// Sampling seed; each row's own generator starts from it (or from the
    /// row's override).
    #[serde(default)]
    pub seed: u64,
    /// Generation ends when the output contains one of these (non-empty) strings.
    #[serde(default)]
    pub stop: Vec<String>,
    /// System prompt for chat rows without one; the model's default when absent.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// How much a thinking model reasons before answering. A think mode
    /// needs a model whose chat template has a reasoning block (checked
    /// when the model is loaded, since the spec alone cannot tell).
    #[serde(default)]
    pub reasoning: ReasoningMode,
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
            reasoning: ReasoningMode::NonThink,
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
    /// Rows in flight at once; at least 1.
    #[serde(default = "default_max_concurrent_rows")]
    pub max_concurrent_rows: usize,
    /// Most tokens (prefill + decode) in one forward step; at least 1.
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: usize,
    /// KV cache memory budget in bytes, above 0; written as `4GiB`,
    /// `512MiB` or `1000000`.
    #[serde(default = "default_kv_cache_bytes", with = "super::byte_size")]
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

/// Speculative decoding: a drafter proposes tokens, the model verifies
/// them in one step. Lossless, so like `engine` it changes speed, not the
/// distribution a row's answer is drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeculationSpec {
    #[serde(default)]
    pub method: SpecMethod,
    /// Draft tokens per row per step (γ); at least 1, at most
    /// [`crate::spec::ngram::MAX_DRAFT`] for `ngram`.
    #[serde(default = "default_max_draft")]
    pub max_draft: usize,
    /// Path to the draft model; required for `draft_model`, refused otherwise.
    #[serde(default)]
    pub draft_model: Option<String>,
    /// Path to a calibration file of per-position temperatures
    /// ([`crate::spec::Sts`]); read when the job is checked.
    #[serde(default)]
    pub calibration: Option<String>,
}

fn default_max_draft() -> usize {
    5
}

impl Default for SpeculationSpec {
    fn default() -> Self {
        SpeculationSpec {
            method: SpecMethod::None,
            max_draft: default_max_draft(),
            draft_model: None,
            calibration: None,
        }
    }
}

/// Where draft tokens come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecMethod {
    /// No speculation: one token per row per step.
    #[default]
    None,
    /// Prompt lookup: continue a repeat of the row's own recent tokens.
    Ngram,
    /// A smaller model with the same tokenizer.
    DraftModel,
    /// DeepSeek-V4's own multi-token-prediction (`mtp.*`) modules.
    Dspark,
}

impl SpecMethod {
    /// The name as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecMethod::None => "none",
            SpecMethod::Ngram => "ngram",
            SpecMethod::DraftModel => "draft_model",
            SpecMethod::Dspark => "dspark",
        }
    }
}

/// Where and how results are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output directory; must not be empty.
    pub path: String,
    /// Rows per committed part file; at least 1.
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
