//! The step loop. Each step: the [`scheduler`] plans which sequences feed
//! which tokens (plain data), a backend executes the batch, the [`sampler`]
//! turns logits into tokens, and the scheduler's bookkeeping is updated. The
//! scheduler never calls the backend; the [`runner`] owns both.

pub mod draft_model;
pub mod drafter;
pub mod dspark_drafter;
pub mod rng;
pub mod runner;
pub mod sampler;
pub mod scheduler;
pub mod speculation;
pub mod sps_profile;
