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

/// The cut keeps every group within 1/GROUPS_PER_SHARD of a shard's fair
/// share, so largest-first assignment loads no shard beyond 1.5 × its fair
/// share, while splitting (which repeats a shared prefix) stays rare.
const GROUPS_PER_SHARD: f64 = 2.0;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::chain_hashes;
    use std::collections::{HashMap, HashSet};

    const BS: usize = 4;

    fn identity() -> PlanIdentity {
        PlanIdentity {
            spec_hash: "s".into(),
            model_hash: "m".into(),
            inputs: vec![file::PlanInput {
                name: "in.parquet".into(),
                rows: 0,
            }],
        }
    }

    fn row(i: u64, tokens: &[u32], max_new: usize) -> PlanRow {
        PlanRow {
            file_index: 0,
            input_row: i,
            prompt_len: tokens.len(),
            max_new,
            hashes: chain_hashes(tokens, BS),
        }
    }

    /// `docs` documents of `doc_len` tokens, `questions` questions each, in a
    /// shuffled arrival order; returns the rows and each row's tokens.
    fn corpus(docs: u32, doc_len: u32, questions: u32) -> (Vec<PlanRow>, Vec<Vec<u32>>) {
        let mut prompts = Vec::new();
        for d in 0..docs {
            for q in 0..questions {
                let mut t: Vec<u32> = vec![1, 2, 3, 4, 5]; // a shared system prompt
                t.extend((0..doc_len).map(|i| 1000 * (d + 1) + i));
                t.extend((0..3 + q % 4).map(|i| 50 + q * 10 + i));
                prompts.push(t);
            }
        }
        // A fixed shuffle: interleave documents.
        let n = prompts.len();
        let order: Vec<usize> = (0..n).map(|i| (i * 7) % n).collect();
        assert_eq!(
            order.iter().collect::<HashSet<_>>().len(),
            n,
            "a permutation"
        );
        let prompts: Vec<Vec<u32>> = order.into_iter().map(|i| prompts[i].clone()).collect();
        let rows = prompts
            .iter()
            .enumerate()
            .map(|(i, t)| row(i as u64, t, 4))
            .collect();
        (rows, prompts)
    }

    fn rows_of(plan: &Plan) -> Vec<(u32, &PlannedGroup, u64)> {
        plan.shard_plans
            .iter()
            .flat_map(|s| {
                s.groups
                    .iter()
                    .flat_map(move |g| g.rows.iter().map(move |r| (s.shard, g, r[1])))
            })
            .collect()
    }

    #[test]
    fn group_prefixes_are_prefixes_and_documents_run_back_to_back() {
        let (rows, prompts) = corpus(4, 40, 6);
        let plan = Plan::make(identity(), "m.gguf", &rows, BS, 1).unwrap();
        let listed = rows_of(&plan);
        assert_eq!(listed.len(), rows.len());
        for (_, g, r) in &listed {
            let first = &prompts[g.rows[0][1] as usize];
            let mine = &prompts[*r as usize];
            assert!(g.prefix_tokens < mine.len());
            assert_eq!(
                first[..g.prefix_tokens],
                mine[..g.prefix_tokens],
                "group {} prefix",
                g.id
            );
        }
        // Each document's questions form one group whose prefix covers the
        // document's full blocks, and run consecutively.
        let doc_of = |r: u64| prompts[r as usize][5] / 1000;
        let mut seen_docs = Vec::new();
        for (_, g, r) in &listed {
            if seen_docs.last() != Some(&doc_of(*r)) {
                seen_docs.push(doc_of(*r));
            }
            assert_eq!(g.rows.len(), 6);
            assert_eq!(g.prefix_tokens, 44, "45 shared tokens: 11 full blocks");
        }
        assert_eq!(
            seen_docs.len(),
            4,
            "documents are not interleaved: {seen_docs:?}"
        );
        // Reuse: 11 blocks per document once (the first, all system prompt,
        // once for all), plus each row's tail.
        let tails: u64 = prompts.iter().map(|p| (p.len() - 44) as u64).sum();
        assert_eq!(plan.stats.prefill_tokens_with_reuse, 4 * 44 - 3 * 4 + tails);
        assert_eq!(
            plan.stats.prefill_tokens_without_reuse,
            prompts.iter().map(|p| p.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn every_row_in_exactly_one_shard_with_whole_groups_and_balance() {
        let (rows, prompts) = corpus(8, 40, 5);
        let plan = Plan::make(identity(), "m.gguf", &rows, BS, 3).unwrap();
        let listed = rows_of(&plan);
        let mut shard_of: HashMap<u64, u32> = HashMap::new();
        for (s, _, r) in &listed {
            assert!(shard_of.insert(*r, *s).is_none(), "row {r} listed twice");
        }
        assert_eq!(shard_of.len(), rows.len());
        // A document's questions never span shards.
        let mut doc_shard: HashMap<u32, u32> = HashMap::new();
        for (r, s) in &shard_of {
            let doc = prompts[*r as usize][5] / 1000;
            assert_eq!(
                *doc_shard.entry(doc).or_insert(*s),
                *s,
                "document {doc} split"
            );
        }
        let costs: Vec<f64> = plan.shard_plans.iter().map(|s| s.cost).collect();
        let (lo, hi) = costs
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &c| (lo.min(c), hi.max(c)));
        // 8 equal documents over 3 shards: 3, 3 and 2 is the best there is.
        assert!(hi <= 1.5 * lo + 1e-9, "{costs:?}");
        assert_eq!(plan.shard_plans.iter().map(|s| s.rows).sum::<u64>(), 40);
        assert!(matches!(
            plan.shard(3),
            Err(PlanError::ShardOutOfRange {
                shard: 3,
                shards: 3
            })
        ));
    }

    #[test]
    fn the_plan_is_deterministic() {
        let (rows, _) = corpus(5, 30, 4);
        let a = Plan::make(identity(), "m.gguf", &rows, BS, 2).unwrap();
        let b = Plan::make(identity(), "m.gguf", &rows, BS, 2).unwrap();
        assert_eq!(
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap()
        );
        assert!(matches!(
            Plan::make(identity(), "m.gguf", &rows, BS, 0),
            Err(PlanError::NoShards)
        ));
    }

    #[test]
    fn unshared_rows_are_packed_longest_first_and_error_rows_kept() {
        let mut rows: Vec<PlanRow> = (0..6u32)
            .map(|i| {
                let t: Vec<u32> = (0..(5 + 3 * i)).map(|j| 100 * (i + 1) + j).collect();
                row(u64::from(i), &t, 2)
            })
            .collect();
        rows.push(PlanRow {
            file_index: 0,
            input_row: 6,
            prompt_len: 0,
            max_new: 0,
            hashes: Vec::new(),
        });
        let plan = Plan::make(identity(), "m.gguf", &rows, BS, 1).unwrap();
        let order: Vec<u64> = rows_of(&plan).iter().map(|(_, _, r)| *r).collect();
        assert_eq!(
            order,
            vec![5, 4, 3, 2, 1, 0, 6],
            "longest first, error rows last"
        );
        assert_eq!(plan.stats.error_rows, 1);
        assert!(rows_of(&plan).iter().all(|(_, g, _)| g.prefix_tokens == 0));
    }

    #[test]
    fn a_stored_plan_is_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let (rows, _) = corpus(2, 20, 2);
        let make = |n| Plan::make(identity(), "m.gguf", &rows, BS, n);
        let (p, created) = load_or_create(dir.path(), &identity(), Some(2), make).unwrap();
        assert!(created);
        let (again, created) =
            load_or_create(dir.path(), &identity(), None, |_| unreachable!()).unwrap();
        assert_eq!((again, created), (p, false));
        let err = load_or_create(dir.path(), &identity(), Some(3), make).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::ShardCount {
                    planned: 2,
                    asked: 3,
                    ..
                }
            ),
            "{err}"
        );
        let mut other = identity();
        other.model_hash = "other".into();
        let err = load_or_create(dir.path(), &other, None, make).unwrap_err();
        assert!(err.to_string().contains("model hash"), "{err}");
        other = identity();
        other.inputs[0].rows = 9;
        let err = load_or_create(dir.path(), &other, None, make).unwrap_err();
        assert!(err.to_string().contains("inputs"), "{err}");
    }
}
