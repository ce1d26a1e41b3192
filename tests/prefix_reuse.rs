//! Prefix reuse changes speed, never results: a shared-document QA job run
//! with planned reuse, with arrival-order LRU reuse and with no reuse gives
//! the same greedy output, read back with DuckDB, while the planned run
//! computes each document once; and on the committed corpus-QA sample the
//! planner's groups are exactly its documents.

mod common;

use std::path::Path;
use std::sync::Arc;

use std::collections::BTreeMap;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use specbatch::pipeline::{ReuseMode, RunOptions, plan_job, run_job};

const DOCS: usize = 3;
const QUESTIONS: usize = 4;

/// Documents of a few hundred tokens, each followed by one of its questions;
/// rows interleave documents, as real arrival order would.
fn write_dataset(path: &Path) {
    let towns = ["Aldermere", "Brackwater", "Corrowick"];
    let mut ids = Vec::new();
    let mut prompts = Vec::new();
    for q in 0..QUESTIONS {
        for (d, town) in towns.iter().enumerate().take(DOCS) {
            let mut doc = format!("Records of the town of {town}.\n");
            for i in 0..24 {
                doc.push_str(&format!(
                    "In the year {}, {town} built {} bridges and planted {} trees. ",
                    1900 + 3 * i,
                    (i * 7 + d * 3) % 11 + 1,
                    (i * 13 + d) % 40 + 2
                ));
            }
            let year = 1900 + 3 * (q * 5 % 24);
            ids.push(format!("d{d}-q{q}"));
            prompts.push(format!(
                "{doc}\n\nQuestion: how many bridges did {town} build in the year {year}?"
            ));
        }
    }
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("prompt", Arc::new(StringArray::from(prompts)) as ArrayRef),
    ])
    .unwrap();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn write_spec(dir: &Path, input: &Path) -> String {
    let spec = format!(
        "inputs:\n  paths: [{input}]\n  prompt_column: prompt\n\
model: {model}\n\
generation:\n  max_new_tokens: 10\n  temperature: 0\n\
engine:\n  max_concurrent_rows: 4\n  max_batch_tokens: 256\n  kv_cache_bytes: 256MiB\n\
output:\n  path: {out}\n  rows_per_part: 5\n",
        input = input.display(),
        model = common::model_path(common::SMOLLM2),
        out = dir.join("unused").display(),
    );
    let p = dir.join("job.yaml");
    std::fs::write(&p, spec).unwrap();
    p.display().to_string()
}

fn answers(out: &Path) -> Vec<Vec<serde_json::Value>> {
    common::duckdb_query(&format!(
        "select id, status, output_text, completion_tokens \
         from read_parquet('{}/data/**/*.parquet') order by id",
        out.display()
    ))
}

fn cached_tokens(out: &Path) -> u64 {
    let rows = common::duckdb_query(&format!(
        "select sum(cached_tokens)::bigint from read_parquet('{}/data/**/*.parquet')",
        out.display()
    ));
    rows[0][0].as_u64().unwrap()
}

#[test]
fn reuse_changes_prefill_work_not_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("qa.parquet");
    write_dataset(&input);
    let spec = write_spec(tmp.path(), &input);
    let run = |name: &str, reuse| {
        let out = tmp.path().join(name);
        let opts = RunOptions {
            output: Some(out.display().to_string()),
            reuse,
            ..RunOptions::default()
        };
        let summary = run_job(&spec, &opts).unwrap();
        assert_eq!((summary.total, summary.ok), (12, 12), "{summary}");
        out
    };
    let planned = run("planned", ReuseMode::Planned);
    let arrival = run("arrival", ReuseMode::Arrival);
    let off = run("off", ReuseMode::Off);

    let reference = answers(&off);
    assert_eq!(reference.len(), DOCS * QUESTIONS);
    assert_eq!(answers(&planned), reference, "planned reuse, same answers");
    assert_eq!(answers(&arrival), reference, "LRU reuse, same answers");

    assert_eq!(cached_tokens(&off), 0);
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(planned.join("_plan/plan.json")).unwrap()).unwrap();
    let stats = &plan["stats"];
    let naive = stats["prefill_tokens_without_reuse"].as_u64().unwrap();
    let optimum = stats["prefill_tokens_with_reuse"].as_u64().unwrap();
    assert!(optimum * 2 < naive, "the documents dominate: {stats}");
    // Planned: each document computed once, so exactly the plan's optimum.
    assert_eq!(naive - cached_tokens(&planned), optimum);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(planned.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["cached_tokens"].as_u64(),
        Some(cached_tokens(&planned))
    );
    assert_eq!(plan["shards"].as_u64(), Some(1));
}

/// The `doc_id` of every row of a Parquet file, in file order.
fn doc_ids(path: &Path) -> Vec<String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch.column_by_name("doc_id").expect("doc_id column");
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("string doc_id");
        out.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    out
}

#[test]
fn planned_groups_are_the_sample_documents() {
    let root = common::root();
    let input = root.join("datasets/corpus_qa_sample.parquet");
    let tmp = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(root.join("jobs/corpus_qa.yaml"))
        .unwrap()
        .replace(
            "datasets/corpus_qa_sample.parquet",
            &input.display().to_string(),
        )
        .replace(
            &format!("models/{}", common::SMOLLM2),
            &common::model_path(common::SMOLLM2),
        );
    let spec_path = tmp.path().join("job.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = tmp.path().join("out");
    let opts = RunOptions {
        output: Some(out.display().to_string()),
        shards: Some(2),
        ..RunOptions::default()
    };
    plan_job(&spec_path.display().to_string(), &opts).unwrap();
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("_plan/plan.json")).unwrap()).unwrap();

    let docs = doc_ids(&input);
    let mut group_of_doc: BTreeMap<&str, u64> = BTreeMap::new();
    let mut seen = vec![0; docs.len()];
    for shard in plan["shard_plans"].as_array().unwrap() {
        for group in shard["groups"].as_array().unwrap() {
            let id = group["id"].as_u64().unwrap();
            for row in group["rows"].as_array().unwrap() {
                assert_eq!(row[0].as_u64(), Some(0), "one input file");
                let r = row[1].as_u64().unwrap() as usize;
                seen[r] += 1;
                let prev = group_of_doc.insert(&docs[r], id);
                assert!(
                    prev.is_none() || prev == Some(id),
                    "{} split over groups",
                    docs[r]
                );
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every row planned once: {seen:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = group_of_doc.values().copied().collect();
    assert_eq!(
        distinct.len(),
        group_of_doc.len(),
        "one group per document: {group_of_doc:?}"
    );
    assert_eq!(
        plan["stats"]["groups"].as_u64(),
        Some(group_of_doc.len() as u64)
    );
}
