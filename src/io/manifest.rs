//! `manifest.json` and `_SUCCESS`: the job's final word.
//!
//! Invariants: `_SUCCESS` is written only after the manifest, and only when
//! every input row is committed; consumers that read after `_SUCCESS` see a
//! complete output. The manifest is replaced atomically (a later successful
//! run may rewrite it); `_SUCCESS` is created if absent.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::create::{create_if_absent, replace_atomically};
use super::error::IoError;
use super::layout::Layout;
use super::part_writer::OutputSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub total: u64,
    pub ok: u64,
    pub error: u64,
    /// Rows committed by an earlier attempt and skipped by this run.
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub spec_hash: String,
    pub model_path: String,
    pub model_hash: String,
    pub counts: Counts,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Wall time of this run.
    pub wall_time_s: f64,
    /// Completion tokens this run generated per second of its wall time.
    pub output_tokens_per_second: f64,
    /// Part files relative to the output root, in seq order.
    pub parts: Vec<String>,
}

impl Manifest {
    pub fn new(
        summary: &OutputSummary,
        model_path: &str,
        model_hash: &str,
        wall_time: Duration,
    ) -> Self {
        let secs = wall_time.as_secs_f64();
        let t = &summary.totals;
        Manifest {
            version: 1,
            spec_hash: summary.spec_hash.clone(),
            model_path: model_path.to_string(),
            model_hash: model_hash.to_string(),
            counts: Counts {
                total: t.rows,
                ok: t.ok,
                error: t.error,
                skipped: summary.skipped,
            },
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            wall_time_s: secs,
            output_tokens_per_second: if secs > 0.0 {
                summary.run.completion_tokens as f64 / secs
            } else {
                0.0
            },
            parts: summary.parts.clone(),
        }
    }
}

/// Writes `manifest.json` then `_SUCCESS` under `root`, refusing when the
/// manifest counts fewer than `expected_rows` rows.
pub fn finalize(root: &Path, manifest: &Manifest, expected_rows: u64) -> Result<(), IoError> {
    if manifest.counts.total != expected_rows {
        return Err(IoError::Incomplete {
            committed: manifest.counts.total,
            expected: expected_rows,
        });
    }
    let layout = Layout::new(root);
    let tmp = layout.tmp_root();
    std::fs::create_dir_all(&tmp).map_err(|e| IoError::fs("creating", &tmp, e))?;
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| IoError::InvalidRow(e.to_string()))?;
    replace_atomically(&tmp, &layout.manifest(), &json)?;
    // An existing _SUCCESS is fine: the output it vouches for is unchanged.
    create_if_absent(&tmp, &layout.success(), |_| Ok(()))?;
    Ok(())
}
