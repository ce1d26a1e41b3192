//! Builders shared by the io tests: small input files and row results.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, Int32Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;

use super::row::{FinishReason, Generation, RowError, RowKey, RowResult, RowTimings};
use crate::job::spec::{InputSpec, OverrideColumns};

pub(crate) fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create test parquet");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
}

/// `id`, `prompt` (utf8) and `topic` (int32 = row number).
pub(crate) fn basic_batch(ids: &[&str], prompts: &[&str]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids.to_vec())) as ArrayRef),
        (
            "prompt",
            Arc::new(StringArray::from(prompts.to_vec())) as ArrayRef,
        ),
        (
            "topic",
            Arc::new(Int32Array::from_iter_values(0..ids.len() as i32)) as ArrayRef,
        ),
    ])
    .expect("batch")
}

pub(crate) fn input_spec(paths: &[&str]) -> InputSpec {
    InputSpec {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        id_column: "id".into(),
        prompt_column: Some("prompt".into()),
        messages_column: None,
        overrides: OverrideColumns::default(),
        pass_through: Vec::new(),
        prompt_format: Default::default(),
    }
}

/// A `list<struct<role, content>>` column; `None` rows are null lists.
pub(crate) type MessageRow<'a> = Option<Vec<(Option<&'a str>, Option<&'a str>)>>;

pub(crate) fn messages_list(rows: &[MessageRow<'_>]) -> ListArray {
    let fields = Fields::from(vec![
        Field::new("role", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, true),
    ]);
    let structs = StructBuilder::new(
        fields,
        vec![
            Box::new(StringBuilder::new()),
            Box::new(StringBuilder::new()),
        ],
    );
    let mut list = ListBuilder::new(structs);
    for row in rows {
        match row {
            Some(messages) => {
                for (role, content) in messages {
                    let s = list.values();
                    s.field_builder::<StringBuilder>(0)
                        .expect("role")
                        .append_option(*role);
                    s.field_builder::<StringBuilder>(1)
                        .expect("content")
                        .append_option(*content);
                    s.append(true);
                }
                list.append(true);
            }
            None => list.append(false),
        }
    }
    list.finish()
}

fn key(id: &str, file_index: u32, file: &str, row: u64) -> RowKey {
    RowKey {
        id: id.into(),
        file_index,
        input_file: file.into(),
        input_row: row,
    }
}

/// An ok row with an int32 pass-through value `topic`.
pub(crate) fn ok_result(
    id: &str,
    file_index: u32,
    file: &str,
    row: u64,
    text: &str,
    topic: i32,
) -> RowResult {
    RowResult {
        key: key(id, file_index, file, row),
        outcome: Ok(Generation {
            text: text.into(),
            reasoning_text: None,
            finish_reason: FinishReason::Eos,
            cached_tokens: 4,
            completion_tokens: 3,
            draft_tokens_proposed: 5,
            draft_tokens_accepted: 2,
            timings: RowTimings {
                time_to_first_token_ms: 1.5,
                latency_ms: 4.0,
            },
        }),
        seed: 7,
        prompt_tokens: 10,
        pass_through: vec![Arc::new(Int32Array::from(vec![topic]))],
    }
}

/// An error row with an int32 pass-through value `topic`.
pub(crate) fn error_result(
    id: &str,
    file_index: u32,
    file: &str,
    row: u64,
    error: RowError,
    topic: i32,
) -> RowResult {
    RowResult {
        key: key(id, file_index, file, row),
        outcome: Err(error),
        seed: 7,
        prompt_tokens: 0,
        pass_through: vec![Arc::new(Int32Array::from(vec![topic]))],
    }
}

/// Every `(input_file, input_row)` in the parquet files under `dir`, sorted.
pub(crate) fn keys_in_parts(dir: &Path) -> Vec<(String, u64)> {
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let file = std::fs::File::open(&path).expect("open");
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("builder")
                .build()
                .expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let files = batch
                    .column_by_name("input_file")
                    .expect("input_file")
                    .as_string::<i32>()
                    .clone();
                let rows = batch
                    .column_by_name("input_row")
                    .expect("input_row")
                    .as_primitive::<arrow_array::types::UInt64Type>()
                    .clone();
                for i in 0..batch.num_rows() {
                    out.push((files.value(i).to_string(), rows.value(i)));
                }
            }
        }
    }
    out.sort();
    out
}

/// Names of all files under `dir`, recursively, relative to it.
pub(crate) fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("ls") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}
