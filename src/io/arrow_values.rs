//! Typed, null-aware access to the Arrow column types the reader accepts.
//!
//! The reader accepts several physical types per role (three string layouts,
//! every integer and float width); these views hide that choice behind one
//! `get(row)` so the row logic is written once. A view is only built after
//! its type was checked, and building returns `None` for any other type.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, LargeStringArray, StringArray, StringViewArray};
use arrow_schema::DataType;

/// The types [`is_text`] accepts, in words.
pub(crate) const TEXT_TYPES: &str = "a string type (utf8, large_utf8 or utf8_view)";
/// The types [`is_number`] accepts, in words.
pub(crate) const NUMBER_TYPES: &str = "an integer or float type";

pub(crate) fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

pub(crate) fn is_number(dt: &DataType) -> bool {
    dt.is_integer()
        || matches!(
            dt,
            DataType::Float16 | DataType::Float32 | DataType::Float64
        )
}

/// A string column in any of Arrow's three layouts.
#[derive(Clone, Copy)]
pub(crate) enum TextColumn<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> TextColumn<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => array.as_string_opt::<i32>().map(TextColumn::Utf8),
            DataType::LargeUtf8 => array.as_string_opt::<i64>().map(TextColumn::Large),
            DataType::Utf8View => array.as_string_view_opt().map(TextColumn::View),
            _ => None,
        }
    }

    /// The value at `row`, `None` when null.
    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            TextColumn::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            TextColumn::Large(a) => a.is_valid(row).then(|| a.value(row)),
            TextColumn::View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// A numeric value, kept exact for integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i128),
    Float(f64),
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(v) => write!(f, "{v}"),
            Number::Float(v) => write!(f, "{v}"),
        }
    }
}

/// A column of any integer or float type.
#[derive(Clone, Copy)]
pub(crate) struct NumberColumn<'a> {
    array: &'a dyn Array,
}

impl<'a> NumberColumn<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        is_number(array.data_type()).then_some(NumberColumn { array })
    }

    /// The value at `row`, `None` when null.
    pub(crate) fn get(&self, row: usize) -> Option<Number> {
        let a = self.array;
        if a.is_null(row) {
            return None;
        }
        let int = |v: i128| Some(Number::Int(v));
        match a.data_type() {
            DataType::Int8 => int(a.as_primitive::<Int8Type>().value(row).into()),
            DataType::Int16 => int(a.as_primitive::<Int16Type>().value(row).into()),
            DataType::Int32 => int(a.as_primitive::<Int32Type>().value(row).into()),
            DataType::Int64 => int(a.as_primitive::<Int64Type>().value(row).into()),
            DataType::UInt8 => int(a.as_primitive::<UInt8Type>().value(row).into()),
            DataType::UInt16 => int(a.as_primitive::<UInt16Type>().value(row).into()),
            DataType::UInt32 => int(a.as_primitive::<UInt32Type>().value(row).into()),
            DataType::UInt64 => int(a.as_primitive::<UInt64Type>().value(row).into()),
            DataType::Float16 => Some(Number::Float(
                a.as_primitive::<Float16Type>().value(row).to_f64(),
            )),
            DataType::Float32 => Some(Number::Float(
                a.as_primitive::<Float32Type>().value(row).into(),
            )),
            DataType::Float64 => Some(Number::Float(a.as_primitive::<Float64Type>().value(row))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, Int64Array, UInt8Array};

    #[test]
    fn text_views_cover_all_layouts_and_nulls() {
        let a = StringArray::from(vec![Some("x"), None]);
        let b = LargeStringArray::from(vec![Some("y"), None]);
        let c = StringViewArray::from(vec![Some("z"), None]);
        for (arr, want) in [(&a as &dyn Array, "x"), (&b, "y"), (&c, "z")] {
            let t = TextColumn::new(arr).expect("text type");
            assert_eq!(t.get(0), Some(want));
            assert_eq!(t.get(1), None);
        }
        assert!(TextColumn::new(&Int64Array::from(vec![1])).is_none());
    }

    #[test]
    fn numbers_keep_integers_exact() {
        let i = Int64Array::from(vec![Some(i64::MIN), None]);
        let n = NumberColumn::new(&i).expect("number");
        assert_eq!(n.get(0), Some(Number::Int(i64::MIN as i128)));
        assert_eq!(n.get(1), None);
        let f = Float32Array::from(vec![0.5]);
        assert_eq!(
            NumberColumn::new(&f).and_then(|c| c.get(0)),
            Some(Number::Float(0.5))
        );
        let u = UInt8Array::from(vec![255]);
        assert_eq!(
            NumberColumn::new(&u).and_then(|c| c.get(0)),
            Some(Number::Int(255))
        );
        assert!(NumberColumn::new(&StringArray::from(vec!["1"])).is_none());
    }
}
