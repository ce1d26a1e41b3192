//! SPS(B): forward steps per second as a function of the tokens in a batch,
//! the hardware cost curve the verify budget trades acceptance against.
//!
//! Invariants: at least one point; token counts > 0 and distinct, kept
//! sorted; every rate finite and > 0. Lookups interpolate linearly between
//! measured points and clamp to the nearest end outside them, so the
//! profile should span 1 up to the largest batch the engine can form: past
//! the last point the rate is held flat, which overstates it (steps slow down
//! as batches grow) and so favours verifying more.
//!
//! A profile is cached as JSON under a key naming the model and machine; a
//! file with another key is a miss, never a silent reuse.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Timed runs per batch size when profiling; the fastest is kept (see
/// [`SpsTable::profile`]).
pub const PROFILE_RUNS: usize = 5;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SpsError {
    #[error("an SPS table needs at least one measured point")]
    Empty,
    #[error("an SPS point needs a batch of at least one token")]
    ZeroTokens,
    #[error("{tokens} tokens: {rate} steps per second is not a finite positive number")]
    BadRate { tokens: usize, rate: f64 },
    #[error("{0} tokens measured twice")]
    Duplicate(usize),
    #[error("cannot read or write the SPS cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the SPS cache {path} is not valid JSON for this format: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the SPS cache {path} has format version {found}, expected {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("the SPS cache {path} holds a bad table: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<SpsError>,
    },
}

/// Measured (tokens in batch, steps per second) points.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsTable {
    points: Vec<(usize, f64)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    version: u32,
    key: String,
    points: Vec<(usize, f64)>,
}

impl SpsTable {
    /// Validates and sorts the points; see the module doc for the rules.
    pub fn new(mut points: Vec<(usize, f64)>) -> Result<SpsTable, SpsError> {
        if points.is_empty() {
            return Err(SpsError::Empty);
        }
        for &(tokens, rate) in &points {
            if tokens == 0 {
                return Err(SpsError::ZeroTokens);
            }
            if !(rate.is_finite() && rate > 0.0) {
                return Err(SpsError::BadRate { tokens, rate });
            }
        }
        points.sort_unstable_by_key(|p| p.0);
        if let Some(w) = points.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(SpsError::Duplicate(w[0].0));
        }
        Ok(SpsTable { points })
    }

    /// Times `step(size)` [`PROFILE_RUNS`] times for each size and keeps the
    /// fastest run; see [`SpsTable::profile_together`].
    pub fn profile(
        sizes: &[usize],
        mut step: impl FnMut(usize) -> Duration,
    ) -> Result<SpsTable, SpsError> {
        let mut tables = SpsTable::profile_together(&[sizes], |_, size| step(size))?;
        Ok(tables.remove(0))
    }

    /// Profiles several tables at once: `step(t, size)` times a step of
    /// table `t`'s model over `size` tokens. Runs go in [`PROFILE_RUNS`]
    /// rounds, each timing every size of every table once, and each point
    /// keeps its fastest run.
    ///
    /// Interference (other tenants of a shared machine, page faults, a
    /// first-call allocation) only ever adds time, so the fastest run is
    /// the closest to what a step costs the hardware; a median would keep
    /// whatever load the machine had during the probe. Rounds spread each
    /// point's runs over the whole probe, so a slow spell costs a point at
    /// most the runs it overlaps, and it hits every table alike: tables
    /// whose ratio decides something (a draft model's and its target's)
    /// are then compared on the same footing. A step too fast to time (zero
    /// duration) is refused as an infinite rate rather than guessed at.
    pub fn profile_together(
        sizes: &[&[usize]],
        mut step: impl FnMut(usize, usize) -> Duration,
    ) -> Result<Vec<SpsTable>, SpsError> {
        let mut fastest: Vec<Vec<Duration>> =
            sizes.iter().map(|s| vec![Duration::MAX; s.len()]).collect();
        for _ in 0..PROFILE_RUNS {
            for (t, table) in sizes.iter().enumerate() {
                for (i, &size) in table.iter().enumerate() {
                    fastest[t][i] = fastest[t][i].min(step(t, size));
                }
            }
        }
        sizes
            .iter()
            .zip(fastest)
            .map(|(table, runs)| {
                let rates = runs.iter().map(|d| 1.0 / d.as_secs_f64());
                SpsTable::new(table.iter().copied().zip(rates).collect())
            })
            .collect()
    }

    /// Steps per second for a batch of `tokens`, interpolated linearly
    /// between measured points and clamped to the end values outside them.
    pub fn steps_per_second(&self, tokens: usize) -> f64 {
        let i = self.points.partition_point(|p| p.0 < tokens);
        if i == 0 {
            return self.points[0].1;
        }
        if i == self.points.len() {
            return self.points[i - 1].1;
        }
        let ((x0, y0), (x1, y1)) = (self.points[i - 1], self.points[i]);
        let f = (tokens - x0) as f64 / (x1 - x0) as f64;
        y0 + f * (y1 - y0)
    }

    /// The measured points, sorted by token count.
    pub fn points(&self) -> &[(usize, f64)] {
        &self.points
    }

    /// Writes the table under `key` (name the model and the machine),
    /// making the cache directory if needed. The file is written beside its
    /// final name and renamed into place, so a crash never leaves a
    /// truncated cache behind.
    pub fn save(&self, path: &Path, key: &str) -> Result<(), SpsError> {
        let file = CacheFile {
            version: FORMAT_VERSION,
            key: key.to_string(),
            points: self.points.clone(),
        };
        let json = serde_json::to_string_pretty(&file).map_err(|source| SpsError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let io = |source| SpsError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a cached table. `Ok(None)` when there is no file or it was
    /// profiled under another key (another model or machine): re-profile.
    /// A file that exists but cannot be read or trusted is an error.
    pub fn load(path: &Path, key: &str) -> Result<Option<SpsTable>, SpsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SpsError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let file: CacheFile = serde_json::from_str(&text).map_err(|source| SpsError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if file.version != FORMAT_VERSION {
            return Err(SpsError::Version {
                path: path.to_path_buf(),
                found: file.version,
            });
        }
        if file.key != key {
            return Ok(None);
        }
        SpsTable::new(file.points)
            .map(Some)
            .map_err(|e| SpsError::Invalid {
                path: path.to_path_buf(),
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_points_and_clamps_outside() {
        let t = SpsTable::new(vec![(64, 10.0), (16, 40.0), (32, 30.0)]).unwrap();
        assert_eq!(t.points()[0], (16, 40.0), "points are sorted");
        assert_eq!(t.steps_per_second(1), 40.0);
        assert_eq!(t.steps_per_second(16), 40.0);
        assert_eq!(t.steps_per_second(24), 35.0);
        assert_eq!(t.steps_per_second(48), 20.0);
        assert_eq!(t.steps_per_second(64), 10.0);
        assert_eq!(t.steps_per_second(1000), 10.0);
    }

    #[test]
    fn only_finite_positive_points_make_a_table() {
        assert!(matches!(SpsTable::new(vec![]), Err(SpsError::Empty)));
        assert!(matches!(
            SpsTable::new(vec![(0, 1.0)]),
            Err(SpsError::ZeroTokens)
        ));
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                SpsTable::new(vec![(4, rate)]),
                Err(SpsError::BadRate { tokens: 4, .. })
            ));
        }
        assert!(matches!(
            SpsTable::new(vec![(4, 1.0), (4, 2.0)]),
            Err(SpsError::Duplicate(4))
        ));
    }

    #[test]
    fn profiling_keeps_the_fastest_run() {
        let mut calls = 0u32;
        let t = SpsTable::profile(&[1, 8], |size| {
            calls += 1;
            // Runs slowed by interference (one badly, the rest by 0..30%)
            // must not move the estimate.
            let ms = match calls % PROFILE_RUNS as u32 {
                1 => 900,
                3 => 10 * size as u64,
                k => 10 * size as u64 * (10 + u64::from(k)) / 10,
            };
            Duration::from_millis(ms)
        })
        .unwrap();
        assert_eq!(calls, 2 * PROFILE_RUNS as u32);
        assert_eq!(t.points(), &[(1, 100.0), (8, 12.5)]);
        let zero = SpsTable::profile(&[1], |_| Duration::ZERO);
        assert!(matches!(zero, Err(SpsError::BadRate { tokens: 1, .. })));
    }

    #[test]
    fn tables_profiled_together_take_turns_in_rounds() {
        let mut calls = Vec::new();
        let tables = SpsTable::profile_together(&[&[1, 4], &[2]], |t, size| {
            calls.push((t, size));
            // A slow spell over the first round slows both tables' runs.
            let slow = if calls.len() <= 3 { 5 } else { 1 };
            Duration::from_millis(slow * (10 * t as u64 + size as u64))
        })
        .unwrap();
        let round = [(0, 1), (0, 4), (1, 2)];
        assert_eq!(calls, round.repeat(PROFILE_RUNS));
        assert_eq!(tables[0].points(), &[(1, 1000.0), (4, 250.0)]);
        assert_eq!(tables[1].points(), &[(2, 1000.0 / 12.0)]);
    }

    #[test]
    fn the_cache_round_trips_under_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        // A fresh machine has no cache directory yet.
        let path = dir.path().join("cache/specbatch/sps.json");
        assert!(
            SpsTable::load(&path, "m@h").unwrap().is_none(),
            "no file yet"
        );
        let t = SpsTable::new(vec![(1, 50.5), (256, 3.25)]).unwrap();
        t.save(&path, "m@h").unwrap();
        assert_eq!(SpsTable::load(&path, "m@h").unwrap(), Some(t));
        assert!(SpsTable::load(&path, "other-model@h").unwrap().is_none());
    }

    #[test]
    fn bad_cache_files_are_typed_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sps.json");
        let cases = [
            ("{ not json", "not valid JSON"),
            (
                r#"{"version": 2, "key": "k", "points": [[1, 1.0]]}"#,
                "format version 2",
            ),
            (
                r#"{"version": 1, "key": "k", "points": [[1, -3.0]]}"#,
                "bad table",
            ),
            (r#"{"version": 1, "key": "k", "points": []}"#, "bad table"),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let err = SpsTable::load(&path, "k").unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("sps.json"), "{err}");
        }
        let err = SpsTable::load(dir.path(), "k").unwrap_err();
        assert!(
            matches!(err, SpsError::Io { .. }),
            "a directory is unreadable"
        );
    }
}
