//! Resolves the spec's input paths and glob patterns to a sorted, deduplicated
//! file list.
//!
//! The order of this list defines `file_index`, so it must not depend on
//! filesystem enumeration order: files are sorted by their path text.
//! Two spellings of one file (e.g. `a.parquet` and `./a.parquet`) count once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::error::IoError;

/// Drops interior `.` components and doubled separators, so `d/./a` and
/// `d//a` are written as `d/a`.
fn tidy(path: &Path) -> PathBuf {
    path.components().collect()
}

fn is_pattern(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Files named by `patterns`, sorted by path text. A pattern matching no file
/// or a literal path that is not a file is an error naming it. Paths are
/// tidied lexically (see [`tidy`]) but not made absolute.
pub fn resolve_paths(patterns: &[String]) -> Result<Vec<PathBuf>, IoError> {
    let mut by_text: BTreeMap<String, PathBuf> = BTreeMap::new();
    for pattern in patterns {
        if is_pattern(pattern) {
            let paths = glob::glob(pattern).map_err(|e| IoError::BadPattern {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
            let mut matched = false;
            for entry in paths {
                let path = entry.map_err(|e| {
                    let path = e.path().to_path_buf();
                    IoError::fs("listing", path, e.into())
                })?;
                if path.is_file() {
                    matched = true;
                    let path = tidy(&path);
                    by_text.insert(path.to_string_lossy().into_owned(), path);
                }
            }
            if !matched {
                return Err(IoError::NoMatch(pattern.clone()));
            }
        } else {
            let path = Path::new(pattern);
            if !path.is_file() {
                return Err(IoError::MissingFile(pattern.clone()));
            }
            let path = tidy(path);
            by_text.insert(path.to_string_lossy().into_owned(), path);
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(by_text.len());
    for path in by_text.into_values() {
        let identity =
            std::fs::canonicalize(&path).map_err(|e| IoError::fs("resolving", path.clone(), e))?;
        if seen.insert(identity) {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedupes_and_reports_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.parquet", "a.parquet", "c.txt"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let d = dir.path().display();
        let got = resolve_paths(&[
            format!("{d}/*.parquet"),
            format!("{d}/a.parquet"),
            format!("{d}/./b.parquet"),
        ])
        .expect("resolves");
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            vec![Some("a.parquet".into()), Some("b.parquet".into())]
        );
        assert_eq!(got[1], dir.path().join("b.parquet"));

        let missing = format!("{d}/nope.parquet");
        match resolve_paths(std::slice::from_ref(&missing)) {
            Err(IoError::MissingFile(p)) => assert_eq!(p, missing),
            other => panic!("expected MissingFile, got {other:?}"),
        }
        let empty_glob = format!("{d}/*.csv");
        match resolve_paths(std::slice::from_ref(&empty_glob)) {
            Err(IoError::NoMatch(p)) => assert_eq!(p, empty_glob),
            other => panic!("expected NoMatch, got {other:?}"),
        }
        let err = resolve_paths(&[format!("{d}/[")]).expect_err("bad glob");
        assert!(matches!(err, IoError::BadPattern { .. }), "{err:?}");
    }
}
