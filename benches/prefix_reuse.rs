//! Prefix reuse on a shared-document QA job, three ways in one process:
//! (a) planned reuse, (b) arrival order with an LRU prefix cache, (c) no
//! reuse. Prints prompt tokens computed and end-to-end time for each, the
//! unique-prefix optimum from the plan, and speed-ups against (c) beside the
//! ideal speed-up (naive prefill + decode over unique prefill + decode, with
//! the decode/prefill cost ratio measured on the same model in this run).
//!
//! Usage: `benches/prefix_reuse.sh` (generates the dataset), or
//! `cargo bench --bench prefix_reuse -- JOB.yaml`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use specbatch::bench::{cpu_executor, run_point};
use specbatch::job::spec::JobSpec;
use specbatch::model::load::load_model;
use specbatch::pipeline::{BLOCK_SIZE, ReuseMode, RunOptions, run_job};

struct Measured {
    name: &'static str,
    secs: f64,
    prompt: u64,
    cached: u64,
    completion: u64,
}

fn json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn run(spec: &str, out: &Path, name: &'static str, reuse: ReuseMode) -> anyhow::Result<Measured> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let opts = RunOptions {
        output: Some(out.display().to_string()),
        reuse,
        ..RunOptions::default()
    };
    let t0 = Instant::now();
    let summary = run_job(spec, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    anyhow::ensure!(summary.error == 0, "{name}: {} error rows", summary.error);
    Ok(Measured {
        name,
        secs,
        prompt: summary.prompt_tokens,
        cached: summary.cached_tokens,
        completion: summary.completion_tokens,
    })
}

/// What one decode token costs in prefill tokens (prefill rate over decode
/// rate), at the job's concurrency and mean prompt length, on its model.
fn decode_weight(spec: &JobSpec, mean_prompt: usize) -> anyhow::Result<f64> {
    let m = load_model(&spec.model)?;
    let rows = spec.engine.max_concurrent_rows;
    let gen_tokens = 32;
    let mut exec = cpu_executor(m.weights, rows, mean_prompt, gen_tokens, BLOCK_SIZE);
    let p = run_point(
        &mut exec,
        rows,
        mean_prompt,
        gen_tokens,
        spec.engine.max_batch_tokens,
        BLOCK_SIZE,
    )?;
    Ok(p.prefill_tok_per_s / p.gen_tok_per_s)
}

fn main() -> anyhow::Result<()> {
    let spec_path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "benches/corpus_qa_bench.yaml".into());
    let spec = JobSpec::load(Path::new(&spec_path))?;
    let out = PathBuf::from(&spec.output.path);
    let modes = [
        ("(a) planned reuse", ReuseMode::Planned, "planned"),
        ("(b) arrival + LRU", ReuseMode::Arrival, "arrival"),
        ("(c) no reuse", ReuseMode::Off, "off"),
    ];
    let mut results = Vec::new();
    for (name, mode, dir) in modes {
        eprintln!("running {name}");
        results.push(run(&spec_path, &out.join(dir), name, mode)?);
    }
    let plan = json(&out.join("planned/_plan/plan.json"))?;
    let stats = &plan["stats"];
    let naive = stats["prefill_tokens_without_reuse"].as_u64().unwrap_or(0);
    let optimum = stats["prefill_tokens_with_reuse"].as_u64().unwrap_or(0);
    let rows = stats["rows"].as_u64().unwrap_or(1).max(1);
    let w = decode_weight(&spec, (naive / rows) as usize)?;
    let base = results.last().expect("three runs").secs;
    let decode = results.last().expect("three runs").completion as f64;
    let ideal = (naive as f64 + w * decode) / (optimum as f64 + w * decode);

    println!(
        "job {spec_path}: {rows} rows, {naive} prompt tokens, unique-prefix optimum {optimum}"
    );
    println!("decode/prefill cost per token on this model: {w:.1} (measured now)");
    println!(
        "{:<20} {:>12} {:>10} {:>9} {:>9} {:>9}",
        "mode", "prefill tok", "vs optimum", "time s", "speed-up", "vs ideal"
    );
    for r in &results {
        let computed = r.prompt - r.cached;
        let speedup = base / r.secs;
        println!(
            "{:<20} {:>12} {:>9.1}% {:>9.1} {:>8.2}x {:>8.2}",
            r.name,
            computed,
            100.0 * computed as f64 / optimum.max(1) as f64,
            r.secs,
            speedup,
            speedup / ideal
        );
    }
    println!("ideal speed-up of (a) over (c): {ideal:.2}x");
    Ok(())
}
