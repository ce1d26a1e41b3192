//! The step scheduler: admission, prefix reuse, chunked prefill and decode,
//! as plain data.
//!
//! Each step it returns a [`StepPlan`]: decode rows first (one token each, so
//! running rows never stall), then prefill chunks of the oldest admitted rows
//! up to `max_batch_tokens`.
//!
//! Admission takes waiting rows in submission order (the planner's order)
//! and reserves every KV block a row can need (`kv::BlockPool`), so a step
//! never runs out of KV memory and nothing is ever preempted. With prefix
//! reuse on, a row attaches to the published blocks of its longest computed
//! prefix and computes only the rest; a row whose next prefix blocks are
//! being computed by a running row waits for them instead of computing them
//! a second time, and later rows go ahead meanwhile. A row always computes
//! at least its last prompt token (its logits start generation), so it never
//! writes into a shared block.
//!
//! A prefix group (rows the planner put together behind a shared prefix) pins
//! that prefix once it is computed, until no row of the group is waiting and
//! the input has moved on to another group: the prefix survives gaps between
//! the group's rows whatever else competes for memory.
//!
//! Rows that could never fit are refused at submission; the caller turns the
//! refusal into an error row.

use std::collections::{HashMap, VecDeque};

use crate::backend::executor::{ForwardBatch, SeqChunk};
use crate::kv::{BlockHash, BlockPool, SeqBlocks, blocks_for, chain_hashes};

/// Caller-chosen id of a sequence.
pub type SeqId = u64;

/// Scheduler limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub max_running: usize,
    pub max_batch_tokens: usize,
    pub block_size: usize,
    pub context_length: usize,
    /// Share computed prompt blocks between rows.
    pub prefix_reuse: bool,
}

/// A row's prefix group, from the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupTag {
    pub id: u32,
    /// Full KV blocks of the prefix every row of the group shares.
    pub prefix_blocks: usize,
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
    /// Chain hashes of the prompt's full blocks (empty without reuse).
    hashes: Vec<BlockHash>,
    group: Option<GroupTag>,
    /// Tokens whose KV is in the cache.
    computed: usize,
    /// Prompt tokens taken from the cache at admission.
    cached: usize,
    /// Prompt blocks published (or attached) so far.
    published: usize,
    blocks: Option<SeqBlocks>,
    /// Draft tokens to verify behind the last token in the next step.
    draft: Vec<u32>,
    /// Draft tokens the planned step feeds (not yet known to be kept).
    verifying: usize,
}

impl Seq {
    fn blocks_needed(&self, block_size: usize) -> usize {
        blocks_for(self.prompt_len + self.max_new, block_size)
    }

    /// Decoding: the prompt is computed and only the last sampled token is not.
    fn is_decoding(&self) -> bool {
        self.computed >= self.prompt_len && self.computed + 1 == self.tokens.len()
    }

    /// Positions left in the row's KV reservation after its last token: the
    /// most draft tokens it can verify.
    fn draft_room(&self) -> usize {
        (self.prompt_len + self.max_new).saturating_sub(self.tokens.len())
    }

    /// Prompt blocks another row may attach to: never the block holding the
    /// last prompt token's successor, so the row still computes its logits.
    fn shareable(&self, block_size: usize) -> usize {
        ((self.prompt_len - 1) / block_size).min(self.hashes.len())
    }
}

/// Prefill accounting of one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefillStats {
    /// Prompt tokens run through the model.
    pub computed: u64,
    /// Prompt tokens taken from shared KV blocks instead.
    pub cached: u64,
}

/// One step's work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepPlan {
    pub batch: ForwardBatch,
    /// The sequence of each entry of `batch.seqs`.
    pub seq_ids: Vec<SeqId>,
}

#[derive(Debug, Default)]
struct GroupState {
    waiting: usize,
    pinned: Vec<u32>,
}

/// Rows scanned past a row that waits for a prefix being computed.
const ADMISSION_LOOKAHEAD: usize = 64;

/// Admission, batching and KV bookkeeping for one engine.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    pool: BlockPool,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    /// Prompt blocks a running row will publish, by hash.
    pending: HashMap<BlockHash, SeqId>,
    groups: HashMap<u32, GroupState>,
    /// The group of the latest submitted row: earlier groups are complete.
    latest_group: Option<u32>,
    input_closed: bool,
    stats: PrefillStats,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig, kv_blocks: usize) -> Scheduler {
        Scheduler {
            cfg,
            pool: BlockPool::new(kv_blocks),
            waiting: VecDeque::new(),
            running: Vec::new(),
            pending: HashMap::new(),
            groups: HashMap::new(),
            latest_group: None,
            input_closed: false,
            stats: PrefillStats::default(),
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

    /// Queues a sequence for admission, behind every earlier one.
    pub fn submit(
        &mut self,
        id: SeqId,
        prompt: Vec<u32>,
        max_new: usize,
        group: Option<GroupTag>,
    ) -> Result<(), Rejection> {
        self.check(prompt.len(), max_new)?;
        let hashes = if self.cfg.prefix_reuse {
            chain_hashes(&prompt, self.cfg.block_size)
        } else {
            Vec::new()
        };
        if let Some(g) = group {
            self.groups.entry(g.id).or_default().waiting += 1;
            self.latest_group = Some(g.id);
        }
        self.waiting.push_back(Seq {
            id,
            prompt_len: prompt.len(),
            tokens: prompt,
            max_new,
            hashes,
            group,
            computed: 0,
            cached: 0,
            published: 0,
            blocks: None,
            draft: Vec::new(),
            verifying: 0,
        });
        Ok(())
    }

    /// No more rows will be submitted: pins of finished groups can go.
    pub fn close_input(&mut self) {
        self.input_closed = true;
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    pub fn prefill_stats(&self) -> PrefillStats {
        self.stats
    }

    /// Whether `seq` should wait for prefix blocks a running row computes.
    fn awaits_pending(&self, seq: &Seq, attachable: usize) -> bool {
        let shareable = seq.shareable(self.cfg.block_size);
        seq.hashes[attachable..shareable]
            .first()
            .is_some_and(|h| self.pending.contains_key(h))
    }

    fn admit(&mut self) {
        let bs = self.cfg.block_size;
        let mut i = 0;
        while self.running.len() < self.cfg.max_running
            && i < self.waiting.len()
            && i < ADMISSION_LOOKAHEAD
        {
            let seq = &self.waiting[i];
            let attach = self.pool.lookup(&seq.hashes[..seq.shareable(bs)]);
            if self.awaits_pending(seq, attach) {
                i += 1;
                continue;
            }
            let Some(blocks) = self
                .pool
                .try_admit(&seq.hashes[..attach], seq.blocks_needed(bs))
            else {
                // Memory is the limit: later rows must not overtake this one.
                break;
            };
            let mut seq = self.waiting.remove(i).expect("index in range");
            seq.computed = attach * bs;
            seq.cached = attach * bs;
            seq.published = attach;
            seq.blocks = Some(blocks);
            self.stats.cached += seq.cached as u64;
            for h in &seq.hashes[attach..] {
                self.pending.entry(*h).or_insert(seq.id);
            }
            if let Some(g) = seq.group {
                let state = self.groups.entry(g.id).or_default();
                state.waiting -= 1;
            }
            self.running.push(seq);
            let last = self.running.len() - 1;
            self.try_pin(last);
        }
    }

    /// Pins the group prefix of running row `i` once it is computed.
    fn try_pin(&mut self, i: usize) {
        let seq = &self.running[i];
        let Some(g) = seq.group else { return };
        if g.prefix_blocks == 0 || seq.published < g.prefix_blocks {
            return;
        }
        let state = self.groups.entry(g.id).or_default();
        if state.pinned.is_empty() {
            let table = &seq.blocks.as_ref().expect("running rows hold blocks").table;
            state.pinned = table[..g.prefix_blocks].to_vec();
            self.pool.pin(&state.pinned);
        }
    }

    /// Drops the pins of groups with no row left to admit.
    fn release_done_groups(&mut self) {
        let latest = self.latest_group;
        let closed = self.input_closed;
        let pool = &mut self.pool;
        self.groups.retain(|id, state| {
            let done = state.waiting == 0 && (closed || latest != Some(*id));
            if done {
                pool.unpin(&state.pinned);
            }
            !done
        });
    }

    /// Plans the next step. Empty only when nothing is runnable.
    pub fn schedule(&mut self) -> StepPlan {
        self.release_done_groups();
        self.admit();
        let bs = self.cfg.block_size;
        let mut budget = self.cfg.max_batch_tokens;
        let mut plan = StepPlan::default();
        // Feeds `n` tokens of the sequence then `drafts` of its draft.
        let mut push = |seq: &mut Seq, n: usize, drafts: usize, pool: &mut BlockPool| {
            let end = seq.computed + n;
            let blocks = seq.blocks.as_mut().expect("running sequences hold blocks");
            let grown = pool.grow(blocks, blocks_for(end + drafts, bs));
            debug_assert!(grown, "growth stays within the reservation");
            let mut tokens = seq.tokens[seq.computed..end].to_vec();
            tokens.extend_from_slice(&seq.draft[..drafts]);
            let reaches_end = end == seq.tokens.len();
            plan.batch.seqs.push(SeqChunk {
                seq_id: seq.id,
                tokens,
                start_pos: seq.computed,
                block_table: blocks.table.clone(),
                logits_for: if reaches_end { 1 + drafts } else { 0 },
            });
            plan.seq_ids.push(seq.id);
            seq.verifying = drafts;
            seq.draft.clear();
        };
        // Decode rows: everything but the last sampled token is cached; the
        // token and its draft (if any) are verified together.
        for seq in self.running.iter_mut() {
            if budget == 0 {
                break;
            }
            if seq.is_decoding() {
                let drafts = seq.draft.len().min(seq.draft_room()).min(budget - 1);
                push(seq, 1, drafts, &mut self.pool);
                budget -= 1 + drafts;
            }
        }
        // Prefill chunks, oldest first.
        for seq in self.running.iter_mut() {
            if budget == 0 {
                break;
            }
            if seq.computed < seq.prompt_len {
                let n = (seq.prompt_len - seq.computed).min(budget);
                push(seq, n, 0, &mut self.pool);
                self.stats.computed += n as u64;
                budget -= n;
            }
        }
        // A draft is for the step it was made for: a row the budget left
        // out drafts afresh next time.
        self.running.iter_mut().for_each(|s| s.draft.clear());
        plan
    }

    /// Records that a planned step ran: its tokens are now cached, and full
    /// prompt blocks become shareable.
    pub fn complete(&mut self, plan: &StepPlan) {
        let bs = self.cfg.block_size;
        for (id, chunk) in plan.seq_ids.iter().zip(&plan.batch.seqs) {
            let Some(i) = self.running.iter().position(|s| s.id == *id) else {
                continue;
            };
            let seq = &mut self.running[i];
            // Draft tokens count as computed only once they are accepted.
            seq.computed = chunk.start_pos + chunk.tokens.len() - seq.verifying;
            seq.verifying = 0;
            let full = (seq.computed.min(seq.prompt_len) / bs).min(seq.hashes.len());
            let table = &seq.blocks.as_ref().expect("running rows hold blocks").table;
            for (&block, hash) in table.iter().zip(&seq.hashes).take(full).skip(seq.published) {
                self.pool.publish(block, *hash);
                if self.pending.get(hash) == Some(&seq.id) {
                    self.pending.remove(hash);
                }
            }
            seq.published = seq.published.max(full);
            self.try_pin(i);
        }
    }

    /// Appends a sampled token to a running sequence.
    pub fn append(&mut self, id: SeqId, token: u32) {
        if let Some(seq) = self.running.iter_mut().find(|s| s.id == id) {
            seq.tokens.push(token);
        }
    }

    /// Appends an accepted draft token: the step that verified it already
    /// wrote its KV at the next position, so it counts as computed.
    pub fn append_verified(&mut self, id: SeqId, token: u32) {
        if let Some(seq) = self.running.iter_mut().find(|s| s.id == id) {
            debug_assert_eq!(seq.computed, seq.tokens.len(), "verified after its anchor");
            seq.tokens.push(token);
            seq.computed += 1;
        }
    }

    /// Rows that decode next step, with the most draft tokens each can
    /// verify (its remaining KV reservation).
    pub fn decoding(&self) -> Vec<(SeqId, usize)> {
        self.running
            .iter()
            .filter(|s| s.is_decoding())
            .map(|s| (s.id, s.draft_room()))
            .collect()
    }

    /// Draft tokens to verify behind row `id`'s last token in the next
    /// step only (cut to its room and the step's token budget).
    pub fn set_draft(&mut self, id: SeqId, draft: Vec<u32>) {
        if let Some(seq) = self.running.iter_mut().find(|s| s.id == id) {
            seq.draft = draft;
        }
    }

    /// Removes a finished sequence and frees its KV blocks. Returns the
    /// prompt tokens it took from the cache.
    pub fn finish(&mut self, id: SeqId) -> usize {
        let Some(i) = self.running.iter().position(|s| s.id == id) else {
            return 0;
        };
        let seq = self.running.swap_remove(i);
        for h in &seq.hashes[seq.published..] {
            if self.pending.get(h) == Some(&seq.id) {
                self.pending.remove(h);
            }
        }
        if let Some(b) = seq.blocks {
            self.pool.release(b);
        }
        seq.cached
    }

    /// KV blocks held and in the budget, for metrics and tests.
    pub fn kv_usage(&self) -> (usize, usize) {
        (self.pool.in_use(), self.pool.total())
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
            prefix_reuse: true,
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

    fn chunk(p: &StepPlan, id: SeqId) -> &SeqChunk {
        let i = p.seq_ids.iter().position(|&x| x == id).expect("planned");
        &p.batch.seqs[i]
    }

    /// A prompt of `doc` shared tokens then `tail` tokens unique to `tag`.
    fn prompt(doc: usize, tag: u32, tail: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..doc as u32).collect();
        p.extend(std::iter::repeat_n(100 + tag, tail));
        p
    }

    #[test]
    fn a_draft_is_verified_behind_the_last_token_and_only_kept_drafts_count() {
        let mut s = Scheduler::new(cfg(4, 64), 16);
        s.submit(1, vec![1, 2, 3, 4, 5], 10, None).unwrap();
        step(&mut s); // prefill, samples 7
        assert_eq!(s.decoding(), vec![(1, 9)]); // 5 + 10 - 6 positions left
        s.set_draft(1, vec![8, 9, 10]);
        let plan = s.schedule();
        let c = chunk(&plan, 1);
        assert_eq!(
            (c.tokens.clone(), c.start_pos, c.logits_for),
            (vec![7, 8, 9, 10], 5, 4)
        );
        s.complete(&plan);
        // Two drafts stand, then the target's own token.
        s.append_verified(1, 8);
        s.append_verified(1, 9);
        s.append(1, 11);
        let plan = s.schedule();
        let c = chunk(&plan, 1);
        assert_eq!(
            (c.tokens.clone(), c.start_pos, c.logits_for),
            (vec![11], 8, 1)
        );
    }

    #[test]
    fn drafts_are_cut_to_the_reservation_and_the_step_budget() {
        let mut s = Scheduler::new(cfg(4, 3), 16);
        s.submit(1, vec![1, 2], 3, None).unwrap();
        step(&mut s);
        step(&mut s); // prompt 2 + 2 generated: 1 position left
        assert_eq!(s.decoding(), vec![(1, 1)]);
        s.set_draft(1, vec![5, 6, 7]);
        let plan = s.schedule();
        assert_eq!(chunk(&plan, 1).tokens, vec![7, 5]);
        s.complete(&plan);
        s.append(1, 9);
        // A budget of 3 tokens leaves room for 2 drafts behind the anchor.
        let mut s = Scheduler::new(cfg(4, 3), 16);
        s.submit(2, vec![1, 2], 10, None).unwrap();
        step(&mut s);
        s.set_draft(2, vec![5, 6, 7, 8]);
        let plan = s.schedule();
        assert_eq!(chunk(&plan, 2).tokens, vec![7, 5, 6]);
        assert_eq!(plan.batch.total_tokens(), 3);
    }

    #[test]
    fn a_draft_the_budget_leaves_out_is_dropped() {
        let mut s = Scheduler::new(cfg(4, 4), 32);
        s.submit(1, vec![1, 2], 10, None).unwrap();
        s.submit(2, vec![3, 4], 10, None).unwrap();
        step(&mut s);
        s.set_draft(1, vec![5, 6, 7]);
        s.set_draft(2, vec![8, 9]);
        let plan = s.schedule();
        assert_eq!(chunk(&plan, 1).tokens, vec![7, 5, 6, 7]);
        assert!(!plan.seq_ids.contains(&2));
        s.complete(&plan);
        s.append(1, 9);
        // Row 2's draft was for that step only.
        let plan = s.schedule();
        assert_eq!(chunk(&plan, 2).tokens, vec![7]);
        assert_eq!(chunk(&plan, 2).logits_for, 1);
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
        s.submit(1, vec![1; 12], 3, None).unwrap();
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
        s.submit(1, vec![1; 3], 8, None).unwrap();
        step(&mut s); // prefill row 1 completely
        s.submit(2, vec![2; 10], 8, None).unwrap();
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
        s.submit(1, vec![1; 4], 4, None).unwrap();
        s.submit(2, vec![2; 4], 4, None).unwrap();
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
            s.submit(id, vec![1; 2], 2, None).unwrap();
        }
        let p = step(&mut s);
        assert_eq!(p.seq_ids, vec![0, 1]);
        assert_eq!(s.waiting_len(), 3);
    }

    #[test]
    fn a_shared_prefix_is_computed_once_and_later_rows_wait_for_it() {
        let mut s = Scheduler::new(cfg(8, 64), 100);
        // 12 shared tokens = 3 blocks; each row adds 3 tokens of its own.
        for id in 0..3 {
            s.submit(id, prompt(12, id as u32, 3), 2, None).unwrap();
        }
        s.submit(9, vec![50; 6], 2, None).unwrap();
        let p = step(&mut s);
        // Rows 1 and 2 wait for row 0's prefix; the unrelated row 9 goes ahead.
        assert_eq!(p.seq_ids, vec![0, 9]);
        assert_eq!(chunk(&p, 0).tokens.len(), 15);
        let p = step(&mut s);
        for id in [1, 2] {
            let c = chunk(&p, id);
            assert_eq!((c.start_pos, c.tokens.len()), (12, 3), "row {id}");
            assert_eq!(c.block_table[..3], chunk(&p, 0).block_table[..3]);
        }
        assert_eq!(
            s.prefill_stats(),
            PrefillStats {
                computed: 15 + 6 + 3 + 3,
                cached: 24
            }
        );
        assert_eq!(s.finish(1), 12);
        assert_eq!(s.finish(0), 0);
    }

    #[test]
    fn a_fully_cached_prompt_still_computes_its_last_block() {
        let mut s = Scheduler::new(cfg(8, 64), 100);
        s.submit(0, vec![3; 8], 2, None).unwrap();
        step(&mut s);
        s.submit(1, vec![3; 8], 2, None).unwrap();
        let p = step(&mut s);
        let c = chunk(&p, 1);
        // Block 0 is shared; block 1 holds the last prompt token and is recomputed.
        assert_eq!((c.start_pos, c.tokens.len(), c.logits_for), (4, 4, 1));
        assert_ne!(c.block_table[1], chunk(&p, 0).block_table[1]);
        assert_eq!(c.block_table[0], 0);
    }

    #[test]
    fn without_reuse_nothing_is_shared() {
        let mut s = Scheduler::new(
            SchedulerConfig {
                prefix_reuse: false,
                ..cfg(8, 64)
            },
            100,
        );
        for id in 0..2 {
            s.submit(id, prompt(12, id as u32, 3), 2, None).unwrap();
        }
        let p = step(&mut s);
        assert_eq!(p.batch.total_tokens(), 30);
        assert_eq!(s.prefill_stats().cached, 0);
    }

    #[test]
    fn a_group_prefix_stays_pinned_until_the_group_is_done() {
        // 5 blocks: the 3-block document plus one row's 2 own blocks at a time.
        let mut s = Scheduler::new(cfg(1, 64), 5);
        let g = GroupTag {
            id: 1,
            prefix_blocks: 3,
        };
        s.submit(0, prompt(12, 0, 3), 1, Some(g)).unwrap();
        step(&mut s);
        s.finish(0);
        // The pin holds the document while the group's next row is not here yet.
        assert_eq!(s.kv_usage().0, 3);
        s.submit(1, prompt(12, 1, 3), 1, Some(g)).unwrap();
        let p = step(&mut s);
        assert_eq!(chunk(&p, 1).start_pos, 12, "the document is reused");
        s.finish(1);
        // A row of another group arrives: group 1 is complete, its pin goes
        // and the cached blocks give way to the newcomer.
        let other = GroupTag {
            id: 2,
            prefix_blocks: 0,
        };
        s.submit(2, vec![60; 17], 3, Some(other)).unwrap();
        let p = step(&mut s);
        assert_eq!(chunk(&p, 2).block_table.len(), 5);
        assert_eq!(s.kv_usage().0, 5);
    }
}
