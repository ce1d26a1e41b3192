//! The dense decoder forward pass (llama, qwen2) on one GPU.
//!
//! The same step as `backend::cpu::dense`, kernel for kernel: every token of
//! the step goes through each layer together; projections are one product
//! over all token rows; attention reads each sequence's own paged KV.
//! Weights, the KV cache and the step's activations stay on the device; per
//! step only the token ids, positions and block tables go over, and only
//! the rows that need logits come back.
//!
//! Numerics differ from the CPU backend by rounding only: activations stay
//! f32 (the CPU quantizes them to 8 bits per block), and sums run in
//! another order. The KV cache is f16 on both.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, CudaViewMut};

use super::device::open;
use super::error::CudaError;
use super::ops::{Heads, KvGeometry, MAX_HEAD_DIM, Ops};
use super::weights::{DeviceMatrix, DeviceWeights};
use crate::backend::cpu::kv_arena::KvArena;
use crate::backend::cpu::ops::rope_freqs;
use crate::backend::executor::{
    BackendError, Executor, ForwardBatch, ModelShape, check_paged_batch,
};
use crate::model::config::{DenseConfig, RopeStyle};
use crate::model::dense::DenseWeights;

/// Activation buffers for up to `tokens` tokens per step, grown on demand.
struct Scratch {
    tokens: usize,
    x: CudaSlice<f32>,
    h: CudaSlice<f32>,
    q: CudaSlice<f32>,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    attn: CudaSlice<f32>,
    o: CudaSlice<f32>,
    gate: CudaSlice<f32>,
    up: CudaSlice<f32>,
}

impl Scratch {
    fn new(c: &DenseConfig, tokens: usize, s: &Arc<CudaStream>) -> Result<Scratch, CudaError> {
        let alloc = |n: usize| {
            s.alloc_zeros::<f32>(tokens * n)
                .map_err(|e| CudaError::driver("allocating activations", e))
        };
        Ok(Scratch {
            tokens,
            x: alloc(c.d_model)?,
            h: alloc(c.d_model)?,
            q: alloc(c.q_dim())?,
            k: alloc(c.kv_dim())?,
            v: alloc(c.kv_dim())?,
            attn: alloc(c.q_dim())?,
            o: alloc(c.d_model)?,
            gate: alloc(c.ffn_dim)?,
            up: alloc(c.ffn_dim)?,
        })
    }

    /// Device bytes per token of step.
    fn bytes_per_token(c: &DenseConfig) -> usize {
        4 * (3 * c.d_model + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.ffn_dim)
    }
}

/// Runs a [`DenseWeights`] model on one GPU with its own paged KV cache.
pub struct CudaDenseExecutor {
    ops: Ops,
    cfg: DenseConfig,
    shape: ModelShape,
    w: DeviceWeights,
    freqs: CudaSlice<f32>,
    k_cache: CudaSlice<u16>,
    v_cache: CudaSlice<u16>,
    n_blocks: usize,
    block_size: usize,
    scratch: Scratch,
}

/// Tokens of step the activations are first sized for.
const INITIAL_STEP_TOKENS: usize = 512;

impl CudaDenseExecutor {
    /// Copies `w` to GPU `index` and sizes its KV cache to `kv_cache_bytes`
    /// in blocks of `block_size` tokens; fails before copying anything if
    /// the GPU lacks the memory.
    pub fn new(
        w: &DenseWeights,
        index: usize,
        kv_cache_bytes: u64,
        block_size: usize,
    ) -> Result<CudaDenseExecutor, CudaError> {
        let c = w.config.clone();
        if c.head_dim > MAX_HEAD_DIM {
            return Err(CudaError::Unsupported(format!(
                "a head dimension of {} (at most {MAX_HEAD_DIM})",
                c.head_dim
            )));
        }
        let ctx: Arc<CudaContext> = open(index)?;
        let per_token = KvArena::bytes_per_token(c.n_layers, c.kv_dim());
        let n_blocks = (kv_cache_bytes / (per_token * block_size) as u64) as usize;
        let needed = DeviceWeights::bytes_needed(w)
            + n_blocks * block_size * per_token
            + INITIAL_STEP_TOKENS * Scratch::bytes_per_token(&c);
        let (free, _) = ctx
            .mem_get_info()
            .map_err(|e| CudaError::driver("cuMemGetInfo", e))?;
        if needed > free {
            return Err(CudaError::OutOfMemory {
                index,
                needed,
                free,
            });
        }
        let ops = Ops::load(&ctx)?;
        let s = ops.stream.clone();
        let cache_len = n_blocks * block_size * c.n_layers * c.kv_dim();
        let alloc_cache = || {
            s.alloc_zeros::<u16>(cache_len)
                .map_err(|e| CudaError::driver("allocating the KV cache", e))
        };
        let (k_cache, v_cache) = (alloc_cache()?, alloc_cache()?);
        let freqs = s
            .clone_htod(&rope_freqs(c.rope_base, c.rope_dims))
            .map_err(|e| CudaError::driver("copying RoPE frequencies", e))?;
        let scratch = Scratch::new(&c, INITIAL_STEP_TOKENS, &s)?;
        let dw = DeviceWeights::upload(w, &s)?;
        Ok(CudaDenseExecutor {
            shape: ModelShape {
                vocab_size: c.vocab_size,
                context_length: c.context_length,
                kv_bytes_per_token: per_token,
            },
            ops,
            cfg: c,
            w: dw,
            freqs,
            k_cache,
            v_cache,
            n_blocks,
            block_size,
            scratch,
        })
    }

    fn step(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, CudaError> {
        let c = &self.cfg;
        let (d, qd, kvd, ffn) = (c.d_model, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let s = self.ops.stream.clone();
        let host = StepInputs::new(batch, self.block_size);
        let t = host.tokens.len();
        if t > self.scratch.tokens {
            self.scratch = Scratch::new(c, t.next_power_of_two(), &s)?;
        }
        let up = |v: &[u32], what: &str| {
            s.clone_htod(v)
                .map_err(|e| CudaError::driver(format!("copying {what}"), e))
        };
        let tokens = up(&host.tokens, "token ids")?;
        let pos = up(&host.positions, "positions")?;
        let slots = up(&host.slots, "cache slots")?;
        let table_start = up(&host.table_start, "block table offsets")?;
        let block_tables = up(&host.block_tables, "block tables")?;
        let heads = Heads {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
        };
        let neox = c.rope_style == RopeStyle::Neox;
        let ops = &self.ops;
        let sc = &mut self.scratch;
        let e = &self.w.embed;
        ops.gather_rows(e.qtype, &e.data, e.cols, &tokens, t, &mut sc.x)?;
        for (li, l) in self.w.layers.iter().enumerate() {
            let geo = KvGeometry {
                slots: &slots,
                pos: &pos,
                table_start: &table_start,
                block_tables: &block_tables,
                block_size: self.block_size,
                layer_offset: li * self.n_blocks * self.block_size * kvd,
            };
            ops.rms_norm(
                &sc.x.slice(..t * d),
                &l.attn_norm,
                c.rms_eps,
                t,
                &mut sc.h.slice_mut(..t * d),
            )?;
            let h = sc.h.slice(..t * d);
            matmul(ops, &l.wq, &h, t, &mut sc.q.slice_mut(..t * qd))?;
            matmul(ops, &l.wk, &h, t, &mut sc.k.slice_mut(..t * kvd))?;
            matmul(ops, &l.wv, &h, t, &mut sc.v.slice_mut(..t * kvd))?;
            if let Some([bq, bk, bv]) = &l.qkv_bias {
                ops.add_bias(&mut sc.q.slice_mut(..t * qd), bq, t * qd)?;
                ops.add_bias(&mut sc.k.slice_mut(..t * kvd), bk, t * kvd)?;
                ops.add_bias(&mut sc.v.slice_mut(..t * kvd), bv, t * kvd)?;
            }
            ops.rope(
                &mut sc.q.slice_mut(..t * qd),
                &pos,
                &self.freqs,
                t,
                c.n_heads,
                c.head_dim,
                neox,
            )?;
            ops.rope(
                &mut sc.k.slice_mut(..t * kvd),
                &pos,
                &self.freqs,
                t,
                c.n_kv_heads,
                c.head_dim,
                neox,
            )?;
            ops.kv_store(
                &sc.k.slice(..t * kvd),
                &sc.v.slice(..t * kvd),
                &geo,
                t,
                kvd,
                &mut self.k_cache,
                &mut self.v_cache,
            )?;
            ops.attention(
                &sc.q.slice(..t * qd),
                &self.k_cache,
                &self.v_cache,
                &geo,
                t,
                heads,
                &mut sc.attn.slice_mut(..t * qd),
            )?;
            matmul(
                ops,
                &l.wo,
                &sc.attn.slice(..t * qd),
                t,
                &mut sc.o.slice_mut(..t * d),
            )?;
            ops.add_into(&mut sc.x.slice_mut(..t * d), &sc.o.slice(..t * d), t * d)?;
            ops.rms_norm(
                &sc.x.slice(..t * d),
                &l.ffn_norm,
                c.rms_eps,
                t,
                &mut sc.h.slice_mut(..t * d),
            )?;
            let h = sc.h.slice(..t * d);
            matmul(ops, &l.w_gate, &h, t, &mut sc.gate.slice_mut(..t * ffn))?;
            matmul(ops, &l.w_up, &h, t, &mut sc.up.slice_mut(..t * ffn))?;
            ops.silu_mul(
                &mut sc.gate.slice_mut(..t * ffn),
                &sc.up.slice(..t * ffn),
                t * ffn,
            )?;
            matmul(
                ops,
                &l.w_down,
                &sc.gate.slice(..t * ffn),
                t,
                &mut sc.o.slice_mut(..t * d),
            )?;
            ops.add_into(&mut sc.x.slice_mut(..t * d), &sc.o.slice(..t * d), t * d)?;
        }

        // Only rows that need logits go through the final norm and the head.
        let r = host.logit_rows.len();
        if r == 0 {
            return Ok(batch.seqs.iter().map(|_| Vec::new()).collect());
        }
        let rows = up(&host.logit_rows, "logit rows")?;
        ops.select_rows(&sc.x.slice(..t * d), &rows, d, &mut sc.h.slice_mut(..r * d))?;
        ops.rms_norm(
            &sc.h.slice(..r * d),
            &self.w.final_norm,
            c.rms_eps,
            r,
            &mut sc.o.slice_mut(..r * d),
        )?;
        let vocab = c.vocab_size;
        let mut logits = s
            .alloc_zeros::<f32>(r * vocab)
            .map_err(|e| CudaError::driver("allocating logits", e))?;
        let head = self.w.head.as_ref().unwrap_or(&self.w.embed);
        matmul(
            ops,
            head,
            &sc.o.slice(..r * d),
            r,
            &mut logits.slice_mut(..),
        )?;
        let all = s
            .clone_dtoh(&logits)
            .map_err(|e| CudaError::driver("copying logits back", e))?;
        let mut out = Vec::with_capacity(batch.seqs.len());
        let mut r0 = 0;
        for seq in &batch.seqs {
            out.push(all[r0 * vocab..(r0 + seq.logits_for) * vocab].to_vec());
            r0 += seq.logits_for;
        }
        Ok(out)
    }
}

fn matmul(
    ops: &Ops,
    w: &DeviceMatrix,
    x: &cudarc::driver::CudaView<f32>,
    m: usize,
    y: &mut CudaViewMut<f32>,
) -> Result<(), CudaError> {
    ops.matmul(w.qtype, &w.data, w.rows, w.cols, x, m, y)
}

/// The host side of a step: everything the kernels index by token.
#[derive(Debug, Default, PartialEq)]
struct StepInputs {
    tokens: Vec<u32>,
    positions: Vec<u32>,
    /// Cache slot of each token: block * block_size + pos % block_size.
    slots: Vec<u32>,
    /// Where each token's sequence's table starts in `block_tables`.
    table_start: Vec<u32>,
    block_tables: Vec<u32>,
    /// Step rows (token indices) whose logits are returned, in order.
    logit_rows: Vec<u32>,
}

impl StepInputs {
    /// Flattens a checked batch.
    fn new(batch: &ForwardBatch, block_size: usize) -> StepInputs {
        let mut h = StepInputs::default();
        for s in &batch.seqs {
            let start = h.block_tables.len() as u32;
            h.block_tables.extend(&s.block_table);
            for (i, &tok) in s.tokens.iter().enumerate() {
                let p = s.start_pos + i;
                h.tokens.push(tok);
                h.positions.push(p as u32);
                h.slots.push(
                    (s.block_table[p / block_size] as usize * block_size + p % block_size) as u32,
                );
                h.table_start.push(start);
            }
            let t1 = h.tokens.len();
            h.logit_rows
                .extend((t1 - s.logits_for..t1).map(|r| r as u32));
        }
        h
    }
}

impl Executor for CudaDenseExecutor {
    fn shape(&self) -> &ModelShape {
        &self.shape
    }

    fn kv_blocks(&self) -> usize {
        self.n_blocks
    }

    fn forward(&mut self, batch: &ForwardBatch) -> Result<Vec<Vec<f32>>, BackendError> {
        check_paged_batch(batch, &self.shape, self.n_blocks, self.block_size)?;
        self.step(batch)
            .map_err(|e| BackendError::Device(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::executor::SeqChunk;

    #[test]
    fn step_inputs_flatten_slots_tables_and_logit_rows() {
        let batch = ForwardBatch {
            seqs: vec![
                SeqChunk {
                    seq_id: 1,
                    tokens: vec![5, 6, 7],
                    start_pos: 3,
                    block_table: vec![9, 2],
                    logits_for: 1,
                },
                SeqChunk {
                    seq_id: 2,
                    tokens: vec![8],
                    start_pos: 0,
                    block_table: vec![4],
                    logits_for: 1,
                },
            ],
        };
        let h = StepInputs::new(&batch, 4);
        assert_eq!(h.tokens, [5, 6, 7, 8]);
        assert_eq!(h.positions, [3, 4, 5, 0]);
        // Position 3 is slot 3 of block 9; 4 and 5 fall in block 2.
        assert_eq!(h.slots, [9 * 4 + 3, 2 * 4, 2 * 4 + 1, 4 * 4]);
        assert_eq!(h.table_start, [0, 0, 0, 2]);
        assert_eq!(h.block_tables, [9, 2, 4]);
        assert_eq!(h.logit_rows, [2, 3]);
    }

    #[test]
    fn the_executor_can_move_to_its_engine_thread() {
        fn is_send<T: Send>() {}
        is_send::<CudaDenseExecutor>();
    }
}
