//! Each engine's backend and speculator, built from a checked job for the
//! engine's device: the factory a pool calls once per device.
//!
//! Invariants: `engine.kv_cache_bytes` is each engine's own budget, on its
//! own device (the CUDA executor checks its GPU's free memory). The host
//! weights move into the CPU engine; the spec allows one, and a second
//! (only through [`RunOptions::engines`](super::RunOptions)) maps the model
//! file again. GPU engines borrow the host weights to upload them. A draft
//! model belongs to one CPU engine: the checks refuse it anywhere else, and
//! a second engine asking for it is refused here too rather than silently
//! drafting another way. A device is never swapped for another.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::speculation::{DraftSource, engine_speculation};
use super::{BLOCK_SIZE, job_backend};
use crate::backend::cuda;
use crate::backend::device::Device;
use crate::backend::executor::Executor;
use crate::backend::resolve::DeviceError;
use crate::engine::runner::EngineError;
use crate::engine::speculation::Speculator;
use crate::error::JobError;
use crate::job::spec::{JobSpec, SpecMethod};
use crate::model::load::{ModelWeights, load_model};
use crate::spec::Sts;

/// What every engine of a job is built from.
pub(crate) struct Backends<'a> {
    spec: &'a JobSpec,
    model_hash: &'a str,
    calibration: Option<Sts>,
    /// `None` once the CPU engine took them.
    weights: Mutex<Option<ModelWeights>>,
    /// `None` once an engine took it (or when the job has none).
    draft: Mutex<Option<DraftSource>>,
}

impl<'a> Backends<'a> {
    pub(crate) fn new(
        spec: &'a JobSpec,
        model_hash: &'a str,
        weights: ModelWeights,
        draft: Option<DraftSource>,
        calibration: Option<Sts>,
    ) -> Backends<'a> {
        Backends {
            spec,
            model_hash,
            calibration,
            weights: Mutex::new(Some(weights)),
            draft: Mutex::new(draft),
        }
    }

    /// The backend and speculator of the engine on `device`.
    pub(crate) fn build(
        &self,
        device: &Device,
    ) -> Result<(Box<dyn Executor>, Option<Speculator>), JobError> {
        match *device {
            Device::Cpu => {
                let weights = match lock(&self.weights).take() {
                    Some(w) => w,
                    None => load_model(&self.spec.model)?.weights,
                };
                let draft = lock(&self.draft).take();
                if self.spec.speculation.method == SpecMethod::DraftModel && draft.is_none() {
                    return Err(self.one_engine_only().into());
                }
                job_backend(
                    self.spec,
                    weights,
                    draft,
                    self.calibration.clone(),
                    self.model_hash,
                )
            }
            Device::Cuda(index) => {
                if matches!(
                    self.spec.speculation.method,
                    SpecMethod::DraftModel | SpecMethod::Dspark
                ) {
                    return Err(self.one_engine_only().into());
                }
                let mut exec: Box<dyn Executor> = {
                    let mut held = lock(&self.weights);
                    let weights = match held.take() {
                        Some(w) => w,
                        None => load_model(&self.spec.model)?.weights,
                    };
                    let weights = &*held.insert(weights);
                    let kv_bytes = self.spec.engine.kv_cache_bytes;
                    cuda::executor(weights, index, kv_bytes, BLOCK_SIZE)
                        .map_err(DeviceError::from)?
                };
                let speculation = engine_speculation(
                    self.spec,
                    self.calibration.clone(),
                    &mut *exec,
                    device,
                    self.model_hash,
                    None,
                )
                .map_err(EngineError::from)?;
                Ok((exec, speculation))
            }
        }
    }

    fn one_engine_only(&self) -> DeviceError {
        DeviceError::SpeculationNeedsOneCpuEngine {
            method: self.spec.speculation.method.as_str(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Taken or not, the value is whole: a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
