//! The engine pool end to end on the CPU: the quickstart job run by two CPU
//! engines (work stealing over prefix-group units) gives, row for row, the
//! greedy answers of the one-engine run, with every input row exactly once.
//! A spec allows one `cpu` engine, so the second comes through
//! `RunOptions::engines`.

mod common;

use std::path::Path;

use specbatch::backend::device::Device;
use specbatch::pipeline::{RunOptions, run_job};

/// What must not depend on which engine ran a row. `cached_tokens` may:
/// each engine computes the prefixes (the chat template's system prompt)
/// that its units share once for itself.
fn answers(out: &Path) -> Vec<Vec<serde_json::Value>> {
    common::duckdb_query(&format!(
        "select input_file, input_row, id, status, error_kind, output_text, finish_reason, \
         prompt_tokens, completion_tokens \
         from read_parquet('{}/data/**/*.parquet') order by input_file, input_row",
        out.display()
    ))
}

#[test]
fn two_cpu_engines_answer_exactly_like_one() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::write_quickstart_spec(tmp.path(), &tmp.path().join("unused"), 12);
    let spec = spec.to_str().unwrap();
    let run = |name: &str, engines: Option<Vec<Device>>| {
        let out = tmp.path().join(name);
        let opts = RunOptions {
            output: Some(out.display().to_string()),
            engines,
            ..RunOptions::default()
        };
        let summary = run_job(spec, &opts).unwrap();
        assert!(out.join("_SUCCESS").exists());
        (summary, out)
    };
    let (one, one_out) = run("one", None);
    let (two, two_out) = run("two", Some(vec![Device::Cpu, Device::Cpu]));

    assert_eq!(
        (two.total, two.ok, two.error),
        (one.total, one.ok, one.error)
    );
    assert_eq!(two.completion_tokens, one.completion_tokens);
    let reference = answers(&one_out);
    let pooled = answers(&two_out);
    assert_eq!(pooled.len() as u64, one.total, "every row once");
    let distinct = common::duckdb_query(&format!(
        "select count(distinct (input_file, input_row)) from read_parquet('{}/data/**/*.parquet')",
        two_out.display()
    ));
    assert_eq!(distinct[0][0].as_u64(), Some(one.total), "no row twice");
    for (a, b) in reference.iter().zip(&pooled) {
        assert_eq!(a, b, "the same answer from either engine");
    }
    // Both engines worked, and together they were handed each row that
    // reached an engine once (rows that fail before the engine never do).
    assert_eq!(one.engines.len(), 1, "{one}");
    assert_eq!(two.engines.len(), 2, "{two}");
    assert!(two.engines.iter().all(|(_, rows)| *rows > 0), "{two}");
    let handed: u64 = two.engines.iter().map(|(_, rows)| rows).sum();
    assert_eq!(handed, one.engines[0].1, "{two}");
}
