//! Reading a job spec: YAML text -> typed [`JobSpec`] -> validated, with
//! every problem located by field path, line and column.
//!
//! serde-saphyr gives each deserialization error a position but no field
//! path; [`SourceMap`] turns the position back into a path (the key of an
//! unknown field, the value of a wrong type, the mapping missing a key).
//! Validation works on the typed spec and names fields by path;
//! [`SourceMap::locate`] turns the path into a position.

use std::path::Path;

use serde_saphyr::{Error as YamlError, MessageFormatter, UserMessageFormatter};

use super::error::{Diagnostic, SpecError};
use super::expected::expected;
use super::locate::{Pos, Shape, SourceMap, join};
use super::spec::JobSpec;

/// How the document itself is named in diagnostics.
const TOP_LEVEL: &str = "(top level)";

impl JobSpec {
    /// Reads, parses and validates the spec file at `path`. Relative paths
    /// inside the spec are left as written (they resolve against the
    /// working directory when used).
    pub fn load(path: impl AsRef<Path>) -> Result<JobSpec, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        JobSpec::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates spec text; `source_name` names it in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<JobSpec, SpecError> {
        let located = |field: String, message: String, pos: Pos| Diagnostic {
            source_name: source_name.to_string(),
            field: clean(&field),
            message: clean(&message),
            line: pos.line,
            column: pos.column,
        };
        let map = SourceMap::build(text);
        if map.is_empty() {
            let message = "missing required key (the spec is empty)".to_string();
            return Err(SpecError::Invalid(vec![located(
                "inputs".to_string(),
                message,
                Pos::START,
            )]));
        }
        let spec: JobSpec = serde_saphyr::from_str(text).map_err(|e| {
            let (field, message, pos) = explain(&e, &map);
            SpecError::Invalid(vec![located(field, message, pos)])
        })?;
        if let Err(violations) = spec.validate() {
            let mut found: Vec<Diagnostic> = violations
                .into_iter()
                .map(|v| {
                    let pos = map.locate(&v.field);
                    located(v.field, v.message, pos)
                })
                .collect();
            found.sort_by_key(|d| (d.line, d.column));
            return Err(SpecError::Invalid(found));
        }
        Ok(spec)
    }
}

/// Field path, message and position for a YAML or schema error.
fn explain(err: &YamlError, map: &SourceMap) -> (String, String, Pos) {
    let inner = err.without_snippet();
    let pos = inner
        .location()
        .filter(|l| l.line() > 0)
        .map_or(Pos::START, |l| Pos {
            line: l.line() as usize,
            column: l.column() as usize,
        });
    let library_message = UserMessageFormatter.format_message(inner).into_owned();
    let nearest = || {
        map.value_at(pos)
            .or_else(|| map.key_at(pos))
            .or_else(|| map.preceding(pos))
            .map(|n| n.path.clone())
    };
    let (path, message) = match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let path = map
                .key_at(pos)
                .map(|n| n.path.clone())
                .or_else(|| map.value_at(pos).map(|n| join(&n.path, field)))
                .unwrap_or_else(|| field.clone());
            let message = if expected.is_empty() {
                "unknown key".to_string()
            } else {
                format!("unknown key; expected one of: {}", expected.join(", "))
            };
            (path, message)
        }
        YamlError::MultipleDocuments { .. } => (String::new(), library_message),
        YamlError::SerdeMissingField { field, .. } => {
            let path = map
                .value_at(pos)
                .map_or_else(|| field.to_string(), |n| join(&n.path, field));
            (path, "missing required key".to_string())
        }
        YamlError::DuplicateMappingKey { .. } => {
            let path = map.key_at(pos).map(|n| n.path.clone()).or_else(nearest);
            (path.unwrap_or_default(), library_message)
        }
        YamlError::SerdeInvalidType { .. }
        | YamlError::SerdeInvalidValue { .. }
        | YamlError::SerdeUnknownVariant { .. }
        | YamlError::InvalidScalar { .. }
        | YamlError::Unexpected { .. }
        | YamlError::NullIntoString { .. }
        | YamlError::InvalidBooleanStrict { .. } => match map.value_at(pos) {
            Some(n) => {
                // A mapping where a mapping belongs means the library fell
                // back to the enclosing mapping's position: its own words
                // are then more accurate than "expected X, got Y".
                let fallback = n.shape == Shape::Mapping
                    && expected(&n.path).is_some_and(|w| w.starts_with("a mapping"));
                let message = match expected(&n.path) {
                    Some(want) if !fallback => {
                        format!("expected {want}, got {}", n.shape.describe())
                    }
                    _ => library_message,
                };
                (n.path.clone(), message)
            }
            None => (nearest().unwrap_or_default(), library_message),
        },
        _ => (nearest().unwrap_or_default(), library_message),
    };
    let path = if path.is_empty() {
        TOP_LEVEL.to_string()
    } else {
        path
    };
    (path, message, pos)
}

/// Keeps control characters from user text out of one-line messages.
fn clean(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
