//! Loading a job spec: YAML parse (unknown keys rejected), validation, and
//! errors that name the field path and the YAML line and column.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::located::Locations;
use super::spec::JobSpec;
use super::validate::validate;

/// Why a job spec cannot be used (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read job spec {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: `{field}`: {message}{}", at(*.line, *.column))]
    Invalid {
        file: String,
        /// Dotted field path (`generation.top_p`); `(document)` for the whole file.
        field: String,
        message: String,
        line: Option<u64>,
        column: Option<u64>,
    },
}

fn at(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        _ => String::new(),
    }
}

impl JobSpec {
    /// Reads, parses and validates a job spec file.
    pub fn load(path: &Path) -> Result<JobSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            file: path.display().to_string(),
            source,
        })?;
        JobSpec::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<JobSpec, SpecError> {
        let mut field = String::new();
        let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize::<_, JobSpec>(de).map_err(|e| {
                field = e.path().to_string();
                e.into_inner()
            })
        });
        let spec = match parsed {
            Ok(spec) => spec,
            Err(e) => {
                let loc = e.location();
                return Err(SpecError::Invalid {
                    file: file.to_string(),
                    field: if field.is_empty() || field == "." {
                        "(document)".into()
                    } else {
                        field
                    },
                    message: first_line(&e.to_string()),
                    line: loc.map(|l| l.line()),
                    column: loc.map(|l| l.column()),
                });
            }
        };
        if let Err((field, message)) = validate(&spec) {
            let loc = Locations::of(text).find(&field);
            return Err(SpecError::Invalid {
                file: file.to_string(),
                field,
                message,
                line: loc.map(|l| l.0),
                column: loc.map(|l| l.1),
            });
        }
        Ok(spec)
    }

    /// A stable hex sha256 of what determines the results: inputs, model and
    /// generation settings, with defaults filled in. Engine limits and output
    /// settings are left out on purpose: changing threads, memory or the
    /// output path must not make a resumed run refuse its own output (batch
    /// invariance makes results independent of them).
    pub fn spec_hash(&self) -> String {
        let canonical = serde_json::json!({
            "inputs": self.inputs,
            "model": self.model,
            "generation": self.generation,
        });
        // serde_json maps are sorted by key, so this text is canonical.
        let text = canonical.to_string();
        format!("{:x}", Sha256::digest(text.as_bytes()))
    }
}

/// serde-saphyr appends its own location and source snippets to the message;
/// keep the message (the location is reported once, by [`SpecError`]).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    line.rfind(" at line ")
        .map_or(line, |i| &line[..i])
        .to_string()
}
