//! Typed errors of the io module.
//!
//! Every error names the file (and column, where there is one) it is about, so
//! a user can fix the input or the output path without reading code.
//! [`IoError::is_retriable`] tells the runner whether a retry could help; it
//! drives the process exit code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("input pattern `{pattern}` is not a valid glob: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("input pattern `{0}` matches no file")]
    NoMatch(String),
    #[error("input file `{0}` does not exist or is not a file")]
    MissingFile(String),
    #[error("no prompt column: set inputs.prompt_column or inputs.messages_column")]
    NoPromptColumn,
    #[error("`{path}` is not a readable Parquet file: {reason}")]
    NotParquet { path: String, reason: String },
    #[error("input file `{path}` has no column `{column}` (named by inputs.{role})")]
    MissingColumn {
        path: String,
        column: String,
        role: &'static str,
    },
    #[error("column `{column}` (inputs.{role}) in `{path}` has type {found}; expected {expected}")]
    ColumnType {
        path: String,
        column: String,
        role: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error(
        "pass-through column `{column}` has type {found} in `{path}` but {expected} in `{first_path}`; a pass-through column must have one type in every input file"
    )]
    PassThroughType {
        column: String,
        path: String,
        found: String,
        first_path: String,
        expected: String,
    },
    #[error(
        "pass-through column `{0}` is listed twice or has the name of an output column; rename it in the input"
    )]
    PassThroughName(String),
    #[error("reading `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("{action} `{path}`: {source}")]
    Fs {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing Parquet part `{path}`: {reason}")]
    WritePart { path: PathBuf, reason: String },
    #[error(
        "output directory `{path}` holds a different job (spec hash {found}, this job {expected}); choose another output.path or set output.overwrite: true to replace it"
    )]
    SpecHashMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "output directory `{path}` was written from other input files ({reason}); choose another output.path or set output.overwrite: true to replace it"
    )]
    InputsChanged { path: PathBuf, reason: String },
    #[error(
        "output directory `{0}` is not empty and holds no specbatch _job.json; choose another output.path"
    )]
    NotAnOutputDir(PathBuf),
    #[error("`{path}` already exists with other content: {reason}")]
    Conflict { path: PathBuf, reason: String },
    #[error("`{path}` is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("row cannot be written: {0}")]
    InvalidRow(String),
    #[error("output is incomplete: {committed} of {expected} rows committed; _SUCCESS not written")]
    Incomplete { committed: u64, expected: u64 },
}

impl IoError {
    /// False for problems a retry cannot fix (bad input, schema, a foreign or
    /// corrupt output directory); true for filesystem trouble and races with
    /// another attempt, which a restart resolves by resuming.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            IoError::Read { .. }
                | IoError::Fs { .. }
                | IoError::WritePart { .. }
                | IoError::Conflict { .. }
                | IoError::Incomplete { .. }
        )
    }

    pub(crate) fn fs(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        IoError::Fs {
            action,
            path: path.into(),
            source,
        }
    }
}
