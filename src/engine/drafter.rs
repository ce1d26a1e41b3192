//! Where draft tokens come from: the [`Drafter`] contract the engine's
//! [`Speculator`](super::speculation::Speculator) drives, and the n-gram
//! drafter behind it (one prompt-lookup index per row).
//!
//! Per step the engine asks for raw drafts (before calibration and before the
//! verification budget), verifies some prefix of each, reports each verified
//! row's outcome with [`Drafter::record`] and feeds every emitted token back
//! with [`Drafter::extend`]. A row whose draft the budget declined gets
//! `record(id, 0, 0)`.
//!
//! Invariant every drafter keeps: each draft position carries the exact
//! distribution its token was drawn from, so verification stays lossless.

use std::collections::HashMap;

use super::sampler::SamplingParams;
use super::scheduler::SeqId;
use crate::backend::executor::{BackendError, Executor};
use crate::spec::{Draft, JobConfidence, NgramConfig, NgramDrafter};

/// A source of draft tokens for the engine's decoding rows.
pub trait Drafter {
    /// A row joins: `prompt` is its history so far, it generates at most
    /// `max_new_tokens`, and drafts for it are drawn with `sampling` (the
    /// row's own settings).
    fn admit(
        &mut self,
        id: SeqId,
        prompt: &[u32],
        max_new_tokens: usize,
        sampling: &SamplingParams,
    );

    /// Drafts of at most `max_len` tokens for the rows `(id, max_len)` about
    /// to decode, with raw confidences. Rows may be absent (nothing to
    /// propose); a row's draft is valid for this step only. `target` is the
    /// engine's backend, for drafters that live in the model (DSpark).
    fn draft(
        &mut self,
        rows: &[(SeqId, usize)],
        target: &mut dyn Executor,
    ) -> Result<Vec<(SeqId, Draft)>, BackendError>;

    /// Row `id` verified the first `verified` tokens of this step's draft and
    /// kept the first `accepted`.
    fn record(&mut self, id: SeqId, verified: usize, accepted: usize);

    /// `token` joined row `id`'s output.
    fn extend(&mut self, id: SeqId, token: u32);

    fn release(&mut self, id: SeqId);
}

/// Prompt lookup over each row's own prompt and output, with draft
/// confidences learned per row and across the job's rows.
#[derive(Debug)]
pub struct NgramDrafters {
    rows: HashMap<SeqId, NgramDrafter>,
    job: JobConfidence,
}

impl Default for NgramDrafters {
    fn default() -> NgramDrafters {
        let NgramConfig { min_n, max_n } = NgramConfig::default();
        NgramDrafters {
            rows: HashMap::new(),
            job: JobConfidence::new(min_n, max_n),
        }
    }
}

impl Drafter for NgramDrafters {
    fn admit(&mut self, id: SeqId, prompt: &[u32], _max_new: usize, _sampling: &SamplingParams) {
        let mut d =
            NgramDrafter::new(NgramConfig::default()).expect("the default n-gram range is valid");
        d.extend(prompt);
        self.rows.insert(id, d);
    }

    fn draft(
        &mut self,
        rows: &[(SeqId, usize)],
        _target: &mut dyn Executor,
    ) -> Result<Vec<(SeqId, Draft)>, BackendError> {
        Ok(rows
            .iter()
            .filter_map(|&(id, max_len)| {
                Some((id, self.rows.get_mut(&id)?.draft(max_len, &self.job)))
            })
            .collect())
    }

    fn record(&mut self, id: SeqId, verified: usize, accepted: usize) {
        if let Some(d) = self.rows.get_mut(&id) {
            d.record(verified, accepted, &mut self.job);
        }
    }

    fn extend(&mut self, id: SeqId, token: u32) {
        if let Some(d) = self.rows.get_mut(&id) {
            d.extend(&[token]);
        }
    }

    fn release(&mut self, id: SeqId) {
        self.rows.remove(&id);
    }
}
