//! Errors from loading a job spec.
//!
//! Invariant: every problem found in a spec's text is a [`Diagnostic`] that
//! names the field path and a 1-based line and column in the file, rendered
//! as `generation.top_p: must be in (0, 1], got 1.5 (jobs/x.yaml line 12, column 10)`.

use std::fmt;

use crate::spec::StsError;

/// One problem in a spec, located in its YAML source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name (or other source name) given to the loader.
    pub source_name: String,
    /// Dotted field path, e.g. `generation.top_p` or `inputs.pass_through[1]`;
    /// `(top level)` for the document itself.
    pub field: String,
    pub message: String,
    /// 1-based; the offending key, or its value for type errors.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({} line {}, column {})",
            self.field, self.message, self.source_name, self.line, self.column
        )
    }
}

/// Why a job spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read job spec `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, does not match the schema, or breaks a value
    /// rule. Never empty; in document order. A parse or schema error stops
    /// at the first problem; value rules report every violation.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    /// A valid spec asks for something the model cannot do. Found only once
    /// the model is loaded, so it names the field but no position.
    #[error("{field}: {message} (model `{model}`)")]
    ModelMismatch {
        field: &'static str,
        model: String,
        message: String,
    },
    /// `speculation.calibration` names a file that cannot be read or is not
    /// a valid calibration; the source names the file.
    #[error("speculation.calibration: {source}")]
    Calibration {
        #[source]
        source: StsError,
    },
    /// `speculation.draft_model` cannot be loaded, or cannot draft for the
    /// job's model (another vocabulary, an architecture no drafter runs).
    #[error("speculation.draft_model `{path}`: {message}")]
    DraftModel { path: String, message: String },
}

impl SpecError {
    /// The located problems; empty for every variant but
    /// [`SpecError::Invalid`].
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            SpecError::Read { .. }
            | SpecError::ModelMismatch { .. }
            | SpecError::Calibration { .. }
            | SpecError::DraftModel { .. } => &[],
            SpecError::Invalid(d) => d,
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}
