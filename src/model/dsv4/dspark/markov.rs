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

use super::super::matrix::Matrix;
use super::super::precision::{Gemm, Precision};
use super::error::DsparkError;

/// Picks draft token i (the argument) from its corrected logits.
pub type Sampler<'a> = dyn FnMut(usize, &[f32]) -> u32 + 'a;

/// The sequential stage's tables (the last stage's).
pub(super) struct Heads<'a> {
    /// `[vocab, rank]`: the Markov embedding of the previous token.
    pub w1: &'a Matrix,
    /// `[vocab, rank]`: rank → vocabulary bias.
    pub w2: &'a Matrix,
    /// `[1, hidden + rank]`.
    pub confidence: &'a Matrix,
}

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
    w: &Heads<'_>,
    p: Precision,
    x: &[f32],
    logits: &mut [f32],
    anchors: &[u32],
    samplers: &mut [&mut Sampler<'_>],
    block: usize,
) -> Result<Sequential, DsparkError> {
    let (vocab, rank) = (w.w1.rows, w.w1.cols);
    let hidden = w.confidence.cols - rank;
    let rows = anchors.len();
    let mut prev = anchors.to_vec();
    let mut tokens = vec![Vec::with_capacity(block); rows];
    // `[x_i ; markov_w1[prev_i]]` per (row, i), the confidence input.
    let mut joint = vec![0.0f32; rows * block * (hidden + rank)];
    let mut emb = vec![0.0f32; rows * rank];
    for i in 0..block {
        for (e, &t) in emb.chunks_exact_mut(rank).zip(&prev) {
            w.w1.dequantize_row(t as usize, e);
        }
        let bias = p.linear(w.w2, &emb, rows, Gemm::F32);
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
    let confidence = p.linear(w.confidence, &joint, rows * block, Gemm::F32);
    Ok(Sequential { tokens, confidence })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::dsv4::matrix::{Bytes, WeightFormat};
    use crate::model::tensor::Storage;

    fn f32_matrix(rows: usize, cols: usize, v: &[f32]) -> Matrix {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let len = bytes.len();
        let data = Bytes::new(Storage::Owned(Arc::new(bytes)), 0, len).unwrap();
        Matrix::new("m", rows, cols, WeightFormat::F32, data).unwrap()
    }

    #[test]
    fn each_position_gets_the_bias_of_the_previous_token_and_its_embedding() {
        // vocab 3, rank 2, hidden 2, block 3, two rows.
        let w1 = f32_matrix(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let w2 = f32_matrix(3, 2, &[1.0, 0.0, 0.0, 10.0, 100.0, 100.0]);
        let conf = f32_matrix(1, 4, &[1.0, 2.0, 4.0, 8.0]);
        let heads = Heads {
            w1: &w1,
            w2: &w2,
            confidence: &conf,
        };
        // bias(prev) = w2 · w1[prev].
        let bias = |prev: usize| [[1.0, 0.0, 100.0], [0.0, 10.0, 100.0], [1.0, 10.0, 200.0]][prev];
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut logits = vec![0.5f32; 2 * 3 * 3];
        let scripts = [[1u32, 2, 0], [0, 0, 1]];
        let mut seen: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut seen2: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut s0 = |i: usize, l: &[f32]| {
            seen.push((i, l.to_vec()));
            scripts[0][i]
        };
        let mut s1 = |i: usize, l: &[f32]| {
            seen2.push((i, l.to_vec()));
            scripts[1][i]
        };
        let mut samplers: [&mut Sampler<'_>; 2] = [&mut s0, &mut s1];
        let out = sequential(
            &heads,
            Precision::Official,
            &x,
            &mut logits,
            &[2, 1],
            &mut samplers,
            3,
        )
        .unwrap();
        assert_eq!(out.tokens, [scripts[0].to_vec(), scripts[1].to_vec()]);
        let prevs = [[2usize, 1, 2], [1, 0, 0]];
        for (r, prev) in prevs.iter().enumerate() {
            for (i, &pv) in prev.iter().enumerate() {
                let at = r * 3 + i;
                let want: Vec<f32> = bias(pv).iter().map(|b| b + 0.5).collect();
                assert_eq!(logits[at * 3..at * 3 + 3], want[..], "row {r} position {i}");
                // [x_i ; w1[prev_i]] · [1, 2, 4, 8].
                let e = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]][pv];
                let c = x[at * 2] + 2.0 * x[at * 2 + 1] + 4.0 * e[0] + 8.0 * e[1];
                assert_eq!(out.confidence[at], c, "row {r} position {i}");
            }
        }
        // Each sampler saw its own corrected rows, in order.
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(seen[1].1, logits[3..6]);
        assert_eq!(seen2[2].1, logits[15..18]);
    }

    #[test]
    fn a_sampled_token_outside_the_vocabulary_is_refused() {
        let m = f32_matrix(2, 1, &[1.0, 1.0]);
        let conf = f32_matrix(1, 2, &[1.0, 1.0]);
        let heads = Heads {
            w1: &m,
            w2: &m,
            confidence: &conf,
        };
        let mut bad = |_: usize, _: &[f32]| 2u32;
        let mut samplers: [&mut Sampler<'_>; 1] = [&mut bad];
        let r = sequential(
            &heads,
            Precision::Exact,
            &[0.0; 2],
            &mut [0.0; 4],
            &[0],
            &mut samplers,
            2,
        );
        assert!(matches!(r, Err(DsparkError::Token { token: 2, vocab: 2 })));
    }
}
