//! The CPU executor for DeepSeek-V4: keeps one [`SeqState`] per engine
//! sequence (window ring, compressed rows, indexer keys, open compressor
//! windows) and runs each step's chunks through [`Dsv4Model::forward`].
//!
//! The state of a sequence is a function of all its earlier tokens, not of
//! fixed-size blocks, so this backend does not take part in prefix-block
//! sharing; the engine's block pool still carries the memory budget, sized
//! from the exact per-sequence accounting of [`KvFootprint`].
//!
//! A chunk may start before the end of what its sequence has been fed, as
//! the chunk after a partially accepted verify does: within the undo record
//! of the sequence's latest chunk the state is first cut back to the chunk's
//! start ([`SeqState::rollback`], no recomputation); anywhere else the batch
//! is invalid.
//!
//! With DSpark on ([`CpuDsv4Executor::with_dspark`]) each chunk also
//! captures `main_hidden` for its last window of positions, held as pending
//! until the engine's next request for the sequence says how far it
//! committed: a chunk or a draft request at position p absorbs the pending
//! rows below p into the sequence's draft state and drops the rest (drafts
//! the verify rejected). So the draft state only ever takes committed
//! positions, in order, and needs no rollback of its own. Its bytes and the
//! pending rows are reserved per running sequence out of the KV budget.

use std::collections::HashMap;

use crate::backend::executor::{
    BackendDraft, BackendError, DraftRequest, Executor, ForwardBatch, ModelShape,
};
use crate::model::dsv4::dspark::absorb::Absorb;
use crate::model::dsv4::dspark::capture::Captured;
use crate::model::dsv4::dspark::draft::DraftRow;
use crate::model::dsv4::dspark::state::DraftState;
use crate::model::dsv4::forward::{Chunk, Dsv4Model};
use crate::model::dsv4::state::{KvFootprint, SeqState};

/// One sequence's DSpark context: its draft state and the rows its latest
/// chunk captured, not yet known to be committed.
struct SeqDraft {
    state: DraftState,
    pending: Option<Captured>,
}

pub struct CpuDsv4Executor {
    model: Dsv4Model,
    states: HashMap<u64, SeqState>,
    shape: ModelShape,
    blocks: usize,
    /// Bytes of one KV block's worth of tokens, and the running rows the
    /// budget holds (for [`Self::with_dspark`]'s reservation).
    block_bytes: usize,
    max_running: usize,
    /// `Some` when DSpark drafting is on.
    drafts: Option<HashMap<u64, SeqDraft>>,
}

impl CpuDsv4Executor {
    /// `kv_cache_bytes` covers every running sequence's fixed state (rings,
    /// open windows) plus the compressed rows of all their tokens.
    pub fn new(
        model: Dsv4Model,
        kv_cache_bytes: u64,
        block_size: usize,
        max_running: usize,
    ) -> CpuDsv4Executor {
        let c = model.config();
        let fp = KvFootprint::new(c);
        let per_token = fp.bytes_per_token_bound();
        let fixed = fp.budget(max_running, 0) as u64;
        let blocks =
            (kv_cache_bytes.saturating_sub(fixed) / (per_token * block_size) as u64) as usize;
        let shape = ModelShape {
            vocab_size: c.vocab_size,
            context_length: c.max_positions,
            kv_bytes_per_token: per_token,
        };
        CpuDsv4Executor {
            model,
            states: HashMap::new(),
            shape,
            blocks,
            block_bytes: per_token * block_size,
            max_running,
            drafts: None,
        }
    }

    /// Turns DSpark drafting on: every running sequence gets a draft state
    /// and room for one window of captured rows, taken from the KV blocks.
    /// Fails when the model has no draft module.
    pub fn with_dspark(mut self) -> Result<CpuDsv4Executor, BackendError> {
        let drafter = self.model.drafter().ok_or(BackendError::NoDraftModule)?;
        let c = self.model.config();
        let pending = drafter.context_window() * drafter.config().hidden_width(c.hidden) * 4;
        let reserve = self.max_running * (drafter.state_bytes() + pending);
        self.blocks = self
            .blocks
            .saturating_sub(reserve.div_ceil(self.block_bytes));
        self.drafts = Some(HashMap::new());
        Ok(self)
    }

    /// Absorbs, for each `(sequence, p)`, its pending captured rows below
    /// position p into its draft state; rows at p and later are dropped.
    fn absorb_below(&mut self, cuts: &[(u64, usize)]) -> Result<(), BackendError> {
        let (Some(drafts), Some(drafter)) = (self.drafts.as_mut(), self.model.drafter()) else {
            return Ok(());
        };
        let mut kept: HashMap<u64, (Captured, usize)> = HashMap::new();
        for &(id, below) in cuts {
            if let Some(c) = drafts.get_mut(&id).and_then(|d| d.pending.take()) {
                let rows = below.saturating_sub(c.pos0).min(c.rows());
                if rows > 0 {
                    kept.insert(id, (c, rows));
                }
            }
        }
        let mut items: Vec<Absorb<'_>> = drafts
            .iter_mut()
            .filter_map(|(id, d)| {
                let (c, rows) = kept.get(id)?;
                Some(Absorb {
                    state: &mut d.state,
                    pos0: c.pos0,
                    hidden: c.first(*rows),
                })
            })
            .collect();
        drafter
            .absorb(&mut items)
            .map_err(|e| BackendError::InvalidBatch(e.to_string()))
    }

    /// Bytes of sequence state held right now.
    pub fn state_bytes(&self) -> usize {
        self.states.values().map(SeqState::bytes).sum()
    }
}

impl Executor for CpuDsv4Executor {
    fn shape(&self) -> &ModelShape {
        &self.shape
    }

    fn kv_blocks(&self) -> usize {
        self.blocks
    }

    fn shares_prefix_blocks(&self) -> bool {
        false
    }

    fn release(&mut self, seq_id: u64) {
        self.states.remove(&seq_id);
        if let Some(d) = self.drafts.as_mut() {
            d.remove(&seq_id);
        }
    }

    fn draft(
        &mut self,
        rows: &mut [DraftRequest<'_>],
    ) -> Result<Vec<Option<BackendDraft>>, BackendError> {
        let cuts: Vec<(u64, usize)> = rows.iter().map(|r| (r.seq_id, r.anchor_pos)).collect();
        self.absorb_below(&cuts)?;
        let (Some(drafts), Some(drafter)) = (self.drafts.as_ref(), self.model.drafter()) else {
            return Err(BackendError::NoDraftModule);
        };
        // A sequence drafts only when its state holds every position before
        // its anchor.
        let ready: Vec<bool> = rows
            .iter()
            .map(|r| {
                drafts
                    .get(&r.seq_id)
                    .is_some_and(|d| d.state.len() == r.anchor_pos)
            })
            .collect();
        let mut batch: Vec<DraftRow<'_>> = rows
            .iter_mut()
            .zip(&ready)
            .filter(|(_, ready)| **ready)
            .map(|(r, _)| DraftRow {
                state: &drafts[&r.seq_id].state,
                anchor: r.anchor,
                sample: &mut *r.sample,
            })
            .collect();
        let mut out = drafter
            .draft(&mut batch)
            .map_err(|e| BackendError::InvalidBatch(e.to_string()))?
            .into_iter();
        Ok(ready
            .iter()
            .map(|&ready| {
                let d = if ready { out.next() } else { None }?;
                Some(BackendDraft {
                    tokens: d.tokens,
                    logits: d.logits,
                    confidence_logits: d.confidence,
                })
            })
            .collect())
    }

    fn forward(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, BackendError> {
        let vocab = self.shape.vocab_size;
        for (i, s) in batch.seqs.iter().enumerate() {
            let bad = |m: String| Err(BackendError::InvalidBatch(format!("sequence {i}: {m}")));
            if s.tokens.is_empty() || s.logits_for > s.tokens.len() {
                return bad("empty chunk or more logits than tokens".into());
            }
            if let Some(t) = s.tokens.iter().find(|&&t| t as usize >= vocab) {
                return bad(format!("token {t} outside the vocabulary of {vocab}"));
            }
            let undoable = self.states.get(&s.seq_id).map_or(0..=0, SeqState::undoable);
            if !undoable.contains(&s.start_pos) {
                return bad(format!(
                    "chunk starts at {} but the sequence holds {} tokens and can be cut \
                     back only to {}",
                    s.start_pos,
                    undoable.end(),
                    undoable.start()
                ));
            }
            if batch.seqs[..i].iter().any(|o| o.seq_id == s.seq_id) {
                return bad("sequence appears twice in one step".into());
            }
        }
        let cuts: Vec<(u64, usize)> = batch.seqs.iter().map(|s| (s.seq_id, s.start_pos)).collect();
        self.absorb_below(&cuts)?;
        for s in &batch.seqs {
            let state = self
                .states
                .entry(s.seq_id)
                .or_insert_with(|| self.model.new_state());
            state
                .rollback(&self.model.weights, s.start_pos)
                .map_err(|e| BackendError::InvalidBatch(e.to_string()))?;
        }
        // Take the states out so each chunk can borrow its own mutably.
        let mut taken: Vec<SeqState> = batch
            .seqs
            .iter()
            .map(|s| self.states.remove(&s.seq_id).expect("inserted above"))
            .collect();
        let mut chunks: Vec<Chunk<'_>> = taken
            .iter_mut()
            .zip(&batch.seqs)
            .map(|(state, s)| Chunk {
                state,
                tokens: &s.tokens,
                logits_for: s.logits_for,
            })
            .collect();
        let logits = match (self.drafts.as_mut(), self.model.drafter()) {
            (Some(drafts), Some(drafter)) => {
                let window = drafter.context_window();
                let rows: Vec<usize> = batch
                    .seqs
                    .iter()
                    .map(|s| s.tokens.len().min(window))
                    .collect();
                let (logits, captured) =
                    self.model
                        .forward_capture(&mut chunks, drafter.target_layers(), &rows);
                for (s, c) in batch.seqs.iter().zip(captured) {
                    drafts
                        .entry(s.seq_id)
                        .or_insert_with(|| SeqDraft {
                            state: drafter.new_state(),
                            pending: None,
                        })
                        .pending = Some(c);
                }
                logits
            }
            _ => self.model.forward(&mut chunks),
        };
        drop(chunks);
        for (s, st) in batch.seqs.iter().zip(taken) {
            self.states.insert(s.seq_id, st);
        }
        Ok(logits)
    }
}
