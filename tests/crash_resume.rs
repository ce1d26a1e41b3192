//! Crash safety: SIGKILL a run at several points, restart it, and check with
//! DuckDB that every input row appears exactly once, with the same status
//! and (greedy decoding being deterministic) the same text as a clean run.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn write_spec(dir: &Path, out: &Path) -> std::path::PathBuf {
    let spec = format!(
        "inputs:\n  paths: [{root}/datasets/quickstart.parquet]\n  id_column: id\n  prompt_column: prompt\n  messages_column: messages\n  pass_through: [topic]\n\
model: {model}\n\
generation:\n  max_new_tokens: 12\n  temperature: 0\n\
engine:\n  max_concurrent_rows: 4\n  max_batch_tokens: 256\n  kv_cache_bytes: 256MiB\n\
output:\n  path: {out}\n  rows_per_part: 2\n",
        root = common::root().display(),
        model = common::model_path(common::SMOLLM2),
        out = out.display()
    );
    let p = dir.join("job.yaml");
    std::fs::write(&p, spec).unwrap();
    p
}

fn start(spec: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .args(["run"])
        .arg(spec)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn commits(out: &Path) -> usize {
    std::fs::read_dir(out.join("_commits/shard=00000"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("seq-"))
                .count()
        })
        .unwrap_or(0)
}

/// Starts a run and SIGKILLs it once `n` commit records exist (or when it
/// ends by itself first). Returns whether it was killed.
fn kill_after_commits(spec: &Path, out: &Path, n: usize) -> bool {
    let mut child = start(spec);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if commits(out) >= n || Instant::now() > deadline {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn results(out: &Path) -> Vec<Vec<serde_json::Value>> {
    common::duckdb_query(&format!(
        "select input_row, count(*), min(status), min(coalesce(output_text, error_kind)) \
         from read_parquet('{}/data/**/*.parquet') group by input_row order by input_row",
        out.display()
    ))
}

#[test]
fn sigkill_at_several_points_then_resume_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let clean_out = tmp.path().join("clean");
    let clean_spec_dir = tmp.path().join("c");
    std::fs::create_dir_all(&clean_spec_dir).unwrap();
    let clean_spec = write_spec(&clean_spec_dir, &clean_out);
    assert!(start(&clean_spec).wait().unwrap().success());
    let clean = results(&clean_out);

    let out = tmp.path().join("crashy");
    let spec_dir = tmp.path().join("k");
    std::fs::create_dir_all(&spec_dir).unwrap();
    let spec = write_spec(&spec_dir, &out);
    // Kill before anything is committed, then after 1, 3 and 6 commits
    // (each restart resumes and commits more).
    let mut kills = 0;
    let mut child = start(&spec);
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    for n in [1, 3, 6] {
        kills += usize::from(kill_after_commits(&spec, &out, n));
    }
    assert!(
        kills >= 2,
        "the job was actually interrupted mid-run ({kills} kills)"
    );
    let status = start(&spec).wait().unwrap();
    assert!(status.success(), "the final resume completes");
    assert!(out.join("_SUCCESS").exists());

    let got = results(&out);
    assert_eq!(got.len(), clean.len(), "every input row is present");
    for (g, c) in got.iter().zip(&clean) {
        assert_eq!(g[1].as_i64(), Some(1), "row {} appears exactly once", g[0]);
        assert_eq!(g, c, "row {} matches the uninterrupted run", g[0]);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["counts"]["total"].as_u64(),
        Some(clean.len() as u64)
    );
}
