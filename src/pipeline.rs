//! One job, end to end: spec → inputs → model → output directory, then the
//! stages (reader → tokenizer → engine → writer) on their own threads,
//! connected by bounded channels.
//!
//! Everything that can make the job pointless (bad spec, input schema, model,
//! an output directory holding another job) is checked before any row is
//! generated. Afterwards, row-level problems become error rows and the job
//! goes on. Rows already committed by an earlier attempt are skipped.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam::channel::bounded;
use rayon::prelude::*;

use crate::backend::cpu::dense::CpuDenseExecutor;
use crate::engine::runner::{Engine, EngineConfig, EngineCounters, Request};
use crate::engine::sampler::SamplingParams;
use crate::error::JobError;
use crate::io::row::{ChatMessage, InputRow, Prompt, RowError, RowErrorKind, RowResult};
use crate::io::{
    InputPlan, IoError, Manifest, OutputConfig, OutputState, WriterConfig, finalize,
    validate_inputs,
};
use crate::job::spec::{GenerationSpec, JobSpec, PromptFormat};
use crate::model::error::ModelError;
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
    /// Error rows of this run by `error_kind`.
    pub error_kinds: BTreeMap<&'static str, u64>,
    /// The first few answers of this run: (id, text).
    pub samples: Vec<(String, String)>,
}

/// Answers shown in the summary.
const SUMMARY_SAMPLES: usize = 5;
/// Characters of each answer shown in the summary.
const SAMPLE_CHARS: usize = 90;

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
        if !self.error_kinds.is_empty() {
            let kinds: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "  errors      {}", kinds.join(", "))?;
        }
        for (id, text) in &self.samples {
            let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let shown: String = one_line.chars().take(SAMPLE_CHARS).collect();
            let more = if one_line.chars().count() > SAMPLE_CHARS {
                "…"
            } else {
                ""
            };
            writeln!(f, "  {id:<10}  {shown}{more}")?;
        }
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
        // Rows that fail here never reach the tokenizer: 0 prompt tokens.
        let fail = |row: InputRow, err: RowError| {
            Box::new(RowResult {
                key: row.key,
                outcome: Err(err),
                seed: sampling.seed,
                prompt_tokens: 0,
                pass_through: row.pass_through,
            })
        };
        let text = match &row.prompt {
            Err(e) => {
                let e = e.clone();
                return Err(fail(row, e));
            }
            Ok(Prompt::Text(t)) if self.format == PromptFormat::Raw => t.clone(),
            Ok(prompt) => {
                let Some(chat) = self.chat else {
                    let e = RowError::new(
                        RowErrorKind::InvalidMessages,
                        "the model has no chat template; use `prompt_format: raw` with a prompt column",
                    );
                    return Err(fail(row, e));
                };
                let single;
                let messages = match prompt {
                    Prompt::Messages(m) => m.as_slice(),
                    Prompt::Text(t) => {
                        single = [ChatMessage {
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
                Err(fail(row, e))
            }
        }
    }
}

/// Loads and checks everything a job needs before any work: the spec, the
/// inputs' schema and the model.
struct Checked {
    spec: JobSpec,
    spec_hash: String,
    plan: InputPlan,
    model: LoadedModel,
    model_hash: String,
}

fn check(spec_path: &str, opts: &RunOptions) -> Result<Checked, JobError> {
    let mut spec = JobSpec::load(Path::new(spec_path))?;
    if let Some(out) = &opts.output {
        spec.output.path = out.clone();
    }
    let spec_hash = spec.spec_hash();
    let plan = validate_inputs(&spec.inputs)?;
    let model_hash = model_sha256(&spec.model)?;
    if let Some(pinned) = &spec.model_sha256
        && !pinned.eq_ignore_ascii_case(&model_hash)
    {
        return Err(ModelError::HashMismatch {
            path: spec.model.clone(),
            expected: pinned.clone(),
            found: model_hash,
        }
        .into());
    }
    let model = load_model(&spec.model)?;
    Ok(Checked {
        spec,
        spec_hash,
        plan,
        model,
        model_hash,
    })
}

/// `specbatch validate`: checks the spec, the inputs' schema and the model.
pub fn validate_job(spec_path: &str) -> Result<String, JobError> {
    let c = check(spec_path, &RunOptions::default())?;
    Ok(format!(
        "spec ok: {spec_path} (spec hash {})\ninputs ok: {} file(s), {} rows\nmodel ok: {} ({}, sha256 {})\noutput: {}",
        c.spec_hash,
        c.plan.files().len(),
        c.plan.total_rows(),
        c.model.name,
        c.model.weights.config.arch.name(),
        c.model_hash,
        c.spec.output.path
    ))
}

/// Input rows per read; small enough to keep memory flat, large enough that
/// parallel tokenization pays.
const READ_BATCH_ROWS: usize = 256;

/// `specbatch run`: runs (or resumes) a job to completion.
pub fn run_job(spec_path: &str, opts: &RunOptions) -> Result<RunSummary, JobError> {
    let started = Instant::now();
    let Checked {
        spec,
        spec_hash,
        plan,
        model,
        model_hash,
    } = check(spec_path, opts)?;
    let state = OutputState::open(OutputConfig::new(&spec.output, &plan, &spec_hash))?;
    init_threads(spec.engine.threads);
    let total = plan.total_rows();
    let skip = state.committed().clone();
    let skipped = state.totals().rows;
    let mut writer = state.into_writer(WriterConfig::new(&spec.output, &model.name));
    let LoadedModel {
        weights,
        tokenizer,
        chat,
        ..
    } = model;
    let exec = CpuDenseExecutor::new(weights, spec.engine.kv_cache_bytes, BLOCK_SIZE);
    let engine_cfg = EngineConfig {
        max_running: spec.engine.max_concurrent_rows,
        max_batch_tokens: spec.engine.max_batch_tokens,
        block_size: BLOCK_SIZE,
        stop: spec.generation.stop.clone(),
    };
    let engine_counters = Arc::new(EngineCounters::default());
    let job_counters = Arc::new(JobCounters::default());
    let mut engine = Engine::new(exec, &tokenizer, &engine_cfg, engine_counters.clone());
    let encoder = Encoder {
        tokenizer: &tokenizer,
        chat: chat.as_ref(),
        format: spec.inputs.prompt_format,
        generation: &spec.generation,
    };
    let progress = Progress::start(total, skipped, job_counters.clone(), engine_counters);

    let (rows_tx, rows_rx) = bounded::<Result<Vec<InputRow>, IoError>>(4);
    let (req_tx, req_rx) = bounded::<Request>(engine_cfg.max_running * 2);
    let (out_tx, out_rx) = bounded::<RowResult>(1024);
    let (read_res, tok_res, write_res, engine_res) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            for batch in plan.stream(READ_BATCH_ROWS, skip) {
                if rows_tx.send(batch).is_err() {
                    break;
                }
            }
        });
        let tok_out = out_tx.clone();
        let encoder = &encoder;
        let tokenize = s.spawn(move || -> Result<(), IoError> {
            for batch in rows_rx {
                let prepared: Vec<_> = batch?.into_par_iter().map(|r| encoder.encode(r)).collect();
                for p in prepared {
                    let sent = match p {
                        Ok(req) => req_tx.send(req).is_ok(),
                        Err(res) => tok_out.send(*res).is_ok(),
                    };
                    if !sent {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        let counters = job_counters.clone();
        let write = s.spawn(move || -> Result<_, IoError> {
            let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut samples = Vec::new();
            for r in out_rx {
                match &r.outcome {
                    Err(e) => {
                        counters.rows_error.fetch_add(1, Ordering::Relaxed);
                        *kinds.entry(e.kind.as_str()).or_default() += 1;
                    }
                    Ok(g) if samples.len() < SUMMARY_SAMPLES => {
                        samples.push((r.key.id.clone(), g.text.clone()));
                    }
                    Ok(_) => {}
                }
                writer.push(r)?;
                counters.rows_done.fetch_add(1, Ordering::Relaxed);
            }
            Ok((writer.finish()?, kinds, samples))
        });
        let engine_res = engine.run(&req_rx, &out_tx);
        drop(out_tx);
        drop(req_rx);
        (
            reader.join().map_err(|_| JobError::Stage("reader")),
            tokenize.join().map_err(|_| JobError::Stage("tokenizer")),
            write.join().map_err(|_| JobError::Stage("writer")),
            engine_res,
        )
    });
    progress.finish();
    read_res?;
    // The writer's failure explains an engine that lost its output channel.
    let (summary, error_kinds, samples) = write_res??;
    tok_res??;
    engine_res?;
    let manifest = Manifest::new(&summary, &spec.model, &model_hash, started.elapsed());
    finalize(&summary.root, &manifest, total)?;
    Ok(RunSummary {
        output: summary.root.display().to_string(),
        total: manifest.counts.total,
        ok: manifest.counts.ok,
        error: manifest.counts.error,
        skipped: manifest.counts.skipped,
        prompt_tokens: manifest.prompt_tokens,
        completion_tokens: manifest.completion_tokens,
        wall_secs: manifest.wall_time_s,
        error_kinds,
        samples,
    })
}
