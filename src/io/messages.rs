//! Chat messages from an input column, in either accepted form:
//! `list<struct<role, content>>` (or `large_list`) or a JSON string
//! `[{"role": .., "content": ..}, ...]`.
//!
//! Invariant: a parsed message list is non-empty and every message has a
//! known role and a non-null content; anything else is an
//! [`RowErrorKind::InvalidMessages`] row error, never a job error. Extra
//! struct fields or JSON keys (e.g. `name`) are ignored.

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

fn checked(messages: Vec<ChatMessage>) -> Result<Vec<ChatMessage>, RowError> {
    if messages.is_empty() {
        return Err(invalid("the message list is empty".into()));
    }
    for (i, m) in messages.iter().enumerate() {
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
    let mut out = Vec::with_capacity(structs.len());
    for i in 0..structs.len() {
        if structs.is_null(i) {
            return Err(invalid(format!("message {i} is null")));
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
            (6, "unknown role `tool`"),
            (7, "empty"),
            (8, "not an object"),
            (9, "content that is not a string"),
        ];
        for (row, needle) in expected {
            let (kind, msg) = kind_and_message(col.get(row));
            assert_eq!(kind, RowErrorKind::InvalidMessages);
            assert!(msg.contains(needle), "row {row}: {msg}");
        }
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
