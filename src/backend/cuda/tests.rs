//! Every CUDA kernel against its CPU reference on random inputs, and the
//! GPU dense executor against the CPU one on a random model. They need a
//! GPU, so they are ignored by `cargo test`; `tests/gpu/check.sh` runs them
//! on the device machine (`--ignored backend::cuda`).
//!
//! Tolerances are per op, relative to the size of what is summed: the GPU
//! keeps activations in f32 and sums in another order (and may fuse
//! multiply-adds), so only rounding may differ.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::device::open;
use super::ops::{Heads, KvGeometry, Ops};
use crate::backend::cpu::attention::{ChunkQueries, HeadLayout, attend};
use crate::backend::cpu::dense::CpuDenseExecutor;
use crate::backend::cpu::kv_arena::KvArena;
use crate::backend::cpu::ops::{add_bias, rms_norm, rope, rope_freqs, silu_mul};
use crate::backend::cuda::dense::CudaDenseExecutor;
use crate::backend::executor::{Executor, ForwardBatch, SeqChunk};
use crate::model::config::{Arch, DenseConfig, RopeStyle};
use crate::model::dense::{DenseWeights, LayerWeights};
use crate::model::dsv4::matrix::{Bytes, Matrix, WeightFormat};
use crate::model::quant::testutil::{Rng, random_tensor, random_x};
use crate::model::quant::{QType, dequantize_row};
use crate::model::tensor::Storage;

fn ops() -> Ops {
    Ops::load(&open(0).expect("cuda:0")).expect("kernels load")
}

fn up<T: cudarc::driver::DeviceRepr>(s: &Arc<CudaStream>, v: &[T]) -> CudaSlice<T> {
    s.clone_htod(v).unwrap()
}

fn down(s: &Arc<CudaStream>, v: &CudaSlice<f32>) -> Vec<f32> {
    s.clone_dtoh(v).unwrap()
}

/// Asserts |a - b| ≤ tol · scale_i + 1e-6 elementwise.
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], tol: f32, scale: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut worst = 0.0f32;
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs();
        let bound = tol * scale[i.min(scale.len() - 1)] + 1e-6;
        assert!(
            err <= bound,
            "{what}: element {i}: gpu {g} cpu {c} (error {err}, bound {bound})"
        );
        worst = worst.max(err / bound);
    }
    eprintln!(
        "{what}: {} values, worst error {worst:.3} of its bound",
        gpu.len()
    );
}

#[test]
#[ignore = "needs a GPU: tests/gpu/check.sh runs it"]
fn matmul_and_gather_match_the_cpu_decoders_in_every_format() {
    let ops = ops();
    let s = ops.stream.clone();
    let mut rng = Rng::new(7);
    let (n, k) = (67, 512);
    for qtype in QType::ALL {
        let w = random_tensor(qtype, n, k, &mut rng);
        let mut dense = vec![0.0f32; n * k];
        for r in 0..n {
            dequantize_row(qtype, w.row_bytes(r), &mut dense[r * k..(r + 1) * k]);
        }
        let dw = up(&s, w.bytes());
        // Rows: gathered exactly as the CPU decodes them (up to a fused
        // multiply-add in the decode).
        let ids: Vec<u32> = vec![0, 66, 3, 3];
        let mut got = s.alloc_zeros::<f32>(ids.len() * k).unwrap();
        ops.gather_rows(qtype, &dw, k, &up(&s, &ids), ids.len(), &mut got)
            .unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&r| dense[r as usize * k..(r as usize + 1) * k].to_vec())
            .collect();
        let mag: Vec<f32> = want.iter().map(|v| v.abs()).collect();
        assert_close(
            &format!("gather {qtype:?}"),
            &down(&s, &got),
            &want,
            1e-6,
            &mag,
        );
        // Products for 1, 5 (a verify step) and 19 rows (two tiles and a tail).
        for m in [1, 5, 19] {
            let x = random_x(m * k, &mut rng);
            let mut y = s.alloc_zeros::<f32>(m * n).unwrap();
            ops.matmul(
                qtype,
                &dw,
                n,
                k,
                &up(&s, &x).slice(..),
                m,
                &mut y.slice_mut(..),
            )
            .unwrap();
            let mut want = vec![0.0f32; m * n];
            let mut mag = vec![0.0f32; m * n];
            for i in 0..m {
                for r in 0..n {
                    let (mut acc, mut l1) = (0.0f64, 0.0f64);
                    for j in 0..k {
                        let p = f64::from(dense[r * k + j]) * f64::from(x[i * k + j]);
                        acc += p;
                        l1 += p.abs();
                    }
                    want[i * n + r] = acc as f32;
                    mag[i * n + r] = l1 as f32;
                }
            }
            assert_close(
                &format!("matmul {qtype:?} m={m}"),
                &down(&s, &y),
                &want,
                1e-5,
                &mag,
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU: tests/gpu/check.sh runs it"]
fn norm_rope_bias_and_silu_match_the_cpu_ops() {
    let ops = ops();
    let s = ops.stream.clone();
    let mut rng = Rng::new(11);
    let (t, d) = (5, 896);
    let x = random_x(t * d, &mut rng);
    let w: Vec<f32> = (0..d).map(|_| rng.uniform(0.5, 1.5)).collect();
    let mut want = vec![0.0; t * d];
    rms_norm(&x, &w, 1e-6, &mut want);
    let mut got = s.alloc_zeros::<f32>(t * d).unwrap();
    ops.rms_norm(
        &up(&s, &x).slice(..),
        &up(&s, &w),
        1e-6,
        t,
        &mut got.slice_mut(..),
    )
    .unwrap();
    let mag: Vec<f32> = want.iter().map(|v| v.abs()).collect();
    assert_close("rms_norm", &down(&s, &got), &want, 1e-5, &mag);

    let (heads, hd) = (6, 64);
    let freqs = rope_freqs(1_000_000.0, hd);
    let pos: Vec<u32> = vec![0, 1, 17, 4095, 30000];
    for style in [RopeStyle::Neox, RopeStyle::Interleaved] {
        let q = random_x(t * heads * hd, &mut rng);
        let mut want = q.clone();
        for (row, &p) in want.chunks_mut(heads * hd).zip(&pos) {
            rope(row, hd, p as usize, &freqs, style);
        }
        let mut got = up(&s, &q);
        ops.rope(
            &mut got.slice_mut(..),
            &up(&s, &pos),
            &up(&s, &freqs),
            t,
            heads,
            hd,
            style == RopeStyle::Neox,
        )
        .unwrap();
        // The angle is the same f32 product; sin/cos may differ by an ulp
        // or two at large angles, scaled by the pair's magnitude.
        let mag: Vec<f32> = q.iter().map(|v| v.abs() + 1.0).collect();
        assert_close(
            &format!("rope {style:?}"),
            &down(&s, &got),
            &want,
            1e-5,
            &mag,
        );
    }

    let b: Vec<f32> = (0..d).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut want = x.clone();
    add_bias(&mut want, &b);
    let mut got = up(&s, &x);
    ops.add_bias(&mut got.slice_mut(..), &up(&s, &b), t * d)
        .unwrap();
    assert_eq!(down(&s, &got), want, "add_bias is exact");

    let u = random_x(t * d, &mut rng);
    let mut want = x.clone();
    silu_mul(&mut want, &u);
    let mut got = up(&s, &x);
    ops.silu_mul(&mut got.slice_mut(..), &up(&s, &u).slice(..), t * d)
        .unwrap();
    let mag: Vec<f32> = want.iter().map(|v| v.abs()).collect();
    assert_close("silu_mul", &down(&s, &got), &want, 1e-5, &mag);
}

#[test]
#[ignore = "needs a GPU: tests/gpu/check.sh runs it"]
fn paged_attention_matches_the_cpu_over_shared_and_scattered_blocks() {
    let ops = ops();
    let s = ops.stream.clone();
    let mut rng = Rng::new(13);
    let (n_layers, n_heads, n_kv_heads, hd, bs, n_blocks) = (2, 12, 2, 128, 16, 12);
    let kvd = n_kv_heads * hd;
    let layer = 1;
    // Sequence A: 40 cached positions, a 3-token chunk at 37..40; sequence
    // B: a single decode token at position 20. Their blocks interleave.
    let seqs: [(Vec<u32>, usize, usize); 2] = [(vec![7, 2, 9], 37, 3), (vec![4, 11], 20, 1)];
    let mut arena = KvArena::new(n_blocks, bs, n_layers, n_kv_heads, hd);
    let (mut k_rows, mut v_rows, mut slots) = (Vec::new(), Vec::new(), Vec::new());
    for (table, start, n) in &seqs {
        for p in 0..start + n {
            let (k, v) = (random_x(kvd, &mut rng), random_x(kvd, &mut rng));
            arena.write(table[p / bs], layer, p % bs, &k, &v);
            slots.push(table[p / bs] * bs as u32 + (p % bs) as u32);
            k_rows.extend(k);
            v_rows.extend(v);
        }
    }
    let cache_len = n_layers * n_blocks * bs * kvd;
    let mut k_cache = s.alloc_zeros::<u16>(cache_len).unwrap();
    let mut v_cache = s.alloc_zeros::<u16>(cache_len).unwrap();
    let layer_offset = layer * n_blocks * bs * kvd;
    let all_pos: Vec<u32> = (0..slots.len() as u32).collect();
    let zero = up(&s, &[0u32]);
    let store = KvGeometry {
        slots: &up(&s, &slots),
        pos: &up(&s, &all_pos),
        table_start: &zero,
        block_tables: &zero,
        block_size: bs,
        layer_offset,
    };
    ops.kv_store(
        &up(&s, &k_rows).slice(..),
        &up(&s, &v_rows).slice(..),
        &store,
        slots.len(),
        kvd,
        &mut k_cache,
        &mut v_cache,
    )
    .unwrap();

    let qd = n_heads * hd;
    let (mut q_all, mut pos, mut table_start, mut tables) = (vec![], vec![], vec![], vec![]);
    let mut chunks_q = Vec::new();
    for (table, start, n) in &seqs {
        let q = random_x(n * qd, &mut rng);
        for i in 0..*n {
            pos.push((start + i) as u32);
            table_start.push(tables.len() as u32);
        }
        tables.extend(table);
        q_all.extend(&q);
        chunks_q.push(q);
    }
    let chunks: Vec<ChunkQueries> = seqs
        .iter()
        .zip(&chunks_q)
        .map(|((table, start, n), q)| ChunkQueries {
            block_table: table,
            start_pos: *start,
            q,
            n_tokens: *n,
        })
        .collect();
    let heads = HeadLayout {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    };
    let want: Vec<f32> = attend(&arena, layer, &chunks, heads).concat();
    let geo = KvGeometry {
        slots: &zero,
        pos: &up(&s, &pos),
        table_start: &up(&s, &table_start),
        block_tables: &up(&s, &tables),
        block_size: bs,
        layer_offset,
    };
    let t = pos.len();
    let mut got = s.alloc_zeros::<f32>(t * qd).unwrap();
    ops.attention(
        &up(&s, &q_all).slice(..),
        &k_cache,
        &v_cache,
        &geo,
        t,
        Heads {
            n_heads,
            n_kv_heads,
            head_dim: hd,
        },
        &mut got.slice_mut(..),
    )
    .unwrap();
    // Outputs are convex combinations of f16 values of magnitude ≲ 40.
    assert_close("paged_attention", &down(&s, &got), &want, 1e-4, &[40.0]);
}

/// A random llama-style model with every block format among its matrices.
pub(super) fn random_model(rng: &mut Rng) -> DenseWeights {
    let config = DenseConfig {
        arch: Arch::Qwen2,
        n_layers: 2,
        d_model: 256,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 64,
        ffn_dim: 512,
        vocab_size: 1024,
        context_length: 4096,
        rope_base: 1_000_000.0,
        rope_dims: 64,
        rope_style: RopeStyle::Neox,
        rms_eps: 1e-6,
        qkv_bias: true,
        tied_head: false,
    };
    let c = &config;
    let vec = |n: usize, rng: &mut Rng| (0..n).map(|_| rng.uniform(0.8, 1.2)).collect::<Vec<f32>>();
    let layers = (0..c.n_layers)
        .map(|_| LayerWeights {
            attn_norm: vec(c.d_model, rng),
            wq: random_tensor(QType::Q4K, c.q_dim(), c.d_model, rng),
            wk: random_tensor(QType::Q8_0, c.kv_dim(), c.d_model, rng),
            wv: random_tensor(QType::Q6K, c.kv_dim(), c.d_model, rng),
            bq: Some(random_x(c.q_dim(), rng)),
            bk: Some(random_x(c.kv_dim(), rng)),
            bv: Some(random_x(c.kv_dim(), rng)),
            wo: random_tensor(QType::Q5_0, c.d_model, c.q_dim(), rng),
            ffn_norm: vec(c.d_model, rng),
            w_gate: random_tensor(QType::Q4_1, c.ffn_dim, c.d_model, rng),
            w_up: random_tensor(QType::BF16, c.ffn_dim, c.d_model, rng),
            w_down: random_tensor(QType::F16, c.d_model, c.ffn_dim, rng),
        })
        .collect();
    DenseWeights {
        embed: random_tensor(QType::Q8_0, c.vocab_size, c.d_model, rng),
        head: random_tensor(QType::Q6K, c.vocab_size, c.d_model, rng),
        final_norm: vec(c.d_model, rng),
        layers,
        config,
    }
}

#[test]
#[ignore = "needs a GPU: tests/gpu/check.sh runs it"]
fn the_gpu_executor_computes_what_the_cpu_executor_computes() {
    let mut rng = Rng::new(17);
    let w = random_model(&mut rng);
    let mut gpu = CudaDenseExecutor::new(&w, 0, 1 << 24, 16).unwrap();
    let mut cpu = CpuDenseExecutor::new(w, 1 << 24, 16);
    let vocab = cpu.shape().vocab_size;
    // Two sequences: prefill chunks then decode and a 4-token verify chunk,
    // batched together, over blocks that are not in order.
    let prompt_a: Vec<u32> = (0..45).map(|i| (i * 37 % 1024) as u32).collect();
    let prompt_b: Vec<u32> = (0..20).map(|i| (i * 11 % 1024) as u32).collect();
    let table_a = vec![5, 1, 7, 3];
    let table_b = vec![2, 6];
    let steps = vec![
        ForwardBatch {
            seqs: vec![
                chunk(1, &prompt_a[..30], 0, &table_a, 1),
                chunk(2, &prompt_b, 0, &table_b, 1),
            ],
        },
        ForwardBatch {
            seqs: vec![
                chunk(1, &prompt_a[30..], 30, &table_a, 15),
                chunk(2, &[9], 20, &table_b, 1),
            ],
        },
        ForwardBatch {
            seqs: vec![chunk(2, &[3, 1, 4, 1], 21, &table_b, 4)],
        },
    ];
    let (mut rows, mut argmax_agree, mut worst_rel) = (0, 0, 0.0f32);
    for batch in &steps {
        let g = gpu.forward(batch).unwrap();
        let c = cpu.forward(batch).unwrap();
        for (gs, cs) in g.iter().zip(&c) {
            assert_eq!(gs.len(), cs.len());
            for (gr, cr) in gs.chunks(vocab).zip(cs.chunks(vocab)) {
                assert!(gr.iter().all(|v| v.is_finite()), "GPU logits are finite");
                let diff: f32 = gr
                    .iter()
                    .zip(cr)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f32>()
                    .sqrt();
                let norm: f32 = cr.iter().map(|v| v * v).sum::<f32>().sqrt();
                worst_rel = worst_rel.max(diff / norm);
                rows += 1;
                argmax_agree += usize::from(argmax(gr) == argmax(cr));
            }
        }
    }
    eprintln!(
        "executor: {rows} logit rows, worst relative L2 error {worst_rel:.4}, argmax agrees on {argmax_agree}"
    );
    // The CPU quantizes activations to 8 bits per block; the GPU does not,
    // so the two differ by that quantization's error, a few percent of the
    // logits' norm at most; a wrong kernel is off by the logits' own size.
    assert!(worst_rel < 0.05, "relative L2 error {worst_rel}");
    assert!(
        argmax_agree * 10 >= rows * 9,
        "argmax agrees on {argmax_agree} of {rows} rows"
    );
}

fn chunk(id: u64, tokens: &[u32], start: usize, table: &[u32], logits_for: usize) -> SeqChunk {
    SeqChunk {
        seq_id: id,
        tokens: tokens.to_vec(),
        start_pos: start,
        block_table: table.to_vec(),
        logits_for,
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// Random bytes as a matrix part.
fn owned(v: Vec<u8>) -> Bytes {
    let len = v.len();
    Bytes::new(Storage::Owned(Arc::new(v)), 0, len).expect("in bounds")
}

#[test]
#[ignore = "needs a GPU: tests/gpu/check.sh runs it"]
fn dsv4_matmul_is_bit_identical_to_the_cpu_in_every_format() {
    let ops = ops();
    let s = ops.stream.clone();
    let mut rng = Rng::new(19);
    // Partial FP8 scale blocks, a short last K-block, several weight rows
    // per block of warps.
    for (kind, rows, cols) in [
        ("fp8", 200usize, 300usize),
        ("fp4", 37, 352),
        ("bf16", 9, 130),
        ("f32", 5, 64),
    ] {
        let count = rows * cols;
        // No NaN codes (FP8 0x7F/0xFF) or scales (255); scales near 2^0.
        let (data, scales): (Vec<u8>, Vec<u8>) = match kind {
            "fp8" => (
                (0..count)
                    .map(|_| (rng.next_u64() % 0x7F) as u8 | (rng.next_u64() as u8 & 0x80))
                    .collect(),
                (0..rows.div_ceil(128) * cols.div_ceil(128))
                    .map(|_| 120 + (rng.next_u64() % 12) as u8)
                    .collect(),
            ),
            "fp4" => (
                rng.bytes(count / 2),
                (0..count / 32)
                    .map(|_| 120 + (rng.next_u64() % 12) as u8)
                    .collect(),
            ),
            "bf16" => (
                random_x(count, &mut rng)
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                Vec::new(),
            ),
            _ => (
                random_x(count, &mut rng)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                Vec::new(),
            ),
        };
        let format = match kind {
            "fp8" => WeightFormat::Fp8 {
                scales: owned(scales.clone()),
            },
            "fp4" => WeightFormat::Fp4 {
                scales: owned(scales.clone()),
            },
            "bf16" => WeightFormat::Bf16,
            _ => WeightFormat::F32,
        };
        let m = Matrix::new("test", rows, cols, format, owned(data)).expect("valid");
        let (data, scales) = m.stored();
        let dw = up(&s, data);
        let ds = up(&s, scales.unwrap_or(&[0]));
        for n in [1, 6] {
            let x = random_x(n * cols, &mut rng);
            let mut want = vec![0.0f32; n * rows];
            m.matmul(&x, n, &mut want);
            let mut got = s.alloc_zeros::<f32>(n * rows).unwrap();
            ops.dsv4_matmul(
                &m.format,
                &dw,
                &ds,
                rows,
                cols,
                &up(&s, &x).slice(..),
                n,
                &mut got.slice_mut(..),
            )
            .unwrap();
            let got = down(&s, &got);
            let same = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
            assert_eq!(
                same,
                want.len(),
                "dsv4_matmul {kind} n={n}: {same} of {} bit-identical",
                want.len()
            );
            eprintln!("dsv4_matmul {kind} {rows}x{cols} n={n}: all {same} outputs bit-identical");
        }
    }
}
