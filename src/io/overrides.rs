//! Per-row generation overrides read from optional columns: numeric ones,
//! and a string column for the reasoning mode.
//!
//! A null cell means "use the job default". Any integer or float column is
//! accepted for every numeric override (pandas stores nullable integers as
//! floats), but integer-valued overrides must hold integral values. A value
//! out of range, or a reasoning mode not spelled as in the spec, makes the
//! row an [`RowErrorKind::InvalidOverride`] error row.

use arrow_array::Array;
use arrow_schema::DataType;

use super::arrow_values::{
    NUMBER_TYPES, Number, NumberColumn, TEXT_TYPES, TextColumn, is_number, is_text,
};
use super::row::{RowError, RowErrorKind, RowOverrides};
use crate::text::ReasoningMode;

/// Which override a column feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Override {
    MaxNewTokens,
    Temperature,
    TopP,
    TopK,
    Seed,
    Reasoning,
}

impl Override {
    /// The spec key under `inputs.overrides`, used in messages.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Override::MaxNewTokens => "overrides.max_new_tokens",
            Override::Temperature => "overrides.temperature",
            Override::TopP => "overrides.top_p",
            Override::TopK => "overrides.top_k",
            Override::Seed => "overrides.seed",
            Override::Reasoning => "overrides.reasoning",
        }
    }

    /// True for the column types this override reads.
    pub(crate) fn accepts(self, dt: &DataType) -> bool {
        match self {
            Override::Reasoning => is_text(dt),
            _ => is_number(dt),
        }
    }

    /// The accepted column types, in words.
    pub(crate) fn column_types(self) -> &'static str {
        match self {
            Override::Reasoning => TEXT_TYPES,
            _ => NUMBER_TYPES,
        }
    }
}

/// One override column's values, viewed in the kind its override reads.
pub(crate) enum OverrideValues<'a> {
    Number(NumberColumn<'a>),
    Text(TextColumn<'a>),
}

/// One non-null cell of an override column.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Number(Number),
    Text(&'a str),
}

impl std::fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Number(n) => write!(f, "{n}"),
            Cell::Text(t) => write!(f, "`{t}`"),
        }
    }
}

impl<'a> OverrideValues<'a> {
    /// Views `array` as `which`'s values; `None` when its type does not fit.
    pub(crate) fn new(which: Override, array: &'a dyn Array) -> Option<Self> {
        if !which.accepts(array.data_type()) {
            return None;
        }
        match which {
            Override::Reasoning => TextColumn::new(array).map(OverrideValues::Text),
            _ => NumberColumn::new(array).map(OverrideValues::Number),
        }
    }

    fn get(&self, row: usize) -> Option<Cell<'a>> {
        match self {
            OverrideValues::Number(c) => c.get(row).map(Cell::Number),
            OverrideValues::Text(c) => c.get(row).map(Cell::Text),
        }
    }
}

/// One batch's override columns, each with its column name for messages.
pub(crate) struct OverrideColumnsRef<'a> {
    pub(crate) columns: Vec<(Override, &'a str, OverrideValues<'a>)>,
}

impl OverrideColumnsRef<'_> {
    pub(crate) fn get(&self, row: usize) -> Result<RowOverrides, RowError> {
        let mut out = RowOverrides::default();
        for (which, name, column) in &self.columns {
            let Some(value) = column.get(row) else {
                continue;
            };
            let bad = |rule: &str| {
                RowError::new(
                    RowErrorKind::InvalidOverride,
                    format!("column `{name}` ({}): {rule}, got {value}", which.key()),
                )
            };
            match which {
                Override::MaxNewTokens => {
                    out.max_new_tokens = Some(
                        integral(value)
                            .filter(|v| *v >= 1)
                            .and_then(|v| u32::try_from(v).ok())
                            .ok_or_else(|| {
                                bad("max_new_tokens must be an integer from 1 to 4294967295")
                            })?,
                    );
                }
                Override::TopK => {
                    out.top_k = Some(
                        integral(value)
                            .and_then(|v| u32::try_from(v).ok())
                            .ok_or_else(|| bad("top_k must be an integer from 0 to 4294967295"))?,
                    );
                }
                Override::Seed => {
                    out.seed = Some(
                        integral(value)
                            .and_then(|v| u64::try_from(v).ok())
                            .ok_or_else(|| bad("seed must be a non-negative 64-bit integer"))?,
                    );
                }
                Override::Temperature => {
                    let t = real(value)
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .ok_or_else(|| bad("temperature must be a finite number >= 0"))?;
                    out.temperature = Some(t as f32);
                }
                Override::TopP => {
                    let p = real(value)
                        .filter(|p| *p > 0.0 && *p <= 1.0)
                        .ok_or_else(|| bad("top_p must be in (0, 1]"))?;
                    out.top_p = Some(p as f32);
                }
                Override::Reasoning => {
                    out.reasoning = Some(
                        match value {
                            Cell::Text(t) => ReasoningMode::parse(t),
                            Cell::Number(_) => None,
                        }
                        .ok_or_else(|| {
                            bad("reasoning must be one of non_think, think_high, think_max")
                        })?,
                    );
                }
            }
        }
        Ok(out)
    }
}

// Each override reads the kind of cell it takes; the other kind (which the
// column type check keeps out) reads as no valid value.
fn integral(v: Cell) -> Option<i128> {
    match v {
        Cell::Number(Number::Int(i)) => Some(i),
        // Bounded so the cast below cannot saturate into a valid-looking value.
        Cell::Number(Number::Float(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => {
            Some(f as i128)
        }
        Cell::Number(Number::Float(_)) | Cell::Text(_) => None,
    }
}

fn real(v: Cell) -> Option<f64> {
    match v {
        Cell::Number(Number::Int(i)) => Some(i as f64),
        Cell::Number(Number::Float(f)) => Some(f),
        Cell::Text(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};

    fn cols<'a>(specs: &'a [(Override, &'a dyn Array)]) -> OverrideColumnsRef<'a> {
        OverrideColumnsRef {
            columns: specs
                .iter()
                .map(|(w, a)| (*w, "c", OverrideValues::new(*w, *a).expect("fitting type")))
                .collect(),
        }
    }

    #[test]
    fn valid_values_and_nulls() {
        let mnt = Float64Array::from(vec![Some(16.0), None]);
        let temp = Int64Array::from(vec![Some(1), None]);
        let top_p = Float64Array::from(vec![Some(0.5), None]);
        let top_k = Int64Array::from(vec![Some(0), None]);
        let seed = Int64Array::from(vec![Some(42), None]);
        let reasoning = StringArray::from(vec![Some("think_max"), None]);
        let specs: Vec<(Override, &dyn Array)> = vec![
            (Override::MaxNewTokens, &mnt),
            (Override::Temperature, &temp),
            (Override::TopP, &top_p),
            (Override::TopK, &top_k),
            (Override::Seed, &seed),
            (Override::Reasoning, &reasoning),
        ];
        let c = cols(&specs);
        assert_eq!(
            c.get(0).expect("valid"),
            RowOverrides {
                max_new_tokens: Some(16),
                temperature: Some(1.0),
                top_p: Some(0.5),
                top_k: Some(0),
                seed: Some(42),
                reasoning: Some(ReasoningMode::ThinkMax),
            }
        );
        assert_eq!(c.get(1).expect("valid"), RowOverrides::default());
    }

    #[test]
    fn out_of_range_values_are_row_errors() {
        let cases: Vec<(Override, Box<dyn Array>, &str)> = vec![
            (
                Override::MaxNewTokens,
                Box::new(Int64Array::from(vec![-1])),
                "max_new_tokens",
            ),
            (
                Override::MaxNewTokens,
                Box::new(Int64Array::from(vec![0])),
                "max_new_tokens",
            ),
            (
                Override::MaxNewTokens,
                Box::new(Float64Array::from(vec![2.5])),
                "max_new_tokens",
            ),
            (
                Override::Temperature,
                Box::new(Float64Array::from(vec![-0.1])),
                "temperature",
            ),
            (
                Override::Temperature,
                Box::new(Float64Array::from(vec![f64::NAN])),
                "temperature",
            ),
            (
                Override::TopP,
                Box::new(Float64Array::from(vec![0.0])),
                "top_p",
            ),
            (
                Override::TopP,
                Box::new(Float64Array::from(vec![1.5])),
                "top_p",
            ),
            (
                Override::TopK,
                Box::new(Int64Array::from(vec![-3])),
                "top_k",
            ),
            (
                Override::TopK,
                Box::new(Int64Array::from(vec![i64::MAX])),
                "top_k",
            ),
            (Override::Seed, Box::new(Int64Array::from(vec![-7])), "seed"),
            (
                Override::Seed,
                Box::new(Float64Array::from(vec![1e300])),
                "seed",
            ),
            (
                Override::Reasoning,
                Box::new(StringArray::from(vec!["think"])),
                "reasoning",
            ),
            (
                Override::Reasoning,
                Box::new(StringArray::from(vec!["Think_High"])),
                "reasoning",
            ),
        ];
        for (which, array, needle) in &cases {
            let specs: Vec<(Override, &dyn Array)> = vec![(*which, array.as_ref())];
            let e = cols(&specs).get(0).expect_err("out of range");
            assert_eq!(e.kind, RowErrorKind::InvalidOverride);
            assert!(e.message.contains(needle), "{}", e.message);
            assert!(e.message.contains(which.key()), "{}", e.message);
        }
    }

    #[test]
    fn column_types_are_checked_per_override() {
        let text = StringArray::from(vec!["think_high"]);
        let number = Int64Array::from(vec![1]);
        assert!(OverrideValues::new(Override::Reasoning, &number).is_none());
        assert!(OverrideValues::new(Override::Seed, &text).is_none());
        assert!(OverrideValues::new(Override::Reasoning, &text).is_some());
        assert!(Override::Reasoning.accepts(&DataType::LargeUtf8));
        assert!(!Override::TopK.accepts(&DataType::Utf8));
    }
}
