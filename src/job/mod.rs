//! The YAML job spec: types, parsing with located errors, validation and the
//! stable spec hash.
//!
//! Entry points: [`JobSpec::load`] / [`JobSpec::from_yaml`] (parse + validate;
//! every problem is a [`Diagnostic`] with field path, line and column),
//! [`JobSpec::validate`] and [`JobSpec::spec_hash`]. docs/job-spec.md is the
//! user-facing reference and must match these types.

mod byte_size;
mod error;
mod expected;
mod hash;
mod load;
mod locate;
pub mod spec;
#[cfg(test)]
mod tests;
mod validate;

pub use error::{Diagnostic, SpecError};
pub use spec::JobSpec;
pub use validate::Violation;
