//! A compact set of row keys `(file_index, input_row)`.
//!
//! Committed rows are stored as disjoint, non-adjacent half-open ranges per
//! input file, so a job with millions of committed rows in near input order
//! costs a few ranges, not a hash entry per row. Ranges are always merged on
//! insert, so two sets holding the same rows compare equal.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    /// file index -> (range start -> range end, exclusive).
    files: BTreeMap<u32, BTreeMap<u64, u64>>,
    len: u64,
}

impl RowSet {
    pub fn new() -> Self {
        RowSet::default()
    }

    /// Adds a row; returns false when it was already present.
    pub fn insert(&mut self, file_index: u32, row: u64) -> bool {
        let ranges = self.files.entry(file_index).or_default();
        let before = ranges.range(..=row).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, end)) = before
            && end > row
        {
            return false;
        }
        let after_end = ranges.get(&(row + 1)).copied();
        match (before, after_end) {
            (Some((start, end)), Some(next_end)) if end == row => {
                ranges.remove(&(row + 1));
                ranges.insert(start, next_end);
            }
            (Some((start, end)), None) if end == row => {
                ranges.insert(start, row + 1);
            }
            (_, Some(next_end)) => {
                ranges.remove(&(row + 1));
                ranges.insert(row, next_end);
            }
            _ => {
                ranges.insert(row, row + 1);
            }
        }
        self.len += 1;
        true
    }

    pub fn contains(&self, file_index: u32, row: u64) -> bool {
        self.files
            .get(&file_index)
            .and_then(|r| r.range(..=row).next_back())
            .is_some_and(|(_, &end)| end > row)
    }

    /// Number of rows in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Per file, in file order: the sorted half-open ranges `[start, end)`.
    pub fn ranges(&self) -> impl Iterator<Item = (u32, Vec<[u64; 2]>)> + '_ {
        self.files
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(&f, r)| (f, r.iter().map(|(&s, &e)| [s, e]).collect()))
    }

    /// Adds every row of `other`; returns the first row already present, if
    /// any (the rest are still added).
    pub fn absorb(&mut self, other: &RowSet) -> Option<(u32, u64)> {
        let mut first_dup = None;
        for (file, ranges) in other.ranges() {
            for [start, end] in ranges {
                for row in start..end {
                    if !self.insert(file, row) && first_dup.is_none() {
                        first_dup = Some((file, row));
                    }
                }
            }
        }
        first_dup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_adjacent_rows_into_one_range() {
        let mut s = RowSet::new();
        for row in [3, 1, 2, 0, 7, 5, 6] {
            assert!(s.insert(0, row));
        }
        assert!(!s.insert(0, 2));
        assert_eq!(s.len(), 7);
        let ranges: Vec<_> = s.ranges().collect();
        assert_eq!(ranges, vec![(0, vec![[0, 4], [5, 8]])]);
        assert!(s.contains(0, 3));
        assert!(!s.contains(0, 4));
        assert!(!s.contains(1, 3));
        assert!(s.insert(0, 4));
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(0, vec![[0, 8]])]);
    }

    #[test]
    fn equal_contents_compare_equal_regardless_of_insert_order() {
        let mut a = RowSet::new();
        let mut b = RowSet::new();
        for row in 0..20u64 {
            a.insert((row % 2) as u32, row);
            b.insert(((19 - row) % 2) as u32, 19 - row);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn absorb_reports_overlap() {
        let mut a = RowSet::new();
        a.insert(1, 5);
        let mut b = RowSet::new();
        b.insert(1, 4);
        b.insert(1, 5);
        assert_eq!(a.absorb(&b), Some((1, 5)));
        assert_eq!(a.len(), 2);
        let mut c = RowSet::new();
        c.insert(2, 0);
        assert_eq!(a.absorb(&c), None);
        assert_eq!(a.len(), 3);
    }
}
