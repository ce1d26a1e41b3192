//! Compute backends behind the [`executor::Executor`] trait. The CPU backend
//! is the reference. `device` names where an engine runs; `resolve` turns a
//! job's devices into the ones this machine has.

pub mod cpu;
pub mod cuda;
pub mod device;
pub mod executor;
pub mod resolve;
