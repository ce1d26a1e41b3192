//! DSpark's window-only attention for a batch of draft blocks: a normal V4
//! attention sublayer (queries, one shared K = V head, sinks, de-rotation,
//! grouped low-rank output) whose keys are, for every query of a block, the
//! sequence's valid context ring slots (in slot order) followed by all of
//! the block's own K/V rows. No compressor, no indexer, no causal mask
//! inside the block.
//!
//! Invariant: a block's output depends only on its own context and inputs,
//! so batching blocks changes no value.

use rayon::prelude::*;

use super::super::attention::{Keys, attend_heads, grouped_output, queries, window_kv};
use super::super::config::Dsv4Config;
use super::super::precision::Precision;
use super::super::rope::Rope;
use super::super::weights::AttentionWeights;

/// One sequence's block in the batch.
pub(super) struct Block<'a> {
    /// Position of the block's first query (the anchor).
    pub pos0: usize,
    /// The context K/V rows this stage attends to.
    pub context: Vec<&'a [f32]>,
}

/// `x` is the normed input of `blocks.len() × size` rows, block-major.
/// Returns the sublayer output, same shape as `x`.
pub(super) fn block_attention(
    c: &Dsv4Config,
    w: &AttentionWeights,
    rope: &Rope,
    p: Precision,
    x: &[f32],
    blocks: &[Block<'_>],
    size: usize,
) -> Vec<f32> {
    let (hd, heads) = (c.head_dim, c.n_heads);
    let positions: Vec<usize> = blocks.iter().flat_map(|b| b.pos0..b.pos0 + size).collect();
    let n = positions.len();
    let (_, q) = queries(c, w, rope, p, x, &positions);
    let kv = window_kv(c, w, rope, p, x, &positions);
    let mut heads_out = vec![0.0f32; n * heads * hd];
    heads_out
        .par_chunks_mut(heads * hd)
        .enumerate()
        .for_each_init(Vec::new, |probs, (r, o)| {
            let b = r / size;
            let own = &kv[b * size * hd..(b + 1) * size * hd];
            let mut rows = blocks[b].context.clone();
            rows.extend(own.chunks_exact(hd));
            let keys = Keys {
                rows,
                run: &[],
                dim: hd,
            };
            let qrow = &q[r * heads * hd..(r + 1) * heads * hd];
            attend_heads(&w.sink, rope, p, qrow, &keys, positions[r], probs, o);
        });
    p.bf16(&mut heads_out);
    grouped_output(c, w, p, &heads_out, n)
}
