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
use super::speculation::{SpeculationConfig, Speculator};
use super::sps_profile::ProfileError;
use crate::backend::executor::{BackendError, Executor};
use crate::io::row::{
    FinishReason, Generation, RowError, RowErrorKind, RowKey, RowResult, RowTimings,
};
use crate::spec::{self, SpecStats, TokenDist};
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
    /// Draft and verify (the backend must accept a chunk that starts inside
    /// the previous one, after rejected drafts: the dense KV is overwritten,
    /// DeepSeek-V4 cuts its state back).
    pub speculation: Option<SpeculationConfig>,
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
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

struct Active {
    req: Request,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    generated: usize,
    /// Draft tokens verified for this row, and how many were kept.
    drafts_verified: usize,
    drafts_accepted: usize,
    started: Instant,
    first_token: Option<Instant>,
}

/// Why a row ends, and where its text is cut for a stop string.
type Finish = (FinishReason, Option<usize>);

/// One engine: a backend, a scheduler and the rows in flight.
pub struct Engine<'t, E: Executor> {
    exec: E,
    tokenizer: &'t TextTokenizer,
    sched: Scheduler,
    stop: StopMatcher,
    active: HashMap<SeqId, Active>,
    spec: Option<Speculator>,
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
            spec: cfg.speculation.clone().map(Speculator::new),
            next_id: 0,
            max_running: cfg.max_running,
            counters,
        }
    }

    /// Prompt tokens computed and taken from shared blocks so far.
    pub fn prefill_stats(&self) -> PrefillStats {
        self.sched.prefill_stats()
    }

    /// Speculation counters so far (`None` without speculation).
    pub fn spec_stats(&self) -> Option<&SpecStats> {
        self.spec.as_ref().map(Speculator::stats)
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
        if let Some(s) = &mut self.spec {
            s.admit(id, &req.prompt);
        }
        self.active.insert(
            id,
            Active {
                sampler: Sampler::new(req.sampling),
                req,
                decoder: IncrementalDecoder::default(),
                generated: 0,
                drafts_verified: 0,
                drafts_accepted: 0,
                started: Instant::now(),
                first_token: None,
            },
        );
        Ok(())
    }

    fn step(&mut self, output: &Sender<RowResult>) -> Result<(), EngineError> {
        let mut drafts = match &mut self.spec {
            Some(spec) => spec.propose(&self.sched.decoding()),
            None => HashMap::new(),
        };
        for (id, d) in &drafts {
            self.sched.set_draft(*id, d.tokens().to_vec());
        }
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
            let finish = match drafts.remove(id) {
                // The scheduler may have cut the draft to fit the step.
                Some(mut draft) if chunk.logits_for > 1 => {
                    draft.truncate(chunk.logits_for - 1);
                    self.verify(*id, &draft, rows, vocab)?
                }
                _ => {
                    let row = &rows[rows.len() - vocab..];
                    let a = self.active.get_mut(id).expect("planned rows are active");
                    let token = a.sampler.sample(row);
                    self.emit(*id, token, false)?
                }
            };
            if let Some(finish) = finish {
                self.finish(*id, finish, output)?;
            }
        }
        Ok(())
    }

    /// Judges row `id`'s draft against the target's rows of logits (one per
    /// verified position plus the anchor's) and emits what stands.
    fn verify(
        &mut self,
        id: SeqId,
        draft: &spec::Draft,
        logits: &[f32],
        vocab: usize,
    ) -> Result<Option<Finish>, EngineError> {
        let a = self.active.get_mut(&id).expect("planned rows are active");
        let targets: Vec<TokenDist> = logits
            .chunks_exact(vocab)
            .map(|row| a.sampler.distribution(row))
            .collect();
        let tokenizer = self.tokenizer;
        let verdict = spec::verify(&targets, draft, |t| tokenizer.is_eos(t), &mut a.sampler);
        a.drafts_verified += draft.len();
        a.drafts_accepted += verdict.accepted;
        if let Some(s) = &mut self.spec {
            s.record(id, draft.len(), verdict.accepted);
        }
        for (i, &token) in verdict.tokens.iter().enumerate() {
            if let Some(finish) = self.emit(id, token, i < verdict.accepted)? {
                return Ok(Some(finish));
            }
        }
        Ok(None)
    }

    /// Records one generated token (`verified`: an accepted draft, whose KV
    /// the step already wrote); returns why the row ends, if it does.
    fn emit(
        &mut self,
        id: SeqId,
        token: u32,
        verified: bool,
    ) -> Result<Option<Finish>, EngineError> {
        let a = self.active.get_mut(&id).expect("planned rows are active");
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
        if verified {
            self.sched.append_verified(id, token);
        } else {
            self.sched.append(id, token);
        }
        if let Some(s) = &mut self.spec {
            s.extend(id, token);
        }
        Ok(None)
    }

    fn finish(
        &mut self,
        id: SeqId,
        (reason, stop_at): Finish,
        output: &Sender<RowResult>,
    ) -> Result<(), EngineError> {
        let cached = self.sched.finish(id);
        self.exec.release(id);
        if let Some(s) = &mut self.spec {
            s.release(id);
        }
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
                draft_tokens_proposed: a.drafts_verified as u32,
                draft_tokens_accepted: a.drafts_accepted as u32,
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
