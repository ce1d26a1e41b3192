//! Compute backends. The CPU backend is the reference.

pub mod cpu;
