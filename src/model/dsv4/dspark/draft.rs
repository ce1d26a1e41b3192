//! One DSpark draft round for a batch of sequences: the parallel stage (the
//! block through every stage, then `hc_head`, `norm` and the target head)
//! and the sequential stage ([`super::markov`]).
//!
//! Invariant: drafting reads the states and changes nothing; a row's draft
//! depends only on its own state, anchor and sampler, whatever the batch.

use super::super::moe::moe;
use super::Drafter;
use super::attention::{Block, block_attention};
use super::error::DsparkError;
use super::markov::{Heads, Sampler, sequential};
use super::state::DraftState;

/// One sequence's request for a draft.
pub struct DraftRow<'a> {
    pub state: &'a DraftState,
    /// The last committed token, at position `state.len()`.
    pub anchor: u32,
    /// Draws token i (the first argument) from its corrected logits: argmax
    /// at temperature 0, the request's sampling otherwise.
    pub sample: &'a mut Sampler<'a>,
}

/// One sequence's draft.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// γ draft tokens, for positions `len + 1..=len + γ`.
    pub tokens: Vec<u32>,
    /// `γ × vocab` Markov-corrected f32 logits: row i is the distribution
    /// token i was drawn from (before the sampler's temperature).
    pub logits: Vec<f32>,
    /// γ confidence logits (sigmoid: P(accepted | the earlier ones were)).
    pub confidence: Vec<f32>,
}

impl Drafter<'_> {
    /// Drafts γ tokens for every row, the matmuls batched over the rows.
    pub fn draft(&self, rows: &mut [DraftRow<'_>]) -> Result<Vec<Draft>, DsparkError> {
        let m = self.model;
        let c = m.config();
        let p = m.precision;
        let (gamma, vocab) = (self.config.block_size, c.vocab_size);
        for r in rows.iter() {
            self.check_state(r.state)?;
            self.check_token(r.anchor)?;
        }
        let n = rows.len() * gamma;
        let tokens: Vec<u32> = rows
            .iter()
            .flat_map(|r| {
                std::iter::once(r.anchor)
                    .chain(std::iter::repeat_n(self.config.noise_token, gamma - 1))
            })
            .collect();
        let mut streams = m.embed(&tokens);
        for (s, stage) in self.weights.stages.iter().enumerate() {
            let blocks: Vec<Block<'_>> = rows
                .iter()
                .map(|r| Block {
                    pos0: r.state.len(),
                    context: r.state.context(s).collect(),
                })
                .collect();
            m.site(&stage.hc_attn, &stage.attn_norm, &mut streams, n, |x| {
                block_attention(c, &stage.attn, &self.rope, p, x, &blocks, gamma)
            });
            m.site(&stage.hc_ffn, &stage.ffn_norm, &mut streams, n, |x| {
                moe(c, &stage.moe, p, x, &tokens)
            });
        }
        let x = m.collapse_head(&self.weights.hc_head, &streams, n);
        let mut logits = m.head_logits(&self.weights.norm, x.clone(), n);
        let anchors: Vec<u32> = rows.iter().map(|r| r.anchor).collect();
        let mut samplers: Vec<&mut Sampler<'_>> = rows.iter_mut().map(|r| &mut *r.sample).collect();
        let w = self.weights;
        let heads = Heads {
            w1: &w.markov_w1,
            w2: &w.markov_w2,
            confidence: &w.confidence,
        };
        let seq = sequential(&heads, p, &x, &mut logits, &anchors, &mut samplers, gamma)?;
        Ok(seq
            .tokens
            .into_iter()
            .enumerate()
            .map(|(r, tokens)| Draft {
                tokens,
                logits: logits[r * gamma * vocab..(r + 1) * gamma * vocab].to_vec(),
                confidence: seq.confidence[r * gamma..(r + 1) * gamma].to_vec(),
            })
            .collect())
    }
}
