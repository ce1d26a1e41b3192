//! `specbatch bench`: the llama-batched-bench workload on our engine, so the
//! two can be compared on the same GGUF in one script.
//!
//! For each concurrency `n`: `n` sequences of `prompt_tokens` tokens are
//! prefilled, then each generates exactly `gen_tokens` greedy tokens (EOS is
//! not a stop here: the workload is fixed-length by design), all through the
//! same scheduler and backend the job runner uses. Prefill and generation are
//! timed separately, as llama-batched-bench does.

use std::time::Instant;

use crate::backend::cpu::dense::CpuDenseExecutor;
use crate::backend::cpu::dsv4::CpuDsv4Executor;
use crate::backend::cpu::kv_arena::KvArena;
use crate::backend::cuda::{self, CudaError};
use crate::backend::device::Device;
use crate::backend::executor::{BackendError, Executor};
use crate::engine::sampler::argmax;
use crate::engine::scheduler::{Scheduler, SchedulerConfig};
use crate::model::dense::DenseWeights;
use crate::model::dsv4::forward::Dsv4Model;
use crate::model::dsv4::precision::Precision;
use crate::model::dsv4::state::KvFootprint;
use crate::model::load::ModelWeights;

/// One measured point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchPoint {
    pub concurrency: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub prefill_tok_per_s: f64,
    pub gen_tok_per_s: f64,
}

/// The workload's executor on `device`: the CPU's ([`cpu_executor`]) or one
/// GPU's, with the same KV budget.
pub fn device_executor(
    device: Device,
    w: ModelWeights,
    rows: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    block_size: usize,
) -> Result<Box<dyn Executor>, CudaError> {
    match device {
        Device::Cpu => Ok(cpu_executor(w, rows, prompt_tokens, gen_tokens, block_size)),
        Device::Cuda(index) => {
            let bytes = match &w {
                ModelWeights::Dense(d) => dense_kv_bytes(
                    d,
                    rows * tokens_per_row(prompt_tokens, gen_tokens, block_size),
                ),
                // Refused by the executor; no budget to work out.
                ModelWeights::DeepseekV4(_) => 0,
            };
            Ok(cuda::executor(&w, index, bytes, block_size)?)
        }
    }
}

/// KV bytes a dense model needs for `tokens` tokens (the same f16 layout on
/// every backend).
fn dense_kv_bytes(w: &DenseWeights, tokens: usize) -> u64 {
    (tokens * KvArena::bytes_per_token(w.config.n_layers, w.config.kv_dim())) as u64
}

/// Tokens of KV one sequence of the workload holds: whole blocks.
fn tokens_per_row(prompt_tokens: usize, gen_tokens: usize, block_size: usize) -> usize {
    (prompt_tokens + gen_tokens).div_ceil(block_size) * block_size
}

/// A CPU executor for the model whose KV memory holds `rows` sequences of
/// `prompt_tokens + gen_tokens` tokens (whole blocks each), the most the
/// workload at that concurrency needs.
pub fn cpu_executor(
    w: ModelWeights,
    rows: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    block_size: usize,
) -> Box<dyn Executor> {
    let per_row = tokens_per_row(prompt_tokens, gen_tokens, block_size);
    match w {
        ModelWeights::Dense(w) => {
            let bytes = dense_kv_bytes(&w, rows * per_row);
            Box::new(CpuDenseExecutor::new(*w, bytes, block_size))
        }
        ModelWeights::DeepseekV4(w) => {
            let fp = KvFootprint::new(&w.config);
            let bytes = fp.budget(rows, per_row);
            let model = Dsv4Model::new(*w, Precision::Official);
            Box::new(CpuDsv4Executor::new(model, bytes as u64, block_size, rows))
        }
    }
}

/// Runs one point of the workload on `exec`.
pub fn run_point<E: Executor + ?Sized>(
    exec: &mut E,
    concurrency: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    max_batch_tokens: usize,
    block_size: usize,
) -> Result<BenchPoint, BackendError> {
    let shape = exec.shape().clone();
    let mut sched = Scheduler::new(
        SchedulerConfig {
            max_running: concurrency,
            max_batch_tokens,
            block_size,
            context_length: shape.context_length,
            // Every bench row has its own prompt: nothing to share.
            prefix_reuse: false,
        },
        exec.kv_blocks(),
    );
    for i in 0..concurrency {
        // Distinct deterministic prompts so no two rows are identical.
        let prompt: Vec<u32> = (0..prompt_tokens)
            .map(|j| {
                ((i * 7919 + j * 104_729) % (shape.vocab_size.min(30_000) - 1000) + 1000) as u32
            })
            .collect();
        sched
            .submit(i as u64, prompt, gen_tokens, None)
            .map_err(|e| BackendError::InvalidBatch(e.to_string()))?;
    }
    // Phase 1: prefill every prompt. First tokens are held back so no row
    // starts decoding before all prompts are in, as in llama-batched-bench.
    let mut first = vec![None; concurrency];
    let t0 = Instant::now();
    while first.iter().any(Option::is_none) {
        let plan = sched.schedule();
        let logits = exec.forward(&plan.batch)?;
        sched.complete(&plan);
        for ((id, chunk), rows) in plan.seq_ids.iter().zip(&plan.batch.seqs).zip(&logits) {
            if chunk.logits_for > 0 {
                first[*id as usize] = Some(argmax(&rows[rows.len() - shape.vocab_size..]));
            }
        }
    }
    let prefill_secs = t0.elapsed().as_secs_f64();
    // Phase 2: generate; the first token came from the prefill.
    for (id, tok) in first.iter().enumerate() {
        sched.append(id as u64, tok.expect("all prompts prefilled"));
    }
    let mut generated = vec![1usize; concurrency];
    let t0 = Instant::now();
    while !sched.is_idle() {
        let plan = sched.schedule();
        let logits = exec.forward(&plan.batch)?;
        sched.complete(&plan);
        for ((id, chunk), rows) in plan.seq_ids.iter().zip(&plan.batch.seqs).zip(&logits) {
            if chunk.logits_for == 0 {
                continue;
            }
            let tok = argmax(&rows[rows.len() - shape.vocab_size..]);
            let g = &mut generated[*id as usize];
            *g += 1;
            if *g >= gen_tokens {
                sched.finish(*id);
                exec.release(*id);
            } else {
                sched.append(*id, tok);
            }
        }
    }
    let gen_secs = t0.elapsed().as_secs_f64();
    Ok(BenchPoint {
        concurrency,
        prompt_tokens,
        gen_tokens,
        prefill_tok_per_s: (concurrency * prompt_tokens) as f64 / prefill_secs.max(1e-9),
        // The first generated token of each row comes from the prefill step.
        gen_tok_per_s: (concurrency * gen_tokens.saturating_sub(1)) as f64 / gen_secs.max(1e-9),
    })
}
