//! Speculation must not change what a greedy job writes: the engine with
//! each drafter verifying every draft it can (a flat step-rate table, so
//! the budget admits every position with a non-zero confidence) produces
//! token-for-token the text of plain decoding, on real models, while
//! actually accepting drafts. Exact equality holds because the CPU backend
//! is batch invariant (tests/batch_invariance.rs): a verify chunk computes
//! each position's logits bit-for-bit as a one-token decode step would.

mod common;

use std::sync::Arc;

use crossbeam::channel::bounded;
use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::engine::draft_model::{DraftCosts, DraftModel};
use specbatch::engine::drafter::{Drafter, NgramDrafters};
use specbatch::engine::runner::{Engine, EngineConfig, EngineCounters, Request};
use specbatch::engine::sampler::SamplingParams;
use specbatch::engine::speculation::{SpeculationConfig, Speculator};
use specbatch::io::row::{RowKey, RowResult};
use specbatch::model::load::load_model;
use specbatch::spec::SpsTable;
use specbatch::text::ReasoningMode;

const BLOCK: usize = 16;

/// Extraction prompts whose answers copy spans of their context.
fn prompts() -> Vec<String> {
    let doc = "The inventory lists: red apples, green pears, yellow bananas, purple plums, \
               orange tangerines, and brown coconuts. The red apples came from Norway, the \
               green pears from Chile, the yellow bananas from Ecuador.";
    [
        "Copy the inventory list exactly, one item per line.",
        "Where did the green pears come from? Quote the sentence.",
        "Repeat the first sentence of the text word for word, twice.",
        "List every fruit in the text with its colour.",
        "Write the numbers from 1 to 30 separated by commas.",
        "Say 'the quick brown fox jumps over the lazy dog' five times.",
    ]
    .iter()
    .map(|q| format!("<|im_start|>user\n{doc}\n\n{q}<|im_end|>\n<|im_start|>assistant\n"))
    .collect()
}

/// Runs every prompt through one engine on `model`, speculating with what
/// `speculator` builds; returns (text, proposed, accepted) by row.
fn run(
    model: &str,
    prompts: &[String],
    max_new_tokens: usize,
    max_running: usize,
    speculator: Option<Speculator>,
) -> Vec<(String, u32, u32)> {
    let m = load_model(&common::model_path(model)).unwrap();
    let tok = m.tokenizer.clone();
    let exec = CpuDenseExecutor::new(
        m.weights.into_dense().expect("dense model"),
        256 << 20,
        BLOCK,
    );
    let cfg = EngineConfig {
        max_running,
        max_batch_tokens: 256,
        block_size: BLOCK,
        stop: Vec::new(),
        prefix_reuse: true,
    };
    let mut engine = Engine::new(exec, &tok, &cfg, Arc::new(EngineCounters::default()));
    if let Some(s) = speculator {
        engine = engine.with_speculation(s);
    }
    let (req_tx, req_rx) = bounded(64);
    let (out_tx, out_rx) = bounded::<RowResult>(64);
    for (i, p) in prompts.iter().enumerate() {
        req_tx
            .send(Request {
                key: RowKey {
                    id: i.to_string(),
                    file_index: 0,
                    input_file: "mem".into(),
                    input_row: i as u64,
                },
                prompt: tok.encode(p).unwrap(),
                max_new_tokens,
                sampling: SamplingParams {
                    temperature: 0.0,
                    top_p: 1.0,
                    top_k: 0,
                    seed: 1,
                },
                reasoning: ReasoningMode::NonThink,
                pass_through: Vec::new(),
                group: None,
            })
            .unwrap();
    }
    drop(req_tx);
    engine.run(&req_rx, &out_tx).unwrap();
    drop(out_tx);
    let mut rows: Vec<RowResult> = out_rx.iter().collect();
    rows.sort_by_key(|r| r.key.input_row);
    rows.into_iter()
        .map(|r| {
            let g = r.outcome.expect("every row generates");
            (g.text, g.draft_tokens_proposed, g.draft_tokens_accepted)
        })
        .collect()
}

/// A step-rate table under which verifying is free: the budget admits every
/// draft position with a non-zero confidence.
fn flat_sps() -> SpsTable {
    SpsTable::new(vec![(1, 10.0)]).unwrap()
}

fn speculator(drafter: Box<dyn Drafter>) -> Speculator {
    let cfg = SpeculationConfig {
        max_draft: 5,
        sps: flat_sps(),
        calibration: None,
    };
    Speculator::new(cfg, drafter)
}

/// Asserts token-for-token equality with plain decoding, and that the
/// comparison meant something: drafts were verified, some were kept and
/// some rejected (so rollback was exercised).
fn assert_lossless(plain: &[(String, u32, u32)], spec: &[(String, u32, u32)], what: &str) {
    assert!(plain.iter().all(|(_, p, a)| (*p, *a) == (0, 0)));
    for (i, (s, p)) in spec.iter().zip(plain).enumerate() {
        assert_eq!(s.0, p.0, "row {i}, {what}");
        assert!(s.2 <= s.1, "row {i}: accepted more than proposed");
    }
    let proposed: u32 = spec.iter().map(|r| r.1).sum();
    let accepted: u32 = spec.iter().map(|r| r.2).sum();
    eprintln!("{what}: {accepted} of {proposed} draft tokens accepted");
    assert!(accepted > 20, "accepted {accepted} of {proposed}");
    assert!(accepted < proposed, "accepted {accepted} of {proposed}");
}

#[test]
fn greedy_output_with_ngram_speculation_equals_plain_decoding() {
    let prompts = prompts();
    let plain = run(common::SMOLLM2, &prompts, 64, 4, None);
    for max_running in [1, 4] {
        let s = speculator(Box::new(NgramDrafters::default()));
        let spec = run(common::SMOLLM2, &prompts, 64, max_running, Some(s));
        assert_lossless(
            &plain,
            &spec,
            &format!("ngram, {max_running} row(s) at once"),
        );
    }
}

/// Qwen2.5-Coder 1.5B verifying drafts of the 0.5B (the real pair, sharing
/// a vocabulary), on code and prose: the draft model's step rate is set so
/// high that every round pays, so each row drafts γ tokens every step.
#[test]
fn greedy_output_with_a_draft_model_equals_plain_decoding() {
    let prompts: Vec<String> = [
        "Write a Python function that checks whether a number is prime, with a docstring.",
        "Write a Python function that reverses a string.",
        "Continue the story: It was a bright cold day in April, and the clocks were striking",
        "Describe the water cycle in three sentences.",
    ]
    .iter()
    .map(|q| format!("<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"))
    .collect();
    let plain = run(common::QWEN15, &prompts, 40, 4, None);
    for max_running in [1, 4] {
        let m = load_model(&common::model_path(common::QWEN05)).unwrap();
        let exec = CpuDenseExecutor::new(m.weights.into_dense().unwrap(), 128 << 20, BLOCK);
        let costs = DraftCosts {
            target: flat_sps(),
            draft: SpsTable::new(vec![(1, 1e9)]).unwrap(),
        };
        let drafter = DraftModel::new(exec, BLOCK, 256, 5, costs);
        let spec = run(
            common::QWEN15,
            &prompts,
            40,
            max_running,
            Some(speculator(Box::new(drafter))),
        );
        assert_lossless(
            &plain,
            &spec,
            &format!("draft model, {max_running} row(s) at once"),
        );
    }
}

/// The same through `specbatch run`: a greedy job with `speculation: ngram`
/// writes, row for row, the text of the job without it (read back with
/// DuckDB), the draft columns add up to the manifest's totals, and the
/// manifest reports the run's acceptance.
#[test]
fn an_ngram_job_writes_what_the_plain_job_writes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, speculation: &str| {
        let out = dir.path().join(name);
        let spec = common::write_quickstart_spec(dir.path(), &out, 48);
        let text = std::fs::read_to_string(&spec).unwrap() + speculation;
        let spec = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&spec, text).unwrap();
        let r = common::specbatch(&["run", spec.to_str().unwrap()]);
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        out
    };
    let plain = run("plain", "");
    let spec = run("ngram", "speculation:\n  method: ngram\n  max_draft: 4\n");
    let data =
        |out: &std::path::Path| format!("read_parquet('{}/data/**/*.parquet')", out.display());
    let differing = common::duckdb_query(&format!(
        "select count(*) from {} p join {} s using (input_file, input_row) \
         where p.status = 'ok' and (p.output_text is distinct from s.output_text \
         or p.completion_tokens is distinct from s.completion_tokens)",
        data(&plain),
        data(&spec)
    ));
    assert_eq!(
        differing[0][0].as_i64(),
        Some(0),
        "speculation changed greedy text"
    );
    let sums = common::duckdb_query(&format!(
        "select sum(draft_tokens_proposed), sum(draft_tokens_accepted) from {}",
        data(&spec)
    ));
    let (proposed, accepted) = (sums[0][0].as_i64().unwrap(), sums[0][1].as_i64().unwrap());
    assert!(
        accepted > 0 && accepted <= proposed,
        "{accepted} of {proposed}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spec.join("manifest.json")).unwrap()).unwrap();
    let s = &manifest["speculation"];
    assert_eq!(s["draft_tokens_proposed"].as_i64(), Some(proposed));
    assert_eq!(s["draft_tokens_accepted"].as_i64(), Some(accepted));
    assert!(s["mean_accepted_length"].as_f64().unwrap() > 1.0, "{s}");
    let plain_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plain.join("manifest.json")).unwrap()).unwrap();
    assert!(plain_manifest.get("speculation").is_none());
    eprintln!("quickstart with ngram: {accepted} of {proposed} draft tokens accepted; {s}");
}
