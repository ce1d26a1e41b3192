//! Job-level errors and their exit codes.
//!
//! Exit code 2 means "fix the job, do not retry": a bad spec, model or input
//! schema, devices this machine does not have, or an output directory that
//! belongs to another job. Exit code 1
//! means a retry may succeed (filesystem trouble, a crash of a stage); the
//! commit protocol makes retries safe.

use crate::backend::resolve::DeviceError;
use crate::engine::runner::EngineError;
use crate::io::IoError;
use crate::job::SpecError;
use crate::model::error::ModelError;
use crate::pipeline::CalibrateError;
use crate::plan::PlanError;

/// Exit code for problems a retry cannot fix.
pub const EXIT_NOT_RETRIABLE: u8 = 2;
/// Exit code for problems a retry may fix.
pub const EXIT_RETRIABLE: u8 = 1;

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("pipeline stage `{0}` stopped unexpectedly")]
    Stage(&'static str),
    #[error("not every shard is done: shard(s) {0:?} have no _DONE.json yet")]
    ShardsPending(Vec<u32>),
    #[error(transparent)]
    Calibrate(#[from] CalibrateError),
    /// The job's devices: named but missing, or unable to run it.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl JobError {
    pub fn exit_code(&self) -> u8 {
        match self {
            JobError::Spec(_) | JobError::Model(_) => EXIT_NOT_RETRIABLE,
            JobError::Calibrate(CalibrateError::Save(_)) => EXIT_RETRIABLE,
            JobError::Calibrate(_) => EXIT_NOT_RETRIABLE,
            JobError::Device(e) if e.is_retriable() => EXIT_RETRIABLE,
            JobError::Device(_) => EXIT_NOT_RETRIABLE,
            JobError::Io(e) if !e.is_retriable() => EXIT_NOT_RETRIABLE,
            JobError::Plan(PlanError::Io(e)) if e.is_retriable() => EXIT_RETRIABLE,
            JobError::Plan(_) => EXIT_NOT_RETRIABLE,
            JobError::Io(_)
            | JobError::Engine(_)
            | JobError::Stage(_)
            | JobError::ShardsPending(_) => EXIT_RETRIABLE,
        }
    }
}
