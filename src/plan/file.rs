//! Reading, checking and creating `_plan/plan.json`.
//!
//! The plan is immutable: the first process to store it wins (create if
//! absent), and every later process checks that the stored plan belongs to
//! this job (spec hash, model hash, input files) and has the shard count it
//! was asked for, before any work.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{PLAN_VERSION, Plan, PlanError};
use crate::io::{plan_path, read_plan, store_plan};

/// One input file as the plan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    pub name: String,
    pub rows: u64,
}

/// What a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanIdentity {
    pub spec_hash: String,
    pub model_hash: String,
    pub inputs: Vec<PlanInput>,
}

/// The plan stored under `root`, checked against `identity` and `shards`
/// (when given); or, when there is none, the plan `make` builds (with
/// `shards`, default 1), stored. Returns the plan and whether this call
/// stored it.
pub fn load_or_create(
    root: &Path,
    identity: &PlanIdentity,
    shards: Option<u32>,
    make: impl FnOnce(u32) -> Result<Plan, PlanError>,
) -> Result<(Plan, bool), PlanError> {
    if let Some(bytes) = read_plan(root)? {
        return Ok((check(root, &bytes, identity, shards)?, false));
    }
    let plan = make(shards.unwrap_or(1))?;
    let json = serde_json::to_vec(&plan).map_err(|e| PlanError::Corrupt {
        path: plan_path(root).display().to_string(),
        reason: e.to_string(),
    })?;
    if store_plan(root, &json)? {
        return Ok((plan, true));
    }
    // Another process stored its plan first: use that one, if it fits.
    let bytes = read_plan(root)?.unwrap_or_default();
    Ok((check(root, &bytes, identity, shards)?, false))
}

fn check(
    root: &Path,
    bytes: &[u8],
    identity: &PlanIdentity,
    shards: Option<u32>,
) -> Result<Plan, PlanError> {
    let path = plan_path(root).display().to_string();
    let plan: Plan = serde_json::from_slice(bytes).map_err(|e| PlanError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if plan.version != PLAN_VERSION {
        return Err(PlanError::Corrupt {
            path,
            reason: format!(
                "plan version {} (this build reads {PLAN_VERSION})",
                plan.version
            ),
        });
    }
    let found = &plan.identity;
    let mismatch = |what, found: &str, expected: &str| PlanError::Mismatch {
        path: path.clone(),
        what,
        found: found.to_string(),
        expected: expected.to_string(),
    };
    if found.spec_hash != identity.spec_hash {
        return Err(mismatch("spec hash", &found.spec_hash, &identity.spec_hash));
    }
    if found.model_hash != identity.model_hash {
        return Err(mismatch(
            "model hash",
            &found.model_hash,
            &identity.model_hash,
        ));
    }
    if found.inputs != identity.inputs {
        let describe = |inputs: &[PlanInput]| {
            inputs
                .iter()
                .map(|i| format!("{} ({} rows)", i.name, i.rows))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(mismatch(
            "inputs",
            &describe(&found.inputs),
            &describe(&identity.inputs),
        ));
    }
    if let Some(asked) = shards
        && asked != plan.shards
    {
        return Err(PlanError::ShardCount {
            path,
            planned: plan.shards,
            asked,
        });
    }
    if plan.shard_plans.len() != plan.shards as usize {
        return Err(PlanError::Corrupt {
            path,
            reason: "shard list and shard count disagree".into(),
        });
    }
    Ok(plan)
}
