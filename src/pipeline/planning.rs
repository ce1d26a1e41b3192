//! Planning a job (tokenize every row, build the plan) and finalizing it
//! once every shard is done.

use rayon::prelude::*;

use super::{BLOCK_SIZE, Checked, Engines, READ_BATCH_ROWS, RunOptions, check};
use crate::error::JobError;
use crate::io::{
    Manifest, OutputConfig, OutputState, RowSet, ShardDone, finalize, read_done, read_plan,
};
use crate::kv::chain_hashes;
use crate::plan::{Plan, PlanError, PlanRow, load_or_create};
use std::path::Path;

/// Tokenizes every row of the job and plans it over `shards` shards.
pub(super) fn make_plan(c: &Checked, shards: u32) -> Result<Plan, PlanError> {
    let encoder = c.encoder();
    let mut rows = Vec::with_capacity(c.inputs.total_rows() as usize);
    for batch in c.inputs.stream(READ_BATCH_ROWS, RowSet::new()) {
        let planned: Vec<PlanRow> = batch?
            .into_par_iter()
            .map(|r| {
                let (file_index, input_row) = (r.key.file_index, r.key.input_row);
                match encoder.encode(r) {
                    Ok(req) => PlanRow {
                        file_index,
                        input_row,
                        prompt_len: req.prompt.len(),
                        max_new: req.max_new_tokens,
                        hashes: chain_hashes(&req.prompt, BLOCK_SIZE),
                    },
                    Err(_) => PlanRow {
                        file_index,
                        input_row,
                        prompt_len: 0,
                        max_new: 0,
                        hashes: Vec::new(),
                    },
                }
            })
            .collect();
        rows.extend(planned);
    }
    Plan::make(c.identity(), &c.spec.model, &rows, BLOCK_SIZE, shards)
}

/// `specbatch plan`: plans the job (or reads its existing plan) without
/// running the model, stores the plan in the output directory and describes it.
pub fn plan_job(spec_path: &str, opts: &RunOptions) -> Result<String, JobError> {
    let c = check(spec_path, opts.output.as_deref(), Engines::None)?;
    OutputState::claim(&OutputConfig::new(&c.spec.output, &c.inputs, &c.spec_hash))?;
    let root = Path::new(&c.spec.output.path);
    let (plan, created) = load_or_create(root, &c.identity(), opts.shards, |n| make_plan(&c, n))?;
    let verb = if created { "written to" } else { "already in" };
    Ok(format!(
        "{}plan {verb} {}",
        plan.describe(),
        crate::io::plan_path(root).display()
    ))
}

/// Whether a job is complete.
#[derive(Debug, Clone, PartialEq)]
pub enum FinalizeOutcome {
    /// `manifest.json` and `_SUCCESS` are written.
    Done(Box<Manifest>),
    /// These shards have no done record yet.
    Pending(Vec<u32>),
}

/// Writes the manifest and `_SUCCESS` if every shard of `plan` is done.
pub fn finalize_job(root: &Path, plan: &Plan) -> Result<FinalizeOutcome, JobError> {
    let mut done: Vec<ShardDone> = Vec::new();
    let mut pending = Vec::new();
    for s in 0..plan.shards {
        match read_done(root, s)? {
            Some(d) => done.push(d),
            None => pending.push(s),
        }
    }
    if !pending.is_empty() {
        return Ok(FinalizeOutcome::Pending(pending));
    }
    let manifest = Manifest::from_shards(
        &plan.identity.spec_hash,
        &plan.model_path,
        &plan.identity.model_hash,
        &done,
    );
    finalize(root, &manifest, plan.stats.rows)?;
    Ok(FinalizeOutcome::Done(Box::new(manifest)))
}

/// `specbatch finalize OUTPUT`: [`finalize_job`] with the plan found there,
/// described for the user; shards without a done record are an error.
pub fn finalize_output(root: &Path) -> Result<String, JobError> {
    let path = crate::io::plan_path(root).display().to_string();
    let bytes = read_plan(root)?.ok_or_else(|| PlanError::Corrupt {
        path: path.clone(),
        reason: "no plan: is this a specbatch output directory?".into(),
    })?;
    let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| PlanError::Corrupt {
        path,
        reason: e.to_string(),
    })?;
    match finalize_job(root, &plan)? {
        FinalizeOutcome::Done(m) => Ok(format!(
            "job complete: {} rows ({} ok, {} error) in {} shard(s); wrote {}/manifest.json and _SUCCESS",
            m.counts.total,
            m.counts.ok,
            m.counts.error,
            m.shards.len(),
            root.display()
        )),
        FinalizeOutcome::Pending(p) => Err(JobError::ShardsPending(p)),
    }
}
