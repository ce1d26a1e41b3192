//! The contract between the step loop and a compute backend.
//!
//! The engine hands a backend one [`ForwardBatch`] per step: plain data (token
//! ids, positions, KV block tables) with no device types. The backend owns
//! the KV storage, indexed by the block ids the engine's `kv` bookkeeping
//! allocates; it never allocates blocks itself.
//!
//! Invariant the engine relies on (batch invariance): the logits for a
//! sequence depend only on that sequence's tokens and KV, never on which
//! other sequences share the batch or how tokens are chunked.

/// One sequence's share of a step: feed `tokens` at positions
/// `start_pos..start_pos + tokens.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqChunk {
    /// The engine's id of the sequence, stable from its first chunk until
    /// [`Executor::release`].
    pub seq_id: u64,
    pub tokens: Vec<u32>,
    pub start_pos: usize,
    /// Physical KV block ids covering positions `0..start_pos + tokens.len()`.
    pub block_table: Vec<u32>,
    /// Return logits for the last `logits_for` tokens of this chunk (0 = none,
    /// as for a prefill chunk that does not reach the prompt's end).
    pub logits_for: usize,
}

/// All work for one forward step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardBatch {
    pub seqs: Vec<SeqChunk>,
}

impl ForwardBatch {
    pub fn total_tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.tokens.len()).sum()
    }
}

/// Static facts about the model a backend runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    pub vocab_size: usize,
    pub context_length: usize,
    /// Bytes of KV storage one token occupies across all layers.
    pub kv_bytes_per_token: usize,
}

/// Draws draft token `i` (the first argument) from its row of logits.
pub type DraftSampler<'a> = dyn FnMut(usize, &[f32]) -> u32 + 'a;

/// One sequence's request for a draft from the model's own draft module
/// (DeepSeek-V4's DSpark): the committed `anchor` at `anchor_pos`, the
/// first position the backend has not been fed as committed.
pub struct DraftRequest<'a> {
    pub seq_id: u64,
    pub anchor: u32,
    pub anchor_pos: usize,
    pub sample: &'a mut DraftSampler<'a>,
}

/// A backend draft: tokens, the `tokens × vocab` logit rows each was drawn
/// from, and per-token confidence logits (sigmoid: P(accepted | the
/// earlier ones were)).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendDraft {
    pub tokens: Vec<u32>,
    pub logits: Vec<f32>,
    pub confidence_logits: Vec<f32>,
}

/// Why a backend step failed. Backends report; they never panic on input.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    #[error("this backend's model has no draft module")]
    NoDraftModule,
    #[error("device failure: {0}")]
    Device(String),
}

/// Checks a batch against a paged-KV backend's limits before any of it
/// runs: non-empty chunks, positions inside the context, block tables that
/// cover each chunk with blocks the backend has, token ids in the vocabulary.
pub fn check_paged_batch(
    batch: &ForwardBatch,
    shape: &ModelShape,
    n_blocks: usize,
    block_size: usize,
) -> Result<(), BackendError> {
    for (i, s) in batch.seqs.iter().enumerate() {
        let end = s.start_pos + s.tokens.len();
        let bad = |m: String| Err(BackendError::InvalidBatch(format!("sequence {i}: {m}")));
        if s.tokens.is_empty() || s.logits_for > s.tokens.len() {
            return bad("empty chunk or more logits than tokens".into());
        }
        if end > shape.context_length {
            return bad(format!(
                "position {end} beyond the context {}",
                shape.context_length
            ));
        }
        if s.block_table.len() * block_size < end {
            return bad("block table does not cover the chunk".into());
        }
        if let Some(b) = s.block_table.iter().find(|b| **b as usize >= n_blocks) {
            return bad(format!("block {b} out of range"));
        }
        if let Some(t) = s.tokens.iter().find(|t| **t as usize >= shape.vocab_size) {
            return bad(format!("token {t} out of the vocabulary"));
        }
    }
    Ok(())
}

/// A device that runs the model forward over a batch.
pub trait Executor {
    fn shape(&self) -> &ModelShape;

    /// Number of KV blocks of `block_size` tokens the backend stores.
    fn kv_blocks(&self) -> usize;

    /// Runs one step. Returns, per sequence in order, `logits_for` rows of
    /// `vocab_size` logits each (row-major).
    fn forward(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, BackendError>;

    /// As [`forward`](Executor::forward), but each logits row covers only
    /// token ids `0..prefix` (`prefix` clamped to `1..=vocab_size`): a draft
    /// model restricted to part of its vocabulary. Backends that can skip
    /// the rest of the head override this; the default cuts the full rows.
    fn forward_vocab_prefix(
        &mut self,
        batch: &ForwardBatch,
        prefix: usize,
    ) -> Result<Vec<Vec<f32>>, BackendError> {
        let vocab = self.shape().vocab_size;
        let prefix = prefix.clamp(1, vocab);
        let out = self.forward(batch)?;
        if prefix == vocab {
            return Ok(out);
        }
        Ok(out
            .into_iter()
            .map(|rows| {
                rows.chunks_exact(vocab)
                    .flat_map(|r| &r[..prefix])
                    .copied()
                    .collect()
            })
            .collect())
    }

    /// Whether sequences may start on KV blocks another sequence computed
    /// (prefix reuse). Backends whose per-sequence state is not a function of
    /// the block contents alone say no.
    fn shares_prefix_blocks(&self) -> bool {
        true
    }

    /// The engine is done with a sequence: drop any state kept for it.
    fn release(&mut self, _seq_id: u64) {}

    /// Drafts with the model's own draft module, one result per request
    /// (`None` for a sequence whose context the module does not hold).
    fn draft(
        &mut self,
        _rows: &mut [DraftRequest<'_>],
    ) -> Result<Vec<Option<BackendDraft>>, BackendError> {
        Err(BackendError::NoDraftModule)
    }
}

/// Lets the engine run whichever backend the model needs.
impl<E: Executor + ?Sized> Executor for Box<E> {
    fn shape(&self) -> &ModelShape {
        (**self).shape()
    }

    fn kv_blocks(&self) -> usize {
        (**self).kv_blocks()
    }

    fn forward(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, BackendError> {
        (**self).forward(batch)
    }

    fn forward_vocab_prefix(
        &mut self,
        batch: &ForwardBatch,
        prefix: usize,
    ) -> Result<Vec<Vec<f32>>, BackendError> {
        (**self).forward_vocab_prefix(batch, prefix)
    }

    fn shares_prefix_blocks(&self) -> bool {
        (**self).shares_prefix_blocks()
    }

    fn release(&mut self, seq_id: u64) {
        (**self).release(seq_id)
    }

    fn draft(
        &mut self,
        rows: &mut [DraftRequest<'_>],
    ) -> Result<Vec<Option<BackendDraft>>, BackendError> {
        (**self).draft(rows)
    }
}
