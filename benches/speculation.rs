//! Plain decoding against n-gram speculation, on the same rows, model and
//! engine, in one process: output tokens per second end to end, the mean
//! per-row decode rate (completion tokens after the first over the time
//! after it), and speculation's own counters, at several concurrencies.
//!
//! Rows are the long-context extraction and QA prompts of
//! `datasets/corpus_qa_sample.parquet` (about 1.5K-token documents whose
//! answers copy the text), wrapped in ChatML, greedy, up to
//! `MAX_NEW` tokens each; a point at concurrency c runs max(c, 8) rows.
//! The budget uses the step rate measured on this machine (cached like a
//! job's).
//!
//! Usage: cargo bench --bench speculation -- [MODEL.gguf ...] [--rows C ...]
//! (defaults: models/smollm2-135m-instruct-q4_1.gguf, concurrency 1 4 16 64).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, StringArray};
use crossbeam::channel::bounded;
use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::engine::runner::{Engine, EngineConfig, EngineCounters, Request};
use specbatch::engine::sampler::SamplingParams;
use specbatch::engine::speculation::SpeculationConfig;
use specbatch::engine::sps_profile;
use specbatch::io::row::{RowKey, RowResult};
use specbatch::model::load::{load_model, model_sha256};
use specbatch::spec::SpecStats;
use specbatch::text::ReasoningMode;

const BLOCK: usize = 16;
const MAX_NEW: usize = 64;
const MAX_BATCH_TOKENS: usize = 512;
const GAMMA: usize = 5;

struct Point {
    secs: f64,
    completion: u64,
    decode_rate: f64,
    texts: Vec<String>,
    stats: Option<SpecStats>,
}

fn prompts() -> Vec<String> {
    let file = std::fs::File::open("datasets/corpus_qa_sample.parquet")
        .expect("datasets/corpus_qa_sample.parquet (run from the crate root)");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .expect("a readable parquet file");
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.expect("a readable batch");
        let col = batch
            .column_by_name("prompt")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
            .expect("a string `prompt` column");
        for i in 0..col.len() {
            out.push(format!(
                "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
                col.value(i)
            ));
        }
    }
    out
}

/// `speculate`: the model's sha256 (the step-rate cache key), or plain.
fn run(model: &str, rows: usize, concurrency: usize, speculate: Option<&str>) -> Point {
    let m = load_model(model).expect("model loads");
    let tok = m.tokenizer.clone();
    let mut exec = CpuDenseExecutor::new(
        m.weights.into_dense().expect("a dense (GGUF) model"),
        1 << 30,
        BLOCK,
    );
    let speculation = speculate.map(|sha| {
        let max_tokens = sps_profile::probe_limit(MAX_BATCH_TOKENS, concurrency, GAMMA);
        let sps = sps_profile::for_model(&mut exec, BLOCK, max_tokens, sha).expect("step rate");
        SpeculationConfig {
            max_draft: GAMMA,
            sps,
            calibration: None,
        }
    });
    let cfg = EngineConfig {
        max_running: concurrency,
        max_batch_tokens: MAX_BATCH_TOKENS,
        block_size: BLOCK,
        stop: Vec::new(),
        prefix_reuse: true,
        speculation,
    };
    let mut engine = Engine::new(exec, &tok, &cfg, Arc::new(EngineCounters::default()));
    let all = prompts();
    let (req_tx, req_rx) = bounded(rows);
    let (out_tx, out_rx) = bounded::<RowResult>(rows);
    for i in 0..rows {
        req_tx
            .send(Request {
                key: RowKey {
                    id: i.to_string(),
                    file_index: 0,
                    input_file: "corpus_qa_sample".into(),
                    input_row: i as u64,
                },
                prompt: tok.encode(&all[i % all.len()]).expect("tokenizes"),
                max_new_tokens: MAX_NEW,
                sampling: SamplingParams {
                    temperature: 0.0,
                    top_p: 1.0,
                    top_k: 0,
                    seed: 0,
                },
                reasoning: ReasoningMode::NonThink,
                pass_through: Vec::new(),
                group: None,
            })
            .expect("queue has room");
    }
    drop(req_tx);
    let t0 = Instant::now();
    engine.run(&req_rx, &out_tx).expect("engine runs");
    let secs = t0.elapsed().as_secs_f64();
    drop(out_tx);
    let mut results: Vec<RowResult> = out_rx.iter().collect();
    results.sort_by_key(|r| r.key.input_row);
    let mut completion = 0u64;
    let mut rates = Vec::new();
    let mut texts = Vec::new();
    for r in results {
        let g = r.outcome.expect("bench rows generate");
        completion += u64::from(g.completion_tokens);
        let decode_ms = g.timings.latency_ms - g.timings.time_to_first_token_ms;
        if g.completion_tokens > 1 && decode_ms > 0.0 {
            rates.push(f64::from(g.completion_tokens - 1) / (decode_ms / 1e3));
        }
        texts.push(g.text);
    }
    Point {
        secs,
        completion,
        decode_rate: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        texts,
        stats: engine.spec_stats().cloned(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut models = Vec::new();
    let mut concurrencies = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--rows" {
            concurrencies.extend(it.by_ref().map_while(|c| c.parse::<usize>().ok()));
        } else {
            models.push(a.clone());
        }
    }
    if models.is_empty() {
        models.push("models/smollm2-135m-instruct-q4_1.gguf".into());
    }
    if concurrencies.is_empty() {
        concurrencies = vec![1, 4, 16, 64];
    }
    println!(
        "model,concurrency,rows,plain_tok_s,ngram_tok_s,speedup,plain_row_decode_tok_s,ngram_row_decode_tok_s,row_decode_speedup,mean_accepted_length,acceptance_by_position,drafting_steps_fraction,same_text"
    );
    for model in &models {
        let sha = model_sha256(model).expect("model hashes");
        for &c in &concurrencies {
            let rows = c.max(8);
            let plain = run(model, rows, c, None);
            let spec = run(model, rows, c, Some(&sha));
            let tps = |p: &Point| p.completion as f64 / p.secs;
            let stats = spec.stats.clone().unwrap_or_default();
            let by_pos: Vec<String> = stats
                .acceptance_by_position()
                .iter()
                .map(|a| format!("{a:.2}"))
                .collect();
            println!(
                "{},{c},{rows},{:.1},{:.1},{:.2},{:.1},{:.1},{:.2},{:.2},{},{:.2},{}",
                Path::new(model).file_name().unwrap().to_string_lossy(),
                tps(&plain),
                tps(&spec),
                tps(&spec) / tps(&plain),
                plain.decode_rate,
                spec.decode_rate,
                spec.decode_rate / plain.decode_rate,
                stats.mean_accepted_length(),
                by_pos.join("/"),
                stats.drafting_fraction(),
                plain.texts == spec.texts,
            );
        }
    }
}
