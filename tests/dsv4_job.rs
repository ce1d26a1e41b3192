//! End to end: `jobs/dsv4_chat.yaml` runs a tiny official-format DeepSeek-V4
//! checkpoint (`scripts/make_dsv4_checkpoints.sh tok`) with DeepSeek-V4's own
//! tokenizer over chats in each reasoning mode; real DuckDB reads it back.

mod common;

use std::process::Command;

#[test]
fn dsv4_chat_job_runs_every_reasoning_mode() {
    let model = common::model_dir().join("dsv4-tok");
    assert!(
        model.join("config.json").exists(),
        "{} is missing: run scripts/make_dsv4_checkpoints.sh tok",
        model.display()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("dsv4");
    let status = Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .current_dir(common::root())
        .args(["run", "jobs/dsv4_chat.yaml", "--output"])
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(out.join("_SUCCESS").exists());
    let data = format!("'{}/data/**/*.parquet'", out.display());
    let rows = common::duckdb_query(&format!(
        "select count(*), count(*) filter (where status = 'ok'), \
         count(*) filter (where error_kind = 'invalid_override' and id = 'bad-mode'), \
         count(*) filter (where status = 'ok' and completion_tokens > 0) \
         from read_parquet({data})"
    ));
    assert_eq!(
        rows[0],
        [19, 18, 1, 18].map(serde_json::Value::from),
        "{rows:?}"
    );
    // Think modes split at </think> into reasoning_text (never null);
    // non-think rows have none.
    let split = common::duckdb_query(&format!(
        "select count(*) filter (where reasoning_text is null), \
                count(*) filter (where reasoning_text is not null) \
         from read_parquet({data}) where status = 'ok' and id like 'q%' \
         group by (id like '%think_high' or id like '%think_max') order by 1"
    ));
    assert_eq!(
        split,
        [[0, 8], [8, 0]]
            .map(|r| r.map(serde_json::Value::from).to_vec())
            .to_vec()
    );
    // The same question costs more prompt tokens with the Think Max preamble,
    // and non_think and think_high prompts differ only in one marker token.
    let lens = common::duckdb_query(&format!(
        "select id, prompt_tokens from read_parquet({data}) where id like 'q0-%' order by id"
    ));
    let len = |id: &str| {
        lens.iter()
            .find(|r| r[0] == id)
            .map(|r| r[1].as_i64().unwrap())
            .unwrap()
    };
    assert_eq!(len("q0-non_think"), len("q0-think_high"));
    assert_eq!(len("q0-job"), len("q0-non_think"));
    assert!(len("q0-think_max") > len("q0-think_high") + 20);
}
