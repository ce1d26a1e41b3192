//! `manifest.json` and `_SUCCESS`: the job's final word.
//!
//! Invariants: `_SUCCESS` is written only after the manifest, and only when
//! every input row is committed; consumers that read after `_SUCCESS` see a
//! complete output. The manifest is replaced atomically (a later successful
//! run may rewrite it); `_SUCCESS` is created if absent.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::create::{create_if_absent, replace_atomically};
use super::error::IoError;
use super::job_records::ShardDone;
use super::layout::Layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub total: u64,
    pub ok: u64,
    pub error: u64,
    /// Rows the finishing attempts found committed by earlier attempts.
    pub skipped: u64,
}

/// One shard's line in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardLine {
    pub shard: u32,
    pub rows: u64,
    /// Wall time of the attempt that finished the shard.
    pub wall_time_s: f64,
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
    /// Prompt tokens taken from shared prefix KV instead of computed.
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Longest wall time among the attempts that finished the shards.
    pub wall_time_s: f64,
    /// Completion tokens those attempts generated per second of `wall_time_s`.
    pub output_tokens_per_second: f64,
    pub shards: Vec<ShardLine>,
    /// Part files relative to the output root, by shard, in seq order.
    pub parts: Vec<String>,
}

impl Manifest {
    /// The manifest of a job whose shards are all done.
    pub fn from_shards(
        spec_hash: &str,
        model_path: &str,
        model_hash: &str,
        shards: &[ShardDone],
    ) -> Self {
        let mut t = super::commit::Totals::default();
        let mut skipped = 0;
        let mut generated = 0;
        let mut wall: f64 = 0.0;
        for d in shards {
            t.add(&d.totals);
            skipped += d.skipped;
            generated += d.run_completion_tokens;
            wall = wall.max(d.wall_time_s);
        }
        Manifest {
            version: 2,
            spec_hash: spec_hash.to_string(),
            model_path: model_path.to_string(),
            model_hash: model_hash.to_string(),
            counts: Counts {
                total: t.rows,
                ok: t.ok,
                error: t.error,
                skipped,
            },
            prompt_tokens: t.prompt_tokens,
            cached_tokens: t.cached_tokens,
            completion_tokens: t.completion_tokens,
            wall_time_s: wall,
            output_tokens_per_second: if wall > 0.0 {
                generated as f64 / wall
            } else {
                0.0
            },
            shards: shards
                .iter()
                .map(|d| ShardLine {
                    shard: d.shard,
                    rows: d.totals.rows,
                    wall_time_s: d.wall_time_s,
                })
                .collect(),
            parts: shards
                .iter()
                .flat_map(|d| d.parts.iter().cloned())
                .collect(),
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
