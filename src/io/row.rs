//! The row types that travel from reader to writer.
//!
//! Invariant: a row's identity ([`RowKey`]) is attached when it is read and is
//! never changed; every input row yields exactly one [`RowResult`].

use arrow_array::ArrayRef;

use crate::text::ReasoningMode;

/// Identity of one input row: the user's id plus where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    /// Value of the spec's `id_column`, as text.
    pub id: String,
    /// Index of the input file in the job's resolved, sorted input list.
    pub file_index: u32,
    /// Path of the input file as the spec resolved it.
    pub input_file: String,
    /// Zero-based row number inside that file.
    pub input_row: u64,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A prompt as the user gave it: plain text or a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Text(String),
    Messages(Vec<ChatMessage>),
}

/// Per-row overrides of the generation defaults (all optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowOverrides {
    pub max_new_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub seed: Option<u64>,
    pub reasoning: Option<ReasoningMode>,
}

/// Why a row could not be answered. Serialized in `error_kind` as the
/// snake_case name; never null for an error row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowErrorKind {
    NullId,
    DuplicateId,
    NullPrompt,
    EmptyPrompt,
    InvalidMessages,
    InvalidOverride,
    TokenizationFailed,
    PromptTooLong,
    ExceedsKvBudget,
}

impl RowErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowErrorKind::NullId => "null_id",
            RowErrorKind::DuplicateId => "duplicate_id",
            RowErrorKind::NullPrompt => "null_prompt",
            RowErrorKind::EmptyPrompt => "empty_prompt",
            RowErrorKind::InvalidMessages => "invalid_messages",
            RowErrorKind::InvalidOverride => "invalid_override",
            RowErrorKind::TokenizationFailed => "tokenization_failed",
            RowErrorKind::PromptTooLong => "prompt_too_long",
            RowErrorKind::ExceedsKvBudget => "exceeds_kv_budget",
        }
    }
}

/// A row-level failure: a typed kind and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub kind: RowErrorKind,
    pub message: String,
}

impl RowError {
    pub fn new(kind: RowErrorKind, message: impl Into<String>) -> Self {
        RowError {
            kind,
            message: message.into(),
        }
    }
}

/// A row as read from the input, before tokenization.
#[derive(Debug, Clone)]
pub struct InputRow {
    pub key: RowKey,
    /// The prompt, or why the row is unusable.
    pub prompt: Result<Prompt, RowError>,
    pub overrides: RowOverrides,
    /// One length-1 array per pass-through column, in spec order, with the
    /// input column's type.
    pub pass_through: Vec<ArrayRef>,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model emitted an end-of-sequence token.
    Eos,
    /// A stop string appeared; the output is cut before it.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Eos => "eos",
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Per-row timings in milliseconds (wall clock, this process).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowTimings {
    /// From admission to the first generated token.
    pub time_to_first_token_ms: f64,
    /// From admission to completion.
    pub latency_ms: f64,
}

/// The outcome of one row: exactly one per input row.
#[derive(Debug, Clone)]
pub struct RowResult {
    pub key: RowKey,
    pub outcome: Result<Generation, RowError>,
    /// Seed actually used for sampling (row override or job default).
    pub seed: u64,
    /// Prompt tokens after chat templating (0 when the row failed before tokenization).
    pub prompt_tokens: u32,
    pub pass_through: Vec<ArrayRef>,
}

/// A successful generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer: everything generated in non-think mode; after the first
    /// `</think>` in the think modes (see [`ReasoningMode::split`]).
    pub text: String,
    /// The reasoning before the first `</think>`; `None` in non-think mode.
    pub reasoning_text: Option<String>,
    pub finish_reason: FinishReason,
    /// Prompt tokens taken from shared KV blocks instead of computed.
    pub cached_tokens: u32,
    pub completion_tokens: u32,
    /// Draft tokens sent to verification for this row (0 without speculation).
    pub draft_tokens_proposed: u32,
    /// Of those, the ones the model accepted.
    pub draft_tokens_accepted: u32,
    pub timings: RowTimings,
}
