//! The step loop: scheduler, sampler, stop handling, metrics.
