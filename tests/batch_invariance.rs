//! A row's logits must not depend on what shares its step: alone, or inside a
//! mixed batch of 16 (prefill chunks and decode rows together, different
//! chunking, different physical KV blocks), they are bitwise equal.

mod common;

use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::backend::executor::{Executor, ForwardBatch, SeqChunk};
use specbatch::engine::sampler::argmax;
use specbatch::model::load::load_model;
use specbatch::text::TextTokenizer;

const BLOCK: usize = 16;

fn prompt(tok: &TextTokenizer, i: usize) -> Vec<u32> {
    let text = format!(
        "<|im_start|>user\nQuestion {i}: explain, in {} short sentences, why the sky looks {}.<|im_end|>\n<|im_start|>assistant\n",
        i + 2,
        ["blue", "red at sunset", "grey", "dark at night"][i % 4]
    );
    tok.encode(&text).unwrap()
}

fn table(first_block: u32, tokens: usize) -> Vec<u32> {
    (0..tokens.div_ceil(BLOCK) as u32)
        .map(|b| first_block + b)
        .collect()
}

/// SmolLM2-135M on the CPU with KV for `blocks` blocks, and its tokenizer.
fn smollm2(blocks: u64) -> (CpuDenseExecutor, TextTokenizer) {
    let m = load_model(&common::model_path(common::SMOLLM2)).unwrap();
    let kv_bytes = blocks * BLOCK as u64 * 23_040;
    let exec = CpuDenseExecutor::new(
        m.weights.into_dense().expect("dense model"),
        kv_bytes,
        BLOCK,
    );
    (exec, m.tokenizer)
}

#[test]
fn logits_are_bitwise_equal_alone_and_in_a_mixed_batch_of_16() {
    let (mut exec, tok) = smollm2(400);
    let vocab = exec.shape().vocab_size;
    let decode_steps = 3;

    // Row 0 alone: the whole prompt in one chunk, then decode.
    let p0 = prompt(&tok, 0);
    let cap = p0.len() + decode_steps + 1;
    let t0 = table(0, cap);
    let mut alone: Vec<Vec<f32>> = Vec::new();
    let out = exec
        .forward(&ForwardBatch {
            seqs: vec![SeqChunk {
                tokens: p0.clone(),
                start_pos: 0,
                seq_id: 0,
                block_table: t0.clone(),
                logits_for: 1,
            }],
        })
        .unwrap();
    alone.push(out[0].clone());
    let mut seq0 = p0.clone();
    for _ in 0..decode_steps {
        let next = argmax(alone.last().unwrap());
        seq0.push(next);
        let out = exec
            .forward(&ForwardBatch {
                seqs: vec![SeqChunk {
                    tokens: vec![next],
                    start_pos: seq0.len() - 1,
                    seq_id: 0,
                    block_table: t0.clone(),
                    logits_for: 1,
                }],
            })
            .unwrap();
        alone.push(out[0].clone());
    }

    // Row 0 again among 15 others, at other physical blocks, prefilled in
    // two chunks while the others prefill and decode around it.
    let others: Vec<Vec<u32>> = (1..16).map(|i| prompt(&tok, i)).collect();
    let base0 = 200;
    let t0b = table(base0, cap);
    let other_tables: Vec<Vec<u32>> = others
        .iter()
        .enumerate()
        .map(|(i, p)| table(20 + 11 * i as u32, p.len() + decode_steps + 2))
        .collect();
    // Step A: others prefill fully (logits on), row 0 prefills its first 7 tokens.
    let mut seqs: Vec<SeqChunk> = others
        .iter()
        .zip(&other_tables)
        .enumerate()
        .map(|(i, (p, t))| SeqChunk {
            seq_id: 1 + i as u64,
            tokens: p.clone(),
            start_pos: 0,
            block_table: t.clone(),
            logits_for: 1,
        })
        .collect();
    seqs.insert(
        5,
        SeqChunk {
            tokens: p0[..7].to_vec(),
            start_pos: 0,
            seq_id: 100,
            block_table: t0b.clone(),
            logits_for: 0,
        },
    );
    let out = exec.forward(&ForwardBatch { seqs }).unwrap();
    let mut other_next: Vec<u32> = out
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, l)| argmax(l))
        .collect();
    let mut other_len: Vec<usize> = others.iter().map(Vec::len).collect();
    // Step B..: row 0 finishes prefill then decodes; others decode each step.
    let mut batched: Vec<Vec<f32>> = Vec::new();
    let mut seq0b = p0[..7].to_vec();
    for step in 0..=decode_steps {
        let row0 = if step == 0 {
            let rest = p0[7..].to_vec();
            seq0b.extend(&rest);
            SeqChunk {
                tokens: rest,
                start_pos: 7,
                seq_id: 100,
                block_table: t0b.clone(),
                logits_for: 1,
            }
        } else {
            let next = argmax(batched.last().unwrap());
            seq0b.push(next);
            SeqChunk {
                tokens: vec![next],
                start_pos: seq0b.len() - 1,
                seq_id: 100,
                block_table: t0b.clone(),
                logits_for: 1,
            }
        };
        let mut seqs: Vec<SeqChunk> = (0..others.len())
            .map(|i| SeqChunk {
                tokens: vec![other_next[i]],
                start_pos: other_len[i],
                seq_id: 1 + i as u64,
                block_table: other_tables[i].clone(),
                logits_for: 1,
            })
            .collect();
        seqs.insert(step % 16, row0);
        let pos0 = step % 16;
        let out = exec.forward(&ForwardBatch { seqs }).unwrap();
        batched.push(out[pos0].clone());
        let mut j = 0;
        for (i, l) in out.iter().enumerate() {
            if i == pos0 {
                continue;
            }
            other_next[j] = argmax(l);
            other_len[j] += 1;
            j += 1;
        }
    }

    assert_eq!(seq0, seq0b, "same greedy tokens");
    for (step, (a, b)) in alone.iter().zip(&batched).enumerate() {
        assert_eq!(a.len(), vocab);
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "step {step}: logits differ between alone and batched");
    }
}

#[test]
fn a_vocabulary_prefix_gives_the_same_logits_cut_short() {
    let (mut exec, tok) = smollm2(64);
    let vocab = exec.shape().vocab_size;
    let p = prompt(&tok, 1);
    let batch = |seq_id: u64, first_block: u32| ForwardBatch {
        seqs: vec![SeqChunk {
            tokens: p.clone(),
            start_pos: 0,
            seq_id,
            block_table: table(first_block, p.len()),
            logits_for: 3,
        }],
    };
    let full = exec.forward(&batch(0, 0)).unwrap();
    for (i, prefix) in [1usize, 4096, 10_000].into_iter().enumerate() {
        let b = batch(i as u64 + 1, 8 * (i as u32 + 1));
        let cut = exec.forward_vocab_prefix(&b, prefix).unwrap();
        let want: Vec<f32> = full[0]
            .chunks_exact(vocab)
            .flat_map(|r| &r[..prefix])
            .copied()
            .collect();
        assert_eq!(cut[0].len(), 3 * prefix);
        assert!(
            cut[0]
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "prefix {prefix}: the head's first rows are the full head's"
        );
    }
    // A prefix past the vocabulary is the whole vocabulary.
    let whole = exec.forward_vocab_prefix(&batch(9, 40), vocab + 7).unwrap();
    assert_eq!(whole, full);
}
