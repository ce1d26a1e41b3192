//! Causal attention over the paged KV cache, on the CPU.
//!
//! Work is split by (sequence, KV head): each task decodes that head's keys
//! and values once and serves every query head of its group and every token
//! of the chunk. Each token's scores are reduced in position order, so the
//! result is the same whether the token arrives alone (decode) or inside a
//! prefill chunk, and whatever else shares the step.

use rayon::prelude::*;

use super::kv_arena::KvArena;
use super::ops::softmax;

/// One sequence's queries for one layer.
pub struct ChunkQueries<'a> {
    pub block_table: &'a [u32],
    /// Position of the first query token.
    pub start_pos: usize,
    /// `n_tokens × n_heads × head_dim` query rows (already rotated).
    pub q: &'a [f32],
    pub n_tokens: usize,
}

/// Attention geometry.
#[derive(Debug, Clone, Copy)]
pub struct HeadLayout {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Computes attention for every chunk of a step; returns, per chunk,
/// `n_tokens × n_heads × head_dim` outputs.
pub fn attend(
    arena: &KvArena,
    layer: usize,
    chunks: &[ChunkQueries<'_>],
    h: HeadLayout,
) -> Vec<Vec<f32>> {
    let group = h.n_heads / h.n_kv_heads;
    let hd = h.head_dim;
    let q_dim = h.n_heads * hd;
    let tasks: Vec<(usize, usize)> = (0..chunks.len())
        .flat_map(|c| (0..h.n_kv_heads).map(move |g| (c, g)))
        .collect();
    let parts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(c, g)| {
            let ch = &chunks[c];
            let n = ch.start_pos + ch.n_tokens;
            let mut k = vec![0.0; n * hd];
            let mut v = vec![0.0; n * hd];
            arena.gather(ch.block_table, layer, false, g, n, &mut k);
            arena.gather(ch.block_table, layer, true, g, n, &mut v);
            let scale = 1.0 / (hd as f32).sqrt();
            let mut out = vec![0.0; ch.n_tokens * group * hd];
            let mut scores = vec![0.0; n];
            for t in 0..ch.n_tokens {
                let visible = ch.start_pos + t + 1;
                for j in 0..group {
                    let head = g * group + j;
                    let q = &ch.q[t * q_dim + head * hd..t * q_dim + (head + 1) * hd];
                    let s = &mut scores[..visible];
                    for (p, sp) in s.iter_mut().enumerate() {
                        let kr = &k[p * hd..(p + 1) * hd];
                        *sp = q.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() * scale;
                    }
                    softmax(s);
                    let o = &mut out[(t * group + j) * hd..(t * group + j + 1) * hd];
                    for (p, w) in s.iter().enumerate() {
                        for (od, vd) in o.iter_mut().zip(&v[p * hd..(p + 1) * hd]) {
                            *od += w * vd;
                        }
                    }
                }
            }
            out
        })
        .collect();
    let mut results: Vec<Vec<f32>> = chunks
        .iter()
        .map(|c| vec![0.0; c.n_tokens * q_dim])
        .collect();
    for (&(c, g), part) in tasks.iter().zip(parts) {
        for t in 0..chunks[c].n_tokens {
            let src = &part[t * group * hd..(t + 1) * group * hd];
            let dst = t * q_dim + g * group * hd;
            results[c][dst..dst + group * hd].copy_from_slice(src);
        }
    }
    results
}
