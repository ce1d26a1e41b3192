//! Committing one part: the part file, then its commit record, each created
//! if absent.
//!
//! Invariants:
//! - A part is committed when its record exists; a record always points at
//!   an existing, complete part (the part is created first).
//! - A name that already exists is adopted only after checking it: a part
//!   must have a readable footer, this job's schema and exactly the row keys
//!   this attempt meant to write; a record must equal the one this attempt
//!   derives. Otherwise the commit fails with a typed error and nothing is
//!   overwritten.
//! - The record's counts are derived from the part that is actually on disk,
//!   so a winner and an adopting loser derive identical records.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::create::{Created, HashingWriter, create_if_absent, file_sha256};
use super::error::IoError;
use super::layout::Layout;
use super::output_schema::STATUS_OK;
use super::row_set::RowSet;
use crate::job::spec::Compression;

/// Row and token counts of a set of committed rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub rows: u64,
    pub ok: u64,
    pub error: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Draft tokens verified; absent (0) in records written before
    /// speculation existed.
    #[serde(default)]
    pub draft_tokens_proposed: u64,
    /// Draft tokens kept; absent (0) in records written before speculation
    /// existed.
    #[serde(default)]
    pub draft_tokens_accepted: u64,
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.rows += other.rows;
        self.ok += other.ok;
        self.error += other.error;
        self.prompt_tokens += other.prompt_tokens;
        self.cached_tokens += other.cached_tokens;
        self.completion_tokens += other.completion_tokens;
        self.draft_tokens_proposed += other.draft_tokens_proposed;
        self.draft_tokens_accepted += other.draft_tokens_accepted;
    }
}

/// The committed rows of one input file, as half-open ranges `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRows {
    pub file_index: u32,
    pub input_file: String,
    pub ranges: Vec<[u64; 2]>,
}

/// `_commits/shard=NNNNN/seq-SSSS.json`: proof that one part is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRecord {
    pub version: u32,
    pub shard: u32,
    pub seq: u32,
    /// Part path relative to the output root.
    pub part_file: String,
    pub sha256: String,
    pub bytes: u64,
    pub totals: Totals,
    pub rows: Vec<FileRows>,
}

const RECORD_VERSION: u32 = 1;

impl CommitRecord {
    /// The committed row keys, checked against the job's input files.
    pub(crate) fn row_set(&self, input_files: &[String], path: &Path) -> Result<RowSet, IoError> {
        let mut set = RowSet::new();
        for f in &self.rows {
            if input_files.get(f.file_index as usize) != Some(&f.input_file) {
                return Err(corrupt(
                    path,
                    format!(
                        "input file {} is not `{}` in this job",
                        f.file_index, f.input_file
                    ),
                ));
            }
            for &[start, end] in &f.ranges {
                for row in start..end {
                    if !set.insert(f.file_index, row) {
                        return Err(corrupt(
                            path,
                            format!("row {row} of `{}` listed twice", f.input_file),
                        ));
                    }
                }
            }
        }
        if set.len() != self.totals.rows {
            return Err(corrupt(
                path,
                format!("lists {} rows but counts {}", set.len(), self.totals.rows),
            ));
        }
        Ok(set)
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> IoError {
    IoError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What a part holds, as far as commit records care.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PartContents {
    pub(crate) totals: Totals,
    pub(crate) keys: RowSet,
}

/// Adds the rows of `batch` (output schema, or a projection with at least
/// the counted columns) to `into`.
fn summarize(
    batch: &RecordBatch,
    file_index: &HashMap<&str, u32>,
    path: &Path,
    into: &mut PartContents,
) -> Result<(), IoError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| corrupt(path, format!("no column `{name}`")))
    };
    let files = column("input_file")?.as_string_opt::<i32>();
    let rows = column("input_row")?.as_primitive_opt::<UInt64Type>();
    let status = column("status")?.as_string_opt::<i32>();
    let prompt = column("prompt_tokens")?.as_primitive_opt::<UInt32Type>();
    let cached = column("cached_tokens")?.as_primitive_opt::<UInt32Type>();
    let completion = column("completion_tokens")?.as_primitive_opt::<UInt32Type>();
    let proposed = column("draft_tokens_proposed")?.as_primitive_opt::<UInt32Type>();
    let accepted = column("draft_tokens_accepted")?.as_primitive_opt::<UInt32Type>();
    let (
        Some(files),
        Some(rows),
        Some(status),
        Some(prompt),
        Some(cached),
        Some(completion),
        Some(proposed),
        Some(accepted),
    ) = (
        files, rows, status, prompt, cached, completion, proposed, accepted,
    )
    else {
        return Err(corrupt(path, "key or count columns have unexpected types"));
    };
    for i in 0..batch.num_rows() {
        let name = files.value(i);
        let index = *file_index.get(name).ok_or_else(|| {
            corrupt(
                path,
                format!("row from `{name}`, which is not an input of this job"),
            )
        })?;
        let row = rows.value(i);
        if !into.keys.insert(index, row) {
            return Err(corrupt(
                path,
                format!("row {row} of `{name}` appears twice"),
            ));
        }
        let t = &mut into.totals;
        t.rows += 1;
        if status.value(i) == STATUS_OK {
            t.ok += 1;
        } else {
            t.error += 1;
        }
        t.prompt_tokens += u64::from(prompt.value(i));
        add_valid(&mut t.cached_tokens, cached, i);
        add_valid(&mut t.completion_tokens, completion, i);
        add_valid(&mut t.draft_tokens_proposed, proposed, i);
        add_valid(&mut t.draft_tokens_accepted, accepted, i);
    }
    Ok(())
}

/// Adds row `i` of a nullable count column; null (an error row) adds nothing.
fn add_valid(into: &mut u64, column: &UInt32Array, i: usize) {
    if column.is_valid(i) {
        *into += u64::from(column.value(i));
    }
}

fn file_index_map(input_files: &[String]) -> HashMap<&str, u32> {
    input_files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_str(), i as u32))
        .collect()
}

/// Reads a part back: checks footer and schema, sums its rows, hashes it.
pub(crate) fn read_part(
    path: &Path,
    schema: &SchemaRef,
    input_files: &[String],
) -> Result<(PartContents, String, u64), IoError> {
    let file = File::open(path).map_err(|e| IoError::fs("opening part", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| corrupt(path, format!("unreadable Parquet footer: {e}")))?;
    if builder.schema().fields() != schema.fields() {
        return Err(IoError::Conflict {
            path: path.to_path_buf(),
            reason: "its schema differs from this job's output schema".into(),
        });
    }
    let footer_rows = builder.metadata().file_metadata().num_rows();
    let wanted = [
        "input_file",
        "input_row",
        "status",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "draft_tokens_proposed",
        "draft_tokens_accepted",
    ];
    let roots = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| corrupt(path, e.to_string()))?;
    let index = file_index_map(input_files);
    let mut contents = PartContents::default();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(path, e.to_string()))?;
        summarize(&batch, &index, path, &mut contents)?;
    }
    if i64::try_from(contents.totals.rows).ok() != Some(footer_rows) {
        return Err(corrupt(
            path,
            format!(
                "footer says {footer_rows} rows, data has {}",
                contents.totals.rows
            ),
        ));
    }
    let (sha, bytes) = file_sha256(path)?;
    Ok((contents, sha, bytes))
}

fn writer_properties(compression: Compression) -> WriterProperties {
    let codec = match compression {
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
        Compression::Snappy => Codec::SNAPPY,
        Compression::None => Codec::UNCOMPRESSED,
    };
    WriterProperties::builder().set_compression(codec).build()
}

fn write_parquet(
    file: &mut File,
    batch: &RecordBatch,
    compression: Compression,
    path: &Path,
) -> Result<(String, u64), IoError> {
    let write_err = |reason: String| IoError::WritePart {
        path: path.to_path_buf(),
        reason,
    };
    let mut writer = ArrowWriter::try_new(
        HashingWriter::new(file),
        batch.schema(),
        Some(writer_properties(compression)),
    )
    .map_err(|e| write_err(e.to_string()))?;
    writer.write(batch).map_err(|e| write_err(e.to_string()))?;
    let hashing = writer.into_inner().map_err(|e| write_err(e.to_string()))?;
    hashing.finish().map_err(|e| write_err(e.to_string()))
}

fn make_record(
    shard: u32,
    seq: u32,
    sha256: String,
    bytes: u64,
    contents: &PartContents,
    input_files: &[String],
) -> CommitRecord {
    CommitRecord {
        version: RECORD_VERSION,
        shard,
        seq,
        part_file: Layout::part_rel(shard, seq),
        sha256,
        bytes,
        totals: contents.totals,
        rows: contents
            .keys
            .ranges()
            .map(|(file_index, ranges)| FileRows {
                file_index,
                input_file: input_files
                    .get(file_index as usize)
                    .cloned()
                    .unwrap_or_default(),
                ranges,
            })
            .collect(),
    }
}

pub(crate) fn read_record(path: &Path) -> Result<CommitRecord, IoError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::fs("reading commit record", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| corrupt(path, format!("not a commit record: {e}")))
}

fn commit_record(layout: &Layout, record: &CommitRecord) -> Result<(), IoError> {
    let path = layout.record_path(record.shard, record.seq);
    let json = serde_json::to_vec_pretty(record).map_err(|e| IoError::InvalidRow(e.to_string()))?;
    let (created, ()) = create_if_absent(&layout.tmp_dir(record.shard), &path, |f| {
        f.write_all(&json)
            .map_err(|e| IoError::fs("writing commit record", &path, e))
    })?;
    if created == Created::Existed && read_record(&path)? != *record {
        return Err(IoError::Conflict {
            path,
            reason: "a different commit record for this part exists".into(),
        });
    }
    Ok(())
}

/// Commits `batch` as part `seq` of `shard`: creates the part (or adopts an
/// identical-keyed one), then the record. Returns the record.
pub(crate) fn commit_part(
    layout: &Layout,
    shard: u32,
    seq: u32,
    batch: &RecordBatch,
    compression: Compression,
    input_files: &[String],
) -> Result<CommitRecord, IoError> {
    let path = layout.part_path(shard, seq);
    let mut mine = PartContents::default();
    summarize(batch, &file_index_map(input_files), &path, &mut mine)?;
    let (created, (sha, bytes)) = create_if_absent(&layout.tmp_dir(shard), &path, |f| {
        write_parquet(f, batch, compression, &path)
    })?;
    let record = match created {
        Created::New => make_record(shard, seq, sha, bytes, &mine, input_files),
        Created::Existed => {
            let (theirs, sha, bytes) = read_part(&path, &batch.schema(), input_files)?;
            if theirs.keys != mine.keys {
                return Err(IoError::Conflict {
                    path,
                    reason: "it holds other rows than this attempt's part with the same number"
                        .into(),
                });
            }
            make_record(shard, seq, sha, bytes, &theirs, input_files)
        }
    };
    commit_record(layout, &record)?;
    Ok(record)
}

/// Commits a part that exists without a record (a crash between the two
/// creates): reads and checks it, then writes its record.
pub(crate) fn adopt_orphan(
    layout: &Layout,
    shard: u32,
    seq: u32,
    schema: &SchemaRef,
    input_files: &[String],
) -> Result<CommitRecord, IoError> {
    let (contents, sha, bytes) = read_part(&layout.part_path(shard, seq), schema, input_files)?;
    let record = make_record(shard, seq, sha, bytes, &contents, input_files);
    commit_record(layout, &record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::output_dir::prepare_dirs;
    use crate::io::output_schema::{build_batch, output_schema};
    use crate::io::row::{RowError, RowErrorKind, RowResult};
    use crate::io::test_util::{all_files, error_result, keys_in_parts, ok_result};
    use arrow_schema::{DataType, Field};
    use std::sync::{Arc, Barrier};

    struct Fixture {
        _dir: tempfile::TempDir,
        layout: Layout,
        schema: SchemaRef,
        files: Vec<String>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        prepare_dirs(&layout, 0).expect("dirs");
        Fixture {
            _dir: dir,
            layout,
            schema: output_schema(&[Arc::new(Field::new("topic", DataType::Int32, true))]),
            files: vec!["a.parquet".into(), "b.parquet".into()],
        }
    }

    fn rows(file_index: u32, range: std::ops::Range<u64>) -> Vec<RowResult> {
        let name = ["a.parquet", "b.parquet"][file_index as usize];
        range
            .map(|r| {
                if r % 3 == 2 {
                    error_result(
                        &format!("{name}{r}"),
                        file_index,
                        name,
                        r,
                        RowError::new(RowErrorKind::EmptyPrompt, "empty"),
                        r as i32,
                    )
                } else {
                    ok_result(&format!("{name}{r}"), file_index, name, r, "out", r as i32)
                }
            })
            .collect()
    }

    fn batch(f: &Fixture, rows: &[RowResult]) -> RecordBatch {
        build_batch(&f.schema, rows, "model", "hash").expect("batch")
    }

    #[test]
    fn commit_writes_part_then_record_and_a_retry_adopts() {
        let f = fixture();
        let mut input = rows(0, 0..3);
        input.extend(rows(1, 5..7));
        let b = batch(&f, &input);
        let record = commit_part(&f.layout, 0, 0, &b, Compression::Zstd, &f.files).expect("commit");
        assert_eq!(
            record.totals,
            Totals {
                rows: 5,
                ok: 3,
                error: 2,
                prompt_tokens: 30,
                cached_tokens: 12,
                completion_tokens: 9,
                draft_tokens_proposed: 15,
                draft_tokens_accepted: 6,
            }
        );
        assert_eq!(
            record.rows,
            vec![
                FileRows {
                    file_index: 0,
                    input_file: "a.parquet".into(),
                    ranges: vec![[0, 3]]
                },
                FileRows {
                    file_index: 1,
                    input_file: "b.parquet".into(),
                    ranges: vec![[5, 7]]
                },
            ]
        );
        assert_eq!(record.part_file, "data/shard=00000/part-00000-0000.parquet");
        let part = f.layout.part_path(0, 0);
        assert_eq!(
            file_sha256(&part).expect("hash"),
            (record.sha256.clone(), record.bytes)
        );
        assert_eq!(
            read_record(&f.layout.record_path(0, 0)).expect("record"),
            record
        );
        assert_eq!(
            all_files(f.layout.root()),
            vec![
                "_commits/shard=00000/seq-0000.json",
                "data/shard=00000/part-00000-0000.parquet"
            ]
        );
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).expect("open"))
            .expect("builder")
            .build()
            .expect("reader");
        let back: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
        assert_eq!(back, vec![b.clone()]);

        let again =
            commit_part(&f.layout, 0, 0, &b, Compression::Zstd, &f.files).expect("retry adopts");
        assert_eq!(again, record);
        assert_eq!(all_files(f.layout.root()).len(), 2);
    }

    #[test]
    fn compression_follows_the_spec() {
        let f = fixture();
        for (seq, (c, want)) in [
            (Compression::Zstd, "ZSTD"),
            (Compression::Snappy, "SNAPPY"),
            (Compression::None, "UNCOMPRESSED"),
        ]
        .into_iter()
        .enumerate()
        {
            let b = batch(&f, &rows(1, (seq as u64) * 10..(seq as u64) * 10 + 4));
            commit_part(&f.layout, 0, seq as u32, &b, c, &f.files).expect("commit");
            let builder = ParquetRecordBatchReaderBuilder::try_new(
                File::open(f.layout.part_path(0, seq as u32)).expect("open"),
            )
            .expect("builder");
            let codec = builder.metadata().row_group(0).column(0).compression();
            assert!(
                format!("{codec:?}").starts_with(want),
                "{codec:?} vs {want}"
            );
        }
    }

    #[test]
    fn racing_writers_of_one_part_yield_one_file() {
        let f = fixture();
        let same = batch(&f, &rows(0, 0..50));
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<Result<CommitRecord, IoError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (barrier, layout, same, files) =
                        (barrier.clone(), &f.layout, &same, &f.files);
                    s.spawn(move || {
                        barrier.wait();
                        commit_part(layout, 0, 0, same, Compression::Zstd, files)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let records: Vec<CommitRecord> = results
            .into_iter()
            .map(|r| r.expect("both succeed"))
            .collect();
        assert_eq!(records[0], records[1]);
        assert_eq!(
            all_files(f.layout.root()),
            vec![
                "_commits/shard=00000/seq-0000.json",
                "data/shard=00000/part-00000-0000.parquet"
            ]
        );
        assert_eq!(keys_in_parts(&f.layout.data_dir(0)).len(), 50);
    }

    #[test]
    fn racing_writers_with_other_rows_one_wins_one_errors() {
        let f = fixture();
        for seq in 0..8u32 {
            let base = u64::from(seq) * 100;
            let a = batch(&f, &rows(0, base..base + 20));
            let b = batch(&f, &rows(1, base..base + 30));
            let barrier = Arc::new(Barrier::new(2));
            let results: Vec<Result<CommitRecord, IoError>> = std::thread::scope(|s| {
                let handles: Vec<_> = [&a, &b]
                    .into_iter()
                    .map(|batch| {
                        let (barrier, layout, files) = (barrier.clone(), &f.layout, &f.files);
                        s.spawn(move || {
                            barrier.wait();
                            commit_part(layout, 0, seq, batch, Compression::Zstd, files)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            let winners: Vec<&CommitRecord> =
                results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "seq {seq}: {results:?}");
            let loser = results
                .iter()
                .find_map(|r| r.as_ref().err())
                .expect("one loser");
            assert!(matches!(loser, IoError::Conflict { .. }), "{loser:?}");
            let (on_disk, sha, _) =
                read_part(&f.layout.part_path(0, seq), &f.schema, &f.files).expect("readable");
            assert_eq!(on_disk.totals, winners[0].totals);
            assert_eq!(sha, winners[0].sha256);
            assert_eq!(
                read_record(&f.layout.record_path(0, seq)).expect("record"),
                *winners[0]
            );
        }
        assert_eq!(
            std::fs::read_dir(f.layout.tmp_dir(0)).expect("ls").count(),
            0
        );
    }

    #[test]
    fn existing_names_are_checked_before_adoption() {
        let f = fixture();
        let part = f.layout.part_path(0, 0);
        std::fs::write(&part, b"garbage").expect("write");
        let b = batch(&f, &rows(0, 0..3));
        let err = commit_part(&f.layout, 0, 0, &b, Compression::Zstd, &f.files)
            .expect_err("garbage part");
        assert!(matches!(err, IoError::Corrupt { .. }), "{err:?}");
        assert_eq!(
            std::fs::read(&part).expect("read"),
            b"garbage",
            "never overwritten"
        );

        let record = f.layout.record_path(0, 1);
        std::fs::write(&record, b"{}").expect("write");
        let err =
            commit_part(&f.layout, 0, 1, &b, Compression::Zstd, &f.files).expect_err("bad record");
        assert!(matches!(err, IoError::Corrupt { .. }), "{err:?}");

        // A well-formed record that disagrees with the part: written by a
        // first commit, then tampered with and the part's record retried.
        let good = commit_part(&f.layout, 0, 2, &b, Compression::Zstd, &f.files).expect("ok");
        let mut tampered = good.clone();
        tampered.totals.ok += 1;
        let path = f.layout.record_path(0, 2);
        std::fs::remove_file(&path).expect("rm");
        std::fs::write(&path, serde_json::to_vec(&tampered).expect("json")).expect("write");
        let err = commit_part(&f.layout, 0, 2, &b, Compression::Zstd, &f.files)
            .expect_err("record differs");
        assert!(matches!(err, IoError::Conflict { .. }), "{err:?}");
    }

    #[test]
    fn records_written_before_draft_counts_still_load() {
        let f = fixture();
        let path = f.layout.record_path(0, 0);
        std::fs::write(
            &path,
            r#"{"version": 1, "shard": 0, "seq": 0,
                "part_file": "data/shard=00000/part-00000-0000.parquet",
                "sha256": "00", "bytes": 1,
                "totals": {"rows": 1, "ok": 1, "error": 0, "prompt_tokens": 10,
                           "cached_tokens": 4, "completion_tokens": 3},
                "rows": [{"file_index": 0, "input_file": "a.parquet", "ranges": [[0, 1]]}]}"#,
        )
        .expect("write");
        let record = read_record(&path).expect("an old record parses");
        assert_eq!(record.totals.completion_tokens, 3);
        assert_eq!(record.totals.draft_tokens_proposed, 0);
        assert_eq!(record.totals.draft_tokens_accepted, 0);
    }

    #[test]
    fn totals_add_every_count() {
        let one = Totals {
            rows: 1,
            ok: 1,
            error: 0,
            prompt_tokens: 10,
            cached_tokens: 4,
            completion_tokens: 3,
            draft_tokens_proposed: 5,
            draft_tokens_accepted: 2,
        };
        let mut sum = one;
        sum.add(&one);
        assert_eq!(
            sum,
            Totals {
                rows: 2,
                ok: 2,
                error: 0,
                prompt_tokens: 20,
                cached_tokens: 8,
                completion_tokens: 6,
                draft_tokens_proposed: 10,
                draft_tokens_accepted: 4,
            }
        );
    }
}
