//! The engine's step loop: pulls tokenized requests, runs steps on a backend,
//! samples, detects stops and emits exactly one [`RowResult`] per request.
//!
//! Requests arrive on a bounded channel; the loop only pulls as many as it can
//! admit soon, so back-pressure reaches the reader. A request the scheduler
//! refuses (too long for the context or the KV budget) becomes an error row at
//! once; the loop goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_array::ArrayRef;
use crossbeam::channel::{Receiver, Sender};

use super::sampler::{Sampler, SamplingParams};
use super::scheduler::{GroupTag, PrefillStats, Rejection, Scheduler, SchedulerConfig, SeqId};
use crate::backend::executor::{BackendError, Executor};
use crate::io::row::{
    FinishReason, Generation, RowError, RowErrorKind, RowKey, RowResult, RowTimings,
};
use crate::text::{IncrementalDecoder, ReasoningMode, StopMatcher, TextTokenizer, TokenizerError};

/// A tokenized row ready for the engine.
#[derive(Debug, Clone)]
pub struct Request {
    pub key: RowKey,
    pub prompt: Vec<u32>,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Decides whether the generated text is split into reasoning and answer.
    pub reasoning: ReasoningMode,
    pub pass_through: Vec<ArrayRef>,
    /// The row's prefix group, when the job was planned.
    pub group: Option<GroupTag>,
}

/// Engine limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_running: usize,
    pub max_batch_tokens: usize,
    pub block_size: usize,
    pub stop: Vec<String>,
    /// Share computed prompt blocks between rows.
    pub prefix_reuse: bool,
}

/// Live counters the progress display reads.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub generated_tokens: AtomicU64,
}

/// Why the loop stopped early (job-level, retriable).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("backend failed: {0}")]
    Backend(#[from] BackendError),
    #[error("detokenization failed: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("the output stage stopped accepting results")]
    OutputClosed,
}

struct Active {
    req: Request,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    generated: usize,
    started: Instant,
    first_token: Option<Instant>,
}

/// One engine: a backend, a scheduler and the rows in flight.
pub struct Engine<'t, E: Executor> {
    exec: E,
    tokenizer: &'t TextTokenizer,
    sched: Scheduler,
    stop: StopMatcher,
    active: HashMap<SeqId, Active>,
    next_id: SeqId,
    max_running: usize,
    counters: Arc<EngineCounters>,
}

impl<'t, E: Executor> Engine<'t, E> {
    pub fn new(
        exec: E,
        tokenizer: &'t TextTokenizer,
        cfg: &EngineConfig,
        counters: Arc<EngineCounters>,
    ) -> Self {
        let sched = Scheduler::new(
            SchedulerConfig {
                max_running: cfg.max_running,
                max_batch_tokens: cfg.max_batch_tokens,
                block_size: cfg.block_size,
                context_length: exec.shape().context_length,
                prefix_reuse: cfg.prefix_reuse && exec.shares_prefix_blocks(),
            },
            exec.kv_blocks(),
        );
        Engine {
            exec,
            tokenizer,
            sched,
            stop: StopMatcher::new(&cfg.stop),
            active: HashMap::new(),
            next_id: 0,
            max_running: cfg.max_running,
            counters,
        }
    }

    /// Prompt tokens computed and taken from shared blocks so far.
    pub fn prefill_stats(&self) -> PrefillStats {
        self.sched.prefill_stats()
    }

    /// Runs until `input` is closed and every request is answered.
    pub fn run(
        &mut self,
        input: &Receiver<Request>,
        output: &Sender<RowResult>,
    ) -> Result<(), EngineError> {
        let mut input_open = true;
        loop {
            // Keep enough queued to refill every slot, without hoarding.
            while input_open && self.sched.waiting_len() < self.max_running {
                let next = if self.sched.is_idle() {
                    input.recv().ok()
                } else {
                    match input.try_recv() {
                        Ok(r) => Some(r),
                        Err(crossbeam::channel::TryRecvError::Empty) => break,
                        Err(crossbeam::channel::TryRecvError::Disconnected) => None,
                    }
                };
                match next {
                    Some(req) => self.submit(req, output)?,
                    None => {
                        input_open = false;
                        self.sched.close_input();
                    }
                }
            }
            if self.sched.is_idle() {
                if input_open {
                    continue;
                }
                return Ok(());
            }
            self.step(output)?;
        }
    }

    fn submit(&mut self, req: Request, output: &Sender<RowResult>) -> Result<(), EngineError> {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(rej) = self
            .sched
            .submit(id, req.prompt.clone(), req.max_new_tokens, req.group)
        {
            let kind = match rej {
                Rejection::ExceedsBudget { .. } => RowErrorKind::ExceedsKvBudget,
                Rejection::TooLong { .. } => RowErrorKind::PromptTooLong,
                Rejection::Empty => RowErrorKind::EmptyPrompt,
            };
            let result = RowResult {
                seed: req.sampling.seed,
                prompt_tokens: req.prompt.len() as u32,
                key: req.key,
                outcome: Err(RowError::new(kind, rej.to_string())),
                pass_through: req.pass_through,
            };
            return output.send(result).map_err(|_| EngineError::OutputClosed);
        }
        self.active.insert(
            id,
            Active {
                sampler: Sampler::new(req.sampling),
                req,
                decoder: IncrementalDecoder::default(),
                generated: 0,
                started: Instant::now(),
                first_token: None,
            },
        );
        Ok(())
    }

    fn step(&mut self, output: &Sender<RowResult>) -> Result<(), EngineError> {
        let plan = self.sched.schedule();
        if plan.seq_ids.is_empty() {
            return Ok(());
        }
        let logits = self.exec.forward(&plan.batch)?;
        self.sched.complete(&plan);
        let vocab = self.exec.shape().vocab_size;
        for ((id, chunk), rows) in plan.seq_ids.iter().zip(&plan.batch.seqs).zip(&logits) {
            if chunk.logits_for == 0 {
                continue;
            }
            let row = &rows[rows.len() - vocab..];
            if let Some(finish) = self.accept(*id, row)? {
                self.finish(*id, finish, output)?;
            }
        }
        Ok(())
    }

    /// Samples and records one token; returns why the row ends, if it does.
    fn accept(
        &mut self,
        id: SeqId,
        logits: &[f32],
    ) -> Result<Option<(FinishReason, Option<usize>)>, EngineError> {
        let a = self.active.get_mut(&id).expect("planned rows are active");
        let token = a.sampler.sample(logits);
        a.first_token.get_or_insert_with(Instant::now);
        if self.tokenizer.is_eos(token) {
            return Ok(Some((FinishReason::Eos, None)));
        }
        a.generated += 1;
        self.counters
            .generated_tokens
            .fetch_add(1, Ordering::Relaxed);
        let new_len = a.decoder.push(self.tokenizer, token)?.len();
        if let Some(at) = self.stop.find(a.decoder.text(), new_len) {
            return Ok(Some((FinishReason::Stop, Some(at))));
        }
        if a.generated >= a.req.max_new_tokens {
            return Ok(Some((FinishReason::Length, None)));
        }
        self.sched.append(id, token);
        Ok(None)
    }

    fn finish(
        &mut self,
        id: SeqId,
        (reason, stop_at): (FinishReason, Option<usize>),
        output: &Sender<RowResult>,
    ) -> Result<(), EngineError> {
        let cached = self.sched.finish(id);
        self.exec.release(id);
        let a = self.active.remove(&id).expect("finished rows are active");
        let text = match stop_at {
            Some(at) => a.decoder.text()[..at].to_string(),
            None => a.decoder.finish(self.tokenizer)?,
        };
        let (reasoning_text, text) = a.req.reasoning.split(text);
        let now = Instant::now();
        let ms = |t: Instant| t.duration_since(a.started).as_secs_f64() * 1e3;
        let result = RowResult {
            seed: a.req.sampling.seed,
            prompt_tokens: a.req.prompt.len() as u32,
            key: a.req.key,
            outcome: Ok(Generation {
                text,
                reasoning_text,
                finish_reason: reason,
                cached_tokens: cached as u32,
                completion_tokens: a.generated as u32,
                draft_tokens_proposed: 0,
                draft_tokens_accepted: 0,
                timings: RowTimings {
                    time_to_first_token_ms: ms(a.first_token.unwrap_or(now)),
                    latency_ms: ms(now),
                },
            }),
            pass_through: a.req.pass_through,
        };
        output.send(result).map_err(|_| EngineError::OutputClosed)
    }
}
