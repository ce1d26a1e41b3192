//! Chat messages from an input column, in either accepted form:
//! `list<struct<role, content>>` (or `large_list`) or a JSON string
//! `[{"role": .., "content": ..}, ...]`.
//!
//! Invariant: a parsed message list is non-empty and every message has a
//! known role and a non-null content; anything else is an
//! [`RowErrorKind::InvalidMessages`] row error, never a job error. Extra
//! struct fields or JSON keys (e.g. `name`, `reasoning_content`) are
//! ignored, except `tool_calls`: no chat template here renders tools, so
//! a message carrying calls (a non-null, non-empty `tool_calls`) is an
//! error rather than a prompt silently missing them.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, GenericListArray, OffsetSizeTrait};
use arrow_schema::DataType;

use super::arrow_values::{TextColumn, is_text};
use super::row::{ChatMessage, RowError, RowErrorKind};

/// Roles a message may have.
pub(crate) const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// True for the accepted messages column types.
pub(crate) fn is_messages_type(dt: &DataType) -> bool {
    let item = match dt {
        DataType::List(f) | DataType::LargeList(f) => f.data_type(),
        other => return is_text(other),
    };
    let DataType::Struct(fields) = item else {
        return false;
    };
    ["role", "content"].iter().all(|name| {
        fields
            .iter()
            .any(|f| f.name() == name && is_text(f.data_type()))
    })
}

/// A messages column of one record batch.
pub(crate) enum MessagesColumn<'a> {
    Json(TextColumn<'a>),
    List(&'a GenericListArray<i32>),
    LargeList(&'a GenericListArray<i64>),
}

impl<'a> MessagesColumn<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::List(_) => array.as_list_opt::<i32>().map(MessagesColumn::List),
            DataType::LargeList(_) => array.as_list_opt::<i64>().map(MessagesColumn::LargeList),
            _ => TextColumn::new(array).map(MessagesColumn::Json),
        }
    }

    /// `None` when the value is null; otherwise the parsed messages or why
    /// they are unusable.
    pub(crate) fn get(&self, row: usize) -> Option<Result<Vec<ChatMessage>, RowError>> {
        match self {
            MessagesColumn::Json(t) => t.get(row).map(parse_json),
            MessagesColumn::List(l) => list_value(l, row).map(|v| from_structs(&v)),
            MessagesColumn::LargeList(l) => list_value(l, row).map(|v| from_structs(&v)),
        }
    }
}

fn list_value<O: OffsetSizeTrait>(list: &GenericListArray<O>, row: usize) -> Option<ArrayRef> {
    list.is_valid(row).then(|| list.value(row))
}

fn invalid(message: String) -> RowError {
    RowError::new(RowErrorKind::InvalidMessages, message)
}

fn tool_calls_unsupported(i: usize) -> RowError {
    invalid(format!(
        "message {i} has tool calls; tool calls and tool messages are not supported"
    ))
}

fn checked(messages: Vec<ChatMessage>) -> Result<Vec<ChatMessage>, RowError> {
    if messages.is_empty() {
        return Err(invalid("the message list is empty".into()));
    }
    for (i, m) in messages.iter().enumerate() {
        if m.role == "tool" {
            return Err(invalid(format!(
                "message {i} is a `tool` message; tool messages and tool calls are not supported"
            )));
        }
        if !ROLES.contains(&m.role.as_str()) {
            return Err(invalid(format!(
                "message {i} has unknown role `{}` (allowed: system, user, assistant)",
                m.role
            )));
        }
    }
    Ok(messages)
}

fn from_structs(items: &ArrayRef) -> Result<Vec<ChatMessage>, RowError> {
    let missing = || invalid("messages are not structs with role and content".into());
    let structs = items.as_struct_opt().ok_or_else(missing)?;
    let role = structs
        .column_by_name("role")
        .and_then(|c| TextColumn::new(c.as_ref()))
        .ok_or_else(missing)?;
    let content = structs
        .column_by_name("content")
        .and_then(|c| TextColumn::new(c.as_ref()))
        .ok_or_else(missing)?;
    let tool_calls = structs.column_by_name("tool_calls");
    let mut out = Vec::with_capacity(structs.len());
    for i in 0..structs.len() {
        if structs.is_null(i) {
            return Err(invalid(format!("message {i} is null")));
        }
        if tool_calls.is_some_and(|c| has_items(c.as_ref(), i)) {
            return Err(tool_calls_unsupported(i));
        }
        let role = role
            .get(i)
            .ok_or_else(|| invalid(format!("message {i} has a null role")))?;
        let content = content
            .get(i)
            .ok_or_else(|| invalid(format!("message {i} has a null content")))?;
        out.push(ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        });
    }
    checked(out)
}

/// True when the `tool_calls` value at `i` holds something: null and an
/// empty list (what exports write for messages without calls) do not.
fn has_items(column: &dyn Array, i: usize) -> bool {
    if column.is_null(i) {
        return false;
    }
    match column.data_type() {
        DataType::List(_) => column
            .as_list_opt::<i32>()
            .is_none_or(|l| l.value_length(i) > 0),
        DataType::LargeList(_) => column
            .as_list_opt::<i64>()
            .is_none_or(|l| l.value_length(i) > 0),
        _ => true,
    }
}

fn parse_json(text: &str) -> Result<Vec<ChatMessage>, RowError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("messages are not valid JSON: {e}")))?;
    let serde_json::Value::Array(items) = value else {
        return Err(invalid("messages JSON is not a list".into()));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| match item.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Null) | None => {
                Err(invalid(format!("message {i} has no {name}")))
            }
            Some(_) => Err(invalid(format!(
                "message {i} has a {name} that is not a string"
            ))),
        };
        if !item.is_object() {
            return Err(invalid(format!("message {i} is not an object")));
        }
        match item.get("tool_calls") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(calls)) if calls.is_empty() => {}
            Some(_) => return Err(tool_calls_unsupported(i)),
        }
        out.push(ChatMessage {
            role: field("role")?,
            content: field("content")?,
        });
    }
    checked(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_util::messages_list;
    use arrow_array::StringArray;

    fn kind_and_message(r: Option<Result<Vec<ChatMessage>, RowError>>) -> (RowErrorKind, String) {
        let e = r.expect("non-null").expect_err("should be invalid");
        (e.kind, e.message)
    }

    #[test]
    fn json_form_parses_and_rejects_malformed() {
        let arr = StringArray::from(vec![
            Some(
                r#"[{"role":"system","content":"be brief"},{"role":"user","content":"hi","name":"x"}]"#,
            ),
            None,
            Some("not json"),
            Some(r#"{"role":"user","content":"hi"}"#),
            Some(r#"[{"content":"hi"}]"#),
            Some(r#"[{"role":"user","content":null}]"#),
            Some(r#"[{"role":"tool","content":"x"}]"#),
            Some("[]"),
            Some(r#"["hi"]"#),
            Some(r#"[{"role":"user","content":3}]"#),
            Some(
                r#"[{"role":"user","content":"hi"},{"role":"assistant","content":"","tool_calls":[{"type":"function"}]}]"#,
            ),
            Some(
                r#"[{"role":"assistant","content":"a","tool_calls":[],"reasoning_content":"r"},{"role":"user","content":"b","tool_calls":null}]"#,
            ),
        ]);
        let col = MessagesColumn::new(&arr).expect("json column");
        let ok = col.get(0).expect("non-null").expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[1],
            ChatMessage {
                role: "user".into(),
                content: "hi".into()
            }
        );
        assert!(col.get(1).is_none());
        let expected = [
            (2, "not valid JSON"),
            (3, "not a list"),
            (4, "message 0 has no role"),
            (5, "message 0 has no content"),
            (
                6,
                "message 0 is a `tool` message; tool messages and tool calls are not supported",
            ),
            (7, "empty"),
            (8, "not an object"),
            (9, "content that is not a string"),
            (10, "message 1 has tool calls"),
        ];
        for (row, needle) in expected {
            let (kind, msg) = kind_and_message(col.get(row));
            assert_eq!(kind, RowErrorKind::InvalidMessages);
            assert!(msg.contains(needle), "row {row}: {msg}");
        }
        // Empty or null calls and other keys are no calls.
        assert_eq!(col.get(11).expect("non-null").expect("valid").len(), 2);
    }

    #[test]
    fn list_form_parses_and_rejects_malformed() {
        let arr = messages_list(&[
            Some(vec![(Some("user"), Some("hello"))]),
            None,
            Some(vec![]),
            Some(vec![(None, Some("x"))]),
            Some(vec![(Some("user"), None)]),
            Some(vec![(Some("user"), Some("a")), (Some("robot"), Some("b"))]),
        ]);
        assert!(is_messages_type(arr.data_type()));
        let col = MessagesColumn::new(&arr).expect("list column");
        assert_eq!(
            col.get(0).expect("non-null").expect("valid"),
            vec![ChatMessage {
                role: "user".into(),
                content: "hello".into()
            }]
        );
        assert!(col.get(1).is_none());
        for (row, needle) in [
            (2, "empty"),
            (3, "null role"),
            (4, "null content"),
            (5, "message 1 has unknown role `robot`"),
        ] {
            let (kind, msg) = kind_and_message(col.get(row));
            assert_eq!(kind, RowErrorKind::InvalidMessages);
            assert!(msg.contains(needle), "row {row}: {msg}");
        }
    }

    #[test]
    fn list_form_rejects_tool_calls() {
        use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
        use arrow_schema::{Field, Fields};
        let call_list = DataType::List(std::sync::Arc::new(Field::new(
            "item",
            DataType::Utf8,
            true,
        )));
        let fields = Fields::from(vec![
            Field::new("role", DataType::Utf8, true),
            Field::new("content", DataType::Utf8, true),
            Field::new("tool_calls", call_list, true),
        ]);
        let structs = StructBuilder::new(
            fields,
            vec![
                Box::new(StringBuilder::new()),
                Box::new(StringBuilder::new()),
                Box::new(ListBuilder::new(StringBuilder::new())),
            ],
        );
        let mut list = ListBuilder::new(structs);
        // Row 0: calls empty, then null. Row 1: one call.
        for (row_end, role, call) in [
            (false, "user", Some(None)),
            (true, "assistant", None),
            (true, "assistant", Some(Some("get_weather"))),
        ] {
            let s = list.values();
            s.field_builder::<StringBuilder>(0)
                .expect("role")
                .append_value(role);
            s.field_builder::<StringBuilder>(1)
                .expect("content")
                .append_value("x");
            let calls = s
                .field_builder::<ListBuilder<StringBuilder>>(2)
                .expect("tool_calls");
            match call {
                None => calls.append(false),
                Some(name) => {
                    calls.values().extend(name.map(Some));
                    calls.append(true);
                }
            }
            s.append(true);
            if row_end {
                list.append(true);
            }
        }
        let arr = list.finish();
        assert!(is_messages_type(arr.data_type()));
        let col = MessagesColumn::new(&arr).expect("list column");
        assert_eq!(col.get(0).expect("non-null").expect("no calls").len(), 2);
        let (kind, msg) = kind_and_message(col.get(1));
        assert_eq!(kind, RowErrorKind::InvalidMessages);
        assert!(msg.contains("message 0 has tool calls"), "{msg}");
    }

    #[test]
    fn type_check_accepts_only_the_two_forms() {
        assert!(is_messages_type(&DataType::Utf8));
        assert!(is_messages_type(&DataType::LargeUtf8));
        assert!(!is_messages_type(&DataType::Int32));
        let bad = DataType::List(std::sync::Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Utf8,
            true,
        )));
        assert!(!is_messages_type(&bad));
    }
}
