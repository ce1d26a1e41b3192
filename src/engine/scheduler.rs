//! The step scheduler: admission, chunked prefill and decode, as plain data.
//!
//! Each step it returns a [`StepPlan`]: decode rows first (one token each, so
//! running rows never stall), then prefill chunks of the oldest admitted rows
//! up to `max_batch_tokens`. Admission is FIFO and reserves every KV block a
//! row can need (`kv::BlockPool`), so a step can never run out of KV memory
//! and nothing is ever preempted. Rows that could never fit are refused at
//! submission; the caller turns the refusal into an error row.

use std::collections::VecDeque;

use crate::backend::executor::{ForwardBatch, SeqChunk};
use crate::kv::{BlockPool, SeqBlocks, blocks_for};

/// Caller-chosen id of a sequence.
pub type SeqId = u64;

/// Scheduler limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub max_running: usize,
    pub max_batch_tokens: usize,
    pub block_size: usize,
    pub context_length: usize,
}

/// Why a sequence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(
        "prompt of {prompt} tokens + max_new_tokens {max_new} exceeds the model context of {context} tokens"
    )]
    TooLong {
        prompt: usize,
        max_new: usize,
        context: usize,
    },
    #[error(
        "prompt of {prompt} tokens + max_new_tokens {max_new} needs {needed} KV blocks; the KV budget holds {budget}"
    )]
    ExceedsBudget {
        prompt: usize,
        max_new: usize,
        needed: usize,
        budget: usize,
    },
    #[error("empty prompt")]
    Empty,
}

#[derive(Debug)]
struct Seq {
    id: SeqId,
    /// Prompt followed by the tokens generated so far.
    tokens: Vec<u32>,
    prompt_len: usize,
    max_new: usize,
    /// Tokens whose KV is in the cache.
    computed: usize,
    blocks: Option<SeqBlocks>,
}

impl Seq {
    fn blocks_needed(&self, block_size: usize) -> usize {
        blocks_for(self.prompt_len + self.max_new, block_size)
    }
}

/// One step's work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepPlan {
    pub batch: ForwardBatch,
    /// The sequence of each entry of `batch.seqs`.
    pub seq_ids: Vec<SeqId>,
}

/// Admission, batching and KV bookkeeping for one engine.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    pool: BlockPool,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig, kv_blocks: usize) -> Scheduler {
        Scheduler {
            cfg,
            pool: BlockPool::new(kv_blocks),
            waiting: VecDeque::new(),
            running: Vec::new(),
        }
    }

    /// Whether a prompt of this size can ever run.
    pub fn check(&self, prompt_len: usize, max_new: usize) -> Result<(), Rejection> {
        if prompt_len == 0 {
            return Err(Rejection::Empty);
        }
        if prompt_len + max_new > self.cfg.context_length {
            return Err(Rejection::TooLong {
                prompt: prompt_len,
                max_new,
                context: self.cfg.context_length,
            });
        }
        let needed = blocks_for(prompt_len + max_new, self.cfg.block_size);
        if needed > self.pool.total() {
            return Err(Rejection::ExceedsBudget {
                prompt: prompt_len,
                max_new,
                needed,
                budget: self.pool.total(),
            });
        }
        Ok(())
    }

    /// Queues a sequence for admission.
    pub fn submit(&mut self, id: SeqId, prompt: Vec<u32>, max_new: usize) -> Result<(), Rejection> {
        self.check(prompt.len(), max_new)?;
        self.waiting.push_back(Seq {
            id,
            prompt_len: prompt.len(),
            tokens: prompt,
            max_new,
            computed: 0,
            blocks: None,
        });
        Ok(())
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    fn admit(&mut self) {
        while self.running.len() < self.cfg.max_running {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let Some(blocks) = self
                .pool
                .try_reserve(front.blocks_needed(self.cfg.block_size))
            else {
                break;
            };
            let mut seq = self.waiting.pop_front().expect("front exists");
            seq.blocks = Some(blocks);
            self.running.push(seq);
        }
    }

    /// Plans the next step. Empty only when nothing is runnable.
    pub fn schedule(&mut self) -> StepPlan {
        self.admit();
        let bs = self.cfg.block_size;
        let mut budget = self.cfg.max_batch_tokens;
        let mut plan = StepPlan::default();
        let mut push = |seq: &mut Seq, n: usize, logits_for: usize, pool: &mut BlockPool| {
            let end = seq.computed + n;
            let blocks = seq.blocks.as_mut().expect("running sequences hold blocks");
            let grown = pool.grow(blocks, blocks_for(end, bs));
            debug_assert!(grown, "growth stays within the reservation");
            plan.batch.seqs.push(SeqChunk {
                tokens: seq.tokens[seq.computed..end].to_vec(),
                start_pos: seq.computed,
                block_table: blocks.table.clone(),
                logits_for,
            });
            plan.seq_ids.push(seq.id);
        };
        // Decode rows: everything but the last sampled token is cached.
        for seq in self.running.iter_mut() {
            if budget == 0 {
                break;
            }
            if seq.computed >= seq.prompt_len && seq.computed + 1 == seq.tokens.len() {
                push(seq, 1, 1, &mut self.pool);
                budget -= 1;
            }
        }
        // Prefill chunks, oldest first.
        for seq in self.running.iter_mut() {
            if budget == 0 {
                break;
            }
            if seq.computed < seq.prompt_len {
                let n = (seq.prompt_len - seq.computed).min(budget);
                let reaches_end = seq.computed + n == seq.prompt_len;
                push(seq, n, usize::from(reaches_end), &mut self.pool);
                budget -= n;
            }
        }
        plan
    }

    /// Records that a planned step ran: its tokens are now cached.
    pub fn complete(&mut self, plan: &StepPlan) {
        for (id, chunk) in plan.seq_ids.iter().zip(&plan.batch.seqs) {
            if let Some(seq) = self.running.iter_mut().find(|s| s.id == *id) {
                seq.computed = chunk.start_pos + chunk.tokens.len();
            }
        }
    }

    /// Appends a sampled token to a running sequence.
    pub fn append(&mut self, id: SeqId, token: u32) {
        if let Some(seq) = self.running.iter_mut().find(|s| s.id == id) {
            seq.tokens.push(token);
        }
    }

    /// Removes a finished sequence and frees its KV blocks.
    pub fn finish(&mut self, id: SeqId) {
        if let Some(i) = self.running.iter().position(|s| s.id == id) {
            let seq = self.running.swap_remove(i);
            if let Some(b) = seq.blocks {
                self.pool.release(b);
            }
        }
    }

    /// KV blocks in use and in the budget, for metrics.
    pub fn kv_usage(&self) -> (usize, usize) {
        (
            self.pool.total() - self.pool.free_count(),
            self.pool.total(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_running: usize, max_batch_tokens: usize) -> SchedulerConfig {
        SchedulerConfig {
            max_running,
            max_batch_tokens,
            block_size: 4,
            context_length: 64,
        }
    }

    /// Drives a scheduler with a fake model that always samples token 7.
    fn step(s: &mut Scheduler) -> StepPlan {
        let plan = s.schedule();
        s.complete(&plan);
        for (id, c) in plan.seq_ids.iter().zip(&plan.batch.seqs) {
            if c.logits_for > 0 {
                s.append(*id, 7);
            }
        }
        plan
    }

    #[test]
    fn refuses_rows_that_can_never_fit() {
        let s = Scheduler::new(cfg(4, 16), 5);
        assert!(matches!(s.check(60, 5), Err(Rejection::TooLong { .. })));
        assert!(matches!(
            s.check(20, 4),
            Err(Rejection::ExceedsBudget { needed: 6, .. })
        ));
        assert_eq!(s.check(0, 4), Err(Rejection::Empty));
        assert!(s.check(16, 4).is_ok());
    }

    #[test]
    fn chunked_prefill_then_decode() {
        let mut s = Scheduler::new(cfg(4, 5), 100);
        s.submit(1, vec![1; 12], 3).unwrap();
        let p = step(&mut s);
        assert_eq!(p.batch.seqs[0].tokens.len(), 5);
        assert_eq!(p.batch.seqs[0].logits_for, 0);
        step(&mut s);
        let p = step(&mut s);
        assert_eq!(
            (p.batch.seqs[0].start_pos, p.batch.seqs[0].tokens.len()),
            (10, 2)
        );
        assert_eq!(p.batch.seqs[0].logits_for, 1);
        assert_eq!(p.batch.seqs[0].block_table.len(), 3);
        let p = step(&mut s);
        assert_eq!(p.batch.seqs[0].tokens, vec![7]);
        assert_eq!(p.batch.seqs[0].start_pos, 12);
        assert_eq!(p.batch.seqs[0].block_table.len(), 4);
    }

    #[test]
    fn decode_rows_go_first_and_prefill_fills_the_budget() {
        let mut s = Scheduler::new(cfg(4, 6), 100);
        s.submit(1, vec![1; 3], 8).unwrap();
        step(&mut s); // prefill row 1 completely
        s.submit(2, vec![2; 10], 8).unwrap();
        let p = step(&mut s);
        assert_eq!(p.seq_ids, vec![1, 2]);
        assert_eq!(p.batch.seqs[0].tokens.len(), 1);
        assert_eq!(p.batch.seqs[1].tokens.len(), 5);
        assert_eq!(p.batch.total_tokens(), 6);
    }

    #[test]
    fn admission_respects_the_kv_budget_and_frees_on_finish() {
        // Each row needs ceil((4 + 4) / 4) = 2 blocks; the pool holds 3.
        let mut s = Scheduler::new(cfg(8, 64), 3);
        s.submit(1, vec![1; 4], 4).unwrap();
        s.submit(2, vec![2; 4], 4).unwrap();
        let p = step(&mut s);
        assert_eq!(p.seq_ids, vec![1]);
        assert_eq!(s.waiting_len(), 1);
        s.finish(1);
        assert_eq!(s.kv_usage().0, 0);
        let p = step(&mut s);
        assert_eq!(p.seq_ids, vec![2]);
        s.finish(2);
        assert!(s.is_idle());
    }

    #[test]
    fn max_running_caps_concurrency() {
        let mut s = Scheduler::new(cfg(2, 64), 100);
        for id in 0..5 {
            s.submit(id, vec![1; 2], 2).unwrap();
        }
        let p = step(&mut s);
        assert_eq!(p.seq_ids, vec![0, 1]);
        assert_eq!(s.running_len(), 2);
        assert_eq!(s.waiting_len(), 3);
    }
}
