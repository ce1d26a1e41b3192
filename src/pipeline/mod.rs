//! One job shard, end to end: spec → devices → inputs → model → output
//! directory → plan, then the stages (reader → tokenizer → engines → writer)
//! on their own threads, connected by bounded channels. There is one engine
//! per device; the tokenizer stage hands them units (a prefix group, or one
//! ungrouped row) through a work-stealing pool (`pool/`).
//!
//! Everything that can make the job pointless (bad spec, devices this
//! machine does not have, input schema, model, an output directory or plan
//! of another job, a shard outside the plan) is checked before any row is
//! generated. Afterwards, row-level problems become
//! error rows and the job goes on. Rows already committed by an earlier
//! attempt are skipped. The shard's rows run in the plan's order, so rows
//! sharing a prefix run back to back and reuse its KV.

mod backends;
mod calibrate;
mod encode;
mod planning;
mod pool;
mod speculation;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender, bounded};
use rayon::prelude::*;

use crate::backend::cpu::dense::CpuDenseExecutor;
use crate::backend::cpu::dsv4::CpuDsv4Executor;
use crate::backend::cpu::kv_arena::KvArena;
use crate::backend::device::Device;
use crate::backend::executor::{BackendError, Executor};
use crate::backend::resolve::{DeviceError, ResolvedDevice, resolve, resolve_devices};
use crate::engine::runner::{Engine, EngineConfig, EngineCounters, EngineError, Request};
use crate::engine::scheduler::GroupTag;
use crate::engine::speculation::Speculator;
use crate::error::JobError;
use crate::io::row::{InputRow, RowResult};
use crate::io::{
    InputPlan, IoError, OutputConfig, OutputState, ShardDone, WriterConfig, validate_inputs,
    write_done,
};
use crate::job::spec::{JobSpec, SpecMethod};
use crate::model::dsv4::forward::Dsv4Model;
use crate::model::dsv4::precision::Precision;
use crate::model::dsv4::state::KvFootprint;
use crate::model::error::ModelError;
use crate::model::load::{LoadedModel, ModelWeights, load_model, model_sha256};
use crate::plan::{PlanError, PlanIdentity, ShardPlan, load_or_create, resolve_shard};
use crate::progress::{JobCounters, Progress};
use crate::spec::{SpecStats, Sts};
use backends::Backends;
use pool::steal::UnitQueue;
use pool::{EngineFns, Unit};

pub use calibrate::{CalibrateError, CalibrationReport, calibrate_job};
use encode::{Encoder, check_job_reasoning};
pub use planning::{FinalizeOutcome, finalize_job, finalize_output, plan_job};
use speculation::{
    DraftSource, check_engine_speculation, check_job_speculation, engine_speculation, kv_split,
    load_calibration, load_draft_model,
};
pub use summary::RunSummary;

/// KV block size in tokens (also the planner's block).
pub const BLOCK_SIZE: usize = 16;

/// How rows share prompt KV. Only the benchmark and the equivalence tests
/// choose anything but [`ReuseMode::Planned`]: the other two are the
/// baselines the planner is measured against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReuseMode {
    /// Plan order, prefix groups pinned, computed blocks shared.
    #[default]
    Planned,
    /// Input order, computed blocks shared while they stay cached (LRU).
    Arrival,
    /// Input order, nothing shared.
    Off,
}

/// Command-line choices that are not part of the spec.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub output: Option<String>,
    /// Shard to run; else from the environment (see [`resolve_shard`]).
    pub shard: Option<u32>,
    /// Shard count of a plan made by this call; must match an existing plan.
    pub shards: Option<u32>,
    pub reuse: ReuseMode,
    /// Runs one engine on each of these devices instead of the spec's
    /// `devices`, with the same checks except the spec's list rules: the
    /// pool tests run two CPU engines this way, which a spec cannot ask for.
    pub engines: Option<Vec<Device>>,
}

/// Sets the compute thread count once per process (0 = all cores).
pub fn init_threads(threads: usize) {
    if threads > 0 {
        // A second call (several jobs in one process) keeps the first pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

/// Loads and checks everything a job needs before any work: the spec, the
/// inputs' schema, the speculation calibration and the model.
struct Checked {
    spec: JobSpec,
    spec_hash: String,
    inputs: InputPlan,
    model: LoadedModel,
    model_hash: String,
    /// `speculation.calibration`, read and validated.
    calibration: Option<Sts>,
    /// `speculation.draft_model`, loaded and checked against the model.
    draft: Option<DraftSource>,
    /// One engine's device each; empty when the job only plans.
    devices: Vec<ResolvedDevice>,
}

/// Which devices a check resolves.
#[derive(Debug, Clone, Copy)]
enum Engines<'a> {
    /// Planning runs no model: a plan can be made on a machine without the
    /// job's GPUs.
    None,
    /// The spec's `devices`.
    FromSpec,
    /// [`RunOptions::engines`].
    Given(&'a [Device]),
}

impl<'a> Engines<'a> {
    fn of(opts: &'a RunOptions) -> Engines<'a> {
        opts.engines
            .as_deref()
            .map_or(Engines::FromSpec, Engines::Given)
    }
}

impl Checked {
    fn identity(&self) -> PlanIdentity {
        PlanIdentity {
            spec_hash: self.spec_hash.clone(),
            model_hash: self.model_hash.clone(),
            inputs: self
                .inputs
                .files()
                .iter()
                .map(|f| crate::plan::file::PlanInput {
                    name: f.name.clone(),
                    rows: f.num_rows,
                })
                .collect(),
        }
    }

    fn encoder(&self) -> Encoder<'_> {
        Encoder::new(&self.model.tokenizer, self.model.chat.as_ref(), &self.spec)
    }
}

fn check(spec_path: &str, output: Option<&str>, engines: Engines) -> Result<Checked, JobError> {
    let mut spec = JobSpec::load(Path::new(spec_path))?;
    if let Some(out) = output {
        spec.output.path = out.to_string();
    }
    // First, since it is quick and a job on missing GPUs is no job at all.
    let devices = match engines {
        Engines::None => Vec::new(),
        Engines::FromSpec => resolve(&spec.devices, crate::backend::cuda::probe)?,
        Engines::Given(list) => resolve_devices(list, crate::backend::cuda::probe)?,
    };
    check_engine_speculation(&spec, &devices)?;
    let spec_hash = spec.spec_hash();
    let inputs = validate_inputs(&spec.inputs)?;
    let calibration = load_calibration(&spec.speculation)?;
    let model_hash = model_sha256(&spec.model)?;
    if let Some(pinned) = &spec.model_sha256
        && !pinned.eq_ignore_ascii_case(&model_hash)
    {
        return Err(ModelError::HashMismatch {
            path: spec.model.clone(),
            expected: pinned.clone(),
            found: model_hash,
        }
        .into());
    }
    let model = load_model(&spec.model)?;
    if devices.iter().any(|d| d.device.is_cuda()) {
        crate::backend::cuda::executor::supports(&model.weights).map_err(DeviceError::from)?;
    }
    check_job_reasoning(&spec, model.chat.as_ref())?;
    check_job_speculation(&spec, &model.weights)?;
    let draft = load_draft_model(&spec.speculation, &model)?;
    Ok(Checked {
        spec,
        spec_hash,
        inputs,
        model,
        model_hash,
        calibration,
        draft,
        devices,
    })
}

/// `specbatch validate`: checks the spec, the inputs' schema and the model.
pub fn validate_job(spec_path: &str) -> Result<String, JobError> {
    let c = check(spec_path, None, Engines::FromSpec)?;
    let devices: Vec<String> = c.devices.iter().map(ToString::to_string).collect();
    Ok(format!(
        "spec ok: {spec_path} (spec hash {})\ndevices ok: {}\ninputs ok: {} file(s), {} rows\nmodel ok: {} ({}, sha256 {})\nspeculation ok: {}\noutput: {}",
        c.spec_hash,
        devices.join(", "),
        c.inputs.files().len(),
        c.inputs.total_rows(),
        c.model.name,
        c.model.weights.arch_name(),
        c.model_hash,
        speculation::describe(
            &c.spec.speculation,
            c.calibration.as_ref(),
            c.draft.as_ref()
        ),
        c.spec.output.path
    ))
}

/// The CPU backend and speculator a checked job runs on: the KV budget split
/// with the draft model ([`kv_split`]), DSpark on when the method asks for
/// it, the step rate measured ([`engine_speculation`]).
fn job_backend(
    spec: &JobSpec,
    weights: ModelWeights,
    draft: Option<DraftSource>,
    calibration: Option<Sts>,
    model_hash: &str,
) -> Result<(Box<dyn Executor>, Option<Speculator>), JobError> {
    let (kv_bytes, draft_kv_bytes) = kv_split(
        spec.engine.kv_cache_bytes,
        &weights,
        draft.as_ref().map(|d| &d.model.weights),
    );
    let dspark = spec.speculation.method == SpecMethod::Dspark;
    let mut exec = cpu_executor(weights, kv_bytes, spec.engine.max_concurrent_rows, dspark)
        .map_err(EngineError::from)?;
    let speculation = engine_speculation(
        spec,
        calibration,
        &mut *exec,
        &Device::Cpu,
        model_hash,
        draft.map(|d| (d, draft_kv_bytes)),
    )
    .map_err(EngineError::from)?;
    Ok((exec, speculation))
}

/// The engine limits a job's spec sets.
fn engine_config(spec: &JobSpec, prefix_reuse: bool) -> EngineConfig {
    EngineConfig {
        max_running: spec.engine.max_concurrent_rows,
        max_batch_tokens: spec.engine.max_batch_tokens,
        block_size: BLOCK_SIZE,
        stop: spec.generation.stop.clone(),
        prefix_reuse,
    }
}

/// The CPU backend for `weights`, with `kv_bytes` of KV storage; `dspark`
/// turns on the DeepSeek-V4 draft module (checked to exist by
/// [`check_job_speculation`]).
fn cpu_executor(
    weights: ModelWeights,
    kv_bytes: u64,
    max_running: usize,
    dspark: bool,
) -> Result<Box<dyn Executor>, BackendError> {
    Ok(match weights {
        ModelWeights::Dense(w) => Box::new(CpuDenseExecutor::new(*w, kv_bytes, BLOCK_SIZE)),
        ModelWeights::DeepseekV4(w) => {
            let model = Dsv4Model::new(*w, Precision::Official);
            let exec = CpuDsv4Executor::new(model, kv_bytes, BLOCK_SIZE, max_running);
            Box::new(if dspark { exec.with_dspark()? } else { exec })
        }
    })
}

/// KV bytes one token takes on the CPU backend for `weights` (for
/// DeepSeek-V4 the steady-state bound of its compressed state).
fn kv_bytes_per_token(weights: &ModelWeights) -> usize {
    match weights {
        ModelWeights::Dense(w) => KvArena::bytes_per_token(w.config.n_layers, w.config.kv_dim()),
        ModelWeights::DeepseekV4(w) => KvFootprint::new(&w.config).bytes_per_token_bound(),
    }
}

/// Input rows per read; small enough to keep memory flat, large enough that
/// parallel tokenization pays.
const READ_BATCH_ROWS: usize = 256;

/// The shard's rows in run order: `(file_index, input_row) -> (position, group)`.
fn run_order(shard: &ShardPlan, mode: ReuseMode) -> HashMap<(u32, u64), (usize, Option<GroupTag>)> {
    let mut rows: Vec<((u32, u64), Option<GroupTag>)> = shard
        .groups
        .iter()
        .flat_map(|g| {
            let tag = GroupTag {
                id: g.id,
                prefix_blocks: g.prefix_tokens / BLOCK_SIZE,
            };
            g.rows.iter().map(move |&[f, r]| ((f as u32, r), Some(tag)))
        })
        .collect();
    if mode != ReuseMode::Planned {
        rows.sort_by_key(|(key, _)| *key);
        rows.iter_mut().for_each(|(_, g)| *g = None);
    }
    rows.into_iter()
        .enumerate()
        .map(|(pos, (key, group))| (key, (pos, group)))
        .collect()
}

/// `specbatch run`: runs (or resumes) one shard of a job to completion.
pub fn run_job(spec_path: &str, opts: &RunOptions) -> Result<RunSummary, JobError> {
    let started = Instant::now();
    let checked = check(spec_path, opts.output.as_deref(), Engines::of(opts))?;
    let shard = resolve_shard(opts.shard, |k| std::env::var(k).ok())?;
    let root = PathBuf::from(&checked.spec.output.path);
    let mut out_cfg = OutputConfig::new(&checked.spec.output, &checked.inputs, &checked.spec_hash);
    out_cfg.shard = shard;
    // The directory must be this job's before a plan is stored in it, and the
    // plan must fit before the shard's directories are made.
    OutputState::claim(&out_cfg)?;
    init_threads(checked.spec.engine.threads);
    let (plan, _) = load_or_create(&root, &checked.identity(), opts.shards, |n| {
        if shard >= n {
            return Err(PlanError::ShardOutOfRange { shard, shards: n });
        }
        planning::make_plan(&checked, n)
    })?;
    let shard_plan = plan.shard(shard)?;
    let state = OutputState::open(out_cfg)?;
    let order = run_order(shard_plan, opts.reuse);
    let total = shard_plan.rows;
    let skip = state.committed().clone();
    let skipped = state.totals().rows;
    let Checked {
        spec,
        inputs,
        model,
        calibration,
        model_hash,
        draft,
        devices,
        ..
    } = checked;
    let mut writer = state.into_writer(WriterConfig::new(&spec.output, &model.name));
    let LoadedModel {
        weights,
        tokenizer,
        chat,
        ..
    } = model;
    let backends = Backends::new(&spec, &model_hash, weights, draft, calibration);
    let engine_cfg = engine_config(&spec, opts.reuse != ReuseMode::Off);
    let engine_counters = Arc::new(EngineCounters::default());
    let job_counters = Arc::new(JobCounters::default());
    // Every engine shares the counters: the progress line shows the sum.
    let build = |device: &Device| {
        let (exec, speculation) = backends.build(device)?;
        let engine = Engine::new(exec, &tokenizer, &engine_cfg, engine_counters.clone());
        Ok::<_, JobError>(match speculation {
            Some(spec) => engine.with_speculation(spec),
            None => engine,
        })
    };
    let run = |mut engine: Engine<'_, Box<dyn Executor>>,
               input: &Receiver<Request>,
               output: &Sender<RowResult>|
     -> Result<Option<SpecStats>, JobError> {
        engine.run(input, output)?;
        Ok(engine.spec_stats().cloned())
    };
    let encoder = Encoder::new(&tokenizer, chat.as_ref(), &spec);
    let inputs = &inputs;
    let devices: Vec<Device> = devices.iter().map(|d| d.device).collect();
    let (queue, locals) = UnitQueue::<Unit<Request>>::new(devices.len());

    let (out_tx, out_rx) = bounded::<RowResult>(1024);
    let (prep_res, write_res, engine_res) = std::thread::scope(|s| {
        let fns = EngineFns {
            build: &build,
            run: &run,
        };
        let capacity = engine_cfg.max_running * 2;
        // The engines are built before the progress display and the other
        // stages start: a device that fails stops the job before any work.
        let pool = pool::start(s, &queue, locals, &devices, capacity, out_tx.clone(), fns)?;
        let progress = Progress::start(
            total,
            skipped,
            job_counters.clone(),
            engine_counters.clone(),
        );
        let producer = pool.producer();
        let prep_out = out_tx.clone();
        drop(out_tx);
        let encoder = &encoder;
        let order = &order;
        // Reads and tokenizes the shard's rows, then hands them to the
        // engines in run order, a shared-prefix group at a time; rows that
        // fail early go straight out.
        let prepare = s.spawn(move || -> Result<(), IoError> {
            let mut slots: Vec<Option<Request>> = Vec::new();
            slots.resize_with(order.len(), || None);
            for batch in inputs.stream(READ_BATCH_ROWS, skip) {
                let mine: Vec<InputRow> = batch?
                    .into_iter()
                    .filter(|r| order.contains_key(&(r.key.file_index, r.key.input_row)))
                    .collect();
                let prepared: Vec<_> = mine.into_par_iter().map(|r| encoder.encode(r)).collect();
                for p in prepared {
                    match p {
                        Ok(mut req) => {
                            let (pos, group) = order[&(req.key.file_index, req.key.input_row)];
                            req.group = group;
                            slots[pos] = Some(req);
                        }
                        Err(res) => {
                            if prep_out.send(*res).is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
            let requests = slots.into_iter().flatten();
            // A group that shares no full block is the planner packing
            // unrelated rows: split, its rows lose nothing and the engines
            // can share them out.
            let shared = |r: &Request| r.group.filter(|g| g.prefix_blocks > 0).map(|g| g.id);
            for unit in pool::units(requests, shared) {
                if !producer.push(unit) {
                    break;
                }
            }
            Ok(())
        });
        let counters = job_counters.clone();
        let write = s.spawn(move || -> Result<_, IoError> {
            let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut samples = Vec::new();
            for r in out_rx {
                match &r.outcome {
                    Err(e) => {
                        counters.rows_error.fetch_add(1, Ordering::Relaxed);
                        *kinds.entry(e.kind.as_str()).or_default() += 1;
                    }
                    Ok(g) if samples.len() < summary::SUMMARY_SAMPLES => {
                        samples.push((r.key.id.clone(), g.text.clone()));
                    }
                    Ok(_) => {}
                }
                writer.push(r)?;
                counters.rows_done.fetch_add(1, Ordering::Relaxed);
            }
            Ok((writer.finish()?, kinds, samples))
        });
        let engine_res = pool.join();
        let results = (
            prepare.join().map_err(|_| JobError::Stage("tokenizer")),
            write.join().map_err(|_| JobError::Stage("writer")),
            engine_res,
        );
        progress.finish();
        Ok::<_, JobError>(results)
    })?;
    // The writer's failure explains an engine that lost its output channel.
    let (written, error_kinds, samples) = write_res??;
    prep_res??;
    let per_engine = engine_res?;
    if written.totals.rows != total {
        return Err(IoError::Incomplete {
            committed: written.totals.rows,
            expected: total,
        }
        .into());
    }
    let engines = devices
        .iter()
        .zip(&per_engine)
        .map(|(device, (_, rows))| (device.to_string(), *rows))
        .collect();
    let speculation = per_engine
        .into_iter()
        .filter_map(|(stats, _)| stats)
        .reduce(|mut sum, stats| {
            sum.add(&stats);
            sum
        });
    write_done(
        &root,
        &ShardDone::from_summary(shard, &written, started.elapsed(), speculation.clone()),
    )?;
    let outcome = finalize_job(&root, &plan)?;
    let t = written.totals;
    Ok(RunSummary {
        output: root.display().to_string(),
        shard,
        shards: plan.shards,
        pending_shards: match outcome {
            FinalizeOutcome::Done(_) => Vec::new(),
            FinalizeOutcome::Pending(p) => p,
        },
        total: t.rows,
        ok: t.ok,
        error: t.error,
        skipped: written.skipped,
        prompt_tokens: t.prompt_tokens,
        cached_tokens: t.cached_tokens,
        completion_tokens: t.completion_tokens,
        wall_secs: started.elapsed().as_secs_f64(),
        error_kinds,
        samples,
        speculation,
        engines,
    })
}
