//! Parquet input and output: streaming reader, fixed-schema writer, the
//! create-if-absent commit protocol, the manifest and resume.

pub mod row;
