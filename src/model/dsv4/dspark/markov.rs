//! DSpark's sequential stage: the first-order Markov correction of the
//! block's base logits and the confidence head.
//!
//! For draft position i of a row, `prev` is the anchor (i = 0) or the token
//! drawn at i − 1; the row's logits get `markov_w2 · markov_w1[prev]` added
//! and the caller's sampler draws token i from the corrected row, which is
//! exactly the distribution the token came from (rejection sampling needs
//! it). Confidence i is `proj · [x_i ; markov_w1[prev]]` with x the block's
//! hidden state before the final norm: a logit of P(token i accepted |
//! tokens before it accepted).
//!
//! Invariant: position i's sampler call sees the bias of the token drawn at
//! i − 1, so the loop is sequential in i; the matmuls of one i are batched
//! over rows, and a row's values never depend on the other rows.

use super::super::precision::{Gemm, Precision};
use super::error::DsparkError;
use super::weights::DsparkWeights;

/// Picks draft token i (the argument) from its corrected logits.
pub type Sampler<'a> = dyn FnMut(usize, &[f32]) -> u32 + 'a;

/// The sequential stage's results for `rows` rows of `block` positions.
pub(super) struct Sequential {
    /// Per row, `block` tokens.
    pub tokens: Vec<Vec<u32>>,
    /// `rows × block` confidence logits.
    pub confidence: Vec<f32>,
}

/// Runs the Markov loop over `logits` (`rows × block × vocab`, corrected in
/// place) and the confidence head over `x` (`rows × block × hidden`).
/// `anchors[r]` starts row r; `samplers[r]` draws its tokens.
pub(super) fn sequential(
    w: &DsparkWeights,
    p: Precision,
    x: &[f32],
    logits: &mut [f32],
    anchors: &[u32],
    samplers: &mut [&mut Sampler<'_>],
    block: usize,
) -> Result<Sequential, DsparkError> {
    let (vocab, rank) = (w.markov_w1.rows, w.markov_w1.cols);
    let hidden = w.confidence.cols - rank;
    let rows = anchors.len();
    let mut prev = anchors.to_vec();
    let mut tokens = vec![Vec::with_capacity(block); rows];
    // `[x_i ; markov_w1[prev_i]]` per (row, i), the confidence input.
    let mut joint = vec![0.0f32; rows * block * (hidden + rank)];
    let mut emb = vec![0.0f32; rows * rank];
    for i in 0..block {
        for (e, &t) in emb.chunks_exact_mut(rank).zip(&prev) {
            w.markov_w1.dequantize_row(t as usize, e);
        }
        let bias = p.linear(&w.markov_w2, &emb, rows, Gemm::F32);
        for r in 0..rows {
            let at = r * block + i;
            let row = &mut logits[at * vocab..(at + 1) * vocab];
            row.iter_mut()
                .zip(&bias[r * vocab..(r + 1) * vocab])
                .for_each(|(l, b)| *l += b);
            let token = samplers[r](i, row);
            if token as usize >= vocab {
                return Err(DsparkError::Token { token, vocab });
            }
            let j = &mut joint[at * (hidden + rank)..(at + 1) * (hidden + rank)];
            j[..hidden].copy_from_slice(&x[at * hidden..(at + 1) * hidden]);
            j[hidden..].copy_from_slice(&emb[r * rank..(r + 1) * rank]);
            tokens[r].push(token);
            prev[r] = token;
        }
    }
    let confidence = p.linear(&w.confidence, &joint, rows * block, Gemm::F32);
    Ok(Sequential { tokens, confidence })
}
