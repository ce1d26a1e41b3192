//! The fixed output schema and the conversion of [`RowResult`]s to Arrow.
//!
//! Invariant: every part file of a job has exactly the schema returned by
//! [`output_schema`], whatever its rows hold; error columns are always
//! nullable Utf8 (never inferred), so an all-ok part and an all-error part
//! have the same schema. Pass-through columns follow the fixed columns, in
//! spec order, with their input types.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef};

use super::error::IoError;
use super::row::{Generation, RowError, RowErrorKind, RowResult};

/// Names of the fixed columns, in order.
pub const FIXED_COLUMNS: [&str; 19] = [
    "id",
    "input_file",
    "input_row",
    "status",
    "error_kind",
    "error_message",
    "output_text",
    "reasoning_text",
    "finish_reason",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "draft_tokens_proposed",
    "draft_tokens_accepted",
    "model",
    "spec_hash",
    "seed",
    "time_to_first_token_ms",
    "latency_ms",
];

/// `status` of a row that generated text.
pub const STATUS_OK: &str = "ok";
/// `status` of a row that failed; `error_kind` and `error_message` are set.
pub const STATUS_ERROR: &str = "error";

fn fixed_fields() -> Vec<Field> {
    use DataType::{Float64, UInt32, UInt64, Utf8};
    [
        // Null only for `null_id` error rows.
        ("id", Utf8, true),
        ("input_file", Utf8, false),
        ("input_row", UInt64, false),
        ("status", Utf8, false),
        ("error_kind", Utf8, true),
        ("error_message", Utf8, true),
        ("output_text", Utf8, true),
        // Null except for ok rows in a think reasoning mode.
        ("reasoning_text", Utf8, true),
        ("finish_reason", Utf8, true),
        ("prompt_tokens", UInt32, false),
        // Prompt tokens whose KV came from a shared prefix, not computed.
        ("cached_tokens", UInt32, true),
        ("completion_tokens", UInt32, true),
        // Speculative decoding: draft tokens verified, and kept; 0 when the
        // job does not speculate.
        ("draft_tokens_proposed", UInt32, true),
        ("draft_tokens_accepted", UInt32, true),
        ("model", Utf8, false),
        ("spec_hash", Utf8, false),
        ("seed", UInt64, false),
        ("time_to_first_token_ms", Float64, true),
        ("latency_ms", Float64, true),
    ]
    .into_iter()
    .map(|(name, dt, nullable)| Field::new(name, dt, nullable))
    .collect()
}

/// The output schema: fixed columns, then the pass-through fields.
pub fn output_schema(pass_through: &[FieldRef]) -> SchemaRef {
    let mut fields: Vec<FieldRef> = fixed_fields().into_iter().map(Arc::new).collect();
    fields.extend(pass_through.iter().cloned());
    Arc::new(Schema::new(fields))
}

fn gen_of(r: &RowResult) -> Option<&Generation> {
    r.outcome.as_ref().ok()
}

fn err_of(r: &RowResult) -> Option<&RowError> {
    r.outcome.as_ref().err()
}

/// Builds one record batch of `rows` in `schema` (from [`output_schema`]).
pub fn build_batch(
    schema: &SchemaRef,
    rows: &[RowResult],
    model: &str,
    spec_hash: &str,
) -> Result<RecordBatch, IoError> {
    let pass_through_fields = &schema.fields()[FIXED_COLUMNS.len()..];
    let id: StringArray = rows
        .iter()
        .map(|r| match err_of(r) {
            Some(e) if e.kind == RowErrorKind::NullId => None,
            _ => Some(r.key.id.as_str()),
        })
        .collect();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(id),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.key.input_file.as_str()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.key.input_row),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
            if r.outcome.is_ok() {
                STATUS_OK
            } else {
                STATUS_ERROR
            }
        }))),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| err_of(r).map(|e| e.kind.as_str())),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| err_of(r).map(|e| e.message.as_str())),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| gen_of(r).map(|g| g.text.as_str())),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter()
                .map(|r| gen_of(r).and_then(|g| g.reasoning_text.as_deref())),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter()
                .map(|r| gen_of(r).map(|g| g.finish_reason.as_str())),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.prompt_tokens),
        )),
        Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| gen_of(r).map(|g| g.cached_tokens)),
        )),
        Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| gen_of(r).map(|g| g.completion_tokens)),
        )),
        Arc::new(UInt32Array::from_iter(
            rows.iter()
                .map(|r| gen_of(r).map(|g| g.draft_tokens_proposed)),
        )),
        Arc::new(UInt32Array::from_iter(
            rows.iter()
                .map(|r| gen_of(r).map(|g| g.draft_tokens_accepted)),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| model))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|_| spec_hash),
        )),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.seed))),
        Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|r| gen_of(r).map(|g| g.timings.time_to_first_token_ms)),
        )),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| gen_of(r).map(|g| g.timings.latency_ms)),
        )),
    ];
    if let Some(r) = rows
        .iter()
        .find(|r| r.pass_through.len() != pass_through_fields.len())
    {
        return Err(IoError::InvalidRow(format!(
            "row {} of `{}` has {} pass-through values, the schema has {}",
            r.key.input_row,
            r.key.input_file,
            r.pass_through.len(),
            pass_through_fields.len()
        )));
    }
    for (j, field) in pass_through_fields.iter().enumerate() {
        let mut parts: Vec<&dyn Array> = Vec::with_capacity(rows.len());
        for r in rows {
            let value = &r.pass_through[j];
            if value.data_type() != field.data_type() || value.len() != 1 {
                return Err(IoError::InvalidRow(format!(
                    "pass-through `{}` of row {} of `{}` is {} x{}, expected one {}",
                    field.name(),
                    r.key.input_row,
                    r.key.input_file,
                    value.data_type(),
                    value.len(),
                    field.data_type()
                )));
            }
            parts.push(value.as_ref());
        }
        let column = if parts.is_empty() {
            arrow_array::new_empty_array(field.data_type())
        } else {
            arrow_select::concat::concat(&parts)
                .map_err(|e| IoError::InvalidRow(format!("pass-through `{}`: {e}", field.name())))?
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| IoError::InvalidRow(format!("building the output batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_util::{error_result, ok_result};
    use arrow_array::Int32Array;
    use arrow_array::cast::AsArray;

    fn topic_field() -> FieldRef {
        Arc::new(Field::new("topic", DataType::Int32, true))
    }

    #[test]
    fn all_ok_batch_keeps_typed_error_columns() {
        let schema = output_schema(&[topic_field()]);
        let rows = vec![
            ok_result("a", 0, "f.parquet", 0, "hi", 7),
            ok_result("b", 0, "f.parquet", 1, "yo", 8),
        ];
        let batch = build_batch(&schema, &rows, "m", "h").expect("batch");
        assert_eq!(batch.schema(), schema);
        for name in ["error_kind", "error_message"] {
            let col = batch.column_by_name(name).expect("column");
            assert_eq!(col.data_type(), &DataType::Utf8);
            assert_eq!(col.null_count(), 2);
        }
        for (name, want) in [("draft_tokens_proposed", 5), ("draft_tokens_accepted", 2)] {
            let col = batch
                .column_by_name(name)
                .expect(name)
                .as_primitive::<arrow_array::types::UInt32Type>();
            assert_eq!(col.values(), &[want, want], "{name}");
        }
        let topic = batch.column_by_name("topic").expect("topic");
        assert_eq!(
            topic
                .as_primitive::<arrow_array::types::Int32Type>()
                .values(),
            &[7, 8]
        );
        assert_eq!(
            batch
                .column_by_name("status")
                .expect("s")
                .as_string::<i32>()
                .value(1),
            "ok"
        );
    }

    #[test]
    fn error_rows_fill_error_columns_and_null_ids() {
        let schema = output_schema(&[topic_field()]);
        let rows = vec![
            error_result(
                "",
                0,
                "f.parquet",
                0,
                RowError::new(RowErrorKind::NullId, "id is null"),
                1,
            ),
            error_result(
                "x",
                0,
                "f.parquet",
                1,
                RowError::new(RowErrorKind::EmptyPrompt, "empty"),
                2,
            ),
        ];
        let batch = build_batch(&schema, &rows, "m", "h").expect("batch");
        assert_eq!(batch.schema(), schema);
        let id = batch.column_by_name("id").expect("id").as_string::<i32>();
        assert!(id.is_null(0));
        assert_eq!(id.value(1), "x");
        let kind = batch
            .column_by_name("error_kind")
            .expect("k")
            .as_string::<i32>();
        assert_eq!((kind.value(0), kind.value(1)), ("null_id", "empty_prompt"));
        for name in [
            "output_text",
            "reasoning_text",
            "finish_reason",
            "completion_tokens",
            "draft_tokens_proposed",
            "draft_tokens_accepted",
            "latency_ms",
        ] {
            assert_eq!(
                batch.column_by_name(name).expect(name).null_count(),
                2,
                "{name}"
            );
        }
    }

    #[test]
    fn reasoning_text_is_null_unless_a_think_row_has_it() {
        let schema = output_schema(&[topic_field()]);
        let mut think = ok_result("t", 0, "f.parquet", 0, "4", 1);
        if let Ok(g) = &mut think.outcome {
            g.reasoning_text = Some("2+2 is 4.\n".into());
        }
        let rows = vec![ok_result("n", 0, "f.parquet", 1, "hi", 2), think];
        let batch = build_batch(&schema, &rows, "m", "h").expect("batch");
        let names: Vec<&str> = schema.fields()[..FIXED_COLUMNS.len()]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, FIXED_COLUMNS);
        let reasoning = batch
            .column_by_name("reasoning_text")
            .expect("reasoning_text")
            .as_string::<i32>();
        assert!(reasoning.is_null(0));
        assert_eq!(reasoning.value(1), "2+2 is 4.\n");
        let output = batch
            .column_by_name("output_text")
            .expect("output_text")
            .as_string::<i32>();
        assert_eq!((output.value(0), output.value(1)), ("hi", "4"));
    }

    #[test]
    fn wrong_pass_through_shape_is_rejected() {
        let schema = output_schema(&[topic_field()]);
        let mut row = ok_result("a", 0, "f.parquet", 0, "hi", 1);
        row.pass_through = vec![Arc::new(Int32Array::from(vec![1, 2]))];
        assert!(matches!(
            build_batch(&schema, &[row], "m", "h"),
            Err(IoError::InvalidRow(_))
        ));
        let mut row = ok_result("a", 0, "f.parquet", 0, "hi", 1);
        row.pass_through.clear();
        assert!(matches!(
            build_batch(&schema, &[row], "m", "h"),
            Err(IoError::InvalidRow(_))
        ));
    }
}
