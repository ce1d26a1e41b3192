//! Compute backends behind the [`executor::Executor`] trait. The CPU backend
//! is the reference.

pub mod cpu;
pub mod cuda;
pub mod executor;
