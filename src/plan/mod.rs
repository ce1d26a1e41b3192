//! The whole-job plan: prefix groups, their order and their shards.
//!
//! After tokenization and before any decoding, the planner sees every row of
//! the job: it builds the prefix tree ([`tree`]), cuts it into groups, spreads
//! whole groups over shards by cost ([`shard`]) and records the result in an
//! immutable `_plan/plan.json` ([`file`]). Every process of the job (each
//! shard, each retry) computes or reads the same plan, so a row belongs to
//! exactly one shard and its place in the run order never changes.

pub mod file;
pub mod shard;
pub mod tree;

use serde::{Deserialize, Serialize};

pub use file::{PlanIdentity, load_or_create};
pub use shard::resolve_shard;
pub use tree::{DECODE_WEIGHT, PlanRow, PrefixTree};

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("shard {shard} is outside the plan's {shards} shard(s) (shards are 0..{shards})")]
    ShardOutOfRange { shard: u32, shards: u32 },
    #[error("`{var}` is set to `{value}`, which is not a shard index")]
    BadShardEnv { var: &'static str, value: String },
    #[error("--shards must be at least 1")]
    NoShards,
    #[error(
        "{path}: the existing plan has {planned} shard(s), not the {asked} asked for; keep --shards {planned} or use a new output directory"
    )]
    ShardCount {
        path: String,
        planned: u32,
        asked: u32,
    },
    #[error("{path}: the existing plan was made for {what} {found}, this job has {expected}")]
    Mismatch {
        path: String,
        what: &'static str,
        found: String,
        expected: String,
    },
    #[error("{path}: unreadable plan: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

/// One group in a shard's run order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedGroup {
    pub id: u32,
    /// Tokens of the prefix all its rows share (whole KV blocks).
    pub prefix_tokens: usize,
    pub cost: f64,
    /// `[file_index, input_row]` in run order.
    pub rows: Vec<[u64; 2]>,
}

/// One shard's share of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardPlan {
    pub shard: u32,
    pub rows: u64,
    pub cost: f64,
    pub groups: Vec<PlannedGroup>,
}

/// Statistics of a plan (what `specbatch plan` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStats {
    pub rows: u64,
    /// Rows that fail before the engine (bad prompt, tokenization).
    pub error_rows: u64,
    pub groups: u64,
    /// Groups whose rows share a prefix of at least one block.
    pub shared_groups: u64,
    pub prompt_tokens: u64,
    /// Prompt tokens computed with no reuse.
    pub prefill_tokens_without_reuse: u64,
    /// Prompt tokens computed when every shared block is computed once
    /// per shard.
    pub prefill_tokens_with_reuse: u64,
    pub max_new_tokens: u64,
}

/// The plan as stored in `_plan/plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub version: u32,
    #[serde(flatten)]
    pub identity: PlanIdentity,
    /// The model as the spec names it (for the manifest).
    pub model_path: String,
    pub block_size: usize,
    pub decode_weight: f64,
    pub shards: u32,
    pub stats: PlanStats,
    pub shard_plans: Vec<ShardPlan>,
}

pub const PLAN_VERSION: u32 = 1;

/// Groups per shard the cut aims for: enough to balance shards by cost.
const GROUPS_PER_SHARD: f64 = 4.0;

impl Plan {
    /// Plans `rows` (every row of the job) over `shards` shards.
    pub fn make(
        identity: PlanIdentity,
        model_path: &str,
        rows: &[PlanRow],
        block_size: usize,
        shards: u32,
    ) -> Result<Plan, PlanError> {
        if shards == 0 {
            return Err(PlanError::NoShards);
        }
        let tree = PrefixTree::build(rows, block_size);
        let cap = (tree.total_cost() / (f64::from(shards) * GROUPS_PER_SHARD)).max(1.0);
        let groups = tree.groups(cap);
        let costs: Vec<f64> = groups.iter().map(|g| g.cost).collect();
        let owner = shard::assign(&costs, shards as usize);
        let mut shard_plans: Vec<ShardPlan> = (0..shards)
            .map(|s| ShardPlan {
                shard: s,
                rows: 0,
                cost: 0.0,
                groups: Vec::new(),
            })
            .collect();
        let mut with_reuse = vec![0u64; shards as usize];
        for (id, (g, &s)) in groups.iter().zip(&owner).enumerate() {
            let sp = &mut shard_plans[s];
            sp.rows += g.rows.len() as u64;
            sp.cost += g.cost;
            sp.groups.push(PlannedGroup {
                id: id as u32,
                prefix_tokens: g.prefix_blocks * block_size,
                cost: g.cost,
                rows: g
                    .rows
                    .iter()
                    .map(|&r| [u64::from(rows[r].file_index), rows[r].input_row])
                    .collect(),
            });
        }
        // Reuse per shard: the prefix tree of each shard's rows.
        for (s, sp) in shard_plans.iter().enumerate() {
            let mine: Vec<PlanRow> = groups
                .iter()
                .zip(&owner)
                .filter(|(_, o)| **o == s)
                .flat_map(|(g, _)| g.rows.iter().map(|&r| rows[r].clone()))
                .collect();
            debug_assert_eq!(mine.len() as u64, sp.rows);
            with_reuse[s] = PrefixTree::build(&mine, block_size).unique_prefill_tokens();
        }
        let prompt_tokens: u64 = rows.iter().map(|r| r.prompt_len as u64).sum();
        let stats = PlanStats {
            rows: rows.len() as u64,
            error_rows: rows.iter().filter(|r| r.prompt_len == 0).count() as u64,
            groups: groups.len() as u64,
            shared_groups: groups.iter().filter(|g| g.prefix_blocks > 0).count() as u64,
            prompt_tokens,
            prefill_tokens_without_reuse: prompt_tokens,
            prefill_tokens_with_reuse: with_reuse.iter().sum(),
            max_new_tokens: rows.iter().map(|r| r.max_new as u64).sum(),
        };
        Ok(Plan {
            version: PLAN_VERSION,
            identity,
            model_path: model_path.to_string(),
            block_size,
            decode_weight: DECODE_WEIGHT,
            shards,
            stats,
            shard_plans,
        })
    }

    /// The plan of shard `shard`, if the plan has it.
    pub fn shard(&self, shard: u32) -> Result<&ShardPlan, PlanError> {
        self.shard_plans
            .get(shard as usize)
            .ok_or(PlanError::ShardOutOfRange {
                shard,
                shards: self.shards,
            })
    }

    /// A human summary of the plan.
    pub fn describe(&self) -> String {
        let s = &self.stats;
        let pct = |a: u64, b: u64| 100.0 * a as f64 / (b.max(1)) as f64;
        let mut out = format!(
            "plan: {} rows ({} fail before the engine), {} groups ({} share a prefix), {} shard(s)\n\
             prefill tokens: {} without reuse, {} with reuse ({:.1}% of the naive cost)\n\
             decode tokens: at most {}\n",
            s.rows,
            s.error_rows,
            s.groups,
            s.shared_groups,
            self.shards,
            s.prefill_tokens_without_reuse,
            s.prefill_tokens_with_reuse,
            pct(s.prefill_tokens_with_reuse, s.prefill_tokens_without_reuse),
            s.max_new_tokens,
        );
        for sp in &self.shard_plans {
            out.push_str(&format!(
                "  shard {:>3}: {:>7} rows, {:>5} groups, cost {:.0}\n",
                sp.shard,
                sp.rows,
                sp.groups.len(),
                sp.cost
            ));
        }
        out
    }
}
