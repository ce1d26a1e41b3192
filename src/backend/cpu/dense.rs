//! The dense decoder forward pass (llama, qwen2) on the CPU backend.
//!
//! One step runs every token of every sequence through each layer together:
//! projections are single matmuls over all the step's token rows, so batching
//! pays; attention reads each sequence's own paged KV. Nothing here depends
//! on batch composition (see `backend::executor`).

use rayon::prelude::*;

use super::attention::{ChunkQueries, HeadLayout, attend};
use super::kv_arena::KvArena;
use super::matmul::{matmul, matmul_many};
use super::ops::{add_bias, rms_norm, rope, rope_freqs, silu_mul};
use crate::backend::executor::{
    BackendError, Executor, ForwardBatch, ModelShape, check_paged_batch,
};
use crate::model::dense::DenseWeights;
use crate::model::quant::dequantize_row;

/// Below this many tokens, per-token element-wise work (embedding lookup,
/// RoPE) runs on the calling thread: waking the pool costs more than it saves.
const PAR_MIN_TOKENS: usize = 16;

/// Runs a [`DenseWeights`] model on the CPU with its own KV arena.
pub struct CpuDenseExecutor {
    w: DenseWeights,
    arena: KvArena,
    shape: ModelShape,
    freqs: Vec<f32>,
}

impl CpuDenseExecutor {
    /// Sizes the KV arena to `kv_cache_bytes` in blocks of `block_size` tokens.
    pub fn new(w: DenseWeights, kv_cache_bytes: u64, block_size: usize) -> CpuDenseExecutor {
        let c = &w.config;
        let per_token = KvArena::bytes_per_token(c.n_layers, c.kv_dim());
        let n_blocks = (kv_cache_bytes / (per_token * block_size) as u64) as usize;
        let arena = KvArena::new(n_blocks, block_size, c.n_layers, c.n_kv_heads, c.head_dim);
        let shape = ModelShape {
            vocab_size: c.vocab_size,
            context_length: c.context_length,
            kv_bytes_per_token: per_token,
        };
        let freqs = rope_freqs(c.rope_base, c.rope_dims);
        CpuDenseExecutor {
            w,
            arena,
            shape,
            freqs,
        }
    }
}

impl Executor for CpuDenseExecutor {
    fn shape(&self) -> &ModelShape {
        &self.shape
    }

    fn kv_blocks(&self) -> usize {
        self.arena.n_blocks
    }

    fn forward(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, BackendError> {
        self.run(batch, self.shape.vocab_size)
    }

    /// Only the head's first `prefix` rows are multiplied.
    fn forward_vocab_prefix(
        &mut self,
        batch: &ForwardBatch,
        prefix: usize,
    ) -> Result<Vec<Vec<f32>>, BackendError> {
        self.run(batch, prefix.clamp(1, self.shape.vocab_size))
    }
}

impl CpuDenseExecutor {
    /// One step, with logits for token ids `0..vocab`.
    fn run(&mut self, batch: &ForwardBatch, vocab: usize) -> Result<Vec<Vec<f32>>, BackendError> {
        check_paged_batch(
            batch,
            &self.shape,
            self.arena.n_blocks,
            self.arena.block_size,
        )?;
        let c = self.w.config.clone();
        let (d, qd, kvd, hd) = (c.d_model, c.q_dim(), c.kv_dim(), c.head_dim);
        let tokens: Vec<u32> = batch
            .seqs
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        let positions: Vec<usize> = batch
            .seqs
            .iter()
            .flat_map(|s| s.start_pos..s.start_pos + s.tokens.len())
            .collect();
        let t_total = tokens.len();

        let mut x = vec![0.0f32; t_total * d];
        x.par_chunks_mut(d)
            .with_min_len(PAR_MIN_TOKENS)
            .zip(&tokens)
            .for_each(|(row, &tok)| {
                dequantize_row(
                    self.w.embed.qtype,
                    self.w.embed.row_bytes(tok as usize),
                    row,
                );
            });

        let mut h = vec![0.0f32; t_total * d];
        let mut q = vec![0.0f32; t_total * qd];
        let mut k = vec![0.0f32; t_total * kvd];
        let mut v = vec![0.0f32; t_total * kvd];
        let mut o = vec![0.0f32; t_total * d];
        let mut gate = vec![0.0f32; t_total * c.ffn_dim];
        let mut up = vec![0.0f32; t_total * c.ffn_dim];
        let heads = HeadLayout {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: hd,
        };
        for (li, l) in self.w.layers.iter().enumerate() {
            rms_norm(&x, &l.attn_norm, c.rms_eps, &mut h);
            matmul_many(
                &[&l.wq, &l.wk, &l.wv],
                &h,
                t_total,
                &mut [&mut q, &mut k, &mut v],
            );
            if let (Some(bq), Some(bk), Some(bv)) = (&l.bq, &l.bk, &l.bv) {
                add_bias(&mut q, bq);
                add_bias(&mut k, bk);
                add_bias(&mut v, bv);
            }
            let freqs = &self.freqs;
            q.par_chunks_mut(qd)
                .with_min_len(PAR_MIN_TOKENS)
                .zip(k.par_chunks_mut(kvd))
                .zip(&positions)
                .for_each(|((qr, kr), &p)| {
                    rope(qr, hd, p, freqs, c.rope_style);
                    rope(kr, hd, p, freqs, c.rope_style);
                });
            let mut t0 = 0;
            for s in &batch.seqs {
                for (i, pos) in (s.start_pos..s.start_pos + s.tokens.len()).enumerate() {
                    let t = t0 + i;
                    let bs = self.arena.block_size;
                    self.arena.write(
                        s.block_table[pos / bs],
                        li,
                        pos % bs,
                        &k[t * kvd..(t + 1) * kvd],
                        &v[t * kvd..(t + 1) * kvd],
                    );
                }
                t0 += s.tokens.len();
            }
            let mut chunks = Vec::with_capacity(batch.seqs.len());
            let mut t0 = 0;
            for s in &batch.seqs {
                let n = s.tokens.len();
                chunks.push(ChunkQueries {
                    block_table: &s.block_table,
                    start_pos: s.start_pos,
                    q: &q[t0 * qd..(t0 + n) * qd],
                    n_tokens: n,
                });
                t0 += n;
            }
            let attn: Vec<f32> = attend(&self.arena, li, &chunks, heads).concat();
            matmul(&l.wo, &attn, t_total, &mut o);
            for (xv, ov) in x.iter_mut().zip(&o) {
                *xv += ov;
            }
            rms_norm(&x, &l.ffn_norm, c.rms_eps, &mut h);
            matmul_many(
                &[&l.w_gate, &l.w_up],
                &h,
                t_total,
                &mut [&mut gate, &mut up],
            );
            silu_mul(&mut gate, &up);
            matmul(&l.w_down, &gate, t_total, &mut o);
            for (xv, ov) in x.iter_mut().zip(&o) {
                *xv += ov;
            }
        }

        // Only rows that need logits go through the final norm and the head.
        let mut rows = Vec::new();
        let mut t0 = 0;
        for s in &batch.seqs {
            let n = s.tokens.len();
            rows.extend(t0 + n - s.logits_for..t0 + n);
            t0 += n;
        }
        let mut hx = vec![0.0f32; rows.len() * d];
        for (dst, &r) in hx.chunks_exact_mut(d).zip(&rows) {
            rms_norm(&x[r * d..(r + 1) * d], &self.w.final_norm, c.rms_eps, dst);
        }
        let mut logits = vec![0.0f32; rows.len() * vocab];
        if !rows.is_empty() {
            matmul(&self.w.head.first_rows(vocab), &hx, rows.len(), &mut logits);
        }
        let mut out = Vec::with_capacity(batch.seqs.len());
        let mut r0 = 0;
        for s in &batch.seqs {
            out.push(logits[r0 * vocab..(r0 + s.logits_for) * vocab].to_vec());
            r0 += s.logits_for;
        }
        Ok(out)
    }
}
