//! Crash safety: SIGKILL a run at several points, restart it, and check with
//! DuckDB that every input row appears exactly once, with the same status
//! and (greedy decoding being deterministic) the same text as a clean run.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn start(spec: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .args(["run"])
        .arg(spec)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
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
        if common::commits(out, 0) >= n || Instant::now() > deadline {
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
    let clean_spec = common::write_quickstart_spec(&clean_spec_dir, &clean_out, 12);
    assert!(start(&clean_spec).wait().unwrap().success());
    let clean = results(&clean_out);

    let out = tmp.path().join("crashy");
    let spec_dir = tmp.path().join("k");
    std::fs::create_dir_all(&spec_dir).unwrap();
    let spec = common::write_quickstart_spec(&spec_dir, &out, 12);
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
