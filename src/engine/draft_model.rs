//! The `draft_model` drafter: a smaller model with the target's vocabulary
//! drafts each row autoregressively, batched across rows, on its own
//! backend and KV cache.
//!
//! Per row the drafter keeps the row's history (prompt and output) and how
//! much of it the draft model's KV holds (`fed`). A step first feeds every
//! drafting row what its KV lacks (the whole prompt the first time, then the
//! tokens emitted since) and draws the first draft token from the last
//! row of logits; each further round feeds the previous draft token and
//! draws the next. Draft KV written for a draft position counts as held only
//! once verification kept that token ([`Drafter::record`]); anything else is
//! written again at the next step, which the dense backend allows because
//! its KV is addressed by position.
//!
//! Tokens are drawn with the row's own sampling settings from the draft
//! model's logits (argmax at temperature 0), from a random stream separate
//! from the target's; the draft distribution is exactly what was drawn
//! from. A position's confidence is the draft model's own softmax
//! probability (temperature 1) of the drafted token.
//!
//! Drafting costs a draft forward per round, which Algorithm 1 (it only
//! prices verification) cannot see, so drafting must pay for itself, judged
//! with the measured step rates of both models. A step drafts at all only
//! if some number of rounds is expected to commit more tokens per second
//! than the plain step, with each row's draft position i surviving with
//! its running rate of drafts whose first token was kept (a draft the
//! budget declined counts as not kept) to the power i; and only if the
//! draft forward catching the rows' draft KV up is repaid by that gain over
//! the tokens the rows have left. The running rate starts at 1 and recovers
//! towards 1 on steps the row does not draft, so a row whose drafts stopped
//! paying is tried again later, unless its catch-up has grown too long to
//! repay. Once drafting, round k+1 runs for the rows still drafting only
//! while the tokens it is expected to add (a row's next survival predicted
//! as its current survival times its latest confidence), per second it
//! adds (a draft step plus the wider verify), beat the tokens per second
//! of the step as planned so far.
//!
//! The draft head computes only the id prefix that holds nearly every token
//! the target has emitted so far ([`DraftVocab`]); the draft distribution is
//! the softmax over that prefix, which is what verification is handed, so
//! this stays lossless.
//!
//! Memory: the draft KV pool is sized by the caller; a row the pool cannot
//! take simply never drafts.

use std::collections::HashMap;

use super::drafter::Drafter;
use super::sampler::{Sampler, SamplingParams};
use super::scheduler::SeqId;
use crate::backend::executor::{BackendError, Executor, ForwardBatch, SeqChunk};
use crate::kv::block_pool::{BlockPool, SeqBlocks};
use crate::kv::blocks_for;
use crate::spec::{Draft, DraftVocab, SpsTable};

/// Weight of each new outcome in a row's first-position acceptance average.
const ACCEPT_EMA: f64 = 0.2;
/// How far a non-drafting step moves that average back towards 1.
const RECOVERY: f64 = 0.05;

/// The step rates the round gate compares.
#[derive(Debug, Clone)]
pub struct DraftCosts {
    /// Target forward steps per second by tokens in the batch.
    pub target: SpsTable,
    /// Draft forward steps per second by tokens in the batch.
    pub draft: SpsTable,
}

struct Row {
    history: Vec<u32>,
    /// The draft KV holds `history[..fed]`.
    fed: usize,
    /// Draft tokens of this step whose KV was written (all but the last).
    speculative: usize,
    blocks: SeqBlocks,
    sampler: Sampler,
    /// Running P(first draft token accepted).
    first_accept: f64,
    /// History length at which the row has no new tokens left.
    end: usize,
}

/// A draft model on its own backend.
pub struct DraftModel<E: Executor> {
    exec: E,
    pool: BlockPool,
    block_size: usize,
    /// Most prompt tokens one catch-up forward takes (the engine's step budget).
    max_batch_tokens: usize,
    max_draft: usize,
    costs: DraftCosts,
    rows: HashMap<SeqId, Row>,
    /// The emitted-token histogram that sizes the head.
    vocab: DraftVocab,
}

impl<E: Executor> DraftModel<E> {
    pub fn new(
        exec: E,
        block_size: usize,
        max_batch_tokens: usize,
        max_draft: usize,
        costs: DraftCosts,
    ) -> DraftModel<E> {
        let pool = BlockPool::new(exec.kv_blocks());
        let vocab = DraftVocab::new(exec.shape().vocab_size);
        DraftModel {
            exec,
            pool,
            block_size,
            max_batch_tokens: max_batch_tokens.max(1),
            max_draft,
            costs,
            rows: HashMap::new(),
            vocab,
        }
    }

    /// Feeds every listed row what its draft KV lacks, in forwards of at
    /// most `max_batch_tokens` tokens; returns each row's logits over ids
    /// `0..head` for its next token.
    fn catch_up(
        &mut self,
        ids: &[SeqId],
        head: usize,
    ) -> Result<HashMap<SeqId, Vec<f32>>, BackendError> {
        let mut out = HashMap::new();
        let mut pending: Vec<SeqId> = ids.to_vec();
        while !pending.is_empty() {
            let mut budget = self.max_batch_tokens;
            let mut seqs = Vec::new();
            let mut finishing = Vec::new();
            for &id in &pending {
                let row = &self.rows[&id];
                let left = row.history.len() - row.fed;
                // Every row gets at least one token so the loop progresses.
                let take = left.min(budget.max(1));
                budget = budget.saturating_sub(take);
                let last = take == left;
                seqs.push(self.chunk(id, take, usize::from(last))?);
                if last {
                    finishing.push(id);
                }
                if budget == 0 {
                    break;
                }
            }
            let batch = ForwardBatch { seqs };
            let logits = self.exec.forward_vocab_prefix(&batch, head)?;
            for (s, l) in batch.seqs.iter().zip(logits) {
                let row = self.rows.get_mut(&s.seq_id).expect("drafting rows exist");
                row.fed += s.tokens.len();
                if !l.is_empty() {
                    out.insert(s.seq_id, l);
                }
            }
            pending.retain(|id| !finishing.contains(id));
        }
        Ok(out)
    }

    /// The next `take` unfed history tokens of row `id` as one chunk.
    fn chunk(
        &mut self,
        id: SeqId,
        take: usize,
        logits_for: usize,
    ) -> Result<SeqChunk, BackendError> {
        let row = &self.rows[&id];
        let (start, end) = (row.fed, row.fed + take);
        let tokens = row.history[start..end].to_vec();
        Ok(SeqChunk {
            seq_id: id,
            tokens,
            start_pos: start,
            block_table: self.table_to(id, end)?,
            logits_for,
        })
    }

    /// Row `id`'s block table covering positions `0..end`, taking blocks
    /// from its reservation as needed.
    fn table_to(&mut self, id: SeqId, end: usize) -> Result<Vec<u32>, BackendError> {
        let n = blocks_for(end, self.block_size);
        let row = self.rows.get_mut(&id).expect("drafting rows exist");
        if !self.pool.grow(&mut row.blocks, n) {
            return Err(BackendError::InvalidBatch(format!(
                "draft position {end} is beyond the row's draft KV reservation"
            )));
        }
        Ok(row.blocks.table[..n].to_vec())
    }

    /// Whether drafting for the rows `known` (id, most draft tokens) this
    /// step is expected to beat plain decoding of the step's `all` rows.
    /// Some number of rounds k, with row r's draft position i surviving with
    /// `first_accept^i`, must commit more tokens per second than the plain
    /// step; and the draft forward that catches the rows' draft KV up (the
    /// prompt the first time, everything emitted since after declined
    /// steps), beyond the one token a round feeds anyway, must be repaid by
    /// that gain over the tokens the rows have left. Without the second
    /// rule a row whose drafts stopped paying would pay a long catch-up
    /// each time it tried again.
    fn step_pays(&self, known: &[(SeqId, usize)], all: usize) -> bool {
        let t = |n: usize| 1.0 / self.costs.target.steps_per_second(n);
        let plain = all as f64 / t(all);
        let rows: Vec<&Row> = known.iter().map(|(id, _)| &self.rows[id]).collect();
        let longest = known.iter().map(|(_, len)| *len).max().unwrap_or(0);
        let (mut gain, mut tokens, mut drafting) = (0.0, all, 0.0);
        let mut best = 0.0f64;
        for k in 1..=longest {
            let going: Vec<usize> = (0..rows.len()).filter(|&r| known[r].1 >= k).collect();
            drafting += seconds_for(&self.costs.draft, going.len());
            for &r in &going {
                gain += rows[r].first_accept.powi(k as i32);
                tokens += 1;
            }
            best = best.max((all as f64 + gain) / (t(tokens) + drafting));
        }
        if best <= plain {
            return false;
        }
        let lag: usize = rows.iter().map(|r| r.history.len() - r.fed).sum();
        let catch_up =
            seconds_for(&self.costs.draft, lag) - seconds_for(&self.costs.draft, rows.len());
        let left: usize = rows
            .iter()
            .map(|r| r.end.saturating_sub(r.history.len()))
            .sum();
        (1.0 / plain - 1.0 / best) * left as f64 > catch_up
    }

    /// Whether one more draft round over rows whose next tokens survive with
    /// `next` (predicted) pays, given the step so far: `expected` committed
    /// tokens, `verify_tokens` in the target batch and `draft_rounds` draft
    /// step times already spent.
    fn round_pays(&self, next: &[f64], expected: f64, verify_tokens: usize, spent: f64) -> bool {
        let t = |n: usize| 1.0 / self.costs.target.steps_per_second(n);
        let d = 1.0 / self.costs.draft.steps_per_second(next.len());
        let now = t(verify_tokens) + spent;
        let gain: f64 = next.iter().sum();
        let cost = d + t(verify_tokens + next.len()) - t(verify_tokens);
        gain * now > expected * cost
    }
}

/// Seconds of one forward over `tokens` tokens at the rates of `table`;
/// past its largest measured batch, that batch's throughput (a catch-up
/// that long runs in chunks of it).
fn seconds_for(table: &SpsTable, tokens: usize) -> f64 {
    let largest = table.points().last().map_or(1, |p| p.0);
    if tokens <= largest {
        1.0 / table.steps_per_second(tokens)
    } else {
        tokens as f64 / largest as f64 / table.steps_per_second(largest)
    }
}

/// Softmax probability of `token` in `logits` at temperature 1.
fn softmax_prob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    (((logits[token as usize] - max) as f64).exp() / total) as f32
}

impl<E: Executor> Drafter for DraftModel<E> {
    fn admit(
        &mut self,
        id: SeqId,
        prompt: &[u32],
        max_new_tokens: usize,
        sampling: &SamplingParams,
    ) {
        let need = blocks_for(
            prompt.len() + max_new_tokens + self.max_draft,
            self.block_size,
        );
        let Some(blocks) = self.pool.try_admit(&[], need) else {
            return;
        };
        self.rows.insert(
            id,
            Row {
                history: prompt.to_vec(),
                fed: 0,
                speculative: 0,
                blocks,
                sampler: Sampler::new(sampling.for_drafts()),
                first_accept: 1.0,
                end: prompt.len() + max_new_tokens,
            },
        );
    }

    fn draft(
        &mut self,
        rows: &[(SeqId, usize)],
        _target: &mut dyn Executor,
    ) -> Result<Vec<(SeqId, Draft)>, BackendError> {
        let known: Vec<(SeqId, usize)> = rows
            .iter()
            .copied()
            .filter(|(id, len)| *len > 0 && self.rows.contains_key(id))
            .collect();
        let all = rows.len();
        if known.is_empty() || !self.step_pays(&known, all) {
            for (id, _) in &known {
                let row = self.rows.get_mut(id).expect("known rows exist");
                row.first_accept += RECOVERY * (1.0 - row.first_accept);
            }
            return Ok(Vec::new());
        }
        let mut live = known.clone();
        let ids: Vec<SeqId> = live.iter().map(|(id, _)| *id).collect();
        let head = self.vocab.prefix();
        let mut logits = self.catch_up(&ids, head)?;
        let mut drafts: HashMap<SeqId, (Draft, f64)> = HashMap::new();
        let mut expected = all as f64;
        let mut verify_tokens = all;
        let mut spent = 1.0 / self.costs.draft.steps_per_second(live.len());
        loop {
            // Draw this round's token for every live row.
            for (id, _) in &live {
                let row = self.rows.get_mut(id).expect("live rows exist");
                let l = logits.remove(id).expect("every live row got logits");
                let dist = row.sampler.distribution(&l);
                let token = row.sampler.sample_from(&dist);
                let conf = softmax_prob(&l, token);
                let (d, survival) = drafts.entry(*id).or_insert((Draft::default(), 1.0));
                d.push(token, conf, dist);
                *survival *= f64::from(d.confidence()[d.len() - 1]);
                expected += *survival;
                verify_tokens += 1;
            }
            // Rows that may draft further, with their predicted next survival.
            let next: Vec<((SeqId, usize), f64)> = live
                .iter()
                .filter_map(|&(id, max_len)| {
                    let (d, survival) = &drafts[&id];
                    let last = f64::from(*d.confidence().last()?);
                    (d.len() < max_len && *survival * last > 0.0)
                        .then_some(((id, max_len), *survival * last))
                })
                .collect();
            let gains: Vec<f64> = next.iter().map(|(_, g)| *g).collect();
            if next.is_empty() || !self.round_pays(&gains, expected, verify_tokens, spent) {
                break;
            }
            live = next.into_iter().map(|(r, _)| r).collect();
            let mut seqs = Vec::with_capacity(live.len());
            for (id, _) in &live {
                let d = &drafts[id].0;
                let token = d.tokens()[d.len() - 1];
                let pos = self.rows[id].history.len() + d.len() - 1;
                seqs.push(SeqChunk {
                    seq_id: *id,
                    tokens: vec![token],
                    start_pos: pos,
                    block_table: self.table_to(*id, pos + 1)?,
                    logits_for: 1,
                });
            }
            spent += 1.0 / self.costs.draft.steps_per_second(seqs.len());
            let batch = ForwardBatch { seqs };
            let out = self.exec.forward_vocab_prefix(&batch, head)?;
            for (s, l) in batch.seqs.iter().zip(out) {
                logits.insert(s.seq_id, l);
            }
        }
        Ok(known
            .iter()
            .filter_map(|(id, _)| {
                let (d, _) = drafts.remove(id)?;
                let row = self.rows.get_mut(id).expect("known rows exist");
                row.speculative = d.len() - 1;
                Some((*id, d))
            })
            .collect())
    }

    fn record(&mut self, id: SeqId, _verified: usize, accepted: usize) {
        if let Some(row) = self.rows.get_mut(&id) {
            row.fed += accepted.min(row.speculative);
            // A draft the budget declined (nothing verified) did not pay
            // either: the gate learns to stop drafting where Algorithm 1
            // keeps declining.
            let kept = if accepted > 0 { 1.0 } else { 0.0 };
            row.first_accept += ACCEPT_EMA * (kept - row.first_accept);
        }
    }

    fn extend(&mut self, id: SeqId, token: u32) {
        self.vocab.count(token);
        if let Some(row) = self.rows.get_mut(&id) {
            row.history.push(token);
            row.speculative = 0;
        }
    }

    fn release(&mut self, id: SeqId) {
        if let Some(row) = self.rows.remove(&id) {
            self.pool.release(row.blocks);
            self.exec.release(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::executor::ModelShape;

    const VOCAB: usize = 16;

    /// A model whose next token is always (last fed token + 1) mod VOCAB, with
    /// probability about 0.9; it records every chunk it runs.
    struct Counter {
        shape: ModelShape,
        chunks: Vec<(usize, Vec<u32>)>,
    }

    impl Counter {
        fn new() -> Counter {
            Counter::with_vocab(VOCAB)
        }

        fn with_vocab(vocab_size: usize) -> Counter {
            Counter {
                shape: ModelShape {
                    vocab_size,
                    context_length: 4096,
                    kv_bytes_per_token: 1,
                },
                chunks: Vec::new(),
            }
        }
    }

    impl Executor for Counter {
        fn shape(&self) -> &ModelShape {
            &self.shape
        }

        fn kv_blocks(&self) -> usize {
            64
        }

        fn forward(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, BackendError> {
            Ok(batch
                .seqs
                .iter()
                .map(|s| {
                    self.chunks.push((s.start_pos, s.tokens.clone()));
                    let last = *s.tokens.last().unwrap() as usize;
                    let vocab = self.shape.vocab_size;
                    let mut row = vec![0.0; vocab * s.logits_for];
                    if s.logits_for > 0 {
                        row[(last + 1) % vocab] = 5.0;
                    }
                    row
                })
                .collect())
        }
    }

    fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 3,
        }
    }

    fn drafter(draft_rate: f64) -> DraftModel<Counter> {
        drafter_with(vec![(1, 10.0)], draft_rate)
    }

    /// A drafter whose target runs at `target` steps per second by batch
    /// tokens and whose draft model runs `draft_rate` steps per second.
    fn drafter_with(target: Vec<(usize, f64)>, draft_rate: f64) -> DraftModel<Counter> {
        let costs = DraftCosts {
            target: SpsTable::new(target).unwrap(),
            draft: SpsTable::new(vec![(1, draft_rate)]).unwrap(),
        };
        DraftModel::new(Counter::new(), 4, 8, 4, costs)
    }

    #[test]
    fn the_head_shrinks_to_the_ids_the_target_emits() {
        use crate::spec::draft_vocab::{BUCKET, MIN_SEEN};
        let costs = drafter(1e9).costs;
        let mut d = DraftModel::new(Counter::with_vocab(3 * BUCKET), 4, 8, 4, costs.clone());
        d.admit(1, &[5000], 20, &greedy());
        let full = d.draft(&[(1, 1)], &mut Counter::new()).unwrap();
        assert_eq!(full[0].1.tokens(), &[5001], "the whole vocabulary at first");

        let mut d = DraftModel::new(Counter::with_vocab(3 * BUCKET), 4, 8, 4, costs);
        for t in 0..MIN_SEEN as u32 {
            d.extend(99, t % 100);
        }
        d.admit(1, &[5000], 20, &greedy());
        let cut = d.draft(&[(1, 1)], &mut Counter::new()).unwrap();
        let draft = &cut[0].1;
        // Only ids 0..4096 were scored: all tie at 0, so argmax takes id 0,
        // and the draft's distribution is the one it was drawn from.
        assert_eq!(draft.tokens(), &[0]);
        assert_eq!(draft.dists()[0], crate::spec::TokenDist::point(0));
        let p = 1.0 / BUCKET as f32;
        assert!(
            (draft.confidence()[0] - p).abs() < 1e-9,
            "softmax over the prefix"
        );
    }

    #[test]
    fn drafts_feed_the_prompt_in_budgeted_chunks_then_one_token_per_round() {
        let mut d = drafter(1e9);
        d.admit(7, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 20, &greedy());
        let drafts = d.draft(&[(7, 4)], &mut Counter::new()).unwrap();
        assert_eq!(drafts.len(), 1);
        assert_eq!(drafts[0].1.tokens(), &[11, 12, 13, 14]);
        // The confidence is the draft model's own probability of its token.
        let p = 5f32.exp() / (5f32.exp() + 15.0);
        assert!((drafts[0].1.confidence()[0] - p).abs() < 1e-6);
        // 10 prompt tokens in chunks of at most 8, then drafts 1..3 fed
        // (the last draft token is never fed).
        assert_eq!(
            d.exec.chunks,
            vec![
                (0, vec![1, 2, 3, 4, 5, 6, 7, 8]),
                (8, vec![9, 10]),
                (10, vec![11]),
                (11, vec![12]),
                (12, vec![13]),
            ]
        );
    }

    #[test]
    fn only_kept_drafts_count_as_fed() {
        let mut d = drafter(1e9);
        d.admit(1, &[1, 2, 3], 20, &greedy());
        d.draft(&[(1, 4)], &mut Counter::new()).unwrap(); // drafts 4 5 6 7; feeds 4 5 6
        // Two drafts kept, then the target's correction 9.
        d.record(1, 4, 2);
        for t in [4, 5, 9] {
            d.extend(1, t);
        }
        d.exec.chunks.clear();
        let drafts = d.draft(&[(1, 2)], &mut Counter::new()).unwrap();
        assert_eq!(drafts[0].1.tokens(), &[10, 11]);
        // KV held 1 2 3 4 5: the next step starts by feeding the correction.
        assert_eq!(d.exec.chunks, vec![(5, vec![9]), (6, vec![10])]);

        // A draft the budget left out (no record) keeps nothing: position 6
        // held draft 10 and now takes the emitted 12.
        d.extend(1, 12);
        d.exec.chunks.clear();
        d.draft(&[(1, 1)], &mut Counter::new()).unwrap();
        assert_eq!(d.exec.chunks, vec![(6, vec![12])]);
    }

    #[test]
    fn rounds_that_cost_more_than_they_add_do_not_run() {
        // A draft step as slow as a target step never pays for itself.
        let mut d = drafter(10.0);
        d.admit(1, &[1, 2, 3], 20, &greedy());
        assert!(d.draft(&[(1, 4)], &mut Counter::new()).unwrap().is_empty());
        assert!(d.exec.chunks.is_empty(), "nothing was run");
        // A cheap draft model drafts while the survival is worth a round:
        // confidence ~0.9 per position at a tenth of a target step.
        let mut d = drafter(100.0);
        d.admit(1, &[1, 2, 3], 20, &greedy());
        let n = d.draft(&[(1, 4)], &mut Counter::new()).unwrap()[0].1.len();
        assert!((1..=4).contains(&n), "{n}");
    }

    #[test]
    fn a_step_drafts_when_several_rounds_pay_though_one_would_not() {
        // Verifying 2 tokens costs twice a plain step, 5 tokens no more: one
        // round commits about 1.9 tokens in 0.22 s (below the plain 10/s),
        // four about 4.4 in 0.28 s.
        let mut d = drafter_with(vec![(1, 10.0), (2, 5.0), (5, 5.0)], 50.0);
        d.admit(1, &[1, 2, 3], 20, &greedy());
        let drafts = d.draft(&[(1, 4)], &mut Counter::new()).unwrap();
        assert!(drafts[0].1.len() > 1, "{}", drafts[0].1.len());
    }

    #[test]
    fn a_catch_up_the_tokens_left_cannot_repay_is_not_run() {
        // Feeding 60 prompt tokens takes 0.6 s of draft steps; drafting
        // saves at most about 0.07 s per token against plain decoding.
        let prompt: Vec<u32> = (0..60).collect();
        let mut d = drafter(100.0);
        d.admit(1, &prompt, 2, &greedy());
        assert!(d.draft(&[(1, 4)], &mut Counter::new()).unwrap().is_empty());
        assert!(d.exec.chunks.is_empty(), "nothing was run");
        // With 150 tokens to go the same catch-up pays.
        let mut d = drafter(100.0);
        d.admit(2, &prompt, 150, &greedy());
        assert_eq!(d.draft(&[(2, 4)], &mut Counter::new()).unwrap().len(), 1);
    }

    #[test]
    fn rows_whose_drafts_keep_being_declined_stop_drafting_then_retry() {
        let mut d = drafter(100.0);
        d.admit(1, &[1, 2, 3], 200, &greedy());
        assert!(!d.draft(&[(1, 4)], &mut Counter::new()).unwrap().is_empty());
        // The budget declined this draft and the next 19 (the estimate is
        // then 0.8^20 of a token against a draft round costing a tenth of
        // a step); every step the target still emits a token.
        for t in 0..20 {
            d.record(1, 0, 0);
            d.extend(1, 4 + t);
        }
        assert!(d.draft(&[(1, 4)], &mut Counter::new()).unwrap().is_empty());
        // Steps without drafting bring the estimate back until it pays again.
        let retried = (0..100).any(|t| {
            d.extend(1, t);
            !d.draft(&[(1, 4)], &mut Counter::new()).unwrap().is_empty()
        });
        assert!(retried);
    }

    #[test]
    fn rows_the_pool_cannot_hold_never_draft() {
        let mut d = drafter(1e9);
        // 64 blocks of 4 tokens: a row needing 300 positions does not fit.
        d.admit(1, &[1; 280], 16, &greedy());
        assert!(d.draft(&[(1, 4)], &mut Counter::new()).unwrap().is_empty());
        d.admit(2, &[1, 2], 4, &greedy());
        assert_eq!(
            d.draft(&[(1, 4), (2, 4)], &mut Counter::new())
                .unwrap()
                .len(),
            1
        );
        d.release(2);
        assert_eq!(d.pool.promised() + d.pool.in_use(), 0);
    }
}
