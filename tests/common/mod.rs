//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Directory holding the real models (`scripts/fetch_models.sh` fills it).
pub fn model_dir() -> PathBuf {
    std::env::var_os("SPECBATCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// Path of a fetched model file; panics with the fix when it is missing.
pub fn model_path(file: &str) -> String {
    let p = model_dir().join(file);
    assert!(
        p.exists(),
        "{} is missing: run scripts/fetch_models.sh smollm2 qwen-0.5b qwen-1.5b (or set SPECBATCH_MODEL_DIR)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

pub const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";
pub const QWEN05: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const QWEN15: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// Runs a DuckDB SQL query through the `duckdb` Python package (installed by
/// scripts/test.sh) and returns the rows as JSON values.
pub fn duckdb_query(sql: &str) -> Vec<Vec<serde_json::Value>> {
    let script = r#"
import duckdb, json, sys
rows = duckdb.sql(sys.argv[1]).fetchall()
print(json.dumps([[v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for v in r] for r in rows]))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, sql])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "duckdb query failed (is `pip install duckdb==2.0.1` done? scripts/test.sh does it):\n{sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json rows")
}

/// The crate root (jobs/, datasets/ and models/ are relative to it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `dir/job.yaml`: the quickstart dataset on SmolLM2, greedy,
/// `max_new_tokens` per row, two rows per part, output in `out`.
pub fn write_quickstart_spec(dir: &Path, out: &Path, max_new_tokens: u32) -> PathBuf {
    let spec = format!(
        "inputs:\n  paths: [{root}/datasets/quickstart.parquet]\n  id_column: id\n  prompt_column: prompt\n  messages_column: messages\n  pass_through: [topic]\n\
model: {model}\n\
generation:\n  max_new_tokens: {max_new_tokens}\n  temperature: 0\n\
engine:\n  max_concurrent_rows: 4\n  max_batch_tokens: 256\n  kv_cache_bytes: 256MiB\n\
output:\n  path: {out}\n  rows_per_part: 2\n",
        root = root().display(),
        model = model_path(SMOLLM2),
        out = out.display()
    );
    let p = dir.join("job.yaml");
    std::fs::write(&p, spec).unwrap();
    p
}

/// Commit records shard `shard` has written under `out` so far.
pub fn commits(out: &Path, shard: u32) -> usize {
    std::fs::read_dir(out.join(format!("_commits/shard={shard:05}")))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("seq-"))
                .count()
        })
        .unwrap_or(0)
}

/// What a run of the `specbatch` binary printed and returned.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `specbatch` binary of this build from the crate root.
pub fn specbatch(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The run exited with code 2 and its stderr names every needle.
#[track_caller]
pub fn assert_exit_2(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code,
        Some(2),
        "exit code 2 expected; stderr: {}",
        run.stderr
    );
    for n in needles {
        assert!(
            run.stderr.contains(n),
            "stderr should mention `{n}`: {}",
            run.stderr
        );
    }
}

/// A DeepSeek-V4 fixture checkpoint (`tests/fixtures/dsv4/...`) as a model
/// running in precision `p`.
pub fn dsv4_model(
    dir: &str,
    p: specbatch::model::dsv4::precision::Precision,
) -> specbatch::model::dsv4::forward::Dsv4Model {
    let w = specbatch::model::dsv4::weights::Dsv4Weights::load(Path::new(dir))
        .unwrap_or_else(|e| panic!("{dir} loads: {e}"));
    specbatch::model::dsv4::forward::Dsv4Model::new(w, p)
}

/// A little-endian f32 file (the golden fixtures' `*.bin`).
pub fn f32_file(path: &str) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Worst over rows of `row` values of max|a − b| / max|b| (the row's scale).
pub fn worst_relative(a: &[f32], b: &[f32], row: usize) -> f32 {
    assert_eq!(a.len(), b.len());
    a.chunks_exact(row)
        .zip(b.chunks_exact(row))
        .map(|(x, y)| {
            let scale = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = x
                .iter()
                .zip(y)
                .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            diff / scale
        })
        .fold(0.0, f32::max)
}
