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

use std::collections::HashMap;

use crate::backend::executor::{BackendError, Executor, ForwardBatch, ModelShape};
use crate::model::dsv4::forward::{Chunk, Dsv4Model};
use crate::model::dsv4::state::{KvFootprint, SeqState};

pub struct CpuDsv4Executor {
    model: Dsv4Model,
    states: HashMap<u64, SeqState>,
    shape: ModelShape,
    blocks: usize,
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
        }
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
        let logits = self.model.forward(&mut chunks);
        drop(chunks);
        for (s, st) in batch.seqs.iter().zip(taken) {
            self.states.insert(s.seq_id, st);
        }
        Ok(logits)
    }
}
