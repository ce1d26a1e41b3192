//! Sequential Temperature Scaling (STS) of draft confidences.
//!
//! Raw confidence heads are over-confident, and the budget multiplies them
//! into survival probabilities, so errors compound along the draft. STS
//! keeps one temperature per position: c = sigmoid(logit(c_raw) / T_k).
//! T > 1 pulls confidences toward 1/2, T < 1 pushes them apart, T = 1 is
//! the identity. Positions past the fitted ones are left raw (T = 1).
//!
//! Fitting is left to right: T_k is the point of a 49-point log grid over
//! [1/8, 8] (2^(i/8 − 3)) that minimises the expected calibration error of
//! the cumulative product c_1·…·c_k against observed survival (were the
//! first k drafts all accepted?), with T_1..T_{k−1} already fixed. ECE uses
//! 16 equal-width bins of predicted survival. Ties go to the grid point
//! nearest T = 1, the lower first, so no evidence means no change.
//!
//! Invariant: every temperature is finite and > 0, whether built in code,
//! fitted or loaded from a file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Draft;

/// Grid points per position: 2^(i/8 − 3) for i in 0..49, i.e. 1/8 to 8.
pub const GRID_POINTS: usize = 49;
/// Equal-width bins of predicted survival in the ECE.
pub const ECE_BINS: usize = 16;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StsError {
    #[error("a calibration needs at least one temperature")]
    Empty,
    #[error("temperature {index} is {value}; temperatures must be finite and > 0")]
    BadTemperature { index: usize, value: f64 },
    #[error("cannot read or write the calibration file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the calibration file {path} is malformed: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the calibration file {path} has version {found}, expected {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("the calibration file {path} is invalid: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<StsError>,
    },
}

/// One verified step of held-out data.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Raw confidences of the positions that were verified. For an unbiased
    /// fit, record steps that verified every drafted position.
    pub raw: Vec<f32>,
    /// How many of those drafts were accepted (a prefix).
    pub accepted: usize,
}

/// Per-position temperatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sts {
    temperatures: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationFile {
    version: u32,
    temperatures: Vec<f64>,
}

impl Sts {
    pub fn new(temperatures: Vec<f64>) -> Result<Sts, StsError> {
        if temperatures.is_empty() {
            return Err(StsError::Empty);
        }
        if let Some((index, &value)) = temperatures
            .iter()
            .enumerate()
            .find(|(_, t)| !(t.is_finite() && **t > 0.0))
        {
            return Err(StsError::BadTemperature { index, value });
        }
        Ok(Sts { temperatures })
    }

    pub fn temperatures(&self) -> &[f64] {
        &self.temperatures
    }

    /// The calibrated confidence of a raw one at `position` (0-based).
    pub fn calibrate(&self, position: usize, raw: f32) -> f32 {
        let t = self.temperatures.get(position).copied().unwrap_or(1.0);
        scaled(raw, t) as f32
    }

    /// Calibrates a draft's confidences in place.
    pub fn apply(&self, draft: &mut Draft) {
        for (k, c) in draft.confidence.iter_mut().enumerate() {
            *c = self.calibrate(k, *c);
        }
    }

    /// Fits the first `positions` temperatures to held-out steps; see the
    /// module doc. A position no record verified keeps T = 1.
    pub fn fit(records: &[StepRecord], positions: usize) -> Sts {
        let grid = grid_nearest_one_first();
        let mut survival = vec![1.0f64; records.len()];
        let mut temperatures = Vec::with_capacity(positions);
        for k in 0..positions {
            let seen: Vec<usize> = (0..records.len())
                .filter(|&i| k < records[i].raw.len())
                .collect();
            let observed: Vec<bool> = seen.iter().map(|&i| records[i].accepted > k).collect();
            let predicted = |t: f64| -> Vec<f64> {
                seen.iter()
                    .map(|&i| survival[i] * scaled(records[i].raw[k], t))
                    .collect()
            };
            let mut best = (1.0, f64::INFINITY);
            if !seen.is_empty() {
                for &t in &grid {
                    let e = ece(&predicted(t), &observed);
                    if e < best.1 {
                        best = (t, e);
                    }
                }
            }
            for (&i, p) in seen.iter().zip(predicted(best.0)) {
                survival[i] = p;
            }
            temperatures.push(best.0);
        }
        Sts { temperatures }
    }

    /// The expected calibration error, at each of the first `positions`
    /// positions, of the calibrated survival c_1·…·c_k against observed
    /// survival over the records that verified position k (NaN where none
    /// did): what [`Sts::fit`] minimises, for reporting a fit.
    pub fn survival_ece(&self, records: &[StepRecord], positions: usize) -> Vec<f64> {
        (0..positions)
            .map(|k| {
                let seen = records.iter().filter(|r| k < r.raw.len());
                let (predicted, observed): (Vec<f64>, Vec<bool>) = seen
                    .map(|r| {
                        let t = |j: usize| self.temperatures.get(j).copied().unwrap_or(1.0);
                        let p: f64 = (0..=k).map(|j| scaled(r.raw[j], t(j))).product();
                        (p, r.accepted > k)
                    })
                    .unzip();
                if predicted.is_empty() {
                    f64::NAN
                } else {
                    ece(&predicted, &observed)
                }
            })
            .collect()
    }

    /// Reads `{ "version": 1, "temperatures": [...] }`; every error names
    /// the file.
    pub fn load(path: &Path) -> Result<Sts, StsError> {
        let text = std::fs::read_to_string(path).map_err(|source| StsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: CalibrationFile =
            serde_json::from_str(&text).map_err(|source| StsError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if file.version != FORMAT_VERSION {
            return Err(StsError::Version {
                path: path.to_path_buf(),
                found: file.version,
            });
        }
        Sts::new(file.temperatures).map_err(|e| StsError::Invalid {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), StsError> {
        let file = CalibrationFile {
            version: FORMAT_VERSION,
            temperatures: self.temperatures.clone(),
        };
        let json = serde_json::to_string_pretty(&file).map_err(|source| StsError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        std::fs::write(path, json).map_err(|source| StsError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// sigmoid(logit(c) / t). Raw values outside [0, 1] are clamped and NaN
/// counts as 0; 0 and 1 stay fixed (logit ±∞).
fn scaled(raw: f32, t: f64) -> f64 {
    let c = if raw.is_nan() {
        0.0
    } else {
        f64::from(raw).clamp(0.0, 1.0)
    };
    let logit = c.ln() - (1.0 - c).ln();
    1.0 / (1.0 + (-logit / t).exp())
}

/// The grid, ordered by distance from T = 1 in log space, lower first.
fn grid_nearest_one_first() -> Vec<f64> {
    let mut steps: Vec<i32> = (0..GRID_POINTS as i32).map(|i| i - 24).collect();
    steps.sort_by_key(|&s| (s.abs(), s));
    steps.iter().map(|&s| 2f64.powf(s as f64 / 8.0)).collect()
}

/// Expected calibration error: Σ over bins of |Σ predicted − Σ observed| / N.
fn ece(predicted: &[f64], observed: &[bool]) -> f64 {
    let mut gap = [0.0f64; ECE_BINS];
    for (&p, &o) in predicted.iter().zip(observed) {
        let bin = ((p * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        gap[bin] += p - if o { 1.0 } else { 0.0 };
    }
    gap.iter().map(|g| g.abs()).sum::<f64>() / predicted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_never_reports_a_worse_survival_ece_than_raw() {
        // Over-confident raw confidences: 0.9 at every position, while only
        // half the drafts at each position are kept.
        let records: Vec<StepRecord> = (0..200)
            .map(|i| StepRecord {
                raw: vec![0.9, 0.9],
                accepted: [0, 1, 2, 2][i % 4],
            })
            .collect();
        let raw = Sts::new(vec![1.0]).unwrap().survival_ece(&records, 3);
        let fitted = Sts::fit(&records, 2);
        let after = fitted.survival_ece(&records, 3);
        assert!(
            raw[2].is_nan() && after[2].is_nan(),
            "no record verified position 3"
        );
        for k in 0..2 {
            assert!(
                after[k] <= raw[k],
                "position {k}: {} > {}",
                after[k],
                raw[k]
            );
        }
        // Position 1 is kept 3/4 of the time against a raw 0.9.
        assert!((raw[0] - 0.15).abs() < 1e-6, "{}", raw[0]);
        assert!(after[0] < raw[0]);
    }
    use crate::engine::rng::Rng;
    use crate::spec::TokenDist;

    /// Steps from a drafter whose raw confidence logits are `true_t[k]`
    /// times the true ones: over-confident where the factor exceeds 1.
    fn miscalibrated(true_t: &[f64], n: usize, seed: u64) -> Vec<StepRecord> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let mut raw = Vec::new();
                let mut accepted = 0;
                let mut alive = true;
                for &t in true_t {
                    let z = 6.0 * rng.next_f64() - 3.0;
                    raw.push((1.0 / (1.0 + (-z * t).exp())) as f32);
                    alive = alive && rng.next_f64() < 1.0 / (1.0 + (-z).exp());
                    accepted += alive as usize;
                }
                StepRecord { raw, accepted }
            })
            .collect()
    }

    fn survival_ece(sts: &Sts, records: &[StepRecord], k: usize) -> f64 {
        let predicted: Vec<f64> = records
            .iter()
            .map(|r| (0..=k).map(|j| sts.calibrate(j, r.raw[j]) as f64).product())
            .collect();
        let observed: Vec<bool> = records.iter().map(|r| r.accepted > k).collect();
        ece(&predicted, &observed)
    }

    #[test]
    fn fitting_recovers_a_known_miscalibration() {
        let true_t = [2.0, 0.5, 1.5];
        let records = miscalibrated(&true_t, 20_000, 11);
        let sts = Sts::fit(&records, 3);
        println!("fitted {:?}, true {true_t:?}", sts.temperatures());
        for (k, (&got, &want)) in sts.temperatures().iter().zip(&true_t).enumerate() {
            // Within two grid steps (a factor 2^(1/4)).
            assert!(
                (got / want).log2().abs() <= 0.25 + 1e-9,
                "position {k}: {got} vs {want}"
            );
        }
        let raw = Sts::new(vec![1.0; 3]).unwrap();
        for k in 0..3 {
            let (before, after) = (
                survival_ece(&raw, &records, k),
                survival_ece(&sts, &records, k),
            );
            assert!(
                after < 0.02 && after < before,
                "position {k}: {before} -> {after}"
            );
        }
    }

    #[test]
    fn positions_without_evidence_keep_the_identity() {
        let records = vec![StepRecord {
            raw: vec![0.7],
            accepted: 1,
        }];
        let sts = Sts::fit(&records, 3);
        assert_eq!(&sts.temperatures()[1..], &[1.0, 1.0]);
    }

    #[test]
    fn temperatures_scale_confidence_logits() {
        let sts = Sts::new(vec![2.0, 0.5]).unwrap();
        // logit(0.8) = ln 4; halved is ln 2 -> 2/3; doubled is ln 16 -> 16/17.
        assert!((sts.calibrate(0, 0.8) - 2.0 / 3.0).abs() < 1e-6);
        assert!((sts.calibrate(1, 0.8) - 16.0 / 17.0).abs() < 1e-6);
        assert_eq!(sts.calibrate(2, 0.8), 0.8, "unfitted positions stay raw");
        assert_eq!((sts.calibrate(0, 0.0), sts.calibrate(0, 1.0)), (0.0, 1.0));
        let mut draft = Draft::default();
        draft.push(1, 0.8, TokenDist::point(1));
        draft.push(2, 0.8, TokenDist::point(2));
        sts.apply(&mut draft);
        assert!((draft.confidence()[1] - 16.0 / 17.0).abs() < 1e-6);
    }

    #[test]
    fn the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sts.json");
        let sts = Sts::new(vec![1.25, 0.75, 3.0]).unwrap();
        sts.save(&path).unwrap();
        assert_eq!(Sts::load(&path).unwrap(), sts);
    }

    #[test]
    fn bad_files_are_typed_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sts.json");
        let err = Sts::load(&path).unwrap_err();
        assert!(matches!(err, StsError::Io { .. }) && err.to_string().contains("sts.json"));
        let cases = [
            ("[1.0, 2.0]", "malformed"),
            (
                r#"{"version": 1, "temperatures": [1.0], "extra": 0}"#,
                "malformed",
            ),
            (r#"{"version": 1, "temperatures": ["hot"]}"#, "malformed"),
            (r#"{"version": 3, "temperatures": [1.0]}"#, "version 3"),
            (
                r#"{"version": 1, "temperatures": [1.0, 0.0]}"#,
                "temperature 1 is 0",
            ),
            (
                r#"{"version": 1, "temperatures": [-2.0]}"#,
                "temperature 0 is -2",
            ),
            (
                r#"{"version": 1, "temperatures": []}"#,
                "at least one temperature",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Sts::load(&path).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("sts.json"),
                "{text}: {err}"
            );
        }
    }
}
