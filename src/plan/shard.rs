//! Which shard this process runs, and how groups are spread over shards.
//!
//! The shard index comes from `--shard`, else `JOB_COMPLETION_INDEX`
//! (Kubernetes Indexed Job), else `SLURM_ARRAY_TASK_ID` (Slurm array), else
//! 0. The shard count is the plan's. Groups go whole to one shard, largest
//! first to the least loaded shard (LPT): within 4/3 of the best balance, and
//! deterministic (ties go to the lower shard index).

use super::PlanError;

/// Environment variables that name the shard, in priority order.
pub const SHARD_ENV: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// The shard to run: the flag, else the first set variable of [`SHARD_ENV`]
/// as `env` reports it, else 0.
pub fn resolve_shard(
    flag: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<u32, PlanError> {
    if let Some(s) = flag {
        return Ok(s);
    }
    for var in SHARD_ENV {
        if let Some(value) = env(var) {
            return value
                .trim()
                .parse()
                .map_err(|_| PlanError::BadShardEnv { var, value });
        }
    }
    Ok(0)
}

/// Assigns each cost to a shard; returns the shard of each item.
pub fn assign(costs: &[f64], shards: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; shards];
    let mut out = vec![0; costs.len()];
    for i in order {
        let (s, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))
            .expect("at least one shard");
        out[i] = s;
        load[s] += costs[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_kubernetes_then_slurm_then_zero() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = env(&[("JOB_COMPLETION_INDEX", "3"), ("SLURM_ARRAY_TASK_ID", "5")]);
        assert_eq!(resolve_shard(Some(1), both).unwrap(), 1);
        assert_eq!(resolve_shard(None, both).unwrap(), 3);
        assert_eq!(
            resolve_shard(None, env(&[("SLURM_ARRAY_TASK_ID", "5")])).unwrap(),
            5
        );
        assert_eq!(resolve_shard(None, env(&[])).unwrap(), 0);
        let err = resolve_shard(None, env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(err.to_string().contains("SLURM_ARRAY_TASK_ID"), "{err}");
    }

    #[test]
    fn largest_first_to_the_least_loaded_shard() {
        let a = assign(&[5.0, 1.0, 4.0, 3.0, 3.0], 2);
        // 5 -> s0, 4 -> s1, 3 -> s1 (4 < 5), 3 -> s0 (5 < 7), 1 -> s1 (7 < 8).
        assert_eq!(a, vec![0, 1, 1, 1, 0]);
        let load = |s| {
            a.iter()
                .zip([5.0, 1.0, 4.0, 3.0, 3.0])
                .filter(|(x, _)| **x == s)
                .map(|(_, c)| c)
                .sum::<f64>()
        };
        assert_eq!((load(0), load(1)), (8.0, 8.0));
        assert_eq!(assign(&[1.0, 1.0], 4), vec![0, 1]);
    }
}
