//! One job, end to end: spec → inputs → model → output directory, then the
//! stages (reader → tokenizer → engine → writer) on their own threads,
//! connected by bounded channels.
//!
//! Everything that can make the job pointless (bad spec, input schema, model,
//! an output directory holding another job) is checked before any row is
//! generated. Afterwards, row-level problems become error rows and the job
//! goes on. Rows already committed by an earlier attempt are skipped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam::channel::bounded;
use rayon::prelude::*;

use crate::backend::cpu::dense::CpuDenseExecutor;
use crate::engine::runner::{Engine, EngineConfig, EngineCounters, Request};
use crate::engine::sampler::SamplingParams;
use crate::error::JobError;
use crate::io::row::{InputRow, Prompt, RowError, RowErrorKind, RowResult};
use crate::job::spec::{GenerationSpec, JobSpec, PromptFormat};
use crate::model::load::{LoadedModel, load_model, model_sha256};
use crate::progress::{JobCounters, Progress};
use crate::text::{ChatTemplate, TextTokenizer};

/// KV block size in tokens.
const BLOCK_SIZE: usize = 16;

/// Command-line overrides of the spec.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub output: Option<String>,
}

/// What `run` prints at the end.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub output: String,
    pub total: u64,
    pub ok: u64,
    pub error: u64,
    pub skipped: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub wall_secs: f64,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "job done: output in {}", self.output)?;
        writeln!(
            f,
            "  rows        {} total: {} ok, {} error, {} skipped (committed by an earlier attempt)",
            self.total, self.ok, self.error, self.skipped
        )?;
        writeln!(
            f,
            "  tokens      {} prompt, {} generated",
            self.prompt_tokens, self.completion_tokens
        )?;
        writeln!(
            f,
            "  time        {:.1} s, {:.1} generated tok/s",
            self.wall_secs,
            self.completion_tokens as f64 / self.wall_secs.max(1e-9)
        )?;
        write!(
            f,
            "  read it     duckdb -c \"select id, status, output_text from '{}/data/**/*.parquet'\"",
            self.output
        )
    }
}

/// Sets the compute thread count once per process (0 = all cores).
pub fn init_threads(threads: usize) {
    if threads > 0 {
        // A second call (several jobs in one process) keeps the first pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

/// What the tokenizer stage needs to turn rows into requests.
struct Encoder<'a> {
    tokenizer: &'a TextTokenizer,
    chat: Option<&'a ChatTemplate>,
    format: PromptFormat,
    generation: &'a GenerationSpec,
}

impl Encoder<'_> {
    /// Turns an input row into an engine request, or into its error row.
    fn encode(&self, row: InputRow) -> Result<Request, Box<RowResult>> {
        let g = self.generation;
        let o = &row.overrides;
        let sampling = SamplingParams {
            temperature: o.temperature.unwrap_or(g.temperature),
            top_p: o.top_p.unwrap_or(g.top_p),
            top_k: o.top_k.unwrap_or(g.top_k),
            seed: o.seed.unwrap_or(g.seed),
        };
        let fail = |row: InputRow, err: RowError, prompt_tokens: u32| {
            Box::new(RowResult {
                key: row.key,
                outcome: Err(err),
                seed: sampling.seed,
                prompt_tokens,
                pass_through: row.pass_through,
            })
        };
        let text = match &row.prompt {
            Err(e) => {
                let e = e.clone();
                return Err(fail(row, e, 0));
            }
            Ok(Prompt::Text(t)) if self.format == PromptFormat::Raw => t.clone(),
            Ok(prompt) => {
                let Some(chat) = self.chat else {
                    let e = RowError::new(
                        RowErrorKind::InvalidMessages,
                        "the model has no chat template; use `prompt_format: raw` with a prompt column",
                    );
                    return Err(fail(row, e, 0));
                };
                let single;
                let messages = match prompt {
                    Prompt::Messages(m) => m.as_slice(),
                    Prompt::Text(t) => {
                        single = [crate::io::row::ChatMessage {
                            role: "user".into(),
                            content: t.clone(),
                        }];
                        &single
                    }
                };
                chat.render(messages, g.system_prompt.as_deref())
            }
        };
        match self.tokenizer.encode(&text) {
            Ok(ids) => Ok(Request {
                max_new_tokens: o.max_new_tokens.unwrap_or(g.max_new_tokens) as usize,
                sampling,
                prompt: ids,
                key: row.key,
                pass_through: row.pass_through,
            }),
            Err(e) => {
                let e = RowError::new(RowErrorKind::TokenizationFailed, e.to_string());
                Err(fail(row, e, 0))
            }
        }
    }
}
