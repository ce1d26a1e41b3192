//! `manifest.json` and `_SUCCESS`: the job's final word.
//!
//! Invariants: `_SUCCESS` is written only after the manifest, and only when
//! every input row is committed; consumers that read after `_SUCCESS` see a
//! complete output. The manifest is replaced atomically (a later successful
//! run may rewrite it); `_SUCCESS` is created if absent.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::commit::Totals;
use super::create::{create_if_absent, replace_atomically};
use super::error::IoError;
use super::job_records::ShardDone;
use super::layout::Layout;
use crate::spec::SpecStats;

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
    /// Speculative decoding over the job; absent when no shard speculated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculation: Option<SpeculationSummary>,
}

/// The manifest's `speculation` section: row totals from the committed
/// parts, rates from the counters of the attempts that finished the shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeculationSummary {
    /// Draft tokens sent to verification, summed over the output rows.
    pub draft_tokens_proposed: u64,
    /// Of those, the ones kept.
    pub draft_tokens_accepted: u64,
    /// Tokens a verify round commits on average, the bonus or replacement
    /// token included ([`SpecStats::mean_accepted_length`]).
    pub mean_accepted_length: f64,
    /// Accepted / verified at each draft position, from the first.
    pub acceptance_by_position: Vec<f64>,
    /// Fraction of decode steps in which some row verified a draft.
    pub drafting_steps_fraction: f64,
    /// Verify rounds: one per row per step that verified a draft.
    pub rounds: u64,
}

impl SpeculationSummary {
    /// The section for `totals` and the shards' counters summed; `None` when
    /// no shard has counters.
    fn from_shards(totals: &Totals, shards: &[ShardDone]) -> Option<Self> {
        let mut sum: Option<SpecStats> = None;
        for s in shards.iter().filter_map(|d| d.speculation.as_ref()) {
            sum.get_or_insert_with(SpecStats::default).add(s);
        }
        sum.map(|s| SpeculationSummary {
            draft_tokens_proposed: totals.draft_tokens_proposed,
            draft_tokens_accepted: totals.draft_tokens_accepted,
            mean_accepted_length: s.mean_accepted_length(),
            acceptance_by_position: s.acceptance_by_position(),
            drafting_steps_fraction: s.drafting_fraction(),
            rounds: s.rounds,
        })
    }
}

impl Manifest {
    /// The manifest of a job whose shards are all done.
    pub fn from_shards(
        spec_hash: &str,
        model_path: &str,
        model_hash: &str,
        shards: &[ShardDone],
    ) -> Self {
        let mut t = Totals::default();
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
            speculation: SpeculationSummary::from_shards(&t, shards),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn done(shard: u32, totals: Totals, speculation: Option<SpecStats>) -> ShardDone {
        ShardDone {
            shard,
            totals,
            parts: vec![format!(
                "data/shard={shard:05}/part-{shard:05}-0000.parquet"
            )],
            wall_time_s: 1.0,
            run_completion_tokens: totals.completion_tokens,
            skipped: 0,
            speculation,
        }
    }

    #[test]
    fn speculation_sums_the_shards_counters() {
        let totals = |proposed, accepted| Totals {
            rows: 2,
            ok: 2,
            completion_tokens: 10,
            draft_tokens_proposed: proposed,
            draft_tokens_accepted: accepted,
            ..Totals::default()
        };
        let mut a = SpecStats {
            decode_steps: 4,
            drafting_steps: 2,
            ..SpecStats::default()
        };
        a.record_round(2, 2);
        a.record_round(1, 0);
        let mut b = SpecStats {
            decode_steps: 6,
            drafting_steps: 3,
            ..SpecStats::default()
        };
        b.record_round(3, 1);
        let m = Manifest::from_shards(
            "h",
            "m",
            "mh",
            &[
                done(0, totals(3, 2), Some(a)),
                done(1, totals(3, 1), Some(b)),
            ],
        );
        let s = m.speculation.clone().expect("both shards speculated");
        assert_eq!((s.draft_tokens_proposed, s.draft_tokens_accepted), (6, 3));
        assert_eq!(s.rounds, 3);
        // verified [3, 2, 1], accepted [2, 1, 0]; 3 accepted over 3 rounds.
        assert_eq!(s.acceptance_by_position, vec![2.0 / 3.0, 0.5, 0.0]);
        assert!((s.mean_accepted_length - 2.0).abs() < 1e-12);
        assert!((s.drafting_steps_fraction - 0.5).abs() < 1e-12);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["speculation"]["rounds"], 3);
        assert_eq!(json["speculation"]["draft_tokens_proposed"], 6);
    }

    #[test]
    fn speculation_is_absent_when_no_shard_speculated() {
        let m = Manifest::from_shards(
            "h",
            "m",
            "mh",
            &[
                done(0, Totals::default(), None),
                done(1, Totals::default(), None),
            ],
        );
        assert_eq!(m.speculation, None);
        let json = serde_json::to_value(&m).unwrap();
        assert!(json.get("speculation").is_none(), "{json}");
        // One shard that speculated is enough for the section.
        let m = Manifest::from_shards(
            "h",
            "m",
            "mh",
            &[
                done(0, Totals::default(), None),
                done(1, Totals::default(), Some(SpecStats::default())),
            ],
        );
        assert_eq!(m.speculation.map(|s| s.rounds), Some(0));
    }
}
