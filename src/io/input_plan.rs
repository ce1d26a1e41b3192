//! Up-front validation of the job's inputs: every file's Parquet footer and
//! the type of every named column, before any data page is read.
//!
//! Invariant: an [`InputPlan`] exists only for inputs where every file is a
//! readable Parquet file holding every named column with an accepted type,
//! and every pass-through column has one type across all files. Problems
//! inside rows (nulls, bad values) are left to the stream as row errors.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use super::arrow_values::{TEXT_TYPES, is_text};
use super::error::IoError;
use super::input_paths::resolve_paths;
use super::messages::is_messages_type;
use super::output_schema::FIXED_COLUMNS;
use super::overrides::Override;
use crate::job::spec::InputSpec;

/// One resolved input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// The path as written to the output's `input_file` column.
    pub name: String,
    /// Row count from the footer.
    pub num_rows: u64,
}

/// Which input column plays which role.
#[derive(Debug, Clone)]
pub(crate) struct Roles {
    pub(crate) id: String,
    pub(crate) prompt: Option<String>,
    pub(crate) messages: Option<String>,
    pub(crate) overrides: Vec<(Override, String)>,
    pub(crate) pass_through: Vec<String>,
}

impl Roles {
    /// Every input column the stream must read.
    pub(crate) fn columns(&self) -> HashSet<&str> {
        let mut out: HashSet<&str> = HashSet::from([self.id.as_str()]);
        out.extend(self.prompt.as_deref());
        out.extend(self.messages.as_deref());
        out.extend(self.overrides.iter().map(|(_, c)| c.as_str()));
        out.extend(self.pass_through.iter().map(String::as_str));
        out
    }
}

/// Validated inputs: the sorted file list and the column roles.
#[derive(Debug, Clone)]
pub struct InputPlan {
    pub(crate) files: Vec<InputFile>,
    pub(crate) roles: Arc<Roles>,
    pub(crate) pass_through_fields: Vec<FieldRef>,
}

impl InputPlan {
    /// Files in `file_index` order.
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// The `input_file` names in `file_index` order.
    pub fn file_names(&self) -> Vec<String> {
        self.files.iter().map(|f| f.name.clone()).collect()
    }

    /// Rows in all files, from the footers.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.num_rows).sum()
    }

    /// Output fields of the pass-through columns, in spec order (always nullable).
    pub fn pass_through_fields(&self) -> &[FieldRef] {
        &self.pass_through_fields
    }
}

const ID_TYPES: &str = "a string or integer type";
const MESSAGES_TYPES: &str =
    "list<struct<role: utf8, content: utf8>> (or large_list) or a JSON string";

fn is_id_type(dt: &DataType) -> bool {
    is_text(dt) || dt.is_integer()
}

/// Resolves and checks the spec's inputs; reads footers only.
pub fn validate_inputs(spec: &InputSpec) -> Result<InputPlan, IoError> {
    if spec.prompt_column.is_none() && spec.messages_column.is_none() {
        return Err(IoError::NoPromptColumn);
    }
    let mut names = HashSet::new();
    for column in &spec.pass_through {
        if FIXED_COLUMNS.contains(&column.as_str()) || !names.insert(column.as_str()) {
            return Err(IoError::PassThroughName(column.clone()));
        }
    }
    let o = &spec.overrides;
    let overrides: Vec<(Override, String)> = [
        (Override::MaxNewTokens, &o.max_new_tokens),
        (Override::Temperature, &o.temperature),
        (Override::TopP, &o.top_p),
        (Override::TopK, &o.top_k),
        (Override::Seed, &o.seed),
        (Override::Reasoning, &o.reasoning),
    ]
    .into_iter()
    .filter_map(|(w, c)| c.clone().map(|c| (w, c)))
    .collect();
    let roles = Roles {
        id: spec.id_column.clone(),
        prompt: spec.prompt_column.clone(),
        messages: spec.messages_column.clone(),
        overrides,
        pass_through: spec.pass_through.clone(),
    };

    let mut files = Vec::new();
    let mut pass_through_fields: Vec<FieldRef> = Vec::new();
    for path in resolve_paths(&spec.paths)? {
        let name = path.to_string_lossy().into_owned();
        let file =
            std::fs::File::open(&path).map_err(|e| IoError::fs("opening input", &path, e))?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| {
            IoError::NotParquet {
                path: name.clone(),
                reason: e.to_string(),
            }
        })?;
        let schema = meta.schema();
        check_roles(&name, schema, &roles)?;
        for (i, column) in roles.pass_through.iter().enumerate() {
            let found = column_field(&name, schema, column, "pass_through")?.data_type();
            match pass_through_fields.get(i) {
                None => pass_through_fields.push(Arc::new(Field::new(column, found.clone(), true))),
                Some(first) if first.data_type() == found => {}
                Some(first) => {
                    return Err(IoError::PassThroughType {
                        column: column.clone(),
                        path: name,
                        found: found.to_string(),
                        first_path: files
                            .first()
                            .map(|f: &InputFile| f.name.clone())
                            .unwrap_or_default(),
                        expected: first.data_type().to_string(),
                    });
                }
            }
        }
        let num_rows = u64::try_from(meta.metadata().file_metadata().num_rows()).map_err(|_| {
            IoError::NotParquet {
                path: name.clone(),
                reason: "negative row count in footer".into(),
            }
        })?;
        files.push(InputFile {
            path,
            name,
            num_rows,
        });
    }
    Ok(InputPlan {
        files,
        roles: Arc::new(roles),
        pass_through_fields,
    })
}

fn column_field<'a>(
    path: &str,
    schema: &'a Schema,
    column: &str,
    role: &'static str,
) -> Result<&'a Field, IoError> {
    schema
        .field_with_name(column)
        .map_err(|_| IoError::MissingColumn {
            path: path.to_string(),
            column: column.to_string(),
            role,
        })
}

fn check_type(
    path: &str,
    schema: &Schema,
    column: &str,
    role: &'static str,
    accept: impl Fn(&DataType) -> bool,
    expected: &'static str,
) -> Result<(), IoError> {
    let field = column_field(path, schema, column, role)?;
    if accept(field.data_type()) {
        Ok(())
    } else {
        Err(IoError::ColumnType {
            path: path.to_string(),
            column: column.to_string(),
            role,
            expected,
            found: field.data_type().to_string(),
        })
    }
}

/// Checks every role column of one file (pass-through presence is checked
/// by the caller, which also compares types across files).
pub(crate) fn check_roles(path: &str, schema: &Schema, roles: &Roles) -> Result<(), IoError> {
    check_type(path, schema, &roles.id, "id_column", is_id_type, ID_TYPES)?;
    if let Some(c) = &roles.prompt {
        check_type(path, schema, c, "prompt_column", is_text, TEXT_TYPES)?;
    }
    if let Some(c) = &roles.messages {
        check_type(
            path,
            schema,
            c,
            "messages_column",
            is_messages_type,
            MESSAGES_TYPES,
        )?;
    }
    for (which, c) in &roles.overrides {
        check_type(
            path,
            schema,
            c,
            which.key(),
            |dt| which.accepts(dt),
            which.column_types(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_util::{basic_batch, input_spec, write_parquet};
    use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};

    #[test]
    fn accepts_good_files_and_reports_footer_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        write_parquet(&b, &basic_batch(&["x", "y"], &["p", "q"]));
        write_parquet(&a, &basic_batch(&["z"], &["r"]));
        let mut spec = input_spec(&[&format!("{}/*.parquet", dir.path().display())]);
        spec.pass_through = vec!["topic".into()];
        let plan = validate_inputs(&spec).expect("valid");
        assert_eq!(plan.files().len(), 2);
        assert_eq!(plan.files()[0].path, a);
        assert_eq!(plan.files()[1].num_rows, 2);
        assert_eq!(plan.total_rows(), 3);
        assert_eq!(plan.pass_through_fields()[0].data_type(), &DataType::Int32);
        assert_eq!(plan.pass_through_fields()[0].name(), "topic");
    }

    #[test]
    fn not_parquet_and_truncated_files_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("text.parquet");
        std::fs::write(&text, b"id,prompt\n1,hi\n").expect("write");
        let good = dir.path().join("good.parquet");
        write_parquet(&good, &basic_batch(&["x"], &["p"]));
        let bytes = std::fs::read(&good).expect("read");
        let truncated = dir.path().join("truncated.parquet");
        std::fs::write(&truncated, &bytes[..bytes.len() - 10]).expect("write");
        let empty = dir.path().join("empty.parquet");
        std::fs::write(&empty, b"").expect("write");
        for path in [&text, &truncated, &empty] {
            let name = path.display().to_string();
            match validate_inputs(&input_spec(&[&name])) {
                Err(IoError::NotParquet { path, .. }) => assert_eq!(path, name),
                other => panic!("expected NotParquet for {name}, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_inputs_are_job_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = format!("{}/missing.parquet", dir.path().display());
        assert!(matches!(
            validate_inputs(&input_spec(&[&missing])),
            Err(IoError::MissingFile(p)) if p == missing
        ));
        let glob = format!("{}/*.parquet", dir.path().display());
        assert!(matches!(
            validate_inputs(&input_spec(&[&glob])),
            Err(IoError::NoMatch(p)) if p == glob
        ));
        let mut spec = input_spec(&[&glob]);
        spec.prompt_column = None;
        assert!(matches!(
            validate_inputs(&spec),
            Err(IoError::NoPromptColumn)
        ));
    }

    #[test]
    fn missing_and_mistyped_columns_name_file_column_and_types() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.parquet");
        let name = path.display().to_string();
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("prompt", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
            ("temp", Arc::new(StringArray::from(vec!["hot"])) as ArrayRef),
        ])
        .expect("batch");
        write_parquet(&path, &batch);

        let err = validate_inputs(&input_spec(&[&name])).expect_err("float id");
        match &err {
            IoError::ColumnType {
                path,
                column,
                role,
                found,
                ..
            } => {
                assert_eq!(
                    (path.as_str(), column.as_str(), *role),
                    (name.as_str(), "id", "id_column")
                );
                assert_eq!(found, "Float64");
            }
            other => panic!("expected ColumnType, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("expected a string or integer type"),
            "{err}"
        );

        let mut spec = input_spec(&[&name]);
        spec.id_column = "prompt".into();
        spec.prompt_column = Some("id".into());
        assert!(matches!(
            validate_inputs(&spec),
            Err(IoError::ColumnType { column, role: "prompt_column", .. }) if column == "id"
        ));

        let mut spec = input_spec(&[&name]);
        spec.id_column = "prompt".into();
        spec.prompt_column = Some("nope".into());
        assert!(matches!(
            validate_inputs(&spec),
            Err(IoError::MissingColumn { column, role: "prompt_column", .. }) if column == "nope"
        ));

        let mut spec = input_spec(&[&name]);
        spec.id_column = "prompt".into();
        spec.prompt_column = None;
        spec.messages_column = Some("id".into());
        assert!(matches!(
            validate_inputs(&spec),
            Err(IoError::ColumnType {
                role: "messages_column",
                ..
            })
        ));

        let mut spec = input_spec(&[&name]);
        spec.id_column = "prompt".into();
        spec.prompt_column = Some("temp".into());
        spec.overrides.temperature = Some("temp".into());
        assert!(matches!(
            validate_inputs(&spec),
            Err(IoError::ColumnType {
                role: "overrides.temperature",
                ..
            })
        ));

        // The reasoning override takes a string column, not a number.
        let mut spec = input_spec(&[&name]);
        spec.id_column = "prompt".into();
        spec.prompt_column = Some("temp".into());
        spec.overrides.reasoning = Some("id".into());
        let err = validate_inputs(&spec).expect_err("numeric reasoning column");
        assert!(
            matches!(
                &err,
                IoError::ColumnType {
                    role: "overrides.reasoning",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("a string type"), "{err}");

        let mut spec = input_spec(&[&name]);
        spec.id_column = "prompt".into();
        spec.prompt_column = Some("temp".into());
        spec.pass_through = vec!["gone".into()];
        assert!(matches!(
            validate_inputs(&spec),
            Err(IoError::MissingColumn { column, role: "pass_through", .. }) if column == "gone"
        ));
    }

    #[test]
    fn pass_through_must_keep_one_type_and_a_free_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        write_parquet(&a, &basic_batch(&["x"], &["p"]));
        let other = RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(vec!["y"])) as ArrayRef),
            ("prompt", Arc::new(StringArray::from(vec!["q"])) as ArrayRef),
            ("topic", Arc::new(StringArray::from(vec!["t"])) as ArrayRef),
        ])
        .expect("batch");
        write_parquet(&b, &other);
        let mut spec = input_spec(&[&a.display().to_string(), &b.display().to_string()]);
        spec.pass_through = vec!["topic".into()];
        match validate_inputs(&spec) {
            Err(IoError::PassThroughType {
                column,
                path,
                first_path,
                ..
            }) => {
                assert_eq!(column, "topic");
                assert_eq!(path, b.display().to_string());
                assert_eq!(first_path, a.display().to_string());
            }
            other => panic!("expected PassThroughType, got {other:?}"),
        }
        for bad in [
            vec!["status".to_string()],
            vec!["topic".into(), "topic".into()],
        ] {
            let mut spec = input_spec(&[&a.display().to_string()]);
            spec.pass_through = bad;
            assert!(matches!(
                validate_inputs(&spec),
                Err(IoError::PassThroughName(_))
            ));
        }
    }
}
