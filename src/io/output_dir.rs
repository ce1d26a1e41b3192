//! Opening an output directory: fresh start, refusal, overwrite, or resume.
//!
//! Invariants:
//! - `_job.json` (spec hash and resolved input files) is the first thing
//!   created in a fresh directory and the last thing removed by overwrite,
//!   so a directory holding any of this job's data always names its job.
//! - Resume trusts only commit records. A part without a record (a crash
//!   between the two creates) is checked and given its record; a record
//!   whose part is missing or has another size is corruption. No row key may
//!   be committed twice. Leftover temp files of this shard are removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};

use super::commit::{CommitRecord, Totals, adopt_orphan, read_record};
use super::create::{Created, create_if_absent, sync_dir};
use super::error::IoError;
use super::input_plan::InputPlan;
use super::layout::Layout;
use super::output_schema::output_schema;
use super::row_set::RowSet;
use crate::job::spec::OutputSpec;

/// Where and for which job an output directory is opened.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub root: PathBuf,
    pub shard: u32,
    pub spec_hash: String,
    /// `input_file` names in `file_index` order ([`InputPlan::file_names`]).
    pub input_files: Vec<String>,
    /// From [`output_schema`].
    pub schema: SchemaRef,
    /// Replace a directory that holds a different job.
    pub overwrite: bool,
}

impl OutputConfig {
    /// Shard 0 of the job described by `spec`, `plan` and `spec_hash`.
    pub fn new(spec: &OutputSpec, plan: &InputPlan, spec_hash: &str) -> Self {
        OutputConfig {
            root: PathBuf::from(&spec.path),
            shard: 0,
            spec_hash: spec_hash.to_string(),
            input_files: plan.file_names(),
            schema: output_schema(plan.pass_through_fields()),
            overwrite: spec.overwrite,
        }
    }
}

/// `_job.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    version: u32,
    spec_hash: String,
    input_files: Vec<String>,
}

/// An opened output directory: what earlier attempts committed.
#[derive(Debug)]
pub struct OutputState {
    pub(crate) layout: Layout,
    pub(crate) config: OutputConfig,
    pub(crate) committed: RowSet,
    pub(crate) totals: Totals,
    pub(crate) next_seq: u32,
    pub(crate) parts: Vec<String>,
    adopted: usize,
}

impl OutputState {
    /// Prepares `config.root` for writing; see the module docs.
    pub fn open(config: OutputConfig) -> Result<OutputState, IoError> {
        let layout = Layout::new(&config.root);
        let root = layout.root().to_path_buf();
        std::fs::create_dir_all(&root)
            .map_err(|e| IoError::fs("creating output directory", &root, e))?;
        claim(&layout, &config)?;
        prepare_dirs(&layout, config.shard)?;
        let mut state = OutputState {
            layout,
            config,
            committed: RowSet::new(),
            totals: Totals::default(),
            next_seq: 0,
            parts: Vec::new(),
            adopted: 0,
        };
        state.load_commits()?;
        Ok(state)
    }

    /// Makes sure `config.root` belongs to this job (claiming a fresh
    /// directory), without preparing any shard.
    pub fn claim(config: &OutputConfig) -> Result<(), IoError> {
        let layout = Layout::new(&config.root);
        let root = layout.root().to_path_buf();
        std::fs::create_dir_all(&root)
            .map_err(|e| IoError::fs("creating output directory", &root, e))?;
        claim(&layout, config)
    }

    /// Rows committed by earlier attempts: pass to [`InputPlan::stream`].
    pub fn committed(&self) -> &RowSet {
        &self.committed
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Sequence number of the next part.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Committed part paths relative to the root, in seq order.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// Parts found without a record and adopted by this open.
    pub fn adopted_orphans(&self) -> usize {
        self.adopted
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    fn absorb(&mut self, record: &CommitRecord, path: &Path) -> Result<(), IoError> {
        let keys = record.row_set(&self.config.input_files, path)?;
        if let Some((file, row)) = self.committed.absorb(&keys) {
            return Err(IoError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("row {row} of input file {file} is committed by another part too"),
            });
        }
        self.totals.add(&record.totals);
        self.parts.push(record.part_file.clone());
        self.next_seq = self.next_seq.max(record.seq.saturating_add(1));
        Ok(())
    }

    fn load_commits(&mut self) -> Result<(), IoError> {
        let shard = self.config.shard;
        let mut records = Vec::new();
        for (seq, path) in list(&self.layout.commits_dir(shard), Layout::record_seq)? {
            let record = read_record(&path)?;
            if record.shard != shard
                || record.seq != seq
                || record.part_file != Layout::part_rel(shard, seq)
            {
                return Err(IoError::Corrupt {
                    path,
                    reason: "shard, seq or part name do not match the file name".into(),
                });
            }
            let part = self.layout.part_path(shard, seq);
            let size = std::fs::metadata(&part).map(|m| m.len()).ok();
            if size != Some(record.bytes) {
                return Err(IoError::Corrupt {
                    path: part,
                    reason: format!("committed part is missing or not {} bytes", record.bytes),
                });
            }
            records.push((seq, record, path));
        }
        let recorded: BTreeSet<u32> = records.iter().map(|r| r.0).collect();
        for (seq, _) in list(&self.layout.data_dir(shard), |n| Layout::part_seq(shard, n))? {
            if recorded.contains(&seq) {
                continue;
            }
            let schema = &self.config.schema;
            let record = adopt_orphan(&self.layout, shard, seq, schema, &self.config.input_files)?;
            records.push((seq, record, self.layout.record_path(shard, seq)));
            self.adopted += 1;
        }
        records.sort_by_key(|r| r.0);
        for (_, record, path) in &records {
            self.absorb(record, path)?;
        }
        Ok(())
    }
}

/// Entries of `dir` whose names `parse` accepts, sorted by the parsed seq.
fn list(dir: &Path, parse: impl Fn(&str) -> Option<u32>) -> Result<Vec<(u32, PathBuf)>, IoError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::fs("listing", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IoError::fs("listing", dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(&parse) {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn read_job_file(path: &Path) -> Result<Option<JobFile>, IoError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| IoError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("not a specbatch job file: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::fs("reading", path, e)),
    }
}

/// Makes sure `_job.json` names this job: creates it in a fresh directory,
/// refuses or (with overwrite) clears a directory of another job.
fn claim(layout: &Layout, config: &OutputConfig) -> Result<(), IoError> {
    let mine = JobFile {
        version: 1,
        spec_hash: config.spec_hash.clone(),
        input_files: config.input_files.clone(),
    };
    let root = layout.root();
    match read_job_file(&layout.job_file())? {
        Some(found) if found == mine => return Ok(()),
        Some(_) if config.overwrite => clear(layout)?,
        Some(found) if found.spec_hash != mine.spec_hash => {
            return Err(IoError::SpecHashMismatch {
                path: root.to_path_buf(),
                found: found.spec_hash,
                expected: mine.spec_hash,
            });
        }
        Some(found) => {
            return Err(IoError::InputsChanged {
                path: root.to_path_buf(),
                reason: format!(
                    "{} files then, {} now, or other names",
                    found.input_files.len(),
                    mine.input_files.len()
                ),
            });
        }
        None => {
            let foreign = std::fs::read_dir(root)
                .map_err(|e| IoError::fs("listing", root, e))?
                .filter_map(Result::ok)
                .any(|e| e.file_name() != "_tmp");
            if foreign {
                return Err(IoError::NotAnOutputDir(root.to_path_buf()));
            }
        }
    }
    let tmp = layout.tmp_root();
    std::fs::create_dir_all(&tmp).map_err(|e| IoError::fs("creating", &tmp, e))?;
    let json = serde_json::to_vec_pretty(&mine).map_err(|e| IoError::InvalidRow(e.to_string()))?;
    let path = layout.job_file();
    let (created, ()) = create_if_absent(&tmp, &path, |f| {
        std::io::Write::write_all(f, &json).map_err(|e| IoError::fs("writing", &path, e))
    })?;
    // Another attempt may have claimed the directory at the same moment.
    if created == Created::Existed {
        return claim(
            layout,
            &OutputConfig {
                overwrite: false,
                ..config.clone()
            },
        );
    }
    Ok(())
}

/// Removes a previous job's output: success markers first (so no reader
/// trusts a half-deleted directory), `_job.json` last.
fn clear(layout: &Layout) -> Result<(), IoError> {
    let root = layout.root();
    for path in [layout.success(), layout.manifest()] {
        remove_any(&path)?;
    }
    let entries = std::fs::read_dir(root).map_err(|e| IoError::fs("listing", root, e))?;
    for entry in entries {
        let path = entry.map_err(|e| IoError::fs("listing", root, e))?.path();
        if path != layout.job_file() {
            remove_any(&path)?;
        }
    }
    remove_any(&layout.job_file())?;
    sync_dir(root)
}

fn remove_any(path: &Path) -> Result<(), IoError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| IoError::fs("removing", path, e))
}

/// Creates the shard's directories and empties its temp directory.
pub(crate) fn prepare_dirs(layout: &Layout, shard: u32) -> Result<(), IoError> {
    for dir in [
        layout.data_dir(shard),
        layout.commits_dir(shard),
        layout.tmp_dir(shard),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| IoError::fs("creating", &dir, e))?;
    }
    let tmp = layout.tmp_dir(shard);
    for entry in std::fs::read_dir(&tmp).map_err(|e| IoError::fs("listing", &tmp, e))? {
        let path = entry.map_err(|e| IoError::fs("listing", &tmp, e))?.path();
        remove_any(&path)?;
    }
    sync_dir(layout.root())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::job_records::ShardDone;
    use crate::io::manifest::{Manifest, finalize};
    use crate::io::part_writer::WriterConfig;
    use crate::io::test_util::{all_files, ok_result};
    use crate::job::spec::Compression;
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

    fn config(root: &Path, hash: &str) -> OutputConfig {
        OutputConfig {
            root: root.to_path_buf(),
            shard: 0,
            spec_hash: hash.into(),
            input_files: vec!["in.parquet".into()],
            schema: output_schema(&[Arc::new(Field::new("topic", DataType::Int32, true))]),
            overwrite: false,
        }
    }

    fn writer_config(rows_per_part: usize) -> WriterConfig {
        WriterConfig {
            model: "m".into(),
            rows_per_part,
            compression: Compression::Zstd,
        }
    }

    /// Commits rows `range` of `in.parquet`, two per part, leaving the last odd row buffered.
    fn write_rows(root: &Path, hash: &str, range: std::ops::Range<u64>) -> Totals {
        let state = OutputState::open(config(root, hash)).expect("open");
        let mut w = state.into_writer(writer_config(2));
        for r in range {
            w.push(ok_result(
                &format!("id{r}"),
                0,
                "in.parquet",
                r,
                "out",
                r as i32,
            ))
            .expect("push");
        }
        w.totals()
    }

    #[test]
    fn fresh_directory_is_claimed_and_resume_counts_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("out");
        let state = OutputState::open(config(&root, "h1")).expect("open");
        assert!(state.committed().is_empty());
        assert_eq!(state.next_seq(), 0);
        assert!(root.join("_job.json").is_file());

        let totals = write_rows(&root, "h1", 0..5);
        assert_eq!(totals.rows, 4, "the fifth row stays buffered and is lost");
        let state = OutputState::open(config(&root, "h1")).expect("reopen");
        assert_eq!(state.committed().len(), 4);
        assert!(state.committed().contains(0, 3) && !state.committed().contains(0, 4));
        assert_eq!(state.totals(), totals);
        assert_eq!(state.next_seq(), 2);
        assert_eq!(
            state.parts(),
            [
                "data/shard=00000/part-00000-0000.parquet",
                "data/shard=00000/part-00000-0001.parquet"
            ]
        );
        assert_eq!(state.adopted_orphans(), 0);

        let mut w = state.into_writer(writer_config(2));
        let again = w
            .push(ok_result("id3", 0, "in.parquet", 3, "out", 3))
            .expect_err("committed row");
        assert!(matches!(again, IoError::InvalidRow(_)), "{again:?}");
        w.push(ok_result("id4", 0, "in.parquet", 4, "out", 4))
            .expect("push");
        let twice = w
            .push(ok_result("id4", 0, "in.parquet", 4, "out", 4))
            .expect_err("buffered row");
        assert!(matches!(twice, IoError::InvalidRow(_)), "{twice:?}");
        let wrong_file = w
            .push(ok_result("x", 0, "other.parquet", 9, "out", 9))
            .expect_err("unknown file");
        assert!(
            matches!(wrong_file, IoError::InvalidRow(_)),
            "{wrong_file:?}"
        );
        let summary = w.finish().expect("finish");
        assert_eq!(
            (summary.totals.rows, summary.run.rows, summary.skipped),
            (5, 1, 4)
        );
        assert_eq!(summary.parts.len(), 3);
    }

    #[test]
    fn part_without_record_is_adopted_and_leftover_temp_files_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("out");
        write_rows(&root, "h1", 0..4);
        let layout = Layout::new(&root);
        let record_path = layout.record_path(0, 1);
        let original = std::fs::read(&record_path).expect("record");
        // The crash: part 1 linked, its record never created; a temp file left.
        std::fs::remove_file(&record_path).expect("rm");
        let leftover = layout.tmp_dir(0).join("part-00000-0002.parquet.1-1.tmp");
        std::fs::write(&leftover, b"half").expect("write");

        let state = OutputState::open(config(&root, "h1")).expect("reopen");
        assert_eq!(state.adopted_orphans(), 1);
        assert_eq!(state.committed().len(), 4);
        assert_eq!(state.next_seq(), 2);
        assert_eq!(
            std::fs::read(&record_path).expect("record"),
            original,
            "same record as the first time"
        );
        assert!(!leftover.exists());
    }

    #[test]
    fn missing_or_resized_committed_part_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("out");
        write_rows(&root, "h1", 0..2);
        let part = Layout::new(&root).part_path(0, 0);
        std::fs::remove_file(&part).expect("rm");
        let err = OutputState::open(config(&root, "h1")).expect_err("part gone");
        assert!(matches!(err, IoError::Corrupt { .. }), "{err:?}");
        assert!(!err.is_retriable());
    }

    #[test]
    fn another_job_is_refused_unless_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("out");
        write_rows(&root, "h1", 0..4);
        let state = OutputState::open(config(&root, "h1")).expect("reopen");
        let summary = state
            .into_writer(writer_config(2))
            .finish()
            .expect("finish");
        let done = ShardDone::from_summary(0, &summary, std::time::Duration::from_secs(1), None);
        let manifest = Manifest::from_shards("h1", "m.gguf", "mh", &[done]);
        finalize(&root, &manifest, 4).expect("finalize");
        assert!(root.join("_SUCCESS").is_file());

        let err = OutputState::open(config(&root, "h2")).expect_err("other job");
        match &err {
            IoError::SpecHashMismatch {
                found, expected, ..
            } => assert_eq!((found.as_str(), expected.as_str()), ("h1", "h2")),
            other => panic!("expected SpecHashMismatch, got {other:?}"),
        }
        assert!(err.to_string().contains("output.overwrite: true"), "{err}");
        assert!(root.join("_SUCCESS").is_file(), "refusal touches nothing");

        let mut changed = config(&root, "h1");
        changed.input_files.push("new.parquet".into());
        assert!(matches!(
            OutputState::open(changed),
            Err(IoError::InputsChanged { .. })
        ));

        let mut over = config(&root, "h2");
        over.overwrite = true;
        let state = OutputState::open(over).expect("overwrite");
        assert!(state.committed().is_empty());
        assert_eq!(all_files(&root), vec!["_job.json"]);
        let job: JobFile =
            serde_json::from_slice(&std::fs::read(root.join("_job.json")).expect("read"))
                .expect("json");
        assert_eq!(job.spec_hash, "h2");
    }

    #[test]
    fn foreign_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
        let mut cfg = config(dir.path(), "h1");
        cfg.overwrite = true;
        assert!(matches!(
            OutputState::open(cfg),
            Err(IoError::NotAnOutputDir(_))
        ));
        assert!(dir.path().join("notes.txt").is_file());
    }
}
