//! Job-level records beside the data: the plan (`_plan/plan.json`) and each
//! shard's completion record (`_commits/shard=NNNNN/_DONE.json`).
//!
//! Both are created if absent, so concurrent attempts agree on one file: the
//! plan is deterministic, so the loser of the race finds an identical plan
//! (callers compare it), and a shard's done record is written only once all
//! its rows are committed, when every attempt would write the same totals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::commit::Totals;
use super::create::{Created, create_if_absent};
use super::error::IoError;
use super::layout::Layout;
use super::part_writer::OutputSummary;
use crate::spec::SpecStats;

/// What a finished shard committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardDone {
    pub shard: u32,
    pub totals: Totals,
    /// Part files relative to the output root, in seq order.
    pub parts: Vec<String>,
    /// Wall time of the attempt that finished the shard.
    pub wall_time_s: f64,
    /// Completion tokens that attempt generated.
    pub run_completion_tokens: u64,
    /// Rows that attempt found committed by earlier attempts.
    pub skipped: u64,
    /// That attempt's speculation counters; absent when it did not
    /// speculate (and in records written before speculation existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculation: Option<SpecStats>,
}

impl ShardDone {
    /// The record of `shard` whose writer finished with `summary`, after an
    /// engine run that counted `speculation`.
    pub fn from_summary(
        shard: u32,
        summary: &OutputSummary,
        wall_time: Duration,
        speculation: Option<SpecStats>,
    ) -> Self {
        ShardDone {
            shard,
            totals: summary.totals,
            parts: summary.parts.clone(),
            wall_time_s: wall_time.as_secs_f64(),
            run_completion_tokens: summary.run.completion_tokens,
            skipped: summary.skipped,
            speculation,
        }
    }
}

pub fn plan_path(root: &Path) -> PathBuf {
    Layout::new(root).plan_file()
}

/// The plan's bytes, if a plan exists.
pub fn read_plan(root: &Path) -> Result<Option<Vec<u8>>, IoError> {
    read_optional(&plan_path(root))
}

/// Stores `bytes` as the plan unless one exists; true when this call made it.
pub fn store_plan(root: &Path, bytes: &[u8]) -> Result<bool, IoError> {
    let layout = Layout::new(root);
    let path = layout.plan_file();
    store(&layout, &path, bytes)
}

/// Records that `done.shard` is complete; an existing record is kept.
pub fn write_done(root: &Path, done: &ShardDone) -> Result<(), IoError> {
    let layout = Layout::new(root);
    let path = layout.done_file(done.shard);
    let json = serde_json::to_vec_pretty(done).map_err(|e| IoError::InvalidRow(e.to_string()))?;
    store(&layout, &path, &json).map(|_| ())
}

/// The done record of `shard`, if the shard is complete.
pub fn read_done(root: &Path, shard: u32) -> Result<Option<ShardDone>, IoError> {
    let path = Layout::new(root).done_file(shard);
    read_optional(&path)?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| IoError::Corrupt {
                path: path.clone(),
                reason: format!("not a shard done record: {e}"),
            })
        })
        .transpose()
}

fn store(layout: &Layout, path: &Path, bytes: &[u8]) -> Result<bool, IoError> {
    let tmp = layout.tmp_root();
    for dir in [tmp.as_path(), path.parent().unwrap_or(layout.root())] {
        std::fs::create_dir_all(dir).map_err(|e| IoError::fs("creating", dir, e))?;
    }
    let (created, ()) = create_if_absent(&tmp, path, |f| {
        std::io::Write::write_all(f, bytes).map_err(|e| IoError::fs("writing", path, e))
    })?;
    Ok(created == Created::New)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IoError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::fs("reading", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_plan_wins_and_done_records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert_eq!(read_plan(root).unwrap(), None);
        assert!(store_plan(root, b"first").unwrap());
        assert!(!store_plan(root, b"second").unwrap());
        assert_eq!(read_plan(root).unwrap().as_deref(), Some(&b"first"[..]));

        assert_eq!(read_done(root, 2).unwrap(), None);
        let done = ShardDone {
            shard: 2,
            totals: Totals::default(),
            parts: vec!["data/shard=00002/part-00002-0000.parquet".into()],
            wall_time_s: 1.5,
            run_completion_tokens: 7,
            skipped: 0,
            speculation: None,
        };
        write_done(root, &done).unwrap();
        write_done(
            root,
            &ShardDone {
                wall_time_s: 9.0,
                ..done.clone()
            },
        )
        .unwrap();
        assert_eq!(
            read_done(root, 2).unwrap(),
            Some(done),
            "the first record stays"
        );
        assert!(root.join("_commits/shard=00002/_DONE.json").is_file());
    }

    #[test]
    fn done_records_without_speculation_fields_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // A record as written before speculation existed.
        let old = r#"{
            "shard": 0,
            "totals": {"rows": 3, "ok": 2, "error": 1, "prompt_tokens": 30,
                       "cached_tokens": 0, "completion_tokens": 9},
            "parts": ["data/shard=00000/part-00000-0000.parquet"],
            "wall_time_s": 1.0,
            "run_completion_tokens": 9,
            "skipped": 0
        }"#;
        let path = Layout::new(root).done_file(0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, old).unwrap();
        let done = read_done(root, 0).unwrap().unwrap();
        assert_eq!(done.speculation, None);
        assert_eq!(done.totals.completion_tokens, 9);
        assert_eq!(
            (
                done.totals.draft_tokens_proposed,
                done.totals.draft_tokens_accepted
            ),
            (0, 0)
        );

        let mut stats = SpecStats::default();
        stats.record_round(3, 1);
        let with = ShardDone {
            shard: 1,
            speculation: Some(stats),
            ..done
        };
        write_done(root, &with).unwrap();
        assert_eq!(read_done(root, 1).unwrap(), Some(with));
    }
}
