//! Speculation must not change what a greedy job writes: the engine with
//! each drafter verifying every draft it can (a flat step-rate table, so
//! the budget admits every position with a non-zero confidence) produces
//! token-for-token the text of plain decoding, on real models (SmolLM2, the
//! Qwen2.5-Coder pair) and on DeepSeek-V4 (`dsv4-tok`, random weights, the real tokenizer), while
//! actually accepting and rejecting drafts. Exact equality holds because both
//! CPU backends are batch and chunking invariant (tests/batch_invariance.rs,
//! tests/dsv4_model.rs): a verify chunk computes each position's logits
//! bit-for-bit as a one-token decode step would, and the next chunk after a
//! partial accept sees the state of the kept tokens only (dense: KV by
//! position, rejected rows overwritten; DeepSeek-V4: its state cut back,
//! tests/dsv4_rollback.rs).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam::channel::bounded;
use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::backend::cpu::dsv4::CpuDsv4Executor;
use specbatch::backend::executor::{BackendError, Executor};
use specbatch::engine::draft_model::{DraftCosts, DraftModel};
use specbatch::engine::drafter::{Drafter, NgramDrafters};
use specbatch::engine::dspark_drafter::DsparkDrafter;
use specbatch::engine::rng::Rng;
use specbatch::engine::runner::{Engine, EngineConfig, EngineCounters, Request};
use specbatch::engine::sampler::SamplingParams;
use specbatch::engine::scheduler::SeqId;
use specbatch::engine::speculation::{SpeculationConfig, Speculator};
use specbatch::io::row::{RowKey, RowResult};
use specbatch::model::dsv4::forward::Dsv4Model;
use specbatch::model::dsv4::precision::Precision;
use specbatch::model::load::{LoadedModel, ModelWeights, load_model};
use specbatch::spec::{Draft, SpsTable, TokenDist};
use specbatch::text::{ReasoningMode, TextTokenizer};

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

/// A row's text, draft tokens proposed and draft tokens accepted.
type Row = (String, u32, u32);

/// Greedy decoding (the seed is unused).
fn greedy(_row: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        seed: 1,
    }
}

/// Runs every prompt through one engine on `exec`, `max_new_tokens` each,
/// row `i` sampled by `sampling(i)`; returns the rows in prompt order.
fn run<E: Executor>(
    exec: E,
    tok: &TextTokenizer,
    prompts: &[Vec<u32>],
    max_new_tokens: usize,
    speculator: Option<Speculator>,
    max_running: usize,
    sampling: fn(usize) -> SamplingParams,
) -> Vec<Row> {
    let cfg = EngineConfig {
        max_running,
        max_batch_tokens: 256,
        block_size: BLOCK,
        stop: Vec::new(),
        prefix_reuse: true,
    };
    let mut engine = Engine::new(exec, tok, &cfg, Arc::new(EngineCounters::default()));
    if let Some(s) = speculator {
        engine = engine.with_speculation(s);
    }
    // Every request is queued and every result held before anyone reads.
    let (req_tx, req_rx) = bounded(prompts.len());
    let (out_tx, out_rx) = bounded::<RowResult>(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        req_tx
            .send(Request {
                key: RowKey {
                    id: i.to_string(),
                    file_index: 0,
                    input_file: "mem".into(),
                    input_row: i as u64,
                },
                prompt: p.clone(),
                max_new_tokens,
                sampling: sampling(i),
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

/// Plain decoding, then speculation with `drafter()` one row and four rows
/// at a time: the same text for every row, and drafts both kept (at least
/// `min_accepted`) and rejected, so the rollback after a partial accept ran.
fn assert_lossless(
    run: impl Fn(Option<Speculator>, usize) -> Vec<Row>,
    drafter: impl Fn() -> Box<dyn Drafter>,
    min_accepted: u32,
) {
    let plain = run(None, 4);
    assert!(plain.iter().all(|(_, p, a)| (*p, *a) == (0, 0)));
    for max_running in [1, 4] {
        let spec = run(Some(speculator(drafter())), max_running);
        for (i, (s, p)) in spec.iter().zip(&plain).enumerate() {
            assert_eq!(s.0, p.0, "row {i}, {max_running} rows at once");
            assert!(s.2 <= s.1, "row {i}: accepted more than proposed");
        }
        let proposed: u32 = spec.iter().map(|r| r.1).sum();
        let accepted: u32 = spec.iter().map(|r| r.2).sum();
        eprintln!("{max_running} row(s) at once: {accepted} of {proposed} draft tokens accepted");
        // The comparison means something only if drafts were verified and
        // some were kept (and some rejected, so rollback was exercised).
        assert!(
            accepted >= min_accepted,
            "accepted {accepted} of {proposed}"
        );
        assert!(accepted < proposed, "accepted {accepted} of {proposed}");
    }
}

fn ngram() -> Box<dyn Drafter> {
    Box::new(NgramDrafters::default())
}

#[test]
fn greedy_output_with_ngram_speculation_equals_plain_decoding() {
    let m = load_model(&common::model_path(common::SMOLLM2)).unwrap();
    let exec = || {
        let w = load_model(&m.path).unwrap().weights.into_dense();
        CpuDenseExecutor::new(w.expect("dense model"), 64 << 20, BLOCK)
    };
    let prompts: Vec<Vec<u32>> = prompts()
        .iter()
        .map(|p| m.tokenizer.encode(p).unwrap())
        .collect();
    assert_lossless(
        |s, n| run(exec(), &m.tokenizer, &prompts, 64, s, n, greedy),
        ngram,
        20,
    );
}

/// Qwen2.5-Coder 1.5B verifying drafts of the 0.5B (the real pair, sharing
/// a vocabulary), on code and prose: the draft model's step rate is set so
/// high that every round pays, so each row drafts γ tokens every step.
#[test]
fn greedy_output_with_a_draft_model_equals_plain_decoding() {
    let m = load_model(&common::model_path(common::QWEN15)).unwrap();
    let exec = || {
        let w = load_model(&m.path).unwrap().weights.into_dense();
        CpuDenseExecutor::new(w.expect("dense model"), 256 << 20, BLOCK)
    };
    let prompts: Vec<Vec<u32>> = [
        "Write a Python function that checks whether a number is prime, with a docstring.",
        "Write a Python function that reverses a string.",
        "Continue the story: It was a bright cold day in April, and the clocks were striking",
        "Describe the water cycle in three sentences.",
    ]
    .iter()
    .map(|q| format!("<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"))
    .map(|p| m.tokenizer.encode(&p).unwrap())
    .collect();
    let drafter = || -> Box<dyn Drafter> {
        let d = load_model(&common::model_path(common::QWEN05)).unwrap();
        let exec = CpuDenseExecutor::new(d.weights.into_dense().unwrap(), 128 << 20, BLOCK);
        let costs = DraftCosts {
            target: flat_sps(),
            draft: SpsTable::new(vec![(1, 1e9)]).unwrap(),
        };
        Box::new(DraftModel::new(exec, BLOCK, 256, 5, costs))
    };
    assert_lossless(
        |s, n| run(exec(), &m.tokenizer, &prompts, 40, s, n, greedy),
        drafter,
        20,
    );
}

/// Repetitive prompts. A random-weight model copies nothing from its
/// context, but a few of its tokens recur in a long output and some of those
/// are nearly always followed by the same token, so over 300 tokens the
/// drafter's copies are sometimes right and mostly wrong (measured: 8 of 110
/// draft tokens kept one row at a time, 11 of 101 four rows at a time).
fn dsv4_prompts(tok: &TextTokenizer) -> Vec<Vec<u32>> {
    [
        "the ".repeat(60),
        "a b ".repeat(40),
        "one two three four five ".repeat(12),
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16".to_string(),
        "hello world. ".repeat(20),
        "Say 'the quick brown fox jumps over the lazy dog' five times.".to_string(),
    ]
    .iter()
    .map(|p| tok.encode(p).unwrap())
    .collect()
}

#[test]
fn deepseek_v4_greedy_output_with_ngram_speculation_equals_plain_decoding() {
    let model = || dsv4("dsv4-tok");
    let tok = model().1;
    let prompts = dsv4_prompts(&tok);
    let exec = |rows: usize| CpuDsv4Executor::new(model().0, 256 << 20, BLOCK, rows);
    assert_lossless(
        |s, n| run(exec(n), &tok, &prompts, 300, s, n, greedy),
        ngram,
        5,
    );
}

/// A DeepSeek-V4 checkpoint from `scripts/make_dsv4_checkpoints.sh`, with
/// its tokenizer.
fn dsv4(name: &str) -> (Dsv4Model, TextTokenizer) {
    let dir = common::model_dir().join(name);
    match load_model(dir.to_str().unwrap()) {
        Ok(LoadedModel {
            weights: ModelWeights::DeepseekV4(w),
            tokenizer,
            ..
        }) => (Dsv4Model::new(*w, Precision::Official), tokenizer),
        Ok(_) => panic!("{name} is not a DeepSeek-V4 checkpoint"),
        Err(e) => panic!("{e} (run scripts/make_dsv4_checkpoints.sh {})", &name[5..]),
    }
}

/// DSpark on random weights: its three stages see the target's hidden
/// streams after every verify, draft a block per row each step, and the
/// target verifies every draft with a non-zero confidence. Random drafts are
/// nearly always wrong (measured: 2 of about 1,820 kept, at one and at four
/// rows at once), so this proves that drafting, verifying, cutting
/// the target back and absorbing only the kept positions leave the greedy
/// text exactly that of plain decoding.
#[test]
fn deepseek_v4_greedy_output_with_dspark_equals_plain_decoding() {
    let model = || dsv4("dsv4-tok-dspark");
    let tok = model().1;
    let prompts = dsv4_prompts(&tok);
    let exec = |rows: usize, dspark: bool| {
        let e = CpuDsv4Executor::new(model().0, 256 << 20, BLOCK, rows);
        if dspark { e.with_dspark().unwrap() } else { e }
    };
    let dspark = || -> Box<dyn Drafter> { Box::new(DsparkDrafter::default()) };
    assert_lossless(
        |s, n| run(exec(n, s.is_some()), &tok, &prompts, 64, s, n, greedy),
        dspark,
        1,
    );
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

/// Row `i` samples at temperature 1 from the two likeliest tokens, with its
/// own seed.
fn top2(i: usize) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 2,
        seed: 1000 + i as u64,
    }
}

/// [`top2`] at temperature 0.5: a different distribution, for the control.
fn top2_sharper(i: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.5,
        ..top2(i)
    }
}

/// Pearson's chi-square statistic of homogeneity between two samples of
/// outcomes, and its degrees of freedom (outcomes seen, minus one).
fn chi_square_two_samples(a: &[String], b: &[String]) -> (f64, usize) {
    let mut counts: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for x in a {
        counts.entry(x).or_default().0 += 1.0;
    }
    for x in b {
        counts.entry(x).or_default().1 += 1.0;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let stat = counts
        .values()
        .map(|&(ca, cb)| {
            let total = ca + cb;
            let (ea, eb) = (total * na / (na + nb), total * nb / (na + nb));
            (ca - ea).powi(2) / ea + (cb - eb).powi(2) / eb
        })
        .sum();
    (stat, counts.len() - 1)
}

/// The chi-square critical value at significance 0.001 for `df` degrees of
/// freedom (Wilson-Hilferty approximation, within 1% for df >= 3).
fn critical_0_001(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.090_232; // the standard normal's 0.999 quantile
    let t = 1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt();
    k * t.powi(3)
}

/// Drafts tokens drawn uniformly from a fixed set, with that uniform
/// distribution as the draft distribution: unlike a copy of the context, its
/// drafts are often tokens the target would rarely or never sample, so the
/// accept test, the residual draw after a rejection and the bonus all run.
struct UniformDrafter {
    tokens: Vec<u32>,
    /// Per row, a random stream.
    rows: HashMap<SeqId, Rng>,
}

impl UniformDrafter {
    fn new(tokens: Vec<u32>) -> UniformDrafter {
        UniformDrafter {
            tokens,
            rows: HashMap::new(),
        }
    }
}

impl Drafter for UniformDrafter {
    fn admit(&mut self, id: SeqId, _prompt: &[u32], _max_new: usize, _s: &SamplingParams) {
        self.rows.insert(id, Rng::new(id));
    }

    fn draft(
        &mut self,
        rows: &[(SeqId, usize)],
        _target: &mut dyn Executor,
    ) -> Result<Vec<(SeqId, Draft)>, BackendError> {
        let q = TokenDist::from_weights(self.tokens.iter().map(|&t| (t, 1.0)).collect()).unwrap();
        let mut out = Vec::new();
        for &(id, max_len) in rows {
            let Some(rng) = self.rows.get_mut(&id) else {
                continue;
            };
            let mut draft = Draft::default();
            for _ in 0..max_len.min(3) {
                let token = self.tokens[(rng.next_u64() % self.tokens.len() as u64) as usize];
                draft.push(token, 0.5, q.clone());
            }
            out.push((id, draft));
        }
        Ok(out)
    }

    fn record(&mut self, _id: SeqId, _verified: usize, _accepted: usize) {}

    fn extend(&mut self, _id: SeqId, _token: u32) {}

    fn release(&mut self, id: SeqId) {
        self.rows.remove(&id);
    }
}

/// Sampling with speculation is lossless in distribution, end to end in the
/// engine: many rows of one prompt, each sampling four tokens from the two
/// likeliest at temperature 1 with its own seed, give the same distribution
/// of continuations with speculation as without (a two-sample chi-square
/// test at significance 0.001; the seeds are fixed, so the test is
/// deterministic). The control: the same test tells apart plain sampling at
/// temperature 1 and at 0.5, so it has the power to see a skewed
/// distribution.
///
/// Two drafters. The uniform drafter's drafts mostly fail the accept test or
/// are tokens the target cannot emit, so rows take residual draws and
/// differ from their plain runs seed for seed: only the distribution can
/// agree. The n-gram drafter copies the prompt's phrase; when its
/// (deterministic) draft is the target's likeliest token, the accept test
/// and plain sampling make the same decision with the same uniform, so its
/// rows mostly match their plain runs exactly.
#[test]
fn sampled_output_with_speculation_has_the_distribution_of_plain_sampling() {
    const ROWS: usize = 1000;
    let m = load_model(&common::model_path(common::SMOLLM2)).unwrap();
    let exec = || {
        let w = load_model(&m.path).unwrap().weights.into_dense();
        CpuDenseExecutor::new(w.expect("dense model"), 64 << 20, BLOCK)
    };
    let mut prompt = m
        .tokenizer
        .encode(
            "<|im_start|>user\nSay 'the quick brown fox jumps over the lazy dog' five \
             times.<|im_end|>\n<|im_start|>assistant\nthe quick brown fox jumps over the lazy \
             dog, the quick brown fox jumps over the lazy dog, the quick",
        )
        .unwrap();
    // All but the last token in whole KV blocks: every row after the first
    // attaches to the shared prefix and computes one token before sampling.
    prompt.drain(..(prompt.len() - 1) % BLOCK);
    let mut phrase: Vec<u32> = prompt[prompt.len() - 12..].to_vec();
    phrase.sort_unstable();
    phrase.dedup();
    let prompts = vec![prompt; ROWS];
    let sample = |s: Option<Speculator>, sampling: fn(usize) -> SamplingParams| {
        run(exec(), &m.tokenizer, &prompts, 4, s, 64, sampling)
    };
    let texts = |rows: &[Row]| -> Vec<String> { rows.iter().map(|r| r.0.clone()).collect() };
    let plain = texts(&sample(None, top2));
    let control = texts(&sample(None, top2_sharper));
    let (stat, df) = chi_square_two_samples(&plain, &control);
    eprintln!("control, temperature 1 vs 0.5: chi-square {stat:.1}, {df} df");
    assert!(
        stat > critical_0_001(df),
        "the test cannot see a skewed distribution"
    );
    let drafters: [(&str, Box<dyn Drafter>); 2] = [
        ("uniform", Box::new(UniformDrafter::new(phrase))),
        ("ngram", ngram()),
    ];
    for (name, drafter) in drafters {
        let rows = sample(Some(speculator(drafter)), top2);
        let proposed: u32 = rows.iter().map(|r| r.1).sum();
        let accepted: u32 = rows.iter().map(|r| r.2).sum();
        let spec = texts(&rows);
        let differ = spec.iter().zip(&plain).filter(|(a, b)| a != b).count();
        let (stat, df) = chi_square_two_samples(&plain, &spec);
        eprintln!(
            "{name}: {accepted} of {proposed} draft tokens accepted, {differ} of {ROWS} rows \
             differ from their plain run; chi-square {stat:.1}, {df} df (critical {:.1})",
            critical_0_001(df)
        );
        assert!(
            accepted > 0 && accepted < proposed,
            "{name}: {accepted} of {proposed}"
        );
        assert!(stat < critical_0_001(df), "{name}: {stat:.1} with {df} df");
    }
}
