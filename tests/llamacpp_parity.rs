//! Parity with llama.cpp on the same GGUF files.
//!
//! The fixtures in tests/fixtures/llamacpp/ were produced by llama.cpp itself
//! (gen_fixture.py, pinned versions in its README): prompt token ids, 64
//! greedy tokens and the top-20 raw logits at every step. We feed llama.cpp's
//! tokens (teacher forcing, so every step is compared) and require:
//! - our tokenizer reproduces llama.cpp's ids exactly;
//! - our logits for llama.cpp's top-20 tokens lie within the model's stated
//!   tolerance of llama.cpp's values at every step;
//! - our greedy token equals llama.cpp's, except at near-ties: where they
//!   differ, llama.cpp's own top-2 gap is within the tolerance and our token
//!   is in its top-20 (the criterion of vLLM's and ds4's logprob checks);
//! - at least `MIN_AGREEMENT` of all greedy steps agree.

mod common;

use serde::Deserialize;
use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::backend::executor::{Executor, ForwardBatch, SeqChunk};
use specbatch::engine::sampler::argmax;
use specbatch::model::load::{load_model, model_sha256};

/// Share of greedy steps (over all prompts) that must pick llama.cpp's token.
const MIN_AGREEMENT: f64 = 0.95;

#[derive(Deserialize)]
struct Fixture {
    model_file: String,
    model_sha256: String,
    prompts: Vec<PromptCase>,
    tokenizer_cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct PromptCase {
    text: String,
    prompt_ids: Vec<u32>,
    tokens: Vec<u32>,
    top_logits: Vec<Vec<(u32, f32)>>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    ids: Vec<u32>,
}

/// `tolerance`: largest allowed |ours - llama.cpp| on llama.cpp's top-20
/// logits. Both engines quantize activations to the same 8-bit blocks and
/// keep KV in f16; what remains is the order of float summation in the
/// kernels, attention and norms, compounded over the layers.
fn check(fixture_file: &str, tolerance: f32) {
    let path = common::root()
        .join("tests/fixtures/llamacpp")
        .join(fixture_file);
    let f: Fixture = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let model_path = common::model_path(&f.model_file);
    assert_eq!(
        model_sha256(&model_path).unwrap(),
        f.model_sha256,
        "fixture made from this file"
    );
    let m = load_model(&model_path).unwrap();
    let tok = m.tokenizer.clone();
    for case in &f.tokenizer_cases {
        assert_eq!(
            tok.encode(&case.text).unwrap(),
            case.ids,
            "token ids of {:?}",
            case.text
        );
    }
    let block = 16;
    let mut exec = CpuDenseExecutor::new(
        m.weights.into_dense().expect("dense model"),
        256 * block as u64 * 30 * 2 * 256 * 2,
        block,
    );
    let mut worst = 0.0f32;
    let mut total_diff = 0.0f64;
    let mut compared = 0usize;
    let (mut steps, mut agree) = (0usize, 0usize);
    for (pi, p) in f.prompts.iter().enumerate() {
        assert_eq!(
            tok.encode(&p.text).unwrap(),
            p.prompt_ids,
            "prompt {pi} token ids"
        );
        let total = p.prompt_ids.len() + p.tokens.len();
        let table: Vec<u32> = (0..total.div_ceil(block) as u32).collect();
        let mut feed = p.prompt_ids.clone();
        let mut pos = 0;
        for (step, (want, top)) in p.tokens.iter().zip(&p.top_logits).enumerate() {
            let out = exec
                .forward(&ForwardBatch {
                    seqs: vec![SeqChunk {
                        tokens: feed.clone(),
                        start_pos: pos,
                        seq_id: 0,
                        block_table: table.clone(),
                        logits_for: 1,
                    }],
                })
                .unwrap();
            let logits = &out[0];
            for &(id, theirs) in top {
                let d = (logits[id as usize] - theirs).abs();
                worst = worst.max(d);
                total_diff += f64::from(d);
                compared += 1;
                assert!(
                    d <= tolerance,
                    "prompt {pi} step {step}: token {id} logit {} vs llama.cpp {theirs}",
                    logits[id as usize]
                );
            }
            let ours = argmax(logits);
            steps += 1;
            if ours == *want {
                agree += 1;
            } else {
                let gap = top[0].1 - top[1].1;
                assert!(
                    gap <= tolerance && top.iter().any(|(id, _)| *id == ours),
                    "prompt {pi} step {step}: we pick {ours}, llama.cpp {want} with a top-2 gap of {gap}"
                );
            }
            pos += feed.len();
            feed = vec![*want];
        }
    }
    let share = agree as f64 / steps as f64;
    let mean = total_diff / compared as f64;
    eprintln!(
        "{fixture_file}: {compared} logits compared, max |diff| {worst:.4}, mean |diff| {mean:.4}; greedy agreement {agree}/{steps}"
    );
    assert!(
        mean <= f64::from(tolerance) / 4.0,
        "mean |diff| {mean} too large"
    );
    assert!(
        share >= MIN_AGREEMENT,
        "greedy agreement {share:.3} below {MIN_AGREEMENT}"
    );
}

// Tolerances are set above what was measured (scripts/test.sh on the
// project machine): SmolLM2 max |diff| 1.60, mean 0.19, greedy 315/320;
// Qwen 0.5B max 0.34, mean 0.06, greedy 315/320. SmolLM2's Q4_1 weights and
// its large logits (~30) make it the noisier of the two; a wrong RoPE,
// layout or quantization shows up as diffs of several units and as
// agreement far below 95%.

#[test]
fn smollm2_matches_llamacpp() {
    check("smollm2.json", 2.0);
}

#[test]
fn qwen05_matches_llamacpp() {
    check("qwen05.json", 0.5);
}
