//! The streaming input reader: one `Vec<InputRow>` per Parquet record batch.
//!
//! Invariants:
//! - Only the columns the spec names are decoded (a [`ProjectionMask`] over
//!   root columns); files are read one record batch at a time, never whole.
//! - `input_row` counts from 0 in each file; `file_index` is the position in
//!   the plan's sorted file list.
//! - Duplicate ids are detected in (file, row) order, first occurrence wins,
//!   and rows skipped because they are already committed still register
//!   their ids, so a resumed run marks exactly the rows the first run marked.
//! - Pass-through values are copied into fresh length-1 arrays, so a row
//!   never keeps its input batch alive.
//!
//! The stream is a plain blocking [`Iterator`]; the runner drives it on its
//! own thread and forwards items into a bounded channel for back-pressure.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::FieldRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::arrow_values::{NumberColumn, TextColumn};
use super::error::IoError;
use super::input_plan::{InputFile, InputPlan, Roles, check_roles};
use super::messages::MessagesColumn;
use super::overrides::{OverrideColumnsRef, OverrideValues};
use super::row::{InputRow, Prompt, RowError, RowErrorKind, RowKey, RowOverrides};
use super::row_set::RowSet;

impl InputPlan {
    /// Streams all rows in (file, row) order, `batch_size` rows per read at
    /// most, leaving out the rows in `skip` (already committed).
    pub fn stream(&self, batch_size: usize, skip: RowSet) -> InputStream {
        InputStream {
            files: self.files.clone(),
            roles: self.roles.clone(),
            pass_through_fields: self.pass_through_fields.clone(),
            batch_size: batch_size.max(1),
            skip,
            first_seen: HashMap::new(),
            file_index: 0,
            reader: None,
            next_row: 0,
            done: false,
        }
    }
}

/// Iterator over input rows; see the module docs. After an error it ends.
pub struct InputStream {
    files: Vec<InputFile>,
    roles: Arc<Roles>,
    pass_through_fields: Vec<FieldRef>,
    batch_size: usize,
    skip: RowSet,
    /// id -> (file_index, input_row) of its first occurrence.
    first_seen: HashMap<String, (u32, u64)>,
    file_index: usize,
    reader: Option<ParquetRecordBatchReader>,
    next_row: u64,
    done: bool,
}

impl Iterator for InputStream {
    type Item = Result<Vec<InputRow>, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

fn read_error(file: &InputFile, reason: impl std::fmt::Display) -> IoError {
    IoError::Read {
        path: file.name.clone(),
        reason: reason.to_string(),
    }
}

/// The id column of one batch: text, or an integer rendered as text.
enum IdColumn<'a> {
    Text(TextColumn<'a>),
    Number(NumberColumn<'a>),
}

impl IdColumn<'_> {
    /// `None` for a null or blank id.
    fn get(&self, row: usize) -> Option<String> {
        match self {
            IdColumn::Text(t) => t
                .get(row)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
            IdColumn::Number(n) => n.get(row).map(|v| v.to_string()),
        }
    }
}

/// The prompt sources of one batch.
struct PromptColumns<'a> {
    prompt: Option<(&'a str, TextColumn<'a>)>,
    messages: Option<(&'a str, MessagesColumn<'a>)>,
}

impl PromptColumns<'_> {
    /// Messages win when non-null; otherwise the plain prompt.
    fn get(&self, row: usize) -> Result<Prompt, RowError> {
        if let Some(parsed) = self.messages.as_ref().and_then(|(_, m)| m.get(row)) {
            return parsed.map(Prompt::Messages);
        }
        match self.prompt.as_ref().and_then(|(_, p)| p.get(row)) {
            Some(t) if t.trim().is_empty() => Err(RowError::new(
                RowErrorKind::EmptyPrompt,
                "the prompt is empty or only whitespace",
            )),
            Some(t) => Ok(Prompt::Text(t.to_string())),
            None => {
                let names: Vec<String> = [
                    self.messages.as_ref().map(|m| m.0),
                    self.prompt.as_ref().map(|p| p.0),
                ]
                .into_iter()
                .flatten()
                .map(|n| format!("`{n}`"))
                .collect();
                Err(RowError::new(
                    RowErrorKind::NullPrompt,
                    format!("prompt is null (column {})", names.join(" and ")),
                ))
            }
        }
    }
}

impl InputStream {
    fn advance(&mut self) -> Result<Option<Vec<InputRow>>, IoError> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                if self.file_index >= self.files.len() {
                    return Ok(None);
                }
                self.reader = Some(self.open()?);
                self.next_row = 0;
                continue;
            };
            match reader.next() {
                None => {
                    self.reader = None;
                    self.file_index += 1;
                }
                Some(batch) => {
                    let file = &self.files[self.file_index];
                    let batch = batch.map_err(|e| read_error(file, e))?;
                    let rows = self.convert(&batch)?;
                    self.next_row += batch.num_rows() as u64;
                    if !rows.is_empty() {
                        return Ok(Some(rows));
                    }
                }
            }
        }
    }

    /// Opens the current file, re-checking its schema: the file may have
    /// changed since validation.
    fn open(&self) -> Result<ParquetRecordBatchReader, IoError> {
        let file = &self.files[self.file_index];
        let handle = std::fs::File::open(&file.path)
            .map_err(|e| IoError::fs("opening input", &file.path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| IoError::NotParquet {
                path: file.name.clone(),
                reason: e.to_string(),
            })?;
        let schema = builder.schema().clone();
        check_roles(&file.name, &schema, &self.roles)?;
        for field in &self.pass_through_fields {
            let found =
                schema
                    .field_with_name(field.name())
                    .map_err(|_| IoError::MissingColumn {
                        path: file.name.clone(),
                        column: field.name().clone(),
                        role: "pass_through",
                    })?;
            if found.data_type() != field.data_type() {
                return Err(IoError::PassThroughType {
                    column: field.name().clone(),
                    path: file.name.clone(),
                    found: found.data_type().to_string(),
                    first_path: self.files[0].name.clone(),
                    expected: field.data_type().to_string(),
                });
            }
        }
        let wanted = self.roles.columns();
        let roots = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| wanted.contains(f.name().as_str()))
            .map(|(i, _)| i);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build()
            .map_err(|e| read_error(file, e))
    }

    fn convert(&mut self, batch: &RecordBatch) -> Result<Vec<InputRow>, IoError> {
        let file = &self.files[self.file_index];
        let file_index = u32::try_from(self.file_index)
            .map_err(|_| read_error(file, "more than 2^32 input files"))?;
        let roles = &*self.roles;
        let column = |name: &str| -> Result<&ArrayRef, IoError> {
            batch.column_by_name(name).ok_or_else(|| {
                read_error(file, format!("column `{name}` missing from a record batch"))
            })
        };
        let bad_type =
            |name: &str| read_error(file, format!("column `{name}` changed type while reading"));
        let id_array = column(&roles.id)?;
        let ids = TextColumn::new(id_array.as_ref())
            .map(IdColumn::Text)
            .or_else(|| NumberColumn::new(id_array.as_ref()).map(IdColumn::Number))
            .ok_or_else(|| bad_type(&roles.id))?;
        let prompts = PromptColumns {
            prompt: match &roles.prompt {
                Some(c) => Some((
                    c.as_str(),
                    TextColumn::new(column(c)?.as_ref()).ok_or_else(|| bad_type(c))?,
                )),
                None => None,
            },
            messages: match &roles.messages {
                Some(c) => Some((
                    c.as_str(),
                    MessagesColumn::new(column(c)?.as_ref()).ok_or_else(|| bad_type(c))?,
                )),
                None => None,
            },
        };
        let mut override_columns = Vec::with_capacity(roles.overrides.len());
        for (which, c) in &roles.overrides {
            let values =
                OverrideValues::new(*which, column(c)?.as_ref()).ok_or_else(|| bad_type(c))?;
            override_columns.push((*which, c.as_str(), values));
        }
        let overrides = OverrideColumnsRef {
            columns: override_columns,
        };
        let pass_through: Vec<&ArrayRef> = roles
            .pass_through
            .iter()
            .map(|c| column(c))
            .collect::<Result<_, _>>()?;

        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            let input_row = self.next_row + i as u64;
            let id = ids.get(i);
            let first = id.as_ref().and_then(|id| match self.first_seen.get(id) {
                Some(&at) => Some(at),
                None => {
                    self.first_seen.insert(id.clone(), (file_index, input_row));
                    None
                }
            });
            if self.skip.contains(file_index, input_row) {
                continue;
            }
            let (prompt, row_overrides) = match (&id, first) {
                (None, _) => (
                    Err(RowError::new(
                        RowErrorKind::NullId,
                        format!("id column `{}` is null or empty", roles.id),
                    )),
                    RowOverrides::default(),
                ),
                (Some(id), Some((f, r))) => (
                    Err(RowError::new(
                        RowErrorKind::DuplicateId,
                        format!(
                            "id `{id}` already appeared at row {r} of `{}`; the first occurrence wins",
                            self.files[f as usize].name
                        ),
                    )),
                    RowOverrides::default(),
                ),
                (Some(_), None) => match prompts
                    .get(i)
                    .and_then(|p| overrides.get(i).map(|o| (p, o)))
                {
                    Ok((p, o)) => (Ok(p), o),
                    Err(e) => (Err(e), RowOverrides::default()),
                },
            };
            let index = UInt32Array::from(vec![i as u32]);
            let values = pass_through
                .iter()
                .map(|a| arrow_select::take::take(a.as_ref(), &index, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| read_error(file, e))?;
            out.push(InputRow {
                key: RowKey {
                    id: id.unwrap_or_default(),
                    file_index,
                    input_file: file.name.clone(),
                    input_row,
                },
                prompt,
                overrides: row_overrides,
                pass_through: values,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::input_plan::validate_inputs;
    use crate::io::row::ChatMessage;
    use crate::io::test_util::{basic_batch, input_spec, messages_list, write_parquet};
    use arrow_array::builder::{Int64Builder, LargeStringBuilder, ListBuilder};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_array::{
        Array, Float64Array, Int64Array, LargeStringArray, StringArray, TimestampMillisecondArray,
    };
    use arrow_schema::DataType;

    fn collect(stream: InputStream) -> Vec<InputRow> {
        stream.flat_map(|b| b.expect("batch")).collect()
    }

    fn kinds(rows: &[InputRow]) -> Vec<Option<RowErrorKind>> {
        rows.iter()
            .map(|r| r.prompt.as_ref().err().map(|e| e.kind))
            .collect()
    }

    #[test]
    fn streams_rows_in_order_with_per_file_row_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_parquet(
            &dir.path().join("b.parquet"),
            &basic_batch(&["b0", "b1", "b2"], &["x", "y", "z"]),
        );
        write_parquet(
            &dir.path().join("a.parquet"),
            &basic_batch(&["a0", "a1", "a2", "a3", "a4"], &["p", "q", "r", "s", "t"]),
        );
        let plan = validate_inputs(&input_spec(&[&format!(
            "{}/*.parquet",
            dir.path().display()
        )]))
        .expect("plan");
        let batches: Vec<Vec<InputRow>> = plan
            .stream(2, RowSet::new())
            .map(|b| b.expect("batch"))
            .collect();
        assert!(batches.iter().all(|b| b.len() <= 2 && !b.is_empty()));
        let rows: Vec<InputRow> = batches.into_iter().flatten().collect();
        let keys: Vec<(&str, u32, u64)> = rows
            .iter()
            .map(|r| (r.key.id.as_str(), r.key.file_index, r.key.input_row))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a0", 0, 0),
                ("a1", 0, 1),
                ("a2", 0, 2),
                ("a3", 0, 3),
                ("a4", 0, 4),
                ("b0", 1, 0),
                ("b1", 1, 1),
                ("b2", 1, 2)
            ]
        );
        assert!(rows[0].key.input_file.ends_with("a.parquet"));
        assert_eq!(rows[5].prompt, Ok(Prompt::Text("x".into())));
        // No pass-through was requested, so the unread `topic` column is absent.
        assert!(rows.iter().all(|r| r.pass_through.is_empty()));
    }

    #[test]
    fn row_problems_become_error_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    None,
                    Some(3),
                    Some(4),
                    Some(1),
                    Some(6),
                    Some(7),
                ])) as ArrayRef,
            ),
            (
                "prompt",
                Arc::new(StringArray::from(vec![
                    Some("hi"),
                    Some("x"),
                    None,
                    Some("  \n"),
                    Some("dup"),
                    Some("ok"),
                    Some("ok"),
                ])) as ArrayRef,
            ),
            (
                "mnt",
                Arc::new(Float64Array::from(vec![
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(-5.0),
                    Some(32.0),
                ])) as ArrayRef,
            ),
        ])
        .expect("batch");
        write_parquet(&path, &batch);
        let mut spec = input_spec(&[&path.display().to_string()]);
        spec.overrides.max_new_tokens = Some("mnt".into());
        let rows = collect(
            validate_inputs(&spec)
                .expect("plan")
                .stream(100, RowSet::new()),
        );
        use RowErrorKind::*;
        assert_eq!(
            kinds(&rows),
            vec![
                None,
                Some(NullId),
                Some(NullPrompt),
                Some(EmptyPrompt),
                Some(DuplicateId),
                Some(InvalidOverride),
                None
            ]
        );
        assert_eq!(rows[0].key.id, "1");
        let dup = rows[4].prompt.as_ref().expect_err("dup");
        assert!(dup.message.contains("row 0"), "{}", dup.message);
        assert_eq!(rows[6].overrides.max_new_tokens, Some(32));
        assert_eq!(rows[5].overrides, RowOverrides::default());
    }

    #[test]
    fn messages_win_over_prompt_and_malformed_messages_are_row_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list_path = dir.path().join("list.parquet");
        let json_path = dir.path().join("json.parquet");
        let list = messages_list(&[
            Some(vec![(Some("user"), Some("from list"))]),
            None,
            Some(vec![(Some("wizard"), Some("x"))]),
            None,
        ]);
        write_parquet(
            &list_path,
            &RecordBatch::try_from_iter([
                (
                    "id",
                    Arc::new(StringArray::from(vec!["l0", "l1", "l2", "l3"])) as ArrayRef,
                ),
                (
                    "prompt",
                    Arc::new(StringArray::from(vec![
                        Some("unused"),
                        Some("fallback"),
                        Some("unused"),
                        None,
                    ])) as ArrayRef,
                ),
                ("messages", Arc::new(list) as ArrayRef),
            ])
            .expect("batch"),
        );
        write_parquet(
            &json_path,
            &RecordBatch::try_from_iter([
                (
                    "id",
                    Arc::new(StringArray::from(vec!["j0", "j1"])) as ArrayRef,
                ),
                (
                    "prompt",
                    Arc::new(StringArray::from(vec![Some("unused"), Some("unused")])) as ArrayRef,
                ),
                (
                    "messages",
                    Arc::new(StringArray::from(vec![
                        Some(r#"[{"role":"user","content":"from json"}]"#),
                        Some("[{"),
                    ])) as ArrayRef,
                ),
            ])
            .expect("batch"),
        );
        let mut spec = input_spec(&[
            &json_path.display().to_string(),
            &list_path.display().to_string(),
        ]);
        spec.messages_column = Some("messages".into());
        let rows = collect(
            validate_inputs(&spec)
                .expect("plan")
                .stream(10, RowSet::new()),
        );
        let user = |t: &str| {
            Prompt::Messages(vec![ChatMessage {
                role: "user".into(),
                content: t.into(),
            }])
        };
        assert_eq!(rows[0].prompt, Ok(user("from json")));
        assert_eq!(
            rows[1].prompt.as_ref().map_err(|e| e.kind),
            Err(RowErrorKind::InvalidMessages)
        );
        assert_eq!(rows[2].prompt, Ok(user("from list")));
        assert_eq!(rows[3].prompt, Ok(Prompt::Text("fallback".into())));
        assert_eq!(
            rows[4].prompt.as_ref().map_err(|e| e.kind),
            Err(RowErrorKind::InvalidMessages)
        );
        let null = rows[5].prompt.as_ref().expect_err("both null");
        assert_eq!(null.kind, RowErrorKind::NullPrompt);
        assert!(
            null.message.contains("`messages` and `prompt`"),
            "{}",
            null.message
        );
    }

    #[test]
    fn skipped_rows_still_claim_their_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.parquet");
        write_parquet(
            &path,
            &basic_batch(&["a", "b", "a", "c", "b"], &["1", "2", "3", "4", "5"]),
        );
        let plan = validate_inputs(&input_spec(&[&path.display().to_string()])).expect("plan");
        let full = collect(plan.stream(2, RowSet::new()));
        let mut skip = RowSet::new();
        skip.insert(0, 0);
        skip.insert(0, 1);
        skip.insert(0, 3);
        let resumed = collect(plan.stream(2, skip));
        let rows: Vec<(u64, Option<RowErrorKind>)> = resumed
            .iter()
            .map(|r| (r.key.input_row, r.prompt.as_ref().err().map(|e| e.kind)))
            .collect();
        assert_eq!(
            rows,
            vec![
                (2, Some(RowErrorKind::DuplicateId)),
                (4, Some(RowErrorKind::DuplicateId))
            ]
        );
        assert_eq!(kinds(&full)[2], Some(RowErrorKind::DuplicateId));
        assert_eq!(kinds(&full)[0], None);
    }

    #[test]
    fn pass_through_keeps_input_types_in_compact_arrays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.parquet");
        let mut tags = ListBuilder::new(Int64Builder::new());
        tags.append_value([Some(1), Some(2)]);
        tags.append_null();
        tags.append_value([Some(3)]);
        let mut notes = LargeStringBuilder::new();
        notes.append_value("n0");
        notes.append_null();
        notes.append_value("n2");
        let ts = TimestampMillisecondArray::from(vec![10, 20, 30]).with_timezone("UTC");
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef,
            ),
            (
                "prompt",
                Arc::new(StringArray::from(vec!["x", "y", "z"])) as ArrayRef,
            ),
            ("tags", Arc::new(tags.finish()) as ArrayRef),
            ("notes", Arc::new(notes.finish()) as ArrayRef),
            ("at", Arc::new(ts) as ArrayRef),
            (
                "topic",
                Arc::new(arrow_array::Int32Array::from(vec![5, 6, 7])) as ArrayRef,
            ),
        ])
        .expect("batch");
        write_parquet(&path, &batch);
        let mut spec = input_spec(&[&path.display().to_string()]);
        spec.pass_through = vec!["at".into(), "tags".into(), "notes".into()];
        let plan = validate_inputs(&spec).expect("plan");
        let types: Vec<DataType> = plan
            .pass_through_fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                batch.column(4).data_type().clone(),
                batch.column(2).data_type().clone(),
                DataType::LargeUtf8
            ]
        );
        let rows = collect(plan.stream(3, RowSet::new()));
        for r in &rows {
            assert_eq!(r.pass_through.len(), 3);
            for (value, ty) in r.pass_through.iter().zip(&types) {
                assert_eq!(value.len(), 1);
                assert_eq!(value.data_type(), ty);
                assert_eq!(
                    value.to_data().offset(),
                    0,
                    "copied, not a slice of the batch"
                );
            }
        }
        let tags2 = rows[2].pass_through[1].as_list::<i32>().value(0);
        assert_eq!(tags2.as_primitive::<Int64Type>().values(), &[3]);
        assert!(rows[1].pass_through[1].is_null(0));
        assert_eq!(
            rows[2].pass_through[2]
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .map(|a| a.value(0)),
            Some("n2")
        );
        assert!(rows.iter().all(|r| {
            r.pass_through
                .iter()
                .all(|a| a.as_primitive_opt::<Int32Type>().is_none())
        }));
    }
}
