//! `specbatch calibrate`: fits a job's drafter confidences (Sequential
//! Temperature Scaling, `src/spec/calibration.rs`) on held-out rows and
//! writes the file `speculation.calibration` names.
//!
//! It runs the job's model and drafter, as the job would, on the first
//! `rows` rows of the job's inputs (input order), with every draft verified
//! in full so the recorded rounds are not biased by the verification budget
//! ([`Speculator::recording`](crate::engine::speculation::Speculator::recording)).
//! Generated text is discarded and nothing is written to the job's output.
//! Rows used here should not be rows whose speed the calibration will be
//! judged on: hold them out of the measured job.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam::channel::bounded;

use super::backends::Backends;
use super::{Engines, READ_BATCH_ROWS, check, engine_config};
use crate::backend::device::Device;
use crate::engine::runner::{Engine, EngineCounters};
use crate::error::JobError;
use crate::io::RowSet;
use crate::io::row::RowResult;
use crate::job::spec::SpecMethod;
use crate::spec::{Sts, StsError};

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("speculation.method is `none`: the job has no drafter to calibrate")]
    NoDrafter,
    #[error("no draft was verified on {rows} row(s), so there is nothing to fit: use more rows")]
    NoRounds { rows: usize },
    #[error(transparent)]
    Save(#[from] StsError),
}

/// What a calibration run fitted, for the user.
#[derive(Debug, Clone)]
pub struct CalibrationReport {
    pub path: PathBuf,
    pub rows: usize,
    /// Verify rounds the fit used.
    pub rounds: usize,
    pub temperatures: Vec<f64>,
    /// Per position: ECE of the survival, raw and calibrated.
    pub ece_raw: Vec<f64>,
    pub ece_fitted: Vec<f64>,
}

impl fmt::Display for CalibrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "calibration: {} ({} verify rounds from {} rows)",
            self.path.display(),
            self.rounds,
            self.rows
        )?;
        writeln!(f, "position  temperature  survival ECE raw -> calibrated")?;
        for (k, t) in self.temperatures.iter().enumerate() {
            writeln!(
                f,
                "{:>8}  {t:>11.3}  {:.4} -> {:.4}",
                k + 1,
                self.ece_raw[k],
                self.ece_fitted[k]
            )?;
        }
        Ok(())
    }
}

/// Fits the calibration of `spec_path`'s drafter on its first `rows` input
/// rows and writes it to `out`.
pub fn calibrate_job(
    spec_path: &str,
    rows: usize,
    out: &Path,
) -> Result<CalibrationReport, JobError> {
    let checked = check(spec_path, None, Engines::FromSpec)?;
    let spec = &checked.spec;
    if spec.speculation.method == SpecMethod::None {
        return Err(CalibrateError::NoDrafter.into());
    }
    let encoder = checked.encoder();
    let mut requests = Vec::new();
    // Reads no further than the rows it runs.
    'read: for batch in checked.inputs.stream(READ_BATCH_ROWS, RowSet::default()) {
        for row in batch? {
            if requests.len() == rows {
                break 'read;
            }
            // Rows that cannot be encoded are not held-out data; skip them.
            if let Ok(req) = encoder.encode(row) {
                requests.push(req);
            }
        }
    }
    let rows = requests.len();
    let super::Checked {
        spec,
        model,
        model_hash,
        draft,
        devices,
        ..
    } = checked;
    // One engine is enough to watch the drafter; it runs where the job would.
    let device = devices.first().map_or(Device::Cpu, |d| d.device);
    let backends = Backends::new(&spec, &model_hash, model.weights, draft, None);
    let (exec, speculator) = backends.build(&device)?;
    let speculator = speculator.ok_or(CalibrateError::NoDrafter)?.recording();
    // Rows are independent here: prefix reuse changes only speed.
    let cfg = engine_config(&spec, true);
    let mut engine = Engine::new(
        exec,
        &model.tokenizer,
        &cfg,
        Arc::new(EngineCounters::default()),
    )
    .with_speculation(speculator);
    let (req_tx, req_rx) = bounded(rows.max(1));
    let (out_tx, out_rx) = bounded::<RowResult>(rows.max(1));
    for req in requests {
        req_tx.send(req).expect("the queue holds every row");
    }
    drop(req_tx);
    engine.run(&req_rx, &out_tx)?;
    drop(out_tx);
    drop(out_rx);
    let records = engine.take_step_records();
    if records.is_empty() {
        return Err(CalibrateError::NoRounds { rows }.into());
    }
    let positions = spec.speculation.max_draft;
    let sts = Sts::fit(&records, positions);
    sts.save(out).map_err(CalibrateError::from)?;
    let identity = Sts::new(vec![1.0]).expect("1 is a valid temperature");
    Ok(CalibrationReport {
        path: out.to_path_buf(),
        rows,
        rounds: records.len(),
        temperatures: sts.temperatures().to_vec(),
        ece_raw: identity.survival_ece(&records, positions),
        ece_fitted: sts.survival_ece(&records, positions),
    })
}
