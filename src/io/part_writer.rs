//! The part writer: buffers [`RowResult`]s and commits them as part files.
//!
//! Invariants: a row key is accepted once per job (rows committed by earlier
//! attempts and rows already buffered are refused), parts are written every
//! `rows_per_part` rows and on [`PartWriter::flush`], and a part is counted
//! only after its commit record exists. After an error the writer must be
//! dropped; a restart resumes from the commit records and loses at most the
//! rows that were buffered.

use std::path::PathBuf;

use arrow_schema::SchemaRef;

use super::commit::{CommitRecord, Totals, commit_part};
use super::error::IoError;
use super::layout::Layout;
use super::output_dir::OutputState;
use super::output_schema::build_batch;
use super::row::RowResult;
use super::row_set::RowSet;
use crate::job::spec::{Compression, OutputSpec};

/// How parts are written.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Written to the `model` column.
    pub model: String,
    pub rows_per_part: usize,
    pub compression: Compression,
}

impl WriterConfig {
    pub fn new(spec: &OutputSpec, model: &str) -> Self {
        WriterConfig {
            model: model.to_string(),
            rows_per_part: spec.rows_per_part,
            compression: spec.compression,
        }
    }
}

/// What the output holds when a writer finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSummary {
    pub root: PathBuf,
    pub spec_hash: String,
    /// Every committed row, by this and earlier attempts.
    pub totals: Totals,
    /// Rows committed by this writer.
    pub run: Totals,
    /// Rows committed by earlier attempts (skipped by this run).
    pub skipped: u64,
    /// Committed parts relative to the root, in seq order.
    pub parts: Vec<String>,
}

pub struct PartWriter {
    layout: Layout,
    shard: u32,
    schema: SchemaRef,
    spec_hash: String,
    input_files: Vec<String>,
    config: WriterConfig,
    next_seq: u32,
    buffer: Vec<RowResult>,
    /// Committed or buffered keys.
    seen: RowSet,
    totals: Totals,
    run: Totals,
    skipped: u64,
    parts: Vec<String>,
}

impl OutputState {
    /// A writer continuing after what this directory already holds.
    pub fn into_writer(self, config: WriterConfig) -> PartWriter {
        PartWriter {
            shard: self.config.shard,
            schema: self.config.schema,
            spec_hash: self.config.spec_hash,
            input_files: self.config.input_files,
            layout: self.layout,
            config: WriterConfig {
                rows_per_part: config.rows_per_part.max(1),
                ..config
            },
            next_seq: self.next_seq,
            buffer: Vec::new(),
            skipped: self.committed.len(),
            seen: self.committed,
            totals: self.totals,
            run: Totals::default(),
            parts: self.parts,
        }
    }
}

impl PartWriter {
    /// Buffers one row; commits a part when the buffer is full and returns
    /// its record.
    pub fn push(&mut self, row: RowResult) -> Result<Option<CommitRecord>, IoError> {
        let key = &row.key;
        if self.input_files.get(key.file_index as usize) != Some(&key.input_file) {
            return Err(IoError::InvalidRow(format!(
                "row {} names input file {} `{}`, which is not that input of this job",
                key.input_row, key.file_index, key.input_file
            )));
        }
        if !self.seen.insert(key.file_index, key.input_row) {
            return Err(IoError::InvalidRow(format!(
                "row {} of `{}` was already committed or buffered; a row is written once",
                key.input_row, key.input_file
            )));
        }
        self.buffer.push(row);
        if self.buffer.len() >= self.config.rows_per_part {
            self.flush()
        } else {
            Ok(None)
        }
    }

    /// Commits the buffered rows as one part, if there are any.
    pub fn flush(&mut self) -> Result<Option<CommitRecord>, IoError> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let batch = build_batch(
            &self.schema,
            &self.buffer,
            &self.config.model,
            &self.spec_hash,
        )?;
        let record = commit_part(
            &self.layout,
            self.shard,
            self.next_seq,
            &batch,
            self.config.compression,
            &self.input_files,
        )?;
        self.buffer.clear();
        self.next_seq += 1;
        self.totals.add(&record.totals);
        self.run.add(&record.totals);
        self.parts.push(record.part_file.clone());
        Ok(Some(record))
    }

    /// Rows waiting for the next part.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Every committed row so far, by this and earlier attempts.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Flushes and reports what the output holds.
    pub fn finish(mut self) -> Result<OutputSummary, IoError> {
        self.flush()?;
        Ok(OutputSummary {
            root: self.layout.root().to_path_buf(),
            spec_hash: self.spec_hash,
            totals: self.totals,
            run: self.run,
            skipped: self.skipped,
            parts: self.parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::input_plan::{InputPlan, validate_inputs};
    use crate::io::job_records::ShardDone;
    use crate::io::manifest::{Manifest, finalize};
    use crate::io::output_dir::OutputConfig;
    use crate::io::row::{FinishReason, Generation, InputRow, Prompt, RowTimings};
    use crate::io::test_util::{all_files, basic_batch, input_spec, keys_in_parts, write_parquet};
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// Stands in for the engine: echoes the prompt.
    fn answer(row: InputRow) -> RowResult {
        RowResult {
            outcome: row.prompt.map(|p| Generation {
                text: match p {
                    Prompt::Text(t) => format!("echo {t}"),
                    Prompt::Messages(m) => format!("echo {} messages", m.len()),
                },
                reasoning_text: None,
                finish_reason: FinishReason::Length,
                cached_tokens: 0,
                completion_tokens: 2,
                draft_tokens_proposed: 0,
                draft_tokens_accepted: 0,
                timings: RowTimings::default(),
            }),
            key: row.key,
            seed: 1,
            prompt_tokens: 5,
            pass_through: row.pass_through,
        }
    }

    fn output_spec(root: &Path) -> OutputSpec {
        OutputSpec {
            path: root.display().to_string(),
            rows_per_part: 3,
            compression: Compression::Snappy,
            overwrite: false,
        }
    }

    /// Runs the job, stopping without a flush (a crash) after `crash_after` pushes.
    fn run(plan: &InputPlan, root: &Path, crash_after: Option<usize>) -> Option<OutputSummary> {
        let spec = output_spec(root);
        let state = OutputState::open(OutputConfig::new(&spec, plan, "spec-1")).expect("open");
        let skip = state.committed().clone();
        let mut writer = state.into_writer(WriterConfig::new(&spec, "tiny"));
        let mut pushed = 0;
        for batch in plan.stream(4, skip) {
            for row in batch.expect("batch") {
                if crash_after == Some(pushed) {
                    return None;
                }
                writer.push(answer(row)).expect("push");
                pushed += 1;
            }
        }
        Some(writer.finish().expect("finish"))
    }

    /// `(input_file, input_row) -> error_kind` over every part.
    fn error_kinds(data: &Path) -> BTreeMap<(String, u64), Option<String>> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(data).expect("ls") {
            let file = std::fs::File::open(entry.expect("entry").path()).expect("open");
            for batch in ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("b")
                .build()
                .expect("r")
            {
                let batch = batch.expect("batch");
                let f = batch
                    .column_by_name("input_file")
                    .expect("f")
                    .as_string::<i32>()
                    .clone();
                let r = batch
                    .column_by_name("input_row")
                    .expect("r")
                    .as_primitive::<arrow_array::types::UInt64Type>()
                    .clone();
                let k = batch
                    .column_by_name("error_kind")
                    .expect("k")
                    .as_string::<i32>()
                    .clone();
                for i in 0..batch.num_rows() {
                    let kind = k.is_valid(i).then(|| k.value(i).to_string());
                    assert!(
                        out.insert((f.value(i).to_string(), r.value(i)), kind)
                            .is_none(),
                        "row written twice"
                    );
                }
            }
        }
        out
    }

    #[test]
    fn crash_and_resume_write_every_row_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        write_parquet(
            &a,
            &basic_batch(&["x", "y", "x", "z", "w"], &["1", "2", "3", " ", "5"]),
        );
        write_parquet(
            &b,
            &basic_batch(&["y", "v", "u", "t"], &["6", "7", "8", "9"]),
        );
        let mut spec = input_spec(&[&format!("{}/*.parquet", dir.path().display())]);
        spec.pass_through = vec!["topic".into()];
        let plan = validate_inputs(&spec).expect("plan");

        let reference_root = dir.path().join("reference");
        let reference = run(&plan, &reference_root, None).expect("uninterrupted run");
        assert_eq!(reference.totals.rows, 9);

        let root = dir.path().join("out");
        assert!(run(&plan, &root, Some(7)).is_none());
        let summary = run(&plan, &root, None).expect("resumed run");
        assert_eq!(
            summary.skipped, 6,
            "two full parts survived the crash; the 7th row was lost"
        );
        assert_eq!(summary.run.rows, 3);
        assert_eq!(summary.totals, reference.totals);

        let data = root.join("data/shard=00000");
        let keys = keys_in_parts(&data);
        let mut expected: Vec<(String, u64)> =
            (0..5).map(|r| (a.display().to_string(), r)).collect();
        expected.extend((0..4).map(|r| (b.display().to_string(), r)));
        assert_eq!(keys, expected, "every row exactly once");
        let kinds = error_kinds(&data);
        assert_eq!(
            kinds,
            error_kinds(&reference_root.join("data/shard=00000")),
            "same row errors as one run"
        );
        let dup = Some("duplicate_id".to_string());
        assert_eq!(kinds[&(a.display().to_string(), 2)], dup);
        assert_eq!(kinds[&(b.display().to_string(), 0)], dup);
        assert_eq!(
            kinds[&(a.display().to_string(), 3)],
            Some("empty_prompt".to_string())
        );

        let done = ShardDone::from_summary(0, &summary, std::time::Duration::from_secs(2), None);
        let manifest = Manifest::from_shards(&summary.spec_hash, "model.gguf", "abc", &[done]);
        let incomplete = finalize(&root, &manifest, plan.total_rows() + 1).expect_err("short");
        assert!(matches!(
            incomplete,
            IoError::Incomplete {
                committed: 9,
                expected: 10
            }
        ));
        assert!(!root.join("_SUCCESS").exists());
        finalize(&root, &manifest, plan.total_rows()).expect("finalize");
        let written: Manifest =
            serde_json::from_slice(&std::fs::read(root.join("manifest.json")).expect("read"))
                .expect("json");
        assert_eq!(written, manifest);
        assert_eq!(
            (
                written.counts.total,
                written.counts.ok,
                written.counts.error,
                written.counts.skipped
            ),
            (9, 6, 3, 6)
        );
        assert_eq!(written.completion_tokens, 12);
        assert_eq!(
            written.output_tokens_per_second, 3.0,
            "this run: 3 ok rows x 2 tokens in 2 s"
        );
        assert_eq!(written.parts.len(), 3);
        assert!(root.join("_SUCCESS").is_file());
        assert!(
            all_files(&root).iter().all(|f| !f.starts_with("_tmp")),
            "{:?}",
            all_files(&root)
        );
        finalize(&root, &manifest, plan.total_rows()).expect("a later run may finalize again");
    }
}
