//! Plain decoding against each drafter, on the same rows, model and engine,
//! in one process: output tokens per second end to end, the mean per-row
//! decode rate (completion tokens after the first over the time after it),
//! and speculation's own counters, at several concurrencies.
//!
//! Prompt sets (greedy, up to `MAX_NEW` tokens each, ChatML; a point at
//! concurrency c runs max(c, 8) rows):
//! - `qa`: the long-context extraction and QA prompts of
//!   `datasets/corpus_qa_sample.parquet` (about 1.5K-token Austen documents
//!   whose answers copy the text);
//! - `code`: short programming tasks;
//! - `prose`: continue the opening of each of those Austen documents.
//!
//! Methods: `plain`, `ngram`, and `draft_model` when `--draft` names a draft
//! model. The budget uses the step rates measured on this machine (cached
//! like a job's; a draft model's measured together with the target's, as a
//! job does). Also printed per model: the measured cost of verifying
//! γ+1 tokens of one row relative to one decode step, SPS(1)/SPS(γ+1).
//!
//! Usage: cargo bench --bench speculation -- [--model M.gguf] [--draft D.gguf]
//!   [--prompts qa code prose] [--rows C ...]
//! (defaults: SmolLM2-135M, no draft, qa, concurrency 1 4 16 64).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, StringArray};
use crossbeam::channel::bounded;
use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::backend::device::Device;
use specbatch::engine::draft_model::{DraftCosts, DraftModel};
use specbatch::engine::drafter::{Drafter, NgramDrafters};
use specbatch::engine::runner::{Engine, EngineConfig, EngineCounters, Request};
use specbatch::engine::sampler::SamplingParams;
use specbatch::engine::speculation::{SpeculationConfig, Speculator};
use specbatch::engine::sps_profile::{self, ProbeModel};
use specbatch::io::row::{RowKey, RowResult};
use specbatch::model::load::{load_model, model_sha256};
use specbatch::spec::{SpecStats, SpsTable};
use specbatch::text::ReasoningMode;

const BLOCK: usize = 16;
const MAX_NEW: usize = 96;
const MAX_BATCH_TOKENS: usize = 512;
const GAMMA: usize = 5;
/// KV for the target; a draft model gets the same again.
const KV_BYTES: u64 = 1 << 30;
/// Characters of each Austen document a `prose` prompt quotes.
const PROSE_CHARS: usize = 1200;

const CODE_TASKS: [&str; 8] = [
    "Write a Python function that checks whether a number is prime, with a docstring and tests.",
    "Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring and tests.",
    "Write a Python function that reverses the words in a sentence, with a docstring and tests.",
    "Write a Python class for a stack with push, pop, peek and is_empty methods, with docstrings.",
    "Write a Python function that merges two sorted lists into one sorted list, with a docstring and tests.",
    "Write a Python function that counts the vowels in a string, with a docstring and tests.",
    "Write a Python function that computes the greatest common divisor of two integers, with a docstring and tests.",
    "Write a Python function that flattens a nested list of integers, with a docstring and tests.",
];

struct Point {
    secs: f64,
    completion: u64,
    decode_rate: f64,
    texts: Vec<String>,
    stats: Option<SpecStats>,
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Plain,
    Ngram,
    DraftModel,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Plain => "plain",
            Method::Ngram => "ngram",
            Method::DraftModel => "draft_model",
        }
    }
}

fn corpus_documents() -> Vec<String> {
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
        out.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    out
}

fn prompts(set: &str) -> Vec<String> {
    let user: Vec<String> = match set {
        "qa" => corpus_documents(),
        "code" => CODE_TASKS.iter().map(|t| t.to_string()).collect(),
        "prose" => corpus_documents()
            .iter()
            .map(|d| {
                let cut = d
                    .char_indices()
                    .nth(PROSE_CHARS)
                    .map_or(d.len(), |(i, _)| i);
                format!("Continue this passage in the same style:\n\n{}", &d[..cut])
            })
            .collect(),
        other => panic!("unknown prompt set `{other}` (qa, code, prose)"),
    };
    user.iter()
        .map(|u| format!("<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n"))
        .collect()
}

fn executor(path: &str) -> CpuDenseExecutor {
    let m = load_model(path).expect("model loads");
    CpuDenseExecutor::new(m.weights.into_dense().expect("dense"), KV_BYTES, BLOCK)
}

/// The target's probe for `concurrency` rows of γ drafts.
fn target_probe<'a>(
    exec: &'a mut CpuDenseExecutor,
    sha: &'a str,
    concurrency: usize,
) -> ProbeModel<'a, CpuDenseExecutor> {
    ProbeModel {
        exec,
        device: &Device::Cpu,
        max_tokens: sps_profile::probe_limit(MAX_BATCH_TOKENS, concurrency, GAMMA),
        model_sha256: sha,
    }
}

/// The target's step-rate table for `concurrency` rows of γ drafts.
fn target_sps(model: &str, sha: &str, concurrency: usize) -> SpsTable {
    let mut exec = executor(model);
    sps_profile::for_model(target_probe(&mut exec, sha, concurrency), BLOCK).expect("step rate")
}

/// The drafter for `method` and the target step rates its budget uses (a
/// draft model's are measured together with the target's).
fn drafter(
    method: Method,
    (model, sha): (&str, &str),
    draft: Option<&(String, String)>,
    concurrency: usize,
) -> (Box<dyn Drafter>, SpsTable) {
    if method != Method::DraftModel {
        let sps = target_sps(model, sha, concurrency);
        return (Box::new(NgramDrafters::default()), sps);
    }
    let (path, draft_sha) = draft.expect("--draft names the draft model");
    let mut target = executor(model);
    let mut exec = executor(path);
    let draft_probe = ProbeModel {
        exec: &mut exec,
        device: &Device::Cpu,
        max_tokens: concurrency,
        model_sha256: draft_sha,
    };
    let (sps, draft_sps) = sps_profile::for_target_and_draft(
        target_probe(&mut target, sha, concurrency),
        draft_probe,
        BLOCK,
    )
    .expect("step rates");
    let costs = DraftCosts {
        target: sps.clone(),
        draft: draft_sps,
    };
    let model = DraftModel::new(exec, BLOCK, MAX_BATCH_TOKENS, GAMMA, costs);
    (Box::new(model), sps)
}

fn run(
    model: &str,
    prompts: &[String],
    rows: usize,
    concurrency: usize,
    speculator: Option<Speculator>,
) -> Point {
    let m = load_model(model).expect("model loads");
    let tok = m.tokenizer.clone();
    let exec = CpuDenseExecutor::new(m.weights.into_dense().expect("dense"), KV_BYTES, BLOCK);
    let cfg = EngineConfig {
        max_running: concurrency,
        max_batch_tokens: MAX_BATCH_TOKENS,
        block_size: BLOCK,
        stop: Vec::new(),
        prefix_reuse: true,
    };
    let mut engine = Engine::new(exec, &tok, &cfg, Arc::new(EngineCounters::default()));
    if let Some(s) = speculator {
        engine = engine.with_speculation(s);
    }
    let (req_tx, req_rx) = bounded(rows);
    let (out_tx, out_rx) = bounded::<RowResult>(rows);
    for i in 0..rows {
        req_tx
            .send(Request {
                key: RowKey {
                    id: i.to_string(),
                    file_index: 0,
                    input_file: "bench".into(),
                    input_row: i as u64,
                },
                prompt: tok.encode(&prompts[i % prompts.len()]).expect("tokenizes"),
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

struct Args {
    model: String,
    draft: Option<String>,
    prompt_sets: Vec<String>,
    concurrencies: Vec<usize>,
}

fn args() -> Args {
    let raw: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut a = Args {
        model: "models/smollm2-135m-instruct-q4_1.gguf".into(),
        draft: None,
        prompt_sets: Vec::new(),
        concurrencies: Vec::new(),
    };
    let mut i = 0;
    while i < raw.len() {
        let list = |from: usize| -> Vec<String> {
            raw[from..]
                .iter()
                .take_while(|v| !v.starts_with("--"))
                .cloned()
                .collect()
        };
        let values = list(i + 1);
        match raw[i].as_str() {
            "--model" => a.model = values[0].clone(),
            "--draft" => a.draft = Some(values[0].clone()),
            "--prompts" => a.prompt_sets = values.clone(),
            "--rows" => {
                a.concurrencies = values
                    .iter()
                    .map(|v| v.parse().expect("a row count"))
                    .collect()
            }
            other => panic!("unknown argument `{other}`"),
        }
        i += 1 + values.len();
    }
    if a.prompt_sets.is_empty() {
        a.prompt_sets.push("qa".into());
    }
    if a.concurrencies.is_empty() {
        a.concurrencies = vec![1, 4, 16, 64];
    }
    a
}

fn main() {
    let a = args();
    let sha = model_sha256(&a.model).expect("model hashes");
    let draft = a
        .draft
        .as_ref()
        .map(|d| (d.clone(), model_sha256(d).expect("draft model hashes")));
    let mut methods = vec![Method::Plain, Method::Ngram];
    if draft.is_some() {
        methods.push(Method::DraftModel);
    }
    let name = |p: &str| {
        Path::new(p)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    let one_row = target_sps(&a.model, &sha, 1);
    println!(
        "# {}: verifying {} tokens of one row costs {:.2}x one decode step (SPS(1)/SPS({}))",
        name(&a.model),
        GAMMA + 1,
        one_row.steps_per_second(1) / one_row.steps_per_second(GAMMA + 1),
        GAMMA + 1
    );
    println!(
        "model,draft,prompts,concurrency,rows,method,tok_s,speedup,row_decode_tok_s,row_decode_speedup,mean_accepted_length,acceptance_by_position,drafting_steps_fraction,same_text"
    );
    for set in &a.prompt_sets {
        let prompts = prompts(set);
        for &c in &a.concurrencies {
            let rows = c.max(8);
            let mut plain: Option<Point> = None;
            for &method in &methods {
                let speculator = (method != Method::Plain).then(|| {
                    let (drafter, sps) = drafter(method, (&a.model, &sha), draft.as_ref(), c);
                    let cfg = SpeculationConfig {
                        max_draft: GAMMA,
                        sps,
                        calibration: None,
                    };
                    Speculator::new(cfg, drafter)
                });
                let p = run(&a.model, &prompts, rows, c, speculator);
                let base = plain.as_ref().unwrap_or(&p);
                let tps = |p: &Point| p.completion as f64 / p.secs;
                let stats = p.stats.clone().unwrap_or_default();
                let by_pos: Vec<String> = stats
                    .acceptance_by_position()
                    .iter()
                    .map(|a| format!("{a:.2}"))
                    .collect();
                println!(
                    "{},{},{set},{c},{rows},{},{:.2},{:.2},{:.2},{:.2},{:.2},{},{:.2},{}",
                    name(&a.model),
                    a.draft.as_deref().map(name).unwrap_or_default(),
                    method.name(),
                    tps(&p),
                    tps(&p) / tps(base),
                    p.decode_rate,
                    p.decode_rate / base.decode_rate,
                    stats.mean_accepted_length(),
                    by_pos.join("/"),
                    stats.drafting_fraction(),
                    p.texts == base.texts,
                );
                if method == Method::Plain {
                    plain = Some(p);
                }
            }
        }
    }
}
