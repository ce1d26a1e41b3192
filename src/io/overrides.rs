//! Per-row generation overrides read from optional numeric columns.
//!
//! A null cell means "use the job default". Any integer or float column is
//! accepted for every override (pandas stores nullable integers as floats),
//! but integer-valued overrides must hold integral values. A value out of
//! range makes the row an [`RowErrorKind::InvalidOverride`] error row.

use super::arrow_values::{Number, NumberColumn};
use super::row::{RowError, RowErrorKind, RowOverrides};

/// Which override a column feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Override {
    MaxNewTokens,
    Temperature,
    TopP,
    TopK,
    Seed,
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
        }
    }
}

/// One batch's override columns, each with its column name for messages.
pub(crate) struct OverrideColumnsRef<'a> {
    pub(crate) columns: Vec<(Override, &'a str, NumberColumn<'a>)>,
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
                    let t = real(value);
                    if !(t.is_finite() && t >= 0.0) {
                        return Err(bad("temperature must be a finite number >= 0"));
                    }
                    out.temperature = Some(t as f32);
                }
                Override::TopP => {
                    let p = real(value);
                    if !(p > 0.0 && p <= 1.0) {
                        return Err(bad("top_p must be in (0, 1]"));
                    }
                    out.top_p = Some(p as f32);
                }
            }
        }
        Ok(out)
    }
}

fn integral(v: Number) -> Option<i128> {
    match v {
        Number::Int(i) => Some(i),
        // Bounded so the cast below cannot saturate into a valid-looking value.
        Number::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => Some(f as i128),
        Number::Float(_) => None,
    }
}

fn real(v: Number) -> f64 {
    match v {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, Int64Array};

    fn cols<'a>(specs: &'a [(Override, &'a dyn Array)]) -> OverrideColumnsRef<'a> {
        OverrideColumnsRef {
            columns: specs
                .iter()
                .map(|(w, a)| (*w, "c", NumberColumn::new(*a).expect("numeric")))
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
        let specs: Vec<(Override, &dyn Array)> = vec![
            (Override::MaxNewTokens, &mnt),
            (Override::Temperature, &temp),
            (Override::TopP, &top_p),
            (Override::TopK, &top_k),
            (Override::Seed, &seed),
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
        ];
        for (which, array, needle) in &cases {
            let specs: Vec<(Override, &dyn Array)> = vec![(*which, array.as_ref())];
            let e = cols(&specs).get(0).expect_err("out of range");
            assert_eq!(e.kind, RowErrorKind::InvalidOverride);
            assert!(e.message.contains(needle), "{}", e.message);
            assert!(e.message.contains(which.key()), "{}", e.message);
        }
    }
}
