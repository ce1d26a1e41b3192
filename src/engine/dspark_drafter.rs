//! The `dspark` drafter: DeepSeek-V4's own draft module, which lives in the
//! target's backend (it reads the target's hidden streams and shares its
//! embedding and head), asked for one block per row each step.
//!
//! The engine side keeps, per row, only what the request needs: the last
//! committed token (the anchor), its position, and the row's draft sampler.
//! The backend holds the module's context and takes in exactly the
//! positions the engine committed: everything below the anchor position.
//!
//! Each draft token is drawn with the row's own sampling settings from the
//! module's Markov-corrected logits, from a random stream separate from the
//! target's, and the draft keeps that exact distribution; its confidence is
//! the sigmoid of the module's confidence logit.

use std::collections::HashMap;

use super::drafter::Drafter;
use super::sampler::{Sampler, SamplingParams};
use super::scheduler::SeqId;
use crate::backend::executor::{BackendError, DraftRequest, DraftSampler, Executor};
use crate::spec::{Draft, TokenDist};

struct Row {
    /// Tokens committed so far (prompt and output); the anchor is the last.
    len: usize,
    anchor: u32,
    sampler: Sampler,
}

/// Per-row bookkeeping for the backend's DSpark module.
#[derive(Default)]
pub struct DsparkDrafter {
    rows: HashMap<SeqId, Row>,
}

impl Drafter for DsparkDrafter {
    fn admit(&mut self, id: SeqId, prompt: &[u32], _max_new: usize, sampling: &SamplingParams) {
        let Some(&anchor) = prompt.last() else {
            return;
        };
        self.rows.insert(
            id,
            Row {
                len: prompt.len(),
                anchor,
                sampler: Sampler::new(sampling.for_drafts()),
            },
        );
    }

    fn draft(
        &mut self,
        rows: &[(SeqId, usize)],
        target: &mut dyn Executor,
    ) -> Result<Vec<(SeqId, Draft)>, BackendError> {
        let wanted: HashMap<SeqId, usize> = rows.iter().copied().filter(|r| r.1 > 0).collect();
        let mut live: Vec<(SeqId, &mut Row, Vec<TokenDist>)> = self
            .rows
            .iter_mut()
            .filter(|(id, _)| wanted.contains_key(id))
            .map(|(id, row)| (*id, row, Vec::new()))
            .collect();
        let mut samplers: Vec<Box<DraftSampler<'_>>> = Vec::new();
        let mut meta = Vec::new();
        for (id, row, dists) in live.iter_mut() {
            meta.push((*id, row.anchor, row.len - 1));
            let sampler = &mut row.sampler;
            samplers.push(Box::new(move |_, logits: &[f32]| {
                let dist = sampler.distribution(logits);
                let token = sampler.sample_from(&dist);
                dists.push(dist);
                token
            }));
        }
        let mut requests: Vec<DraftRequest<'_>> = meta
            .iter()
            .zip(samplers.iter_mut())
            .map(|(&(seq_id, anchor, anchor_pos), sample)| DraftRequest {
                seq_id,
                anchor,
                anchor_pos,
                sample: &mut **sample,
            })
            .collect();
        let drafts = target.draft(&mut requests)?;
        drop(requests);
        drop(samplers);
        Ok(live
            .into_iter()
            .zip(drafts)
            .filter_map(|((id, _, dists), d)| {
                let d = d?;
                let mut draft = Draft::default();
                for ((&token, &c), dist) in d.tokens.iter().zip(&d.confidence_logits).zip(dists) {
                    draft.push(token, 1.0 / (1.0 + (-c).exp()), dist);
                }
                draft.truncate(wanted[&id]);
                Some((id, draft))
            })
            .collect())
    }

    fn record(&mut self, _id: SeqId, _verified: usize, _accepted: usize) {}

    fn extend(&mut self, id: SeqId, token: u32) {
        if let Some(row) = self.rows.get_mut(&id) {
            row.len += 1;
            row.anchor = token;
        }
    }

    fn release(&mut self, id: SeqId) {
        self.rows.remove(&id);
    }
}
