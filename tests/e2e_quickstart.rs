//! End to end: the quickstart job on the real default model, read back with
//! real DuckDB.

mod common;

use std::process::Command;

#[test]
fn quickstart_job_runs_and_duckdb_reads_the_output() {
    common::model_path(common::SMOLLM2);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("quickstart");
    let status = Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .current_dir(common::root())
        .args(["run", "jobs/quickstart.yaml", "--output"])
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the job finishes (row errors included)"
    );
    assert!(out.join("_SUCCESS").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();

    let input = common::root().join("datasets/quickstart.parquet");
    let data = format!("'{}/data/**/*.parquet'", out.display());
    let n_input = common::duckdb_query(&format!(
        "select count(*) from read_parquet('{}')",
        input.display()
    ))[0][0]
        .as_i64()
        .unwrap();
    let rows = common::duckdb_query(&format!(
        "select count(*), count(distinct input_row), \
         count(*) filter (where status = 'ok'), count(*) filter (where status = 'error'), \
         count(*) filter (where status = 'ok' and length(trim(output_text)) > 0), \
         count(*) filter (where status = 'error' and error_kind is not null and error_message is not null) \
         from read_parquet({data})"
    ));
    let r: Vec<i64> = rows[0].iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(r[0], n_input, "every input row appears once");
    assert_eq!(r[1], n_input, "no input row appears twice");
    assert_eq!(
        r[3], 8,
        "exactly the 8 deliberately bad rows are error rows: {r:?}"
    );
    assert_eq!(r[2], n_input - 8, "every other row answers: {r:?}");
    assert_eq!(r[4], r[2], "every ok row has non-empty text");
    assert_eq!(r[5], r[3], "every error row has a kind and a message");
    assert_eq!(manifest["counts"]["total"].as_i64(), Some(n_input));
    assert_eq!(manifest["counts"]["ok"].as_i64(), Some(r[2]));
    assert_eq!(manifest["counts"]["error"].as_i64(), Some(r[3]));

    // Every row keeps its identity and pass-through columns: join back to the input.
    let joined = common::duckdb_query(&format!(
        "select count(*) from read_parquet({data}) o join read_parquet('{}') i \
         on o.id = i.id and o.topic = i.topic and o.source = i.source",
        input.display()
    ))[0][0]
        .as_i64()
        .unwrap();
    assert!(
        joined >= n_input - 1,
        "rows join back to the input on id + pass-through"
    );

    // Real answers from the real model: factual rows name the right thing.
    for (id, word) in [
        ("qs-001", "paris"),
        ("qs-028", "2, 3, 5, 7"),
        ("qs-022", "def "),
    ] {
        let hits = common::duckdb_query(&format!(
            "select count(*) from read_parquet({data}) where id = '{id}' and status = 'ok' \
             and lower(output_text) like '%{word}%'"
        ))[0][0]
            .as_i64()
            .unwrap();
        assert_eq!(hits, 1, "row {id} answers with `{word}`");
    }
    // Each deliberately bad row carries the typed reason its topic names.
    let kinds = common::duckdb_query(&format!(
        "select topic, error_kind from read_parquet({data}) where status = 'error' order by topic"
    ));
    let expect = [
        ("duplicate_id", "duplicate_id"),
        ("empty_prompt", "empty_prompt"),
        ("message_with_null_content", "invalid_messages"),
        ("message_with_unknown_role_wizard", "invalid_messages"),
        ("negative_max_new_tokens", "invalid_override"),
        ("null_prompt_and_null_messages", "null_prompt"),
        ("prompt_longer_than_context", "prompt_too_long"),
        ("whitespace_only_prompt", "empty_prompt"),
    ];
    let got: Vec<(String, String)> = kinds
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = expect
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn inspect_describes_the_real_models() {
    for (file, want) in [
        (
            common::SMOLLM2,
            &[
                "architecture   llama",
                "134515008",
                "Q4_1",
                "vocab 49152",
                "chatml",
                "SmolLM",
            ][..],
        ),
        (
            common::QWEN05,
            &[
                "architecture   qwen2",
                "630167424",
                "Q5_0",
                "Q6K",
                "QKV bias yes",
                "You are Qwen",
            ][..],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_specbatch"))
            .args(["inspect", &common::model_path(file)])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for w in want {
            assert!(text.contains(w), "inspect {file} lacks `{w}`:\n{text}");
        }
    }
}
