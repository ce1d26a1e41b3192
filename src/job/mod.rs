//! The YAML job spec: types, parsing with located errors, validation and the
//! stable spec hash.

mod load;
mod located;
pub mod spec;
mod validate;

pub use load::SpecError;

#[cfg(test)]
mod tests;
