//! The YAML job spec: types, parsing with located errors, validation and the
//! stable spec hash.

pub mod spec;
